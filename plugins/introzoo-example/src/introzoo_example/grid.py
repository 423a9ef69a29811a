"""``gaussgrid``: a square grid of equal Gaussian modes in 2D (``side x side``, 25 by default), the
standard mode-collapse benchmark of the GAN literature (VEEGAN, Srivastava et al. 2017, §5.1 "2D Grid").

Mode ``(i, j)`` is centred at ``spacing * (i - (side-1)/2, j - (side-1)/2)``, so the grid is centred at
the origin; a point is a uniformly chosen mode plus ``N(0, std^2 I)`` noise. The dataset declares its
``centres`` and ``std``, which the ``modes`` metric uses.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from introzoo.data.base import Dataset


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "side"  # "gaussgrid:7" sets side = 7

    side: int = Field(5, ge=2, le=20, description="modes per axis (side x side modes)")
    spacing: float = Field(1.0, gt=0, description="distance between neighbouring modes")
    std: float = Field(0.05, gt=0, description="standard deviation of each mode")


class GaussGrid(Dataset):
    name = "gaussgrid"
    shape = (2,)
    kind = "2d"  # the 2D metrics (gnelbo, kl, jsd) and plots apply
    train_defaults = {"zdim": 2}  # no paper protocol: introzoo's defaults otherwise

    def __init__(self, config: GridConfig | None = None) -> None:
        c = config or GridConfig()
        ticks = c.spacing * (torch.arange(c.side, dtype=torch.float32) - (c.side - 1) / 2)
        self.centres = torch.cartesian_prod(ticks, ticks)  # (side^2, 2)
        self.std = c.std
        self.metric_range = c.spacing * c.side / 2  # half-width of the plotted square

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.randint(0, len(self.centres), (n,), generator=generator)
        return self.centres[idx] + self.std * torch.randn(n, 2, generator=generator)


def build(config: GridConfig) -> GaussGrid:
    return GaussGrid(config)
