r"""``soft-prior``: the three-player Soft-IntroVAE (seed 003 Algorithm 1, Eq. 9, Eq. 52;
docs/conventions.md, "Prior learning").

The encoder plays against the decoder and a learnable prior, which cooperate. With ``s = 1/input_dim``:

- Warm-up (``num_vae`` iterations): a VAE step with the prior trained jointly.
- Encoder step: as ``soft``, with fakes ``x_f = D(z_p)``, ``z_p`` drawn from the *current* prior without
  gradient, and every KL taken against the prior (frozen in this step), plus the regularizers' encoder
  terms (``resp-entropy``)::

      L_E = s*(beta_rec*REC(x, x_r) + beta_kl*KL(x)) + 0.25*(mean exp(-2s*elbo_neg(x_f)) + mean exp(-2s*elbo_neg(x_r)))

- Decoder+prior step (encoder frozen), a fresh ``z_p`` sampled *with* gradient to the prior
  (reparameterised per component), ``x_f = D(z_p)``, ``x_r = D(z.detach())``::

      L_DP = s*[beta_rec*REC(x, x_r) + beta_kl*KL(q(z|x).detach() || p)
                + gamma*beta_kl*(KL(E(x_r) || sg[p]) + KL(E(x_f) || sg[p]))/2
                + gamma*gamma_r*beta_rec*(REC(x_r, D(z_r)) + REC(x_f, D(z_f)))/2]      (targets detached)

  ``sg[p]``: as the KL *target* of generated samples the prior's gradient is stopped; as the *source*
  of ``x_f`` it receives gradient. The real posterior's KL trains the prior towards the aggregate
  posterior.

A prior that cannot learn is refused: use ``soft`` for a fixed prior (``soft`` + fixed ``mog`` is the
"fixed MoG" baseline of seed 003).
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..errors import UsageError
from .members import bcat, bmean, bsize, lead
from .soft import SoftConfig, SoftDraws, SoftIntroVAE


class SoftPriorConfig(SoftConfig):
    """Options of the ``soft-prior`` objective (``soft``'s and the three-player weight ``gamma``)."""

    gamma: float = Field(1.0, ge=0, description="weight of the fakes' ELBO in the decoder+prior loss")


class SoftIntroVAEPrior(SoftIntroVAE):
    """``soft``'s draws and encoder step; :meth:`decoder_step` trains the decoder and the prior."""

    name = "soft-prior"

    def __init__(self, config, model, regularizers=None, train=None) -> None:
        if not model.prior.learnable:
            raise UsageError(
                "objective 'soft-prior' needs a learnable prior (mog, vamp, flow; a mog with "
                "learnable means or log-variances); for a fixed prior use 'soft'"
            )
        super().__init__(config, model, regularizers, train)

    def decoder_step(self, x: torch.Tensor, d: SoftDraws, rec_real: torch.Tensor) -> dict[str, torch.Tensor]:
        """``L_DP`` and the update of the decoder and the prior (encoder frozen), with a fresh ``z_p``
        drawn with gradient to the prior; ``D(z)`` of the encoder step is reused (its graph kept)."""
        c, m = self.config, self.model
        s, b, ld = m.s, bsize(m, x), lead(m)
        dec_prior_params = self.groups["decoder"] + self.groups.get("prior", [])
        z_p2 = m.prior.sample(b, with_grad=True)
        x_f2 = m.decode(z_p2)
        out = bcat(m, [x_f2, d.x_r])
        mu3, logvar3 = m.encode(out)
        z3 = m.reparameterize(mu3, logvar3)
        y3 = self.redecode(z3.detach())
        kl3 = m.prior.kl(mu3, logvar3, stop_gradient=True)  # sg[p] as the target
        kl_fake, kl_rec = bmean(m, kl3[..., :b]), bmean(m, kl3[..., b:])
        rr = m.rec(out.detach(), y3, ld)
        kl_prior = bmean(m, m.prior.kl(d.mu.detach(), d.logvar.detach()))  # the prior fits the real posteriors
        loss_d = s * (
            c.beta_rec * bmean(m, rec_real)
            + c.beta_kl * kl_prior
            + c.gamma * c.beta_kl * 0.5 * (kl_rec + kl_fake)
            + c.gamma * c.gamma_r * c.beta_rec * 0.5 * (bmean(m, rr[..., b:]) + bmean(m, rr[..., :b]))
        )
        for k in ("decoder", "prior"):
            if k in self.optimizers:
                self.optimizers[k].zero_grad(set_to_none=True)
        self.backward(loss_d, inputs=dec_prior_params)
        self.step_optimizers("decoder", "prior")
        return {"loss_d": loss_d, "kl_fake": kl_fake, "kl_rec": kl_rec, "kl_prior": kl_prior}


def build(config: SoftPriorConfig, model, regularizers=None, train=None) -> SoftIntroVAEPrior:
    return SoftIntroVAEPrior(config, model, regularizers, train)


build.packable = True  # trains in a pack (introzoo.packing.loop)
