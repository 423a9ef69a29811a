r"""``soft-boot``: Soft-IntroVAE with a lagging target decoder ("bootstrapping"), following the official
repository's ``soft_intro_vae_bootstrap/train_soft_intro_vae_bootstrap.py`` (taldatech/soft-intro-vae-pytorch;
not used in the papers).

The objective holds a *target decoder* ``D_t``, a copy of the decoder that is never trained: its
parameters are copied from the decoder after every ``copy_every``-th iteration (``load_state_dict``).
``D_t`` produces the re-decoded terms of both players; everything else is ``soft``'s (SPEC §2, seed 002
Eq. 7), with ``s = 1/input_dim`` and ``z_p ~ p(z)`` shared by both players::

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
- the official copy runs after every ``freq``-th *epoch* (default 1; epochs counted from 0, so also
  after the first); here after every ``copy_every``-th *iteration*, counted over the whole run;
- the official target decoder starts from its own random initialisation until the first copy; here it
  starts as a copy of the decoder;
- the official warm-up (``num_vae`` epochs) reconstructs through the target decoder, which leaves the
  decoder untrained during it; here the warm-up is ``soft``'s VAE step with the decoder itself.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from pydantic import Field

from .soft import SoftConfig, SoftIntroVAE


class SoftBootConfig(SoftConfig):
    """Options of ``soft-boot``: ``soft``'s and how often the target decoder is refreshed."""

    #: a dataset's defaults for ``soft`` apply (docs/hooks.md, ``defaults_from``)
    defaults_from: ClassVar[str] = "soft"

    gamma_r: float = Field(1.0, gt=0, description="weight of the decoder's reconstruction of fakes (official "
                                                  "bootstrap code: 1.0, never changed by its -g flag)")
    copy_every: int = Field(1000, gt=0, description="iterations between copies of the decoder into the target "
                                                    "decoder (official: one epoch)")


class SoftIntroVAEBootstrap(SoftIntroVAE):
    """``soft`` whose re-decoded terms come from a lagging, untrained copy of the decoder."""

    name = "soft-boot"
    detach_redecoded: ClassVar[bool] = False

    def __init__(self, config: SoftBootConfig, model, regularizers=None, train=None) -> None:
        super().__init__(config, model, regularizers, train)
        self.target_decoder = copy.deepcopy(model.decoder).requires_grad_(False)

    def redecode(self, z: torch.Tensor) -> torch.Tensor:
        return self.target_decoder(z)

    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        losses = super().step(x, iteration)
        if (iteration + 1) % self.config.copy_every == 0:
            self.copy_to_target()
        return losses

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
