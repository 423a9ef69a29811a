"""Priors against independent computations: closed forms, direct sums, autograd Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from introzoo.backbones.mlp import MLPConfig, build as build_mlp
from introzoo.model import VAE
from introzoo.priors.flow import FlowPrior
from introzoo.priors.gaussian import StandardGaussian
from introzoo.priors.mog import MixturePrior
from introzoo.priors.vamp import VampPrior


def closed_form_kl(mu1, lv1, mu2, lv2):
    """KL(N(mu1, e^lv1) || N(mu2, e^lv2)) for diagonal Gaussians, summed over dimensions."""
    return 0.5 * (lv2 - lv1 + (torch.exp(lv1) + (mu1 - mu2) ** 2) / torch.exp(lv2) - 1).sum(-1)


def test_sg_kl_is_the_closed_form():
    mu, lv = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(StandardGaussian(3).kl(mu, lv), closed_form_kl(mu, lv, torch.zeros(3), torch.zeros(3)))


def test_mog_with_one_component_matches_closed_form_kl_within_mc_error():
    torch.manual_seed(0)
    p = MixturePrior(3, K=1, kl_samples=4000).double()
    mu, lv = torch.randn(6, 3, dtype=torch.float64), 0.5 * torch.randn(6, 3, dtype=torch.float64)
    exact = closed_form_kl(mu, lv, p.mu[0], p.logvar[0])
    # the MC estimate's standard error, from the per-sample log-ratios
    z = mu + torch.exp(0.5 * lv) * torch.randn(4000, 6, 3, dtype=torch.float64)
    from introzoo.losses import gaussian_log_prob

    ratios = gaussian_log_prob(z, mu, lv) - p.log_prob(z.reshape(-1, 3)).reshape(4000, 6)
    se = ratios.std(0) / math.sqrt(4000)
    est = p.kl(mu, lv)
    assert torch.all((est - exact).abs() < 4 * se + 1e-9), (est, exact, se)


def test_mog_log_prob_and_responsibilities_against_a_direct_sum():
    torch.manual_seed(1)
    p = MixturePrior(2, K=4, learn_weights=True).double()
    with torch.no_grad():
        p.logits.copy_(torch.tensor([0.3, -1.0, 2.0, 0.0]))
    z = torch.randn(7, 2, dtype=torch.float64) * 2
    w = np.exp(p.logits.detach().numpy()) / np.exp(p.logits.detach().numpy()).sum()
    mu, sd = p.mu.detach().numpy(), np.exp(0.5 * p.logvar.detach().numpy())
    dens = np.stack([w[k] * norm.pdf(z.numpy(), mu[k], sd[k]).prod(-1) for k in range(4)], 1)  # (7, 4)
    np.testing.assert_allclose(p.log_prob(z).detach().numpy(), np.log(dens.sum(1)), rtol=1e-10)
    np.testing.assert_allclose(p.responsibilities(z).detach().numpy(), dens / dens.sum(1, keepdims=True), rtol=1e-9)


@pytest.mark.parametrize("d", [2, 12])  # the per-dimension path and the matrix-product path
def test_mixture_terms_against_broadcasting(d):
    from introzoo.priors.mog import gaussian_mixture_terms

    torch.manual_seed(7)
    z, mu, lv = torch.randn(50, d) * 3, torch.randn(6, d), torch.randn(6, d) - 2
    logw = torch.log_softmax(torch.randn(6), 0)
    direct = (
        -0.5
        * (
            ((z.double().unsqueeze(1) - mu.double()) ** 2) * torch.exp(-lv.double()) + lv.double() + math.log(2 * math.pi)
        ).sum(-1)
        + logw.double()
    )
    got = gaussian_mixture_terms(z, mu, lv, logw)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), direct, rtol=1e-5, atol=1e-3)


def test_fused_mixture_log_prob_gradients_against_autograd():
    """The hand-written backward of the fused log-sum-exp against autograd through a direct formula."""
    from introzoo.priors.mog import mixture_log_prob

    torch.manual_seed(8)
    z = (torch.randn(20, 3, dtype=torch.float64) * 2).requires_grad_()
    mu = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    lv = (torch.randn(5, 3, dtype=torch.float64) - 1).requires_grad_()
    e = torch.randn(5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(20, dtype=torch.float64)

    def direct(z, mu, lv, e):
        log_n = -0.5 * (((z.unsqueeze(1) - mu) ** 2) * torch.exp(-lv) + lv + math.log(2 * math.pi)).sum(-1)
        return torch.logsumexp(log_n + torch.log_softmax(e, 0), 1)

    fused = (w * mixture_log_prob(z, mu, lv, torch.log_softmax(e, 0))).sum()
    ref = (w * direct(z, mu, lv, e)).sum()
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-10)
    for a, b in zip(torch.autograd.grad(fused, (z, mu, lv, e)), torch.autograd.grad(ref, (z, mu, lv, e))):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert torch.autograd.gradcheck(lambda *a: mixture_log_prob(*a), (z, mu, lv, torch.log_softmax(e, 0).detach()))


def test_mog_sampling_gradients_and_stop_gradient():
    p = MixturePrior(2, K=3)
    z = p.sample(64, with_grad=True)
    z.sum().backward()
    assert p.mu.grad is not None and p.raw_logvar.grad is not None
    assert p.sample(8).requires_grad is False
    p.zero_grad()
    mu = torch.randn(4, 2, requires_grad=True)
    p.kl(mu, torch.zeros(4, 2), stop_gradient=True).sum().backward()
    assert p.mu.grad is None and mu.grad is not None  # sg[p]: the target gets no gradient, q does
    p.kl(mu.detach(), torch.zeros(4, 2)).sum().backward()
    assert p.mu.grad is not None


def test_mog_fixed_is_not_learnable():
    assert not MixturePrior(2, K=3, learn_means=False, learn_logvars=False).learnable
    assert MixturePrior(2, K=3).learnable


@pytest.fixture
def flow():
    torch.manual_seed(2)
    f = FlowPrior(4, L=6).double()
    with torch.no_grad():  # make the couplings far from identity
        for p in f.parameters():
            p.mul_(3.0)
    return f


def test_flow_inverse_and_logdet_against_autograd(flow):
    z = torch.randn(5, 4, dtype=torch.float64)
    z0, logdet = flow.g(z)
    torch.testing.assert_close(flow.g_inverse(z0), z, rtol=1e-9, atol=1e-9)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: flow.g(v.unsqueeze(0))[0][0], z[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac)[1], rtol=1e-9, atol=1e-9)


def test_flow_density_integrates_to_one():
    torch.manual_seed(3)
    f = FlowPrior(2, L=4).double()
    t = torch.linspace(-8, 8, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    mass = torch.exp(f.log_prob(pts)).sum() * (t[1] - t[0]) ** 2
    assert abs(mass.item() - 1.0) < 1e-3


def test_flow_kl_estimate_is_unbiased_for_the_mc_kl():
    """The per-sample form of dpVAE Eq. 18 (entropy term in closed form) and the plain MC log-ratio agree in mean,
    within their Monte Carlo standard errors."""
    from introzoo.losses import gaussian_log_prob

    torch.manual_seed(4)
    f = FlowPrior(4, L=6).double()
    mu, lv = torch.randn(3, 4, dtype=torch.float64), 0.3 * torch.randn(3, 4, dtype=torch.float64)
    f.kl_samples = 4000
    spec_terms = f.kl_terms(mu, lv)
    z = mu + torch.randn(4000, 3, 4, dtype=torch.float64) * torch.exp(0.5 * lv)
    plain_terms = gaussian_log_prob(z, mu, lv) - f.log_prob(z.reshape(-1, 4)).reshape(4000, 3)
    se = torch.sqrt(spec_terms.var(0) / 4000 + plain_terms.var(0) / 4000)
    assert torch.all((spec_terms.mean(0) - plain_terms.mean(0)).abs() < 4 * se + 1e-12)


def test_flow_samples_follow_its_density():
    torch.manual_seed(5)
    f = FlowPrior(2, L=4).double()
    z = f.sample(20000)
    # E_p[log p(z)] estimated from samples matches the grid integral of p log p
    t = torch.linspace(-8, 8, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    lp = f.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1))
    neg_entropy = (torch.exp(lp) * lp).sum() * (t[1] - t[0]) ** 2
    assert abs(f.log_prob(z).mean().item() - neg_entropy.item()) < 0.05


def _vae(data_shape=(2,), zdim=2, prior=None):
    torch.manual_seed(6)
    enc, dec = build_mlp(MLPConfig(hidden=16, layers=1), data_shape, zdim)
    return VAE(enc, dec, prior, data_shape, zdim).double()


def test_vamp_is_the_mixture_of_encoder_posteriors_and_converts_to_mog():
    prior = VampPrior(2, K=5, to_mog=True)
    model = _vae(prior=prior)
    z = torch.randn(9, 2, dtype=torch.float64)
    mu, lv = model.encode(prior.pseudo_inputs())
    from introzoo.losses import gaussian_log_prob

    direct = torch.logsumexp(gaussian_log_prob(z.unsqueeze(1), mu.unsqueeze(0), lv.unsqueeze(0)), 1) - math.log(5)
    torch.testing.assert_close(prior.log_prob(z), direct)
    assert "u" in dict(prior.named_parameters()) and len(list(prior.parameters())) == 1  # not the encoder's
    before = prior.log_prob(z).detach()
    assert prior.on_warmup_end() is True and prior.mog is not None
    torch.testing.assert_close(prior.log_prob(z), before)  # same density, now a frozen-in MoG
    assert not prior.u.requires_grad and prior.learnable


def test_vamp_clamps_image_pseudo_inputs():
    prior = VampPrior(4, K=3)
    _vae(data_shape=(1, 4, 4), zdim=4, prior=prior)
    with torch.no_grad():
        prior.u.mul_(10)
    u = prior.pseudo_inputs()
    assert prior.clamp and u.min() >= 0 and u.max() <= 1


def test_vamp_log_variances_can_be_clipped():
    from introzoo.regularizers.clip_logvar import ClipLogvar, ClipLogvarConfig

    prior = VampPrior(2, K=4)
    model = _vae(prior=prior)
    reg = ClipLogvar(ClipLogvarConfig())
    reg.check(prior)
    reg.on_warmup_end(model)
    with torch.no_grad():
        prior.u.mul_(50)  # push E(u_k) far away
    lv = prior.logvar
    assert torch.all(lv >= reg.lo - 1e-6) and torch.all(lv <= reg.hi + 1e-6)


def test_latent_plot_range_follows_the_latents():
    """The latent plot's square fits the aggregate posterior and the prior: a prior concentrated on a
    small region fills the panel, a standard Gaussian gets the usual ~3 half-width."""
    from introzoo.figures.pictures import latent_half_range

    g = torch.Generator().manual_seed(0)
    small = 0.05 * torch.randn(4000, 2, generator=g)
    wide = torch.randn(4000, 2, generator=g)
    assert latent_half_range(small, small) == pytest.approx(1.2 * float(small.abs().flatten().quantile(0.99)))
    assert 0.1 < latent_half_range(small, small) < 0.2
    assert 2.8 < latent_half_range(wide, wide) < 3.5
    assert latent_half_range(small, wide) == latent_half_range(wide, small)  # the wider of the two
    assert latent_half_range(small, None, torch.tensor([[4.0, 0.0]])) > latent_half_range(small, small)
