"""``sg``: the standard Gaussian prior N(0, I), with the closed-form KL (docs/conventions.md, "Shared terms")."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from ..losses import gaussian_log_prob, kl_standard_normal
from .base import Prior


class SGConfig(BaseModel):
    """The standard Gaussian has no options."""

    model_config = ConfigDict(extra="forbid")


class StandardGaussian(Prior):
    """p(z) = N(0, I). ``kl`` is ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``."""

    learnable = False
    closed_form_kl = True

    def __init__(self, zdim: int) -> None:
        super().__init__(zdim)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks device and dtype

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        return torch.randn(n, self.zdim, device=self._anchor.device, dtype=self._anchor.dtype)

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return kl_standard_normal(mu, logvar)

    @classmethod
    def pack_view(cls, view) -> "PackedStandardGaussian":
        """The batched form in a pack (:mod:`introzoo.packing.model`): no member needs its own object."""
        return PackedStandardGaussian(view)


class PackedStandardGaussian:
    """N(0, I) for the members of a pack view: draws ``(k, n, zdim)`` from each member's stream (the
    solo ``sample``'s draw, member by member), the closed-form KL on ``(k, B, zdim)``."""

    learnable = False

    def __init__(self, view) -> None:
        self.view, self.zdim = view, view.pack.zdim

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        return self.view.randn((n, self.zdim))

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return kl_standard_normal(mu, logvar)


def build(config: SGConfig, zdim: int) -> StandardGaussian:
    return StandardGaussian(zdim)


build.packable = True  # trains in a pack (introzoo.packing.loop)
