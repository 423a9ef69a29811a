r"""``soft-boot``: Soft-IntroVAE with a lagging target decoder ("bootstrapping"), following the official
repository's ``soft_intro_vae_bootstrap/train_soft_intro_vae_bootstrap.py`` (taldatech/soft-intro-vae-pytorch;
not used in the papers).

The objective holds a *target decoder* ``D_t``, a copy of the decoder that is never trained: its
parameters are copied from the decoder after every ``copy_every``-th iteration (``load_state_dict``).
``D_t`` produces the re-decoded terms of both players; everything else is ``soft``'s (seed 002 Eq. 7;
docs/conventions.md, "Objectives"), with ``s = 1/input_dim`` and ``z_p ~ p(z)`` shared by both players::

    elbo_neg(v) = beta_rec*REC(v, D_t(E(v))) + beta_neg*KL(v)       for v in {x_f.detach(), x_r.detach()}
    L_E = s*(beta_rec*REC(x, x_r) + beta_kl*KL(x)) + 0.25*(mean exp(-2s*elbo_neg(x_f)) + mean exp(-2s*elbo_neg(x_r)))
    L_D = s*[beta_rec*REC(x, x_r) + 0.5*beta_kl*(KL(x_f) + KL(x_r))
             + 0.5*gamma_r*beta_rec*(REC(x_r, D_t(z_r)) + REC(x_f, D_t(z_f)))]

In ``L_D`` nothing is detached (the official "no need to detach() the reconstructions of fake data"): the
reconstruction-of-fakes terms reach the decoder through ``x_f``/``x_r``, both as targets and through the
frozen encoder and target decoder. The target decoder never receives a gradient.

Written only with the parts of :class:`~introzoo.objectives.soft.SoftIntroVAE` that are documented for
variants (``redecode``, ``detach_redecoded``, ``step``), as a plugin would. It takes a dataset's
``soft`` defaults (``defaults_from``). Where this differs from the official code, and why:

- ``gamma_r`` defaults to 1.0, not ``soft``'s 1e-8: the official bootstrap function's default, and the
  value every official bootstrap run used (its ``main.py`` parses ``-g`` but never passes it on);
- the copy schedule is the official one on datasets with epochs: after epoch ``e`` (counted from 0)
  when ``e % copy_every_epochs == 0`` (official ``freq``, default 1); ``copy_every`` gives a period in
  iterations instead (the only form on the 2D generators, default 1000);
- the official target decoder starts from its own random initialisation until the first copy; here it
  starts as a copy of the decoder;
- the official warm-up (``num_vae`` epochs) reconstructs through the target decoder, which leaves the
  decoder untrained during it; here the warm-up is ``soft``'s VAE step with the decoder itself, and
  ``warmup_target=true`` reproduces the official one (:meth:`SoftIntroVAEBootstrap.target_vae_step`).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from pydantic import Field

from .members import bmean, lead
from .soft import SoftConfig, SoftIntroVAE


class SoftBootConfig(SoftConfig):
    """Options of ``soft-boot``: ``soft``'s and how often the target decoder is refreshed."""

    #: a dataset's defaults for ``soft`` apply (docs/hooks.md, ``defaults_from``)
    defaults_from: ClassVar[str] = "soft"

    gamma_r: float = Field(
        1.0,
        gt=0,
        description="weight of the decoder's reconstruction of fakes (official "
        "bootstrap code: 1.0, never changed by its -g flag)",
    )
    copy_every: int | None = Field(
        None,
        gt=0,
        description="iterations between copies of the decoder into the target "
        "decoder (the iteration form; default: copy_every_epochs on "
        "datasets with epochs, every 1000 iterations otherwise)",
    )
    copy_every_epochs: int = Field(
        1,
        gt=0,
        description="official schedule: copy after epoch e (counted from 0) when "
        "e % copy_every_epochs == 0 (datasets with epochs)",
    )
    warmup_target: bool = Field(
        False,
        description="official warm-up: the VAE warm-up reconstructs through the target "
        "decoder, so the decoder learns nothing during it",
    )


class SoftIntroVAEBootstrap(SoftIntroVAE):
    """``soft`` whose re-decoded terms come from a lagging, untrained copy of the decoder."""

    name = "soft-boot"
    detach_redecoded: ClassVar[bool] = False

    def __init__(self, config: SoftBootConfig, model, regularizers=None, train=None) -> None:
        super().__init__(config, model, regularizers, train)
        self.target_decoder = copy.deepcopy(model.decoder).requires_grad_(False)

    def redecode(self, z: torch.Tensor) -> torch.Tensor:
        return self.target_decoder(z)

    #: iterations without copies when neither a dataset's epochs nor ``copy_every`` say otherwise
    DEFAULT_COPY_EVERY: ClassVar[int] = 1000

    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        if self.config.warmup_target and self.in_warmup(iteration):
            losses = self.target_vae_step(x)
        else:
            losses = super().step(x, iteration)
        if self.copies_after(iteration):
            self.copy_to_target()
        return losses

    def copies_after(self, iteration: int) -> bool:
        """Whether the target decoder takes the decoder's weights after ``iteration`` (0-based): every
        ``copy_every`` iterations when given; else, on a dataset with epochs (``epoch_length``
        iterations each), after epoch ``e`` (from 0) with ``e % copy_every_epochs == 0`` (the official
        ``if epoch % freq == 0``); else every 1000 iterations."""
        c, done = self.config, iteration + 1
        if c.copy_every is not None or not self.epoch_length:
            return done % (c.copy_every or self.DEFAULT_COPY_EVERY) == 0
        return done % self.epoch_length == 0 and (done // self.epoch_length - 1) % c.copy_every_epochs == 0

    def target_vae_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The official bootstrap warm-up: ``beta_rec*REC(x, D_t(z)) + beta_kl*KL(x)`` with the target
        decoder ``D_t``; the decoder gets no gradient, only the encoder's (and a learnable prior's)
        optimisers step."""
        c, m = self.config, self.model
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        loss_rec = bmean(m, m.rec(x, self.target_decoder(z), lead(m)))
        loss_kl = bmean(m, m.kl(mu, logvar))
        loss = c.beta_rec * loss_rec + c.beta_kl * loss_kl
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.step_optimizers(*[k for k in self.optimizers if k != "decoder"])
        return {"loss": loss.detach(), "rec": loss_rec.detach(), "kl": loss_kl.detach()}

    def copy_to_target(self) -> None:
        """The target decoder takes the decoder's current parameters and buffers."""
        self.target_decoder.load_state_dict(self.model.decoder.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "target_decoder": self.target_decoder.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.target_decoder.load_state_dict(state["target_decoder"])


def build(config: SoftBootConfig, model, regularizers=None, train=None) -> SoftIntroVAEBootstrap:
    return SoftIntroVAEBootstrap(config, model, regularizers, train)
