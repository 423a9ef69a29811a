r"""``laplace``: a factorised Laplace prior with scale ``b`` per latent dimension::

    log p(z) = sum_j [ -log(2 b_j) - |z_j| / b_j ]

``std`` is the standard deviation of each coordinate, ``b = std / sqrt(2)`` (``std = 1`` has the
variance of N(0, I), with heavier tails). The KL from a diagonal Gaussian posterior has a closed form:
with ``s_j = exp(logvar_j / 2)`` and the mean of a folded normal
``E|z_j| = s_j sqrt(2/pi) exp(-mu_j^2 / (2 s_j^2)) + mu_j erf(mu_j / (s_j sqrt 2))``,

    KL(N(mu, s^2) || p) = sum_j [ log(2 b_j) + E|z_j| / b_j - 0.5 (log(2 pi) + 1 + logvar_j) ].

``learn_scale=true`` makes ``log b`` a learnable parameter (then ``soft-prior`` can train it; samples
are reparameterised, ``z = -b sign(u) log(1 - 2|u|)``).
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from introzoo.priors.base import Prior


class LaplaceConfig(BaseModel):
    """Options of the ``laplace`` prior."""

    model_config = ConfigDict(extra="forbid")

    std: float = Field(1.0, gt=0, description="standard deviation of each coordinate (scale b = std / sqrt(2))")
    learn_scale: bool = Field(False, description="learn the scale of each latent dimension")


class LaplacePrior(Prior):
    closed_form_kl = True

    def __init__(self, zdim: int, std: float = 1.0, learn_scale: bool = False) -> None:
        super().__init__(zdim)
        self.learnable = learn_scale
        self.log_b = nn.Parameter(torch.full((zdim,), math.log(std / math.sqrt(2))), requires_grad=learn_scale)

    def _log_b(self, stop_gradient: bool) -> torch.Tensor:
        return self.log_b.detach() if stop_gradient else self.log_b

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            b = torch.exp(self.log_b)
            eps = torch.finfo(b.dtype).eps
            u = torch.rand(n, self.zdim, device=b.device, dtype=b.dtype) * (1 - eps) - 0.5 * (1 - eps)
            z = -b * torch.sign(u) * torch.log1p(-2 * u.abs())
        return z if with_grad else z.detach()

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        log_b = self._log_b(stop_gradient)
        return (-math.log(2.0) - log_b - z.abs() * torch.exp(-log_b)).sum(-1)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        log_b = self._log_b(stop_gradient)
        s = torch.exp(0.5 * logvar)
        abs_mean = s * math.sqrt(2 / math.pi) * torch.exp(-0.5 * (mu / s) ** 2) + mu * torch.erf(mu / (s * math.sqrt(2)))
        return (math.log(2.0) + log_b + abs_mean * torch.exp(-log_b) - 0.5 * (math.log(2 * math.pi) + 1 + logvar)).sum(-1)


def build(config: LaplaceConfig, zdim: int) -> LaplacePrior:
    return LaplacePrior(zdim, config.std, config.learn_scale)
