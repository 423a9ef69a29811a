"""The metric contract: given a trained model and its data, return named numbers and their direction.

Each evaluation gets an :class:`EvalContext` carrying the model, the dataset, the device, a seed and a
cache, so metrics that share work (the 2D grid's negative ELBO feeds ``gnelbo`` and the density plot)
compute it once.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.base import Dataset
from ..model import VAE


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
def encode_split(ctx: EvalContext, split: str, n: int | None, batch_size: int = 500):
    """Latent means and log-variances of (up to) ``n`` images of an image dataset's split, with labels;
    cached in the context so the probes share one pass. The model is in eval mode."""
    key = f"latents:{split}:{n}"
    if key not in ctx.cache:
        x, y = ctx.dataset.images(split)
        if n is not None:
            x, y = x[:n], y[:n]
        ctx.model.eval()
        mus, logvars = [], []
        for chunk in x.split(batch_size):
            mu, logvar = ctx.model.encode(ctx.dataset.to_float(chunk).to(ctx.device))
            mus.append(mu.cpu())
            logvars.append(logvar.cpu())
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
