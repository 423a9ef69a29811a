"""soft-prior (three-player Soft-IntroVAE) against seed 003 Algorithm 1 (docs/conventions.md, "Prior learning") written out here, with
deterministic noise; gradient routing between encoder, decoder and prior."""

from __future__ import annotations

import copy

import pytest
import torch

from introzoo.backbones.mlp import MLPConfig, build
from introzoo.errors import UsageError
from introzoo.losses import gaussian_log_prob
from introzoo.model import VAE
from introzoo.objectives.soft_prior import SoftIntroVAEPrior, SoftPriorConfig
from introzoo.priors.gaussian import StandardGaussian
from introzoo.priors.mog import MixturePrior
from tests.conftest import det_eps

EPS_KL = torch.linspace(-1.3, 1.1, 8 * 2, dtype=torch.float64).reshape(8, 1, 2)
EPS_P = torch.sin(torch.arange(32, dtype=torch.float64) * 1.7).reshape(16, 2)


def det_kl(prior, mu, logvar, stop_gradient=False):
    """Monte Carlo KL with fixed draws, so two implementations see the same numbers."""
    z = mu.unsqueeze(0) + torch.exp(0.5 * logvar).unsqueeze(0) * EPS_KL
    log_q = gaussian_log_prob(z, mu.unsqueeze(0), logvar.unsqueeze(0))
    log_p = prior.log_prob(z.reshape(-1, 2), stop_gradient).reshape(z.shape[0], mu.shape[0])
    return (log_q - log_p).mean(0)


def det_sample(prior, n, with_grad=False):
    k = torch.arange(n) % prior.K
    z = prior.mu[k] + torch.exp(0.5 * prior.logvar[k]) * EPS_P[:n]
    return z if with_grad else z.detach()


def make(seed=0):
    torch.manual_seed(seed)
    enc, dec = build(MLPConfig(hidden=8, layers=1), (3,), 2)
    prior = MixturePrior(2, K=3, learn_weights=True)
    m = VAE(enc, dec, prior, (3,), 2).double()
    return patch(m)


def patch(m):
    m.reparameterize = lambda mu, lv: mu + det_eps(mu, lv) * torch.exp(0.5 * lv)
    p = m.prior
    p.kl = lambda mu, lv, stop_gradient=False: det_kl(p, mu, lv, stop_gradient)
    p.sample = lambda n, with_grad=False: det_sample(p, n, with_grad)
    return m


def REC(x, y):
    return ((x - y) ** 2).sum(1)


def reference_losses(m, x, c, z_fixed=None):
    """L_E on the given model; returns L_E and z (for L_DP)."""
    s = 1 / 3
    z_p = m.prior.sample(x.shape[0])
    x_f = m.decode(z_p)
    mu, lv = m.encode(x)
    z = m.reparameterize(mu, lv)
    x_r = m.decode(z)
    mu_f, lv_f = m.encode(x_f.detach())
    mu_r, lv_r = m.encode(x_r.detach())
    ef = c.beta_rec * REC(x_f.detach(), m.decode(m.reparameterize(mu_f, lv_f))) + c.beta_neg * m.kl(mu_f, lv_f)
    er = c.beta_rec * REC(x_r, m.decode(m.reparameterize(mu_r, lv_r))) + c.beta_neg * m.kl(mu_r, lv_r)
    le = s * (c.beta_rec * REC(x, x_r).mean() + c.beta_kl * m.kl(mu, lv).mean()) + 0.25 * (
        torch.exp(-2 * s * ef).mean() + torch.exp(-2 * s * er).mean()
    )
    return le, z, mu, lv


def reference_decoder_prior_loss(m, x, c, z, mu, lv):
    s = 1 / 3
    z_p = m.prior.sample(x.shape[0], with_grad=True)
    x_f = m.decode(z_p)
    x_r = m.decode(z.detach())
    mu_f, lv_f = m.encode(x_f)
    mu_r, lv_r = m.encode(x_r)
    kl_f = m.prior.kl(mu_f, lv_f, stop_gradient=True).mean()
    kl_r = m.prior.kl(mu_r, lv_r, stop_gradient=True).mean()
    rr = REC(x_r.detach(), m.decode(m.reparameterize(mu_r, lv_r).detach())).mean()
    rf = REC(x_f.detach(), m.decode(m.reparameterize(mu_f, lv_f).detach())).mean()
    return s * (
        c.beta_rec * REC(x, x_r).mean()
        + c.beta_kl * m.prior.kl(mu.detach(), lv.detach()).mean()
        + c.gamma * c.beta_kl * 0.5 * (kl_r + kl_f)
        + c.gamma * c.gamma_r * c.beta_rec * 0.5 * (rr + rf)
    )


@pytest.mark.parametrize("gamma,gamma_r", [(1.0, 1e-8), (0.6, 0.5)])
def test_soft_prior_matches_spec(gamma, gamma_r):
    c = SoftPriorConfig(beta_rec=0.7, beta_kl=0.4, beta_neg=0.9, gamma=gamma, gamma_r=gamma_r)
    model = make()
    initial = copy.deepcopy(model)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    obj = SoftIntroVAEPrior(c, model)
    out = obj.train_step(x, 0)

    ref = patch(copy.deepcopy(initial))
    le, z, mu, lv = reference_losses(ref, x, c)
    torch.testing.assert_close(out["loss_e"], le.detach(), rtol=1e-12, atol=1e-12)
    g_enc = torch.autograd.grad(le, list(ref.encoder.parameters()))
    for a, b in zip([p.grad for p in model.encoder.parameters()], g_enc):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

    ref2 = patch(copy.deepcopy(initial))  # decoder+prior step: initial decoder and prior, updated encoder
    with torch.no_grad():
        for p_ref, p in zip(ref2.encoder.parameters(), model.encoder.parameters()):
            p_ref.copy_(p)
    ld = reference_decoder_prior_loss(ref2, x, c, z.detach(), mu.detach(), lv.detach())
    torch.testing.assert_close(out["loss_d"], ld.detach(), rtol=1e-12, atol=1e-12)
    params = list(ref2.decoder.parameters()) + [ref2.prior.mu, ref2.prior.raw_logvar, ref2.prior.logits]
    grads = torch.autograd.grad(ld, params)
    ours = [p.grad for p in model.decoder.parameters()] + [
        model.prior.mu.grad,
        model.prior.raw_logvar.grad,
        model.prior.logits.grad,
    ]
    for a, b in zip(ours, grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_prior_gradient_routing():
    """The prior is trained by the real posteriors' KL and as the *source* of fakes; as the KL target of
    the fakes its gradient is stopped: removing the stop changes the prior's gradient."""
    c = SoftPriorConfig(beta_rec=0.7, beta_kl=0.4, beta_neg=0.9)
    m = make()
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _, z, mu, lv = reference_losses(m, x, c)
    prior_params = [m.prior.mu, m.prior.raw_logvar]
    stopped = torch.autograd.grad(reference_decoder_prior_loss(m, x, c, z, mu, lv), prior_params)
    original = m.prior.kl
    m.prior.kl = lambda mu_, lv_, stop_gradient=False: original(mu_, lv_, False)  # no stop anywhere
    unstopped = torch.autograd.grad(reference_decoder_prior_loss(m, x, c, z, mu, lv), prior_params)
    assert any(not torch.allclose(a, b) for a, b in zip(stopped, unstopped))
    # and the source path matters: with fakes from a detached sample, the gradient differs again
    m.prior.kl = original
    sample = m.prior.sample
    m.prior.sample = lambda n, with_grad=False: sample(n, False)
    no_source = torch.autograd.grad(reference_decoder_prior_loss(m, x, c, z, mu, lv), prior_params)
    assert any(not torch.allclose(a, b) for a, b in zip(stopped, no_source))


def test_steps_update_only_their_players():
    c = SoftPriorConfig(beta_rec=0.7, beta_kl=0.4, beta_neg=0.9)
    m = make()
    obj = SoftIntroVAEPrior(c, m)
    snap = lambda mod: [p.detach().clone() for p in mod.parameters()]  # noqa: E731
    enc0, dec0, pri0 = snap(m.encoder), snap(m.decoder), snap(m.prior)
    seen = []
    orig_e = obj.optimizers["encoder"].step

    def enc_step(*a, **k):
        out = orig_e(*a, **k)
        seen.append(
            (
                "enc",
                [torch.equal(a_, b_) for a_, b_ in zip(dec0, snap(m.decoder))],
                [torch.equal(a_, b_) for a_, b_ in zip(pri0, snap(m.prior))],
            )
        )
        return out

    obj.optimizers["encoder"].step = enc_step
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj.train_step(torch.randn(16, 3, dtype=torch.float64), 0)
    assert all(seen[0][1]) and all(seen[0][2])  # encoder step: decoder and prior untouched
    enc1 = snap(m.encoder)
    assert any(not torch.equal(a, b) for a, b in zip(enc0, enc1))
    assert any(not torch.equal(a, b) for a, b in zip(dec0, snap(m.decoder)))
    assert any(not torch.equal(a, b) for a, b in zip(pri0[:2], snap(m.prior)[:2]))


def test_refuses_a_fixed_prior():
    torch.manual_seed(0)
    enc, dec = build(MLPConfig(hidden=8, layers=1), (2,), 2)
    with pytest.raises(UsageError, match="needs a learnable prior"):
        SoftIntroVAEPrior(SoftPriorConfig(), VAE(enc, dec, StandardGaussian(2), (2,), 2))
    fixed = MixturePrior(2, K=4, learn_means=False, learn_logvars=False)
    with pytest.raises(UsageError, match="for a fixed prior use 'soft'"):
        SoftIntroVAEPrior(SoftPriorConfig(), VAE(enc, dec, fixed, (2,), 2))
