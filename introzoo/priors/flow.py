r"""``flow:L``: the dpVAE decoupled prior (seed 004; docs/conventions.md, "Priors"), an affine-coupling
bijection ``g``.

``g: z -> z0`` with ``z0 ~ N(0, I)``: L affine coupling layers with alternating binary half-masks ``m``::

    y = m*z + (1 - m)*(z * exp(s(m*z)) + t(m*z)),     log|det dy/dz| = sum((1 - m) * s(m*z))

``s`` and ``t`` are Linear(d,64)-LeakyReLU-Linear(64,64)-LeakyReLU-Linear(64,d)-Tanh. Then

    log p(z) = log N(g(z); 0, I) + log|det dg/dz|
    KL(q(z|x) || p) = -0.5*sum(logvar) + 0.5*||g(z)||^2 - log|det dg/dz| - d/2      (seed 004 Eq. 18)

with one reparameterised sample ``z ~ q(z|x)`` by default (``kl_samples``); the constant ``-d/2`` (the
expectation of the entropy term's ``-0.5*||eps||^2``) makes it an estimate of the KL itself, not only
of its gradient. Sampling is ``z = g^{-1}(z0)``.

Low-posterior samples (LP-Gen, seed 004 §5 Figs. 3-6; defined in :class:`~introzoo.priors.base.LowPosteriorSampler`):
candidates ``z = g^{-1}(z0)``, ``z0 ~ N(0, I)`` in the generation space, ranked by the aggregate posterior
of the encoded data in the representation space; the lowest are kept, as in the dpVAE authors' code
(``trainers/trainer.py``, ``Trainer.low_posterior``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.func import functional_call

from .base import Prior, lowest_posterior


class FlowConfig(BaseModel):
    """Options of the ``flow`` prior."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "L"

    L: int = Field(6, gt=0, description="number of affine coupling layers")
    hidden: int = Field(64, gt=0, description="width of the s and t networks")
    kl_samples: int = Field(1, gt=0, description="posterior samples for the KL estimate")


def _net(d: int, h: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, h), nn.LeakyReLU(), nn.Linear(h, h), nn.LeakyReLU(), nn.Linear(h, d), nn.Tanh())


class Coupling(nn.Module):
    def __init__(self, d: int, h: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.s, self.t = _net(d, h), _net(d, h)

    def _st(self, x: torch.Tensor, stop_gradient: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not stop_gradient:
            return self.s(x), self.t(x)
        det = lambda net: {k: v.detach() for k, v in net.named_parameters()}  # noqa: E731
        return functional_call(self.s, det(self.s), (x,)), functional_call(self.t, det(self.t), (x,))

    def forward(self, z: torch.Tensor, stop_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask
        s, t = self._st(m * z, stop_gradient)
        y = m * z + (1 - m) * (z * torch.exp(s) + t)
        return y, ((1 - m) * s).sum(-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        m = self.mask
        s, t = self.s(m * y), self.t(m * y)
        return m * y + (1 - m) * (y - t) * torch.exp(-s)


class FlowPrior(Prior):
    learnable = True

    def __init__(self, zdim: int, L: int = 6, hidden: int = 64, kl_samples: int = 1) -> None:
        super().__init__(zdim)
        self.kl_samples = kl_samples
        half = torch.zeros(zdim)
        half[: zdim // 2] = 1.0
        if zdim == 1:
            half[:] = 0.0  # a 1-D "coupling" is an element-wise affine map with constant s, t
        self.layers = nn.ModuleList(Coupling(zdim, hidden, half if i % 2 == 0 else 1 - half) for i in range(L))

    def g(self, z: torch.Tensor, stop_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """z -> (z0, log|det dz0/dz|)."""
        logdet = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
        for layer in self.layers:
            z, ld = layer(z, stop_gradient)
            logdet = logdet + ld
        return z, logdet

    def g_inverse(self, z0: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z0 = layer.inverse(z0)
        return z0

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        z0, logdet = self.g(z, stop_gradient)
        return -0.5 * (z0**2 + math.log(2 * math.pi)).sum(-1) + logdet

    def kl_terms(self, mu: torch.Tensor, logvar: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """The per-sample estimates (``kl_samples`` x batch) whose mean is :meth:`kl`."""
        t, (n, d) = self.kl_samples, mu.shape
        z = (mu + torch.randn((t, n, d), device=mu.device, dtype=mu.dtype) * torch.exp(0.5 * logvar)).reshape(t * n, d)
        z0, logdet = self.g(z, stop_gradient)
        return -0.5 * logvar.sum(-1) + (0.5 * (z0**2).sum(-1) - logdet).reshape(t, n) - 0.5 * d

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return self.kl_terms(mu, logvar, stop_gradient).mean(0)

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        p = next(self.parameters())
        z0 = torch.randn(n, self.zdim, device=p.device, dtype=p.dtype)
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            z = self.g_inverse(z0)
        return z if with_grad else z.detach()

    @torch.no_grad()
    def sample_low_posterior(self, n: int, mu: torch.Tensor, logvar: torch.Tensor, candidates: int = 10) -> torch.Tensor:
        """The ``n`` of ``candidates * n`` prior samples with the lowest aggregate posterior of the
        posteriors ``(mu, logvar)`` (M, zdim), lowest first (LP-Gen, seed 004)."""
        return lowest_posterior(self.sample(candidates * n), n, mu, logvar)


def build(config: FlowConfig, zdim: int) -> FlowPrior:
    return FlowPrior(zdim, config.L, config.hidden, config.kl_samples)


build.packable = True  # trains in a pack (introzoo.packing.loop)
