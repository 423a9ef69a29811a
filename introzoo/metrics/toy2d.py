"""The 2D metrics with the official conventions (docs/conventions.md, "2D metrics"), checked against the
golden values.

- ``gnelbo``: negELBO(x) = KL(q(z|x) || p) + REC(x, D(mu)) (z = mu, betas 1) on a 1024 x 1024 grid over
  the metric range and on 12,800 data points; gnELBO = mean over data of negELBO / (sum over grid + sum
  over data). Reported **x1e7**, as in the papers' tables.
- ``kl``: 5,000 real and 5,000 generated points, ``numpy.histogram2d`` with 100 x 100 bins over the
  metric range, ``density=True``; ``KL = sum_bins p (log p - log(q + 1e-14)) / bins`` (p real, q
  generated; bins with p = 0 contribute 0). This is ``F.kl_div(..., reduction="batchmean")`` over the
  histogram's rows, as the official code computes it.
- ``jsd``: the official convention ``0.5 (KL(M||P) + KL(M||Q))``, M = (P + Q) / 2, with the same histogram
  scaling and the same 1e-14 inside the logarithms. It is **not** the textbook Jensen-Shannon divergence
  (that is ``0.5 (KL(P||M) + KL(Q||M))``); introzoo keeps the official form under this name so that its
  numbers compare with the papers'.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses import rec
from ..model import VAE
from .base import EvalContext, Metric

EPS = 1e-14


def hist_kl(p: np.ndarray, q: np.ndarray):
    """sum over bins of p*(log p - log(q + 1e-14)) / n_rows; bins with p = 0 contribute 0 (official)."""
    pos = p > 0
    terms = np.where(pos, p * (np.log(np.where(pos, p, 1.0)) - np.log(q + EPS)), 0.0)
    out = terms.sum(axis=(-2, -1)) / p.shape[-2]
    return float(out) if np.ndim(out) == 0 else out


def hist_jsd(p: np.ndarray, q: np.ndarray):
    """Official 'JSD': 0.5*(KL(M||P) + KL(M||Q)), M = (P+Q)/2, with :func:`hist_kl`'s scaling."""
    m = 0.5 * (p + q)
    return 0.5 * (hist_kl(m, p) + hist_kl(m, q))


def histogram(points: np.ndarray, bins: int, half_range: float) -> np.ndarray:
    rng = [[-half_range, half_range], [-half_range, half_range]]
    h, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, density=True, range=rng)
    return h


#: Monte Carlo draws per point for the KL term of gnELBO when the prior has no closed-form KL (the grid
#: has 10^6 points; 10 draws keep the evaluation to seconds). Training uses the prior's own setting.
EVAL_KL_SAMPLES = 10


@torch.no_grad()
def neg_elbo(model, x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """negELBO(x) = KL(q(z|x) || p) + REC(x, D(mu)) per point (docs/conventions.md, "2D metrics"),
    evaluated in chunks. For a prior without closed-form KL (mixtures, flows) the KL is a Monte Carlo
    estimate with ``EVAL_KL_SAMPLES`` draws."""
    model.eval()
    prior = model.prior if isinstance(model, VAE) else None  # other models: their own kl, left as it is
    monte_carlo = prior is not None and not prior.closed_form_kl
    saved = prior.kl_samples if monte_carlo else None
    if monte_carlo:
        prior.kl_samples = min(saved, EVAL_KL_SAMPLES)
        batch_size = max(1, batch_size * 4 // prior.kl_samples)
    try:
        out = []
        for chunk in x.split(batch_size):
            mu, logvar = model.encode(chunk)
            out.append(model.kl(mu, logvar) + rec(chunk, model.decode(mu)))
        return torch.cat(out)
    finally:
        if monte_carlo:
            prior.kl_samples = saved


def grid_points(half_range: float, n: int) -> torch.Tensor:
    """The official evaluation grid: linspace(-r, r, n) in both axes, 'ij' meshgrid, flattened."""
    t = torch.linspace(-half_range, half_range, n)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def grid_neg_elbo(ctx: EvalContext, n: int) -> torch.Tensor:
    """negELBO over the n x n grid ('ij' order), cached in the context (shared with the density plot)."""
    key = f"grid_neg_elbo:{n}"
    if key not in ctx.cache:
        pts = grid_points(ctx.dataset.metric_range, n).to(ctx.device)
        ctx.cache[key] = neg_elbo(ctx.model, pts).cpu()
    return ctx.cache[key]


class GnelboConfig(BaseModel):
    """Options of ``gnelbo``."""

    model_config = ConfigDict(extra="forbid")

    grid: int = Field(1024, ge=2, description="grid points per axis over the metric range")
    n_data: int = Field(12_800, gt=0, description="data points drawn from the dataset")


class Gnelbo(Metric):
    directions = {"gnelbo": "min"}
    kinds = frozenset({"2d"})

    def __init__(self, config: GnelboConfig) -> None:
        self.config = config

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        g = ctx.generator("gnelbo")
        with ctx.seeded("gnelbo"):  # the Monte Carlo KL of priors without a closed form
            grid = grid_neg_elbo(ctx, self.config.grid).double()
            data = neg_elbo(ctx.model, ctx.dataset.sample(self.config.n_data, g).to(ctx.device)).cpu().double()
        return {"gnelbo": self.value(grid, data)}

    @staticmethod
    def value(grid: torch.Tensor, data: torch.Tensor) -> float:
        """gnELBO x1e7 from the grid's and the data's negELBO (float64)."""
        return (data / (grid.sum() + data.sum())).mean().item() * 1e7


class HistConfig(BaseModel):
    """Options of the histogram metrics ``kl`` and ``jsd``."""

    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(5000, gt=0, description="real and generated points each")
    bins: int = Field(100, ge=2, description="histogram bins per axis over the metric range")


class _HistMetric(Metric):
    kinds = frozenset({"2d"})
    name = ""

    def __init__(self, config: HistConfig) -> None:
        self.config = config

    def histograms(self, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
        c, r = self.config, ctx.dataset.metric_range
        g = ctx.generator(self.name)
        real = ctx.dataset.sample(c.n_samples, g).numpy().astype(np.float64)
        ctx.model.eval()
        with ctx.seeded(self.name):
            fake = ctx.model.sample(c.n_samples).cpu().numpy().astype(np.float64)
        return histogram(real, c.bins, r), histogram(fake, c.bins, r)

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        return {self.name: self.divergence(*self.histograms(ctx))}


class KL(_HistMetric):
    name = "kl"
    directions = {"kl": "min"}
    divergence = staticmethod(hist_kl)


class JSD(_HistMetric):
    name = "jsd"
    directions = {"jsd": "min"}
    divergence = staticmethod(hist_jsd)
