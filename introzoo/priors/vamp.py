r"""``vamp:K``: the VampPrior (Tomczak & Welling 2018; docs/conventions.md, "Priors"), a mixture of the
encoder's posteriors at K learnable pseudo-inputs ``u_k``::

    p(z) = (1/K) sum_k q(z | u_k)

The prior is paired with the encoder (its components move with the encoder's weights). On images the
pseudo-inputs are clamped to [0, 1] (``clamp``; automatic for image-shaped data).

``to_mog=true`` is the seed 003 protocol: the VampPrior is used during the VAE warm-up, then ``E(u_k)``
is frozen into an ordinary mixture of Gaussians (:class:`~introzoo.priors.mog.MixturePrior`, learnable
per ``mog_learnable``) for the adversarial phase, because prior-encoder cooperation is unsound there
(seed 003 §B.2.1).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .base import LogvarTransformable, Mixture, Prior
from .mog import MixturePrior, gaussian_mixture_terms, mixture_log_prob


class VampConfig(BaseModel):
    """Options of the ``vamp`` prior."""

    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "K"

    K: int = Field(10, gt=0, description="number of pseudo-inputs")
    clamp: bool | None = Field(None, description="clamp pseudo-inputs to [0, 1] (default: for image data)")
    to_mog: bool = Field(
        False,
        description="freeze E(u_k) into a MoG when the warm-up ends (the protocol of Prior Learning in Introspective VAEs)",
    )
    mog_learnable: bool = Field(True, description="after to_mog: the MoG's means and log-variances are learnable")
    kl_samples: int = Field(100, gt=0, description="Monte Carlo samples for KL(q || p)")


class VampPrior(Prior, Mixture, LogvarTransformable):
    learnable = True

    def __init__(
        self,
        zdim: int,
        K: int = 10,
        clamp: bool | None = None,
        to_mog: bool = False,
        mog_learnable: bool = True,
        kl_samples: int = 100,
    ) -> None:
        super().__init__(zdim)
        self.K, self.clamp, self.to_mog, self.mog_learnable, self.kl_samples = K, clamp, to_mog, mog_learnable, kl_samples
        self.u: nn.Parameter | None = None
        self.mog: MixturePrior | None = None
        self._model: list = []  # the VAE, kept outside nn.Module registration (its encoder is not ours)
        self._transform = None  # clip-logvar on the components' log-variances E(u_k)

    def attach(self, model) -> None:
        """Called by the VAE: create pseudo-inputs of the data's shape. Called again (a pack attaches
        its member model, :mod:`introzoo.packing.members`), it only changes the encoder it reads."""
        self._model = [model]
        if self.u is not None:
            return
        shape = tuple(model.data_shape)
        if self.clamp is None:
            self.clamp = len(shape) == 3
        init = torch.rand(self.K, *shape) if self.clamp else torch.randn(self.K, *shape)
        self.u = nn.Parameter(init)

    def pseudo_inputs(self) -> torch.Tensor:
        return self.u.clamp(0.0, 1.0) if self.clamp else self.u

    def encoded_pseudo_inputs(self, stop_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``E(u_k)``: the means and log-variances (transformed by ``clip-logvar``) of the components."""
        if not self._model:
            raise RuntimeError("the VampPrior is not attached to a model yet (VAE(..., prior) attaches it)")
        mu, logvar = self._model[0].encode(self.pseudo_inputs())
        if self._transform is not None:
            logvar = self._transform(logvar)
        return (mu.detach(), logvar.detach()) if stop_gradient else (mu, logvar)

    def components(self, stop_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mixture evaluated: ``E(u_k)`` with weights 1/K, or the frozen-in MoG after ``to_mog``."""
        if self.mog is not None:
            return self.mog.components(stop_gradient)
        mu, logvar = self.encoded_pseudo_inputs(stop_gradient)
        return mu, logvar, torch.full((self.K,), -math.log(self.K), dtype=mu.dtype, device=mu.device)

    def component_log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        if self.mog is not None:
            return self.mog.component_log_prob(z, stop_gradient)
        mu, logvar = self.encoded_pseudo_inputs(stop_gradient)
        return gaussian_mixture_terms(z, mu, logvar, -math.log(self.K))

    def log_prob(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        if self.mog is not None:
            return self.mog.log_prob(z, stop_gradient)
        mu, logvar = self.encoded_pseudo_inputs(stop_gradient)
        return mixture_log_prob(z, mu, logvar, -math.log(self.K))

    def responsibilities(self, z: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        return torch.softmax(self.component_log_prob(z, stop_gradient), dim=1)

    def sample(self, n: int, with_grad: bool = False) -> torch.Tensor:
        if self.mog is not None:
            return self.mog.sample(n, with_grad)
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            mu, logvar = self.encoded_pseudo_inputs()
            k = torch.randint(0, self.K, (n,), device=mu.device)
            z = mu[k] + torch.exp(0.5 * logvar[k]) * torch.randn(n, self.zdim, device=mu.device, dtype=mu.dtype)
        return z if with_grad else z.detach()

    # -- the seed 003 conversion --------------------------------------------------------------
    @property
    def logvar(self) -> torch.Tensor:
        return self.mog.logvar if self.mog is not None else self.encoded_pseudo_inputs()[1]

    def set_logvar_transform(self, fn) -> None:
        """Clip the MoG's log-variances after ``to_mog``; before it, those of the components E(u_k)."""
        if self.mog is not None:
            self.mog.set_logvar_transform(fn)
        else:
            self._transform = fn

    @torch.no_grad()
    def on_warmup_end(self) -> bool:
        """Freeze E(u_k) into a MoG (when ``to_mog``); returns True when the parameters changed."""
        if not self.to_mog or self.mog is not None:
            return False
        mu, logvar = self.encoded_pseudo_inputs()
        p = self.u
        mog = MixturePrior(self.zdim, self.K, self.mog_learnable, self.mog_learnable, False, kl_samples=self.kl_samples)
        mog = mog.to(device=p.device, dtype=p.dtype)
        mog.mu.copy_(mu)
        mog.raw_logvar.copy_(logvar)
        self.mog = mog
        self.u.requires_grad_(False)
        return True


def build(config: VampConfig, zdim: int) -> VampPrior:
    return VampPrior(zdim, config.K, config.clamp, config.to_mog, config.mog_learnable, config.kl_samples)


build.packable = True  # trains in a pack (introzoo.packing.loop)
