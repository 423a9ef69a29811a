"""Mixed precision of the training step (``--precision fp32|bf16|fp16``), in one place.

- ``fp32`` (default): nothing changes; the step is the same computation, bit for bit.
- ``bf16`` / ``fp16``: the encoder's and the decoder's forward passes run under
  :func:`torch.autocast` and hand back float32 outputs, so that the losses (reconstruction, KL, the
  exponential ELBO of Soft-IntroVAE) are computed in float32 and the backward passes run outside
  autocast, as PyTorch recommends (https://pytorch.org/docs/stable/amp.html).
- ``fp16`` also scales the losses with one :class:`torch.amp.GradScaler` shared by every optimiser of the
  step, following PyTorch's recipe for several losses and optimisers ("Working with multiple models,
  losses, and optimizers"): each backward pass scales its loss, each optimiser steps through the
  scaler (which unscales that optimiser's gradients and skips its step when they hold an inf or NaN),
  and the scale is updated once, at the end of the iteration. The introspective objectives step the
  encoder, then the decoder (and prior) within one iteration; a shared scaler covers that order.

Objectives never see this: :class:`~introzoo.objectives.base.Objective` calls :meth:`Precision.scale`
in its ``backward``, :meth:`Precision.step` in ``step_optimizers`` and :meth:`Precision.forwards` /
:meth:`Precision.update` around its ``train_step``. Evaluation, sampling and the progress grids run
in float32 (the autocast forwards are only installed during a training step).
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Iterator, Literal

import torch
from torch import nn

from ..errors import UsageError

PrecisionName = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_supported(name: str, device: torch.device) -> None:
    """A :class:`UsageError` (one line, exit code 2) where ``name`` cannot run on ``device``."""
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision '{name}'; choose one of: {', '.join(PRECISIONS)}")
    if name == "fp32":
        return
    kind, dtype = device.type, DTYPES[name]
    if not torch.amp.autocast_mode.is_autocast_available(kind):
        raise UsageError(f"--precision {name} is not available on device '{kind}' (no autocast there); use --precision fp32")
    if kind == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
        raise UsageError("--precision bf16 needs a GPU with bfloat16 support (Ampere or newer); use fp16 or fp32")
    import warnings

    with warnings.catch_warnings():  # torch warns and disables autocast for a dtype the device lacks
        warnings.simplefilter("ignore")
        with torch.autocast(kind, dtype=dtype):
            ok = torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == dtype
    if not ok:
        raise UsageError(
            f"--precision {name} is not supported by torch {torch.__version__} on device '{kind}'; "
            f"use --precision {'bf16' if name == 'fp16' else 'fp32'}"
        )


def _autocast_forward(module: nn.Module, kind: str, dtype: torch.dtype):
    forward = type(module).forward

    def run(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(kind, dtype=dtype):
            out = forward(self, *args, **kwargs)
        return _to_float(out)

    return types.MethodType(run, module)


def _to_float(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


class Precision:
    """The precision of one run's training step on one device (see the module's text)."""

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        check_supported(name, device)
        self.name, self.kind = name, device.type
        self.dtype = DTYPES.get(name)
        self.scaler = torch.amp.GradScaler(self.kind) if name == "fp16" else None

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @contextlib.contextmanager
    def forwards(self, model: Any) -> Iterator[None]:
        """Inside the block, the model's encoder and decoder run their forward under autocast and
        return float32 (in fp32 the model is not touched: a pack's view has no such modules)."""
        if not self.enabled:
            yield
            return
        modules = (model.encoder, model.decoder)
        for m in modules:
            m.forward = _autocast_forward(m, self.kind, self.dtype)
        try:
            yield
        finally:
            for m in modules:
                m.__dict__.pop("forward", None)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate (multiplied by the current scale under fp16)."""
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """End of an iteration: the fp16 scale grows, or shrinks after a step with inf/NaN gradients."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


#: the default of every objective: full precision, no scaler
FP32 = Precision("fp32")
