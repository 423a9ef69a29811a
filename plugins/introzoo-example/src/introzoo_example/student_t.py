r"""``student-t:df``: a factorised Student-t prior with ``df`` degrees of freedom and scale ``scale``::

    log p(z) = sum_j [ lgamma((df+1)/2) - lgamma(df/2) - 0.5 log(df pi) - log(scale)
                       - (df+1)/2 log(1 + (z_j/scale)^2 / df) ]

There is no closed-form KL from a Gaussian posterior, so :meth:`kl` is the base class's Monte Carlo
estimate ``mean_t[log q(z_t|x) - log p(z_t)]`` with ``kl_samples`` draws: a prior only has to provide
``sample`` and ``log_prob``. ``df = 1`` is the Cauchy distribution; large ``df`` approaches N(0, scale^2).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from introzoo.priors.base import Prior


class StudentTConfig(BaseModel):
    """Options of the ``student-t`` prior."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "df"  # "student-t:3" sets df = 3

    df: float = Field(5.0, gt=0, description="degrees of freedom (1: Cauchy; large: Gaussian)")
    scale: float = Field(1.0, gt=0, description="scale of each coordinate")
    kl_samples: int = Field(100, gt=0, description="Monte Carlo samples for KL(q || p)")


class StudentTPrior(Prior):
    learnable = False

    def __init__(self, zdim: int, df: float = 5.0, scale: float = 1.0, kl_samples: int = 100) -> None:
        super().__init__(zdim)
        self.df, self.scale, self.kl_samples = df, scale, kl_samples
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks device and dtype

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        a = self._anchor
        df = torch.tensor(self.df, dtype=a.dtype, device=a.device)
        return torch.distributions.StudentT(df, torch.zeros((), dtype=a.dtype, device=a.device), self.scale).sample(
            (n, self.zdim)
        )

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        v = self.df
        const = math.lgamma((v + 1) / 2) - math.lgamma(v / 2) - 0.5 * math.log(v * math.pi) - math.log(self.scale)
        return (const - (v + 1) / 2 * torch.log1p((z / self.scale) ** 2 / v)).sum(-1)


def build(config: StudentTConfig, zdim: int) -> StudentTPrior:
    return StudentTPrior(zdim, config.df, config.scale, config.kl_samples)
