"""``factor_score``: the FactorVAE disentanglement metric (Kim & Mnih 2018 §4; seed 004 §4, Table 2).

1. Encode ``n_data`` points of the data to their latent means; ``s_d`` is the std of dim d over them.
   Dims whose variance is under ``prune`` are collapsed and left out (Kim & Mnih prune them; 0.05 is
   disentanglement_lib's threshold).
2. ``votes`` votes; vote i fixes factor ``k = i mod K`` (every factor gets the same number of votes) at a
   value drawn uniformly, draws ``L`` points with it fixed, encodes them to latent means, divides each
   dim by ``s_d`` and takes the active dim of lowest variance: the vote is (argmin dim, k).
3. The majority-vote classifier maps each dim to the factor it was voted for most often; the score is
   its accuracy on the votes, ``sum_d max_k n(d, k) / votes`` (1: each factor has its own dim; an
   encoder that ignores the factors gets about 1/K).

The dataset supplies the factors through :class:`introzoo.data.base.Factors`; a dataset without them
(MNIST included: seed 004 Table 2 reports the score on MNIST, which has no ground-truth factors) makes
the metric not apply.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..data.base import Factors
from .base import EvalContext, Metric


class FactorScoreConfig(BaseModel):
    """Options of ``factor_score``."""

    model_config = ConfigDict(extra="forbid")

    L: int = Field(100, ge=2, description="points per vote with one factor fixed")
    votes: int = Field(800, gt=0, description="number of votes (each factor gets votes / K)")
    n_data: int = Field(10_000, ge=2, description="points whose latent means give each dim's std")
    prune: float = Field(0.05, ge=0, description="latent dims with variance under this over the data are left out")


def majority_vote_accuracy(argmins: torch.Tensor, factors: torch.Tensor, n_dims: int, n_factors: int) -> float:
    """``sum_d max_k n(d, k) / n``: accuracy of the classifier that maps dim d to its most voted factor."""
    counts = torch.zeros(n_dims, n_factors, dtype=torch.long)
    counts.index_put_((argmins, factors), torch.ones_like(argmins), accumulate=True)
    return float(counts.max(1).values.sum()) / max(1, len(argmins))


@torch.no_grad()
def factor_score(encode, dataset, config: FactorScoreConfig, generator: torch.Generator, advance=None) -> tuple[float, dict]:
    """The score of ``encode`` (points -> latent means) on ``dataset``'s factors, with ``info``;
    ``advance(n)`` is told of each vote."""
    sizes = tuple(dataset.factor_sizes)
    mu = encode(dataset.sample(config.n_data, generator)).double()
    var = mu.var(0)
    active = (var >= config.prune).nonzero().flatten()
    info = {"active_dims": int(len(active)), "votes": config.votes, "L": config.L, "factors": len(sizes)}
    if len(active) == 0:
        return 0.0, info
    scale = var[active].sqrt()
    argmins, factors = [], []
    for i in range(config.votes):
        k = i % len(sizes)
        value = int(torch.randint(0, sizes[k], (1,), generator=generator))
        z = encode(dataset.sample_with_factor(k, value, config.L, generator)).double()[:, active] / scale
        argmins.append(int(z.var(0).argmin()))
        factors.append(k)
        if advance is not None:
            advance(1)
    acc = majority_vote_accuracy(torch.tensor(argmins), torch.tensor(factors), len(active), len(sizes))
    return acc, info


class FactorScore(Metric):
    directions = {"factor_score": "max"}
    kinds = frozenset({"2d", "image"})

    def __init__(self, config: FactorScoreConfig) -> None:
        self.config = config

    def applies_to(self, dataset) -> bool:
        return isinstance(dataset, Factors)

    def why_not(self, dataset) -> str:
        return (
            f"dataset '{dataset.name}' has no ground-truth factors (factor_sizes, sample_with_factor); "
            "factor_score needs them (e.g. --data factors2d)"
        )

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        model = ctx.model
        model.eval()

        def encode(x: torch.Tensor) -> torch.Tensor:  # ctx.chunk points per pass for images
            p = next(model.parameters())
            step = ctx.chunk if ctx.dataset.kind == "image" else max(1, x.shape[0])
            return torch.cat([model.encode(c.to(device=ctx.device, dtype=p.dtype))[0].cpu() for c in x.split(step)])

        with ctx.phase("factor_score: votes", self.config.votes) as advance:
            score, info = factor_score(encode, ctx.dataset, self.config, ctx.generator("factor_score"), advance)
        ctx.info["factor_score"] = info
        return {"factor_score": score}
