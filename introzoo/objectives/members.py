"""Batch helpers that let one step's loss code serve a single model and a pack of members.

A single :class:`~introzoo.model.VAE` holds tensors ``(B, ...)``; a packed model
(:mod:`introzoo.packing.model`) holds ``(k, B, ...)`` with one leading member dimension and declares
``lead = 1``. Per-sample losses are then ``(B,)`` or ``(k, B)``; a batch mean is a scalar or a
``(k, 1)`` column, so that per-member options (``(k, 1)`` tensors in a pack, floats alone) broadcast
against both per-sample terms and batch means.
"""

from __future__ import annotations

import torch


def lead(model) -> int:
    """Leading member dimensions of the model's tensors (``model.lead``: 0 for a single model; a model
    without the attribute counts as one)."""
    return getattr(model, "lead", 0)


def bsize(model, x: torch.Tensor) -> int:
    return x.shape[lead(model)]


def bmean(model, t: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of per-sample values: a scalar, or ``(k, 1)`` in a pack."""
    return t.mean() if lead(model) == 0 else t.mean(-1, keepdim=True)


def bcat(model, tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the batch dimension."""
    return torch.cat(tensors, dim=lead(model))


def bslice(model, t: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
    """Rows ``start:stop`` of the batch dimension (a view)."""
    stop = t.shape[lead(model)] if stop is None else stop
    return t.narrow(lead(model), start, stop - start)


def backward(loss: torch.Tensor, **kwargs) -> None:
    """Back-propagate a loss; a pack's per-member losses are summed (members share no parameter, so
    each member's gradient is that of its own loss)."""
    (loss if loss.dim() == 0 else loss.sum()).backward(**kwargs)


class MemberOption:
    """One float option of the members of a pack, computed as each member's solo run computes it.

    Alone, an option is a Python float: arithmetic between options (``0.5 * c.gamma_r * c.beta_rec``)
    runs in double precision, and the result is rounded to the tensor's dtype only where it meets a
    tensor. A ``MemberOption`` keeps the members' values in float64 and does the same: arithmetic with
    numbers or other options stays in float64; where it meets a tensor (``c.beta_kl * kl``,
    ``torch.exp(c.x * t)``) it becomes a ``(k, 1)`` column of that tensor's dtype. Float32 packs then
    give their members' solo results bit for bit (a ``(k, 1)`` float32 column multiplied out of order
    would round each product once more)."""

    __slots__ = ("values",)

    def __init__(self, values) -> None:
        self.values = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.float64)

    def column(self, like: torch.Tensor) -> torch.Tensor:
        return self.values.to(device=like.device, dtype=like.dtype).reshape(-1, 1)

    def __repr__(self) -> str:
        return f"MemberOption({self.values.tolist()})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        like = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if like is None or not like.is_floating_point():
            raise TypeError(f"{func.__name__}: a per-member option needs a floating-point tensor beside it")
        conv = lambda a: a.column(like) if isinstance(a, MemberOption) else a
        return func(*map(conv, args), **{k: conv(v) for k, v in kwargs.items()})

    def _op(self, other, fn):
        if isinstance(other, torch.Tensor):
            return fn(self.column(other), other)
        if isinstance(other, MemberOption):
            return MemberOption(fn(self.values, other.values))
        if isinstance(other, (int, float)):
            return MemberOption(fn(self.values, float(other)))
        return NotImplemented

    def _rop(self, other, fn):
        if isinstance(other, torch.Tensor):
            return fn(other, self.column(other))
        if isinstance(other, (int, float)):
            return MemberOption(fn(float(other), self.values))
        return NotImplemented

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._rop(o, lambda a, b: a + b)

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._rop(o, lambda a, b: a - b)

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b)

    def __rmul__(self, o):
        return self._rop(o, lambda a, b: a * b)

    def __truediv__(self, o):
        return self._op(o, lambda a, b: a / b)

    def __rtruediv__(self, o):
        return self._rop(o, lambda a, b: a / b)

    def __pow__(self, o):
        return self._op(o, lambda a, b: a**b)

    def __rpow__(self, o):
        return self._rop(o, lambda a, b: a**b)

    def __neg__(self):
        return MemberOption(-self.values)
