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

ACTIVE_THRESHOLD = 1e-2


class RespEntropyMetricConfig(BaseModel):
    """Options of ``resp_entropy``."""

    model_config = ConfigDict(extra="forbid")

    n_data: int = Field(10_000, gt=0, description="data points whose posteriors are used")


@torch.no_grad()
def mean_responsibilities(model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    total = None
    for chunk in x.split(batch_size):
        mu, logvar = model.encode(chunk)
        r = model.prior.responsibilities(model.reparameterize(mu, logvar)).sum(0)
        total = r if total is None else total + r
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
        x = ctx.dataset.sample(self.config.n_data, g).to(ctx.device)
        with ctx.seeded("resp_entropy"):
            c = mean_responsibilities(ctx.model, x)
        return {"resp_entropy": float(normalized_entropy(c)), "active_components": float((c >= ACTIVE_THRESHOLD).sum())}
