"""The metric contract: given a trained model and its data, return named numbers and their direction.

Each evaluation gets an :class:`EvalContext` carrying the model, the dataset, the device, a seed and a
cache, so metrics that share work (the 2D grid's negative ELBO feeds ``gnelbo`` and the density plot)
compute it once; and the bounds of the evaluation (:mod:`introzoo.metrics.stream`): ``chunk``, the most
images per pass, and ``progress``, the reporter of phases and timings.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.base import Dataset
from ..model import VAE
from .stream import EVAL_CHUNK, Phases


@dataclass
class EvalContext:
    model: VAE
    dataset: Dataset
    device: torch.device
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    #: metric name -> how it was computed (extractor and its accuracy, BatchNorm mode, sample counts);
    #: written to metrics.json as ``metric_info``
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the most images through the model or an extractor in one pass (importance samples included)
    chunk: int = EVAL_CHUNK
    #: where phases (progress bars) and metric timings go
    progress: Phases = field(default_factory=Phases)
    #: metric name -> seconds it took
    times: dict[str, float] = field(default_factory=dict)

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images as the model's floats (its dtype, on the device)."""
        p = next(self.model.parameters(), None)
        return self.dataset.to_float(x).to(self.device, None if p is None else p.dtype)

    def phase(self, description: str, total: int | None):
        """A context manager yielding ``advance(n)`` for one phase of the evaluation (a progress bar)."""
        return self.progress.phase(description, total)

    def generator(self, name: str) -> torch.Generator:
        """A CPU generator for data draws, seeded from the run seed and ``name`` so each metric has its
        own stream; torch's global RNG (priors sample from it) is seeded from a *different* derived seed,
        so that real and generated points never share random numbers."""
        s = (self.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**62)
        torch.manual_seed(s + 2**62)
        g = torch.Generator()
        g.manual_seed(s)
        return g


@torch.no_grad()
def encode_split(ctx: EvalContext, split: str, n: int | None):
    """Latent means and log-variances of (up to) ``n`` images of an image dataset's split, with labels,
    encoded ``ctx.chunk`` at a time; cached in the context so the probes share one pass. The model is in
    eval mode."""
    key = f"latents:{split}:{n}"
    if key not in ctx.cache:
        x, y = ctx.dataset.images(split)
        if n is not None:
            x, y = x[:n], y[:n]
        ctx.model.eval()
        mus, logvars = [], []
        with ctx.phase(f"encoding {split} images", x.shape[0]) as advance:
            for chunk in x.split(ctx.chunk):
                mu, logvar = ctx.model.encode(ctx.model_input(chunk))
                mus.append(mu.cpu())
                logvars.append(logvar.cpu())
                advance(chunk.shape[0])
        ctx.cache[key] = (torch.cat(mus), torch.cat(logvars), y)
    return ctx.cache[key]


class Metric:
    #: metric name -> "min" (lower is better) or "max"
    directions: dict[str, str] = {}
    #: dataset kinds this metric applies to
    kinds: frozenset[str] = frozenset()

    def applies_to(self, dataset: Dataset) -> bool:
        return dataset.kind in self.kinds

    def compute(self, ctx: EvalContext) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError
