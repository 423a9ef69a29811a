r"""``soft``: Soft-IntroVAE (seed 002 Algorithm 2 and Eq. 7; docs/conventions.md, "Objectives"),
following the official code.

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

Parts a variant reuses (documented in ``docs/hooks.md``; ``soft-prior`` and ``soft-boot`` are built
from them): :meth:`SoftIntroVAE.draw` (the shared draws, :class:`SoftDraws`),
:meth:`SoftIntroVAE.encoder_step` and :meth:`SoftIntroVAE.decoder_step` (one player's loss and update
each), :meth:`SoftIntroVAE.redecode` (the decoder of the re-decoded terms ``D(E(x_f))``, ``D(E(x_r))``
of both players) and :attr:`SoftIntroVAE.detach_redecoded` (whether the decoder's
reconstruction-of-fakes terms stop gradients at their inputs, as here, or pass them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from .base import Objective
from .members import bcat, bmean, bsize, lead

__all__ = ["SoftConfig", "SoftDraws", "SoftIntroVAE", "build"]


class SoftConfig(BaseModel):
    """Options of the ``soft`` objective (names as in the papers)."""

    model_config = ConfigDict(extra="forbid")

    beta_rec: float = Field(1.0, gt=0, description="weight of reconstruction terms")
    beta_kl: float = Field(1.0, ge=0, description="weight of the real KL (encoder) and of the fake KLs (decoder)")
    beta_neg: float = Field(1.0, ge=0, description="weight of the fakes' KL inside the encoder's exp-ELBO")
    gamma_r: float = Field(1e-8, gt=0, description="weight of the decoder's reconstruction of fakes (never 0)")
    num_vae: int = Field(0, ge=0, description="iterations of plain VAE warm-up before the adversarial game")


@dataclass
class SoftDraws:
    """The draws one iteration shares between its two players (:meth:`SoftIntroVAE.draw`).

    ``z_p ~ p(z)``; ``(mu, logvar) = E(x)``; ``z ~ q(z|x)``; ``x_f = D(z_p)`` and ``x_r = D(z)`` with
    their graphs (the decoder step back-propagates through them; the decoder is unchanged until then).
    """

    z_p: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    x_f: torch.Tensor
    x_r: torch.Tensor


class SoftIntroVAE(Objective):
    """Soft-IntroVAE. After the warm-up, :meth:`step` is :meth:`draw`, :meth:`encoder_step`,
    :meth:`decoder_step`; it returns their scalars, detached (entries of a variant's ``decoder_step``
    beyond ``loss_d``, ``kl_fake`` and ``kl_rec`` are added to the history)."""

    name = "soft"
    #: the decoder step's ``REC(x_f, D'(z_f))`` and ``REC(x_r, D'(z_r))`` stop gradients at ``z_f``,
    #: ``z_r`` and at the targets (the official ``soft``); ``False`` passes them (``soft-boot``)
    detach_redecoded: ClassVar[bool] = True

    def step(self, x: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        c = self.config
        if self.in_warmup(iteration):
            return self.vae_step(x, c.beta_rec, c.beta_kl)
        d = self.draw(x)
        e = self.encoder_step(x, d)
        dec = self.decoder_step(x, d, e["rec"])
        m = self.model
        losses = {
            "loss_e": e["loss_e"],
            "loss_d": dec["loss_d"],
            "rec": bmean(m, e["rec"]),
            "kl": bmean(m, e["kl"]),
            "exp_elbo_fake": e["exp_elbo_fake"],
            "exp_elbo_rec": e["exp_elbo_rec"],
            "kl_fake": dec["kl_fake"],
            "kl_rec": dec["kl_rec"],
        }
        losses.update((k, v) for k, v in dec.items() if k not in losses)  # a variant's further terms
        return {k: v.detach() for k, v in losses.items()}

    def draw(self, x: torch.Tensor) -> SoftDraws:
        """The iteration's shared draws (:class:`SoftDraws`), in the official order: ``z_p``, ``E(x)``,
        ``z``, then the two decoder passes (two, so that the encoder's backward computes input gradients
        for the ``z`` rows only)."""
        m = self.model
        z_p = m.prior.sample(bsize(m, x))
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        return SoftDraws(z_p, mu, logvar, z, m.decode(z_p), m.decode(z))

    def redecode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder of the re-decoded terms ``D(E(x_f))`` and ``D(E(x_r))`` of both players (the
        encoder's exp-ELBOs, the decoder's reconstruction of fakes): the model's decoder."""
        return self.model.decode(z)

    def encoder_step(self, x: torch.Tensor, d: SoftDraws) -> dict[str, torch.Tensor]:
        """The encoder's loss ``L_E`` and update (decoder frozen; only the encoder's optimiser steps).

        The fakes enter detached, ``x_r`` with its graph (the official non-detached target of its
        reconstruction term). Returns, with their graphs: ``loss_e``; ``rec`` = ``REC(x, x_r)`` per
        sample (the decoder step reuses it); ``kl`` = ``KL(x)`` per sample, or the scalar of the
        regularizer that replaces it; the batch means ``exp_elbo_fake`` and ``exp_elbo_rec``. The
        regularizers' encoder terms are added here."""
        c, m = self.config, self.model
        s, b, ld = m.s, bsize(m, x), lead(m)
        x_f = d.x_f.detach()
        rec_real = m.rec(x, d.x_r, ld)
        kl_real = self.real_kl(d.mu, d.logvar, d.z)  # KL(x), or the regularizer's replacement (a scalar)
        mu2, logvar2 = m.encode(bcat(m, [x_f, d.x_r.detach()]))
        y2 = self.redecode(m.reparameterize(mu2, logvar2))
        elbo_neg = c.beta_rec * m.rec(bcat(m, [x_f, d.x_r]), y2, ld) + c.beta_neg * m.kl(mu2, logvar2)
        exp_elbo = torch.exp(-2 * s * elbo_neg)
        exp_fake, exp_rec = bmean(m, exp_elbo[..., :b]), bmean(m, exp_elbo[..., b:])
        loss_e = s * (c.beta_rec * bmean(m, rec_real) + c.beta_kl * bmean(m, kl_real)) + 0.25 * (exp_fake + exp_rec)
        reg = self.encoder_regularization(d.mu, d.logvar, d.z)
        if reg is not None:
            loss_e = loss_e + reg
        self.optimizers["encoder"].zero_grad(set_to_none=True)
        self.backward(loss_e, inputs=self.groups["encoder"], retain_graph=True)
        self.step_optimizers("encoder")
        return {"loss_e": loss_e, "rec": rec_real, "kl": kl_real, "exp_elbo_fake": exp_fake, "exp_elbo_rec": exp_rec}

    def decoder_step(self, x: torch.Tensor, d: SoftDraws, rec_real: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decoder's loss ``L_D`` and update (encoder frozen, already updated; only the decoder's
        optimiser steps). ``rec_real``: ``REC(x, x_r)`` per sample from :meth:`encoder_step`. The
        re-decoded terms come from :meth:`redecode`, detached as :attr:`detach_redecoded` says. Returns
        ``loss_d`` and the batch means ``kl_fake``, ``kl_rec`` (with their graphs)."""
        c, m = self.config, self.model
        s, b, ld = m.s, bsize(m, x), lead(m)
        out = bcat(m, [d.x_f, d.x_r])
        mu3, logvar3 = m.encode(out)
        z3 = m.reparameterize(mu3, logvar3)
        kl3 = m.kl(mu3, logvar3)
        if self.detach_redecoded:
            rr = m.rec(out.detach(), self.redecode(z3.detach()), ld)
        else:
            rr = m.rec(out, self.redecode(z3), ld)
        kl_fake, kl_rec = bmean(m, kl3[..., :b]), bmean(m, kl3[..., b:])
        loss_d = s * (
            c.beta_rec * bmean(m, rec_real)
            + 0.5 * c.beta_kl * (kl_fake + kl_rec)
            + 0.5 * c.gamma_r * c.beta_rec * (bmean(m, rr[..., b:]) + bmean(m, rr[..., :b]))
        )
        self.optimizers["decoder"].zero_grad(set_to_none=True)
        self.backward(loss_d, inputs=self.groups["decoder"])
        self.step_optimizers("decoder")
        return {"loss_d": loss_d, "kl_fake": kl_fake, "kl_rec": kl_rec}


def build(config: SoftConfig, model, regularizers=None, train=None) -> SoftIntroVAE:
    return SoftIntroVAE(config, model, regularizers, train)


build.packable = True  # trains in a pack (introzoo.packing.loop)
