"""``factors2d``: 2-D points made of two independent discrete factors, the test bed of ``factor_score``.

Factor k in {0, .., levels-1} sets coordinate k to ``k_value - (levels - 1) / 2`` (unit spacing, centred),
then N(0, noise²) is added to both coordinates; both factors are uniform and independent. The data's
coordinates *are* its factors, so an encoder that copies them is perfectly disentangled (Kim & Mnih
2018 §4 score 1) and one that mixes them is not. A fresh batch every iteration, as the other 2D sets.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from .base import Dataset


class Factors2DConfig(BaseModel):
    """Options of ``factors2d``."""

    model_config = ConfigDict(extra="forbid")

    levels: int = Field(5, ge=2, description="values of each of the two factors (a grid of levels x levels)")
    noise: float = Field(0.05, ge=0, description="std of the Gaussian noise added to both coordinates")


class Factors2D(Dataset):
    name = "factors2d"
    shape = (2,)
    kind = "2d"
    train_defaults = {"zdim": 2}

    def __init__(self, config: Factors2DConfig | None = None) -> None:
        cfg = config or Factors2DConfig()
        self.levels, self.noise = cfg.levels, cfg.noise
        self.factor_sizes = (cfg.levels, cfg.levels)
        self.metric_range = (cfg.levels - 1) / 2 + 1.0

    def from_factors(self, factors: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Points of integer factors ``(n, 2)``: centred unit grid + noise."""
        x = factors.float() - (self.levels - 1) / 2
        return x + self.noise * torch.randn(x.shape, generator=generator)

    def sample_factors(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.levels, (n, 2), generator=generator)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.from_factors(self.sample_factors(n, generator), generator)

    def sample_with_factor(self, k: int, value: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        f = self.sample_factors(n, generator)
        f[:, k] = value
        return self.from_factors(f, generator)


def build(config: Factors2DConfig) -> Factors2D:
    return Factors2D(config)
