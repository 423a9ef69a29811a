"""The priors against independent computations: scipy's densities, numerical integration of the KL,
Kolmogorov-Smirnov tests of the samples, and autograd."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from introzoo_example.laplace import LaplacePrior
from introzoo_example.student_t import StudentTPrior


def kl_by_quadrature(mu, logvar, logpdf):
    """sum_j of the integral of q_j (log q_j - log p_j) over the real line, q_j = N(mu_j, exp(logvar_j))."""
    total = 0.0
    for m, lv in zip(mu, logvar):
        q = stats.norm(m, math.exp(0.5 * lv))
        f = lambda z: q.pdf(z) * (q.logpdf(z) - logpdf(z))  # noqa: E731
        total += integrate.quad(f, m - 30 * math.exp(0.5 * lv), m + 30 * math.exp(0.5 * lv), limit=200)[0]
    return total


def test_laplace_log_prob_is_scipys():
    p = LaplacePrior(3, std=1.7).double()
    b = torch.exp(p.log_b).detach().numpy()  # 1.7 / sqrt(2), rounded to float32 when built
    np.testing.assert_allclose(b, 1.7 / math.sqrt(2), rtol=1e-6)
    z = torch.randn(20, 3, dtype=torch.float64) * 3
    expected = stats.laplace(scale=b).logpdf(z.numpy()).sum(1)
    np.testing.assert_allclose(p.log_prob(z).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("std", [1.0, 0.4])
def test_laplace_closed_form_kl_against_numerical_integration(std):
    p = LaplacePrior(2, std=std).double()
    b = math.exp(p.log_b[0].item())
    mu = torch.tensor([[0.0, 0.0], [1.3, -0.2], [-2.5, 0.7]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0], [-3.0, 0.5], [1.0, -0.3]], dtype=torch.float64)
    got = p.kl(mu, logvar).numpy()
    expected = [kl_by_quadrature(m, lv, stats.laplace(scale=b).logpdf) for m, lv in zip(mu.numpy(), logvar.numpy())]
    np.testing.assert_allclose(got, expected, rtol=1e-7)


def test_laplace_samples_pass_a_kolmogorov_smirnov_test():
    torch.manual_seed(0)
    p = LaplacePrior(2, std=2.0)
    z = p.sample(20_000).double().numpy()
    for j in range(2):
        assert stats.kstest(z[:, j], stats.laplace(scale=2.0 / math.sqrt(2)).cdf).pvalue > 1e-3
    assert np.corrcoef(z.T)[0, 1] == pytest.approx(0.0, abs=0.03)  # independent coordinates


def test_laplace_learnable_scale_gradients_against_the_formula():
    """d log p / d log b_j = -1 + |z_j| / b_j; samples are reparameterised, dz/d log b = z."""
    p = LaplacePrior(2, std=1.0, learn_scale=True).double()
    assert p.learnable and p.log_b.requires_grad
    z = torch.tensor([[0.5, -2.0], [1.5, 0.1]], dtype=torch.float64)
    (g,) = torch.autograd.grad(p.log_prob(z).sum(), [p.log_b])
    b = math.exp(p.log_b[0].item())
    np.testing.assert_allclose(g.numpy(), (-1 + z.abs() / b).sum(0).numpy(), rtol=1e-12)
    torch.manual_seed(1)
    zs = p.sample(5, with_grad=True)
    (g,) = torch.autograd.grad(zs.sum(), [p.log_b])
    np.testing.assert_allclose(g.numpy(), zs.detach().sum(0).numpy(), rtol=1e-12)
    assert not p.log_prob(z, stop_gradient=True).requires_grad  # sg[p]: no gradient to the scale


def test_fixed_laplace_has_no_trainable_parameters():
    p = LaplacePrior(4)
    assert not p.learnable and not any(q.requires_grad for q in p.parameters())


@pytest.mark.parametrize("df,scale", [(5.0, 1.0), (1.0, 0.5), (2.5, 2.0)])
def test_student_t_log_prob_is_scipys(df, scale):
    p = StudentTPrior(3, df=df, scale=scale).double()
    z = torch.randn(20, 3, dtype=torch.float64) * 4
    np.testing.assert_allclose(p.log_prob(z).numpy(), stats.t(df, scale=scale).logpdf(z.numpy()).sum(1), rtol=1e-12)


def test_student_t_monte_carlo_kl_against_numerical_integration():
    """The base class's Monte Carlo KL, within 4 standard errors of the integral."""
    torch.manual_seed(2)
    t = 20_000
    p = StudentTPrior(2, df=3.0, kl_samples=t).double()
    mu = torch.tensor([[0.0, 0.5], [2.0, -1.0]], dtype=torch.float64)
    logvar = torch.tensor([[-1.0, 0.0], [-2.0, 0.5]], dtype=torch.float64)
    got = p.kl(mu, logvar).numpy()
    expected = np.array([kl_by_quadrature(m, lv, stats.t(3.0).logpdf) for m, lv in zip(mu.numpy(), logvar.numpy())])
    # standard error of the estimate from the spread of the log-ratios
    z = mu + torch.exp(0.5 * logvar) * torch.randn(t, 2, 2, dtype=torch.float64)
    ratio = stats.norm(mu.numpy(), np.exp(0.5 * logvar.numpy())).logpdf(z.numpy()).sum(-1) - stats.t(3.0).logpdf(
        z.numpy()
    ).sum(-1)
    se = ratio.std(0) / math.sqrt(t)
    assert np.all(np.abs(got - expected) < 4 * se), (got, expected, se)


def test_student_t_samples_pass_a_kolmogorov_smirnov_test():
    torch.manual_seed(3)
    z = StudentTPrior(2, df=2.5, scale=2.0).sample(20_000).numpy()
    for j in range(2):
        assert stats.kstest(z[:, j], stats.t(2.5, scale=2.0).cdf).pvalue > 1e-3
