"""The 2D metrics with the official conventions (SPEC §7), checked against the golden values.

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
    """sum over bins of p*(log p - log(q + 1e-14)) / n_rows; bins with p = 0 contribute 0 (official).
    ``p``, ``q``: one histogram (rows, cols) -> a float, or a stack (M, rows, cols) -> M values."""
    pos = p > 0
    terms = np.where(pos, p * (np.log(np.where(pos, p, 1.0)) - np.log(q + EPS)), 0.0)
    out = terms.sum(axis=(-2, -1)) / p.shape[-2]
    return float(out) if np.ndim(out) == 0 else out


def hist_jsd(p: np.ndarray, q: np.ndarray):
    """Official 'JSD': 0.5*(KL(M||P) + KL(M||Q)), M = (P+Q)/2, with :func:`hist_kl`'s scaling (and shapes)."""
    m = 0.5 * (p + q)
    return 0.5 * (hist_kl(m, p) + hist_kl(m, q))


def histogram(points: np.ndarray, bins: int, half_range: float) -> np.ndarray:
    rng = [[-half_range, half_range], [-half_range, half_range]]
    h, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, density=True, range=rng)
    return h


def histograms(points: np.ndarray, bins: int, half_range: float) -> np.ndarray:
    """:func:`histogram` of M point sets at once: ``points`` (M, n, 2) -> (M, bins, bins), bin for bin
    what ``numpy.histogram2d(..., density=True)`` gives each set (the same edges, the same
    ``searchsorted`` placement, the right edge in the last bin, outliers dropped)."""
    edges = np.linspace(-half_range, half_range, bins + 1)
    idx = np.searchsorted(edges, points, side="right")
    idx[points == edges[-1]] -= 1
    inside = ((idx >= 1) & (idx <= bins)).all(axis=-1)
    member = np.broadcast_to(np.arange(points.shape[0])[:, None], inside.shape)
    flat = (member * bins + idx[..., 0] - 1) * bins + idx[..., 1] - 1
    counts = np.bincount(flat[inside], minlength=points.shape[0] * bins * bins).astype(float)
    h = counts.reshape(points.shape[0], bins, bins)
    width = np.diff(edges)
    total = h.sum(axis=(1, 2), keepdims=True)
    return h / width.reshape(1, bins, 1) / width.reshape(1, 1, bins) / total


#: Monte Carlo draws per point for the KL term of gnELBO when the prior has no closed-form KL (the grid
#: has 10^6 points; 10 draws keep the evaluation to seconds). Training uses the prior's own setting.
EVAL_KL_SAMPLES = 10


@torch.no_grad()
def neg_elbo(model, x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """negELBO(x) = KL(q(z|x) || p) + REC(x, D(mu)) per point (SPEC §7), evaluated in chunks. For a prior
    without closed-form KL (mixtures, flows) the KL is a Monte Carlo estimate with ``EVAL_KL_SAMPLES``
    draws."""
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


class _NegElbo(torch.nn.Module):
    """negELBO per point of one model, as a module (what :func:`neg_elbo_many` maps over members)."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.model.encode(x)
        return self.model.kl(mu, logvar) + rec(x, self.model.decode(mu))


def batchable(models: list) -> bool:
    """Whether :func:`neg_elbo_many` and :func:`sample_many` evaluate these models together: VAEs of one
    architecture (same classes, same parameter shapes) whose prior has a closed-form KL (no random draws
    inside negELBO)."""
    m0 = models[0]
    if not all(type(m) is VAE and type(m.encoder) is type(m0.encoder) and type(m.decoder) is type(m0.decoder)
               and type(m.prior) is type(m0.prior) and m.prior.closed_form_kl for m in models):
        return False
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in models]
    return all(s == shapes[0] for s in shapes)


def _mapped(modules: list[torch.nn.Module]):
    """``f(x)`` evaluating every module on its own slice ``x[i]`` (or all on one shared ``x`` of one
    dimension less), batched over the members: ``torch.func.stack_module_state`` + ``vmap``."""
    from torch.func import functional_call, stack_module_state, vmap

    params, buffers = stack_module_state(modules)
    base = modules[0]

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    def f(x: torch.Tensor, shared: bool) -> torch.Tensor:
        return vmap(one, in_dims=(0, 0, None if shared else 0))(params, buffers, x)

    return f


@torch.no_grad()
def neg_elbo_many(models: list, x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """:func:`neg_elbo` of M models (:func:`batchable`) at once: ``x`` (N, d) shared by all, or (M, N, d)
    one set per model -> (M, N). About ``batch_size`` points of all members per batched pass."""
    for m in models:
        m.eval()
    f = _mapped([_NegElbo(m) for m in models])
    shared = x.dim() == 2
    step = max(1, batch_size // len(models))
    chunks = x.split(step, dim=0 if shared else 1)
    return torch.cat([f(c, shared) for c in chunks], dim=1)


@torch.no_grad()
def sample_many(models: list, n: int, seeds: list[int]) -> torch.Tensor:
    """``model.sample(n)`` of M models, each right after ``torch.manual_seed(seeds[i])`` (its solo
    stream), with the decoders evaluated together -> (M, n, d)."""
    z = []
    for m, seed in zip(models, seeds):
        m.eval()
        torch.manual_seed(seed)
        z.append(m.prior.sample(n))
    return _mapped([m.decoder for m in models])(torch.stack(z), False)


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

    def compute_many(self, ctxs: list[EvalContext]) -> list[dict[str, float]] | None:
        """:meth:`compute` for the members of a pack, their grid and data negELBO evaluated together
        (``None`` when the models are not :func:`batchable` or live on different datasets or devices)."""
        if not _same_data(ctxs) or not batchable([c.model for c in ctxs]):
            return None
        c0, key = ctxs[0], f"grid_neg_elbo:{self.config.grid}"
        data = torch.stack([c.dataset.sample(self.config.n_data, c.generator("gnelbo")) for c in ctxs]).to(c0.device)
        todo = [c for c in ctxs if key not in c.cache]
        if todo:
            pts = grid_points(c0.dataset.metric_range, self.config.grid).to(c0.device)
            for c, row in zip(todo, neg_elbo_many([c.model for c in todo], pts).cpu()):
                c.cache[key] = row
        data_ne = neg_elbo_many([c.model for c in ctxs], data).cpu().double()
        return [{"gnelbo": self.value(c.cache[key].double(), d)} for c, d in zip(ctxs, data_ne)]


def _same_data(ctxs: list[EvalContext]) -> bool:
    c0 = ctxs[0]
    return all(c.device == c0.device and type(c.dataset) is type(c0.dataset)
               and c.dataset.metric_range == c0.dataset.metric_range for c in ctxs)


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


    def histograms_many(self, ctxs: list[EvalContext]) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`histograms` of the members of a pack: (M, bins, bins) real and generated, the generated
        points decoded together (``None``: not :func:`batchable`)."""
        if not _same_data(ctxs) or not batchable([c.model for c in ctxs]):
            return None
        c, r = self.config, ctxs[0].dataset.metric_range
        seeds, real = [], []
        for ctx in ctxs:
            g = ctx.generator(self.name)
            with ctx.seeded(self.name):  # the seed of the generated points' stream, as compute draws them
                seeds.append(torch.initial_seed())
            real.append(ctx.dataset.sample(c.n_samples, g).numpy().astype(np.float64))
        fake = sample_many([ctx.model for ctx in ctxs], c.n_samples, seeds).cpu().numpy().astype(np.float64)
        return histograms(np.stack(real), c.bins, r), histograms(fake, c.bins, r)

    def compute_many(self, ctxs: list[EvalContext]) -> list[dict[str, float]] | None:
        """:meth:`compute` for the members of a pack, histograms and divergences over the member axis."""
        hists = self.histograms_many(ctxs)
        if hists is None:
            return None
        return [{self.name: float(v)} for v in self.divergence(*hists)]

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
