r"""``intro``: IntroVAE with the hard-margin hinge (seed 002 Eq. "IntroVAE"; docs/conventions.md, "Objectives").

With fakes ``x_f = D(z_p)``, ``z_p ~ p(z)``, and reconstructions ``x_r = D(z)``, ``z ~ q(z|x)`` (as in the
official code, both count as fake data and their terms are averaged), no ``s`` scaling::

    L_E = beta_rec*REC(x, x_r) + beta_kl*KL(x)
          + beta_neg*0.5*([m - KL(E(x_f.detach()))]_+ + [m - KL(E(x_r.detach()))]_+)
    L_D = beta_rec*REC(x, D(z.detach())) + w*0.5*(KL(E(x_f)) + KL(E(x_r)))     (encoder frozen)

- ``hinge="batch"`` (default, official code): ``[m - mean_batch KL]_+``; ``hinge="sample"`` (paper form):
  ``mean_batch [m - KL]_+``.
- ``decoder_kl_weight`` chooses the weights of the fakes' KL terms (docs/conventions.md, "Where the authors' code
  differs from the formulas"):

  - ``"beta_neg"`` (default): the equations above, ``w = beta_neg``; the form of seed 002's Eq. 7
    ("IntroVAE") used in its 2D comparison.
  - ``"beta_kl"``: the decoder's ``w = beta_kl``, the encoder as above. This is *not* the original
    IntroVAE code (its hinge also carries ``beta_kl``); kept for runs that asked for it.
  - ``"introvae"``: the original IntroVAE code exactly (Huang et al. 2018, the authors' ``main.py``:
    ``lossE = weight_rec*loss_rec + weight_kl*(KL_real + weight_neg*0.5*(relu(m - KL_rec) +
    relu(m - KL_fake)))``, ``lossG = weight_kl*0.5*(KL_rec + KL_fake)`` added to the reconstruction
    term's decoder gradient), i.e. the hinge weighted by ``beta_kl*beta_neg`` and ``w = beta_kl``.

  The three agree when ``beta_kl = beta_neg = 1``; ``"beta_kl"`` and ``"introvae"`` when ``beta_kl = 1``.
- The margin ``m`` is required (the 2D grid used m in [1, 10]); 2D datasets supply the paper's value.
- IntroVAE is known to diverge; the trainer stops a run with non-finite losses as ``diverged``.

As in ``soft``, ``x_f`` and ``x_r`` come from one decoder pass shared by both players.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from .base import Objective
from .members import bcat, bmean, bsize, bslice, lead


class IntroConfig(BaseModel):
    """Options of the ``intro`` objective."""

    model_config = ConfigDict(extra="forbid")

    m: float = Field(gt=0, description="hinge margin on the fakes' KL (required; 2D grid used 1..10)")
    beta_rec: float = Field(1.0, gt=0, description="weight of the reconstruction term")
    beta_kl: float = Field(1.0, ge=0, description="weight of the real data's KL")
    beta_neg: float = Field(1.0, ge=0, description="weight of the fakes' KL terms")
    hinge: Literal["batch", "sample"] = Field("batch", description="hinge on the batch-mean KL or per sample")
    decoder_kl_weight: Literal["beta_neg", "beta_kl", "introvae"] = Field(
        "beta_neg",
        description="fakes' KL weights: beta_neg (Soft-IntroVAE Eq. 7), beta_kl (decoder only), "
        "introvae (original code: hinge x beta_kl*beta_neg, decoder x beta_kl)",
    )
    num_vae: int = Field(0, ge=0, description="iterations of plain VAE warm-up")


class IntroVAE(Objective):
    name = "intro"

    def _hinge(self, kl: torch.Tensor) -> torch.Tensor:
        m, model = self.config.m, getattr(self, "model", None)
        if self.config.hinge == "batch":
            return torch.relu(m - bmean(model, kl))
        return bmean(model, torch.relu(m - kl))

    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        c = self.config
        if self.in_warmup(iteration):
            return self.vae_step(x, c.beta_rec, c.beta_kl)
        m, b, ld = self.model, bsize(self.model, x), lead(self.model)
        z_p = m.prior.sample(b)
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        out = m.decode(bcat(m, [z_p, z]))  # [x_f; x_r]

        # ---- encoder step
        rec_real = bmean(m, m.rec(x, bslice(m, out, b), ld))
        kl_real = bmean(m, self.real_kl(mu, logvar, z))  # KL(x), or the regularizer's replacement
        mu2, logvar2 = m.encode(out.detach())
        kl2 = m.kl(mu2, logvar2)
        margin = 0.5 * (self._hinge(kl2[..., :b]) + self._hinge(kl2[..., b:]))
        hinge_w = c.beta_neg * (c.beta_kl if c.decoder_kl_weight == "introvae" else 1.0)
        loss_e = c.beta_rec * rec_real + c.beta_kl * kl_real + hinge_w * margin
        reg = self.encoder_regularization(mu, logvar, z)
        if reg is not None:
            loss_e = loss_e + reg
        self.optimizers["encoder"].zero_grad(set_to_none=True)
        self.backward(loss_e, inputs=self.groups["encoder"], retain_graph=True)
        self.step_optimizers("encoder")

        # ---- decoder step
        mu3, logvar3 = m.encode(out)
        kl3 = m.kl(mu3, logvar3)
        kl_fake, kl_rec = bmean(m, kl3[..., :b]), bmean(m, kl3[..., b:])
        w = c.beta_neg if c.decoder_kl_weight == "beta_neg" else c.beta_kl
        loss_d = c.beta_rec * rec_real + w * 0.5 * (kl_fake + kl_rec)
        self.optimizers["decoder"].zero_grad(set_to_none=True)
        self.backward(loss_d, inputs=self.groups["decoder"])
        self.step_optimizers("decoder")
        return {
            "loss_e": loss_e.detach(),
            "loss_d": loss_d.detach(),
            "rec": rec_real.detach(),
            "kl": kl_real.detach(),
            "kl_fake": kl_fake.detach(),
            "kl_rec": kl_rec.detach(),
        }


def build(config: IntroConfig, model, regularizers=None, train=None) -> IntroVAE:
    return IntroVAE(config, model, regularizers, train)


build.packable = True  # trains in a pack (introzoo.packing.loop)
