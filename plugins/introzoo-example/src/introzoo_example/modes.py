"""``modes``: how many of a dataset's modes the model's samples cover, and how many samples are good
(VEEGAN, Srivastava et al. 2017, §5.1): a sample is *high quality* when it lies within ``radius``
standard deviations of its nearest mode centre (3 in the paper); a mode is *covered* when at least
``min_count`` high-quality samples fall to it.

It applies to datasets that declare mode ``centres`` (``(K, 2)``) and their ``std`` (``gaussgrid``):
``applies_to`` is overridden, and ``why_not`` says what is missing.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from introzoo.metrics.base import EvalContext, Metric


class ModesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_samples: int = Field(2500, gt=0, description="samples drawn from the model")
    radius: float = Field(3.0, gt=0, description="high quality: within radius * std of the nearest centre")
    min_count: int = Field(1, gt=0, description="high-quality samples a mode needs to count as covered")


def mode_coverage(
    x: torch.Tensor, centres: torch.Tensor, std: float, radius: float = 3.0, min_count: int = 1
) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples) of points ``x`` ``(N, 2)``."""
    d = torch.cdist(x.double(), centres.double())  # (N, K)
    dist, nearest = d.min(1)
    good = dist <= radius * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return int((counts >= min_count).sum()), float(good.double().mean())


class Modes(Metric):
    directions = {"modes_covered": "max", "hq_fraction": "max"}

    def __init__(self, config: ModesConfig) -> None:
        self.config = config

    def applies_to(self, dataset) -> bool:
        return getattr(dataset, "centres", None) is not None and getattr(dataset, "std", None) is not None

    def why_not(self, dataset) -> str:
        return "the dataset declares no mode centres and std (e.g. gaussgrid does)"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        c = self.config
        ctx.model.eval()
        with ctx.seeded("modes"):  # the prior's draws, reproducible
            x = ctx.model.sample(c.n_samples).cpu()
        covered, hq = mode_coverage(x, ctx.dataset.centres, ctx.dataset.std, c.radius, c.min_count)
        return {"modes_covered": float(covered), "hq_fraction": hq}


def build(config: ModesConfig) -> Modes:
    return Modes(config)
