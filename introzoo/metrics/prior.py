r"""Metrics of a mixture prior's use (seed 003 §4.2.3 and Table 2 "Entr.").

- ``resp_entropy``: ``H_n(C) = -sum_k c_k log(c_k + 1e-8) / log K`` with ``c_k`` the mean over data of the
  responsibility of component k for posterior samples ``z ~ q(z|x)``; 1 means the aggregate posterior is
  supported uniformly by all components.
- ``active_components``: components with mean responsibility at least 1e-2 (seed 003 Fig. 2b calls the
  others inactive).

Priors that are not a :class:`~introzoo.priors.base.Mixture` of at least 2 components (``sg``,
``flow``) report nothing.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..priors.base import Mixture
from ..regularizers.resp_entropy import normalized_entropy
from .base import EvalContext, Metric
from .stream import noise_key, posterior_noise, random_key

ACTIVE_THRESHOLD = 1e-2


class RespEntropyMetricConfig(BaseModel):
    """Options of ``resp_entropy``."""

    model_config = ConfigDict(extra="forbid")

    n_data: int = Field(10_000, gt=0, description="data points whose posteriors are used")


@torch.no_grad()
def mean_responsibilities(model, x: torch.Tensor, chunk: int = 4096, key: int | None = None, advance=None) -> torch.Tensor:
    """Mean over ``x`` of the responsibilities of ``z ~ q(z|x)``, ``chunk`` points per pass; the posterior
    noise of point ``i`` is keyed by ``key`` and ``i`` (:mod:`introzoo.metrics.stream`)."""
    model.eval()
    key = random_key() if key is None else key
    total = None
    for lo in range(0, x.shape[0], chunk):
        mu, logvar = model.encode(x[lo : lo + chunk])
        eps = posterior_noise(key, range(lo, lo + mu.shape[0]), 0, 1, mu.shape[1])[0].to(mu)
        r = model.prior.responsibilities(mu + eps * torch.exp(0.5 * logvar)).sum(0)
        total = r if total is None else total + r
        if advance is not None:
            advance(mu.shape[0])
    return total / x.shape[0]


class RespEntropyMetric(Metric):
    directions = {"resp_entropy": "max", "active_components": "max"}
    kinds = frozenset({"2d", "image"})

    def __init__(self, config: RespEntropyMetricConfig) -> None:
        self.config = config

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        prior = ctx.model.prior
        if not isinstance(prior, Mixture) or prior.K < 2:
            return {}
        g = ctx.generator("resp_entropy")
        x = ctx.dataset.sample(self.config.n_data, g).to(ctx.device, ctx.dtype)
        chunk = ctx.chunk if ctx.dataset.kind == "image" else 4096  # 2D points are tiny
        with ctx.phase("resp_entropy: responsibilities", x.shape[0]) as advance:
            c = mean_responsibilities(ctx.model, x, chunk, noise_key(ctx.seed, "resp_entropy"), advance)
        return {"resp_entropy": float(normalized_entropy(c)), "active_components": float((c >= ACTIVE_THRESHOLD).sum())}
