"""Which kernels compute the ``Linear`` layers' products on a CPU (``--kernels auto|aten|onednn``).

- ``aten``: ``torch.nn.functional.linear``, torch's default (on x86 CPUs Intel MKL's ``sgemm``);
- ``onednn``: the same products through oneDNN (``torch.ops.mkldnn._linear_pointwise``), which torch
  ships and which has no slow path for non-Intel processors. Forward and backward are oneDNN products
  (:class:`_OneDNNLinear`); the results agree with ``aten``'s to float32 rounding (another summation
  order), not bit for bit;
- ``auto`` (the default): whichever of the two is faster on this machine for the run, measured once
  (a few training steps of a copy of the run's objective and model on each path, the best time of
  each; about a second, the run's own random streams untouched) and cached per processor, torch
  version, thread count, objective, batch and layer shapes in ``kernels.json`` of introzoo's cache
  (``$INTROZOO_CACHE``, else ``~/.cache/introzoo``); ``$INTROZOO_KERNELS=aten|onednn`` makes ``auto`` take that path. Float64 models, GPUs and machines without
  oneDNN always take ``aten``.

The choice is an execution option like ``--device``: recorded in ``config.json`` (``kernels`` as asked,
``kernels_used`` as taken) and never part of the run hash, so it changes no run's identity and a run
resumes under any choice. Solo runs and packs route through :func:`linear` alike, so a pack's members
still compute what their solo runs compute with the same choice (:mod:`introzoo.packing.model`).
"""

from __future__ import annotations

import json
import os
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..paths import cache_dir

PATHS = ("aten", "onednn")
#: an environment variable that makes ``auto`` mean one path (the test suite: ``aten``)
ENV = "INTROZOO_KERNELS"
CHOICES = ("auto",) + PATHS
_active = "aten"


def available(path: str) -> bool:
    if path == "aten":
        return True
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _dnn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """``x @ w.T + b`` with oneDNN products forward and backward (``dx = g @ w``, ``dw = g.T @ x``)."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _dnn(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous()
        gx = _dnn(g, w.t().contiguous(), None) if ctx.needs_input_grad[0] else None
        gw = _dnn(g.t().contiguous(), x.t().contiguous(), None) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` through the active kernel path (:func:`use`); float32 2-D CPU inputs only take
    ``onednn``, anything else ``aten``."""
    if (
        _active == "onednn"
        and x.dim() == 2
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and w.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    ):
        return _OneDNNLinear.apply(x.contiguous(), w.contiguous(), b)
    return F.linear(x, w, b)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and names) whose product goes through :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


@contextmanager
def use(path: str) -> Iterator[None]:
    """Route :func:`linear` through ``path`` inside the block."""
    global _active
    if path not in PATHS:
        raise ValueError(f"unknown kernel path '{path}'; choose one of: {', '.join(PATHS)}")
    saved, _active = _active, path
    try:
        yield
    finally:
        _active = saved


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every ``nn.Linear`` in ``model``."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def cache_path() -> Path:
    return cache_dir() / "kernels.json"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_memo: dict[str, tuple[str, dict[str, float]]] = {}


def choose(
    requested: str,
    device: torch.device,
    dtype: torch.dtype,
    shapes: list[tuple[int, int]],
    batch: int,
    timer: Callable[[str], float],
    what: str = "",
) -> tuple[str, str]:
    """(path, why) for a run: ``requested`` unless ``auto``; ``auto`` reads the cached measurement of
    this machine, these shapes and ``what`` (e.g. the objective), or measures ``timer(path)`` (seconds
    of one training step on that path) for each available path and caches it."""
    if requested not in CHOICES:
        raise ValueError(f"unknown kernels '{requested}'; choose one of: {', '.join(CHOICES)}")
    if device.type != "cpu" or dtype != torch.float32 or not shapes:
        return "aten", "not a float32 CPU run"
    if requested == "auto" and os.environ.get(ENV) in PATHS:
        requested = os.environ[ENV]
    if requested != "auto":
        return (requested, "as asked") if available(requested) else ("aten", f"{requested} is not available here")
    if not available("onednn"):
        return "aten", "oneDNN not available"
    key = f"{_cpu()}|torch {torch.__version__}|{torch.get_num_threads()} threads|batch {batch}|{what}|{shapes}"
    if key not in _memo:
        path = cache_path()
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = {}
        if not isinstance(cached, dict) or key not in cached:
            cached = cached if isinstance(cached, dict) else {}
            cached[key] = {p: timer(p) for p in PATHS if available(p)}
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(cached, indent=1))
                tmp.replace(path)
            except OSError:
                pass  # an unwritable cache: measure again next time
        times = cached[key]
        best = min(times, key=times.get)
        _memo[key] = (best, times)
    best, times = _memo[key]
    why = "measured: " + ", ".join(f"{p} {t * 1e3:.2f} ms" for p, t in sorted(times.items()))
    return best, why
