"""Batch helpers that let one step's loss code serve a single model and a pack of members.

A single :class:`~introzoo.model.VAE` holds tensors ``(B, ...)``; a packed model
(:mod:`introzoo.packed`) holds ``(k, B, ...)`` with one leading member dimension and declares
``lead = 1``. Per-sample losses are then ``(B,)`` or ``(k, B)``; a batch mean is a scalar or a
``(k, 1)`` column, so that per-member options (``(k, 1)`` tensors in a pack, floats alone) broadcast
against both per-sample terms and batch means.
"""

from __future__ import annotations

import torch


def lead(model) -> int:
    """Leading member dimensions of the model's tensors (0 for a single model)."""
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
