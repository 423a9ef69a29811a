r"""``soft``: Soft-IntroVAE (seed 002 Algorithm 2 and Eq. 7; SPEC §2), following the official code.

Per iteration, with one noise draw ``z_p ~ p(z)`` shared by both players and ``s = 1/input_dim``:

Encoder step (decoder parameters frozen; gradients pass *through* the decoder)::

    x_f = D(z_p);  (mu, logvar) = E(x);  z ~ q(z|x);  x_r = D(z)
    elbo_neg(v) = beta_rec*REC(v, D(E(v))) + beta_neg*KL(v)      for v in {x_f.detach(), x_r.detach()}
    L_E = s*(beta_rec*REC(x, x_r) + beta_kl*KL(x))
          + 0.25*(mean exp(-2s*elbo_neg(x_f)) + mean exp(-2s*elbo_neg(x_r)))

  Official detail kept: in the reconstruction term of ``x_r`` the *target* is the non-detached ``x_r``,
  so that term also reaches the encoder through ``x_r = D(z)``.

Decoder step (encoder frozen, already updated)::

    x_f = D(z_p);  x_r = D(z.detach());  (mu_f, lv_f) = E(x_f);  (mu_r, lv_r) = E(x_r);  z_f, z_r sampled
    L_D = s*[beta_rec*REC(x, x_r) + 0.5*beta_kl*(KL(x_f) + KL(x_r))
             + 0.5*gamma_r*beta_rec*(REC(x_r.detach(), D(z_r.detach())) + REC(x_f.detach(), D(z_f.detach())))]

  The decoder's KL terms use ``beta_kl`` (not ``beta_neg``), as in the official code.

The first ``num_vae`` iterations are a plain VAE warm-up (no ``s`` scaling), as in the official code.

How this computes the same losses with fewer passes than the official loop:

- ``x_f = D(z_p)`` and ``x_r = D(z)`` are computed once. The decoder does not change during the
  encoder step, so the decoder step reuses those outputs (and their graphs) instead of recomputing
  ``D(z_p)`` and ``D(z.detach())``; each player back-propagates only into its own
  parameters (``backward(inputs=...)``), which also reproduces the official stop-gradients.
- Fakes and reconstructions are re-encoded and re-decoded as one batch of ``2b``.
- The official loop's extra ``E(x) -> D(mu)`` pass, made only for logging, is dropped.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses import rec
from .base import Objective
from .members import bcat, bmean, bsize, lead


class SoftConfig(BaseModel):
    """Options of the ``soft`` objective (names as in the papers)."""

    model_config = ConfigDict(extra="forbid")

    beta_rec: float = Field(1.0, gt=0, description="weight of reconstruction terms")
    beta_kl: float = Field(1.0, ge=0, description="weight of the real KL (encoder) and of the fake KLs (decoder)")
    beta_neg: float = Field(1.0, ge=0, description="weight of the fakes' KL inside the encoder's exp-ELBO")
    gamma_r: float = Field(1e-8, gt=0, description="weight of the decoder's reconstruction of fakes (never 0)")
    num_vae: int = Field(0, ge=0, description="iterations of plain VAE warm-up before the adversarial game")


def encoder_step(obj: Objective, x, mu, logvar, z, x_f, x_r):
    """The encoder's update of Soft-IntroVAE (shared with ``soft-prior``): ``x_f`` detached fakes,
    ``x_r = D(z)`` with its graph (the official non-detached target). Returns L_E, REC(x, x_r),
    KL(x) per sample (or the regularizer's replacement of it) and the two exp-ELBO means; steps only the
    encoder's optimiser."""
    c, m, s, b, ld = obj.config, obj.model, obj.model.s, bsize(obj.model, x), lead(obj.model)
    rec_real = rec(x, x_r, ld)
    kl_real = obj.real_kl(mu, logvar, z)  # KL(x), or the regularizer's replacement (a scalar)
    mu2, logvar2 = m.encode(bcat(m, [x_f, x_r.detach()]))
    y2 = m.decode(m.reparameterize(mu2, logvar2))
    elbo_neg = c.beta_rec * rec(bcat(m, [x_f, x_r]), y2, ld) + c.beta_neg * m.kl(mu2, logvar2)
    exp_elbo = torch.exp(-2 * s * elbo_neg)
    exp_fake, exp_rec = bmean(m, exp_elbo[..., :b]), bmean(m, exp_elbo[..., b:])
    loss_e = s * (c.beta_rec * bmean(m, rec_real) + c.beta_kl * bmean(m, kl_real)) + 0.25 * (exp_fake + exp_rec)
    reg = obj.encoder_regularization(mu, logvar, z)
    if reg is not None:
        loss_e = loss_e + reg
    obj.optimizers["encoder"].zero_grad(set_to_none=True)
    obj.backward(loss_e, inputs=obj.groups["encoder"], retain_graph=True)
    obj.step_optimizers("encoder")
    return loss_e, rec_real, kl_real, exp_fake, exp_rec


class SoftIntroVAE(Objective):
    name = "soft"

    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        c = self.config
        if self.in_warmup(iteration):
            return self.vae_step(x, c.beta_rec, c.beta_kl)
        m, s, b, ld = self.model, self.model.s, bsize(self.model, x), lead(self.model)
        opt_d, dec_params = self.optimizers["decoder"], self.groups["decoder"]

        z_p = m.prior.sample(b)
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        # x_f and x_r, graphs kept for the decoder step; two passes, so that the encoder's backward
        # computes input gradients for the z rows only
        x_f, x_r = m.decode(z_p), m.decode(z)
        out = bcat(m, [x_f, x_r])

        # ---- encoder step -------------------------------------------------------------------
        loss_e, rec_real, kl_real, exp_fake, exp_rec = encoder_step(self, x, mu, logvar, z, x_f.detach(), x_r)

        # ---- decoder step (encoder frozen: gradients reach only decoder parameters) ----------
        mu3, logvar3 = m.encode(out)
        z3 = m.reparameterize(mu3, logvar3)
        y3 = m.decode(z3.detach())
        kl3 = m.kl(mu3, logvar3)
        rr = rec(out.detach(), y3, ld)
        kl_fake, kl_rec = bmean(m, kl3[..., :b]), bmean(m, kl3[..., b:])
        loss_d = s * (c.beta_rec * bmean(m, rec_real) + 0.5 * c.beta_kl * (kl_fake + kl_rec)
                      + 0.5 * c.gamma_r * c.beta_rec * (bmean(m, rr[..., b:]) + bmean(m, rr[..., :b])))
        opt_d.zero_grad(set_to_none=True)
        self.backward(loss_d, inputs=dec_params)
        self.step_optimizers("decoder")

        return {
            "loss_e": loss_e.detach(), "loss_d": loss_d.detach(), "rec": bmean(m, rec_real).detach(),
            "kl": bmean(m, kl_real).detach(), "exp_elbo_fake": exp_fake.detach(), "exp_elbo_rec": exp_rec.detach(),
            "kl_fake": kl_fake.detach(), "kl_rec": kl_rec.detach(),
        }


def build(config: SoftConfig, model, regularizers=None, train=None) -> SoftIntroVAE:
    return SoftIntroVAE(config, model, regularizers, train)


build.packable = True  # trains in a pack (introzoo.pack)
