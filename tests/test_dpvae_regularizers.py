"""The dpVAE family's regularizers (seed 004 §2, Table 1), each against an independent computation:
explicit double sums in float64, closed forms, autograd Jacobians, and through the objectives."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from introzoo.errors import UsageError
from introzoo.objectives.base import TrainSettings
from introzoo.objectives.intro import IntroConfig, IntroVAE
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.objectives.vae import VAEConfig, VAEObjective
from introzoo.priors.flow import FlowPrior
from introzoo.priors.gaussian import StandardGaussian
from introzoo.regularizers.beta import BetaB, BetaBConfig, BetaH, BetaHConfig, capacity
from introzoo.regularizers.factor import Factor, FactorConfig, permute_dims
from introzoo.regularizers.info import Info, InfoConfig, mmd2
from introzoo.regularizers.tcvae import TCVAE, TCVAEConfig, decompose, log_weights
from introzoo.testing import tiny_model

LOG2PI = math.log(2 * math.pi)


def normal_logpdf(x: float, mu: float, logvar: float) -> float:
    return -0.5 * ((x - mu) ** 2 / math.exp(logvar) + logvar + LOG2PI)


def logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def weight(i: int, j: int, b: int, n: int, estimator: str) -> float:
    """Chen et al.'s minibatch weights written out: MWS 1/(NB); MSS 1/N on the sample's own posterior,
    (N - M)/(NM) on the next one (cyclically), 1/M elsewhere, M = B - 1."""
    if estimator == "mws":
        return 1.0 / (n * b)
    m = b - 1
    if j == i:
        return 1.0 / n
    return (n - m) / (n * m) if j == (i + 1) % b else 1.0 / m


def reference_decomposition(mu, logvar, z, log_pz, n, estimator):
    """Per-sample log q(z|x), log q(z), log prod_k q(z_k) by explicit loops (python floats)."""
    b, d = z.shape
    mu, logvar, z = mu.tolist(), logvar.tolist(), z.tolist()
    log_qzx, log_qz, log_prod = [], [], []
    for i in range(b):
        log_qzx.append(sum(normal_logpdf(z[i][k], mu[i][k], logvar[i][k]) for k in range(d)))
        joint = [
            math.log(weight(i, j, b, n, estimator)) + sum(normal_logpdf(z[i][k], mu[j][k], logvar[j][k]) for k in range(d))
            for j in range(b)
        ]
        log_qz.append(logsumexp(joint))
        log_prod.append(
            sum(
                logsumexp(
                    [
                        math.log(weight(i, j, b, n, estimator)) + normal_logpdf(z[i][k], mu[j][k], logvar[j][k])
                        for j in range(b)
                    ]
                )
                for k in range(d)
            )
        )
    f64 = dict(dtype=torch.float64)
    return (
        torch.tensor(log_qzx, **f64),
        torch.tensor(log_qz, **f64),
        torch.tensor(log_prod, **f64),
        torch.tensor(log_pz.tolist(), **f64),
    )


def hand_built_case(b=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64) - 0.5
    z = mu + torch.exp(0.5 * logvar) * torch.randn(b, d, generator=g, dtype=torch.float64)
    return mu, logvar, z


def standard_normal_logpdf(z):
    return torch.tensor([sum(normal_logpdf(v, 0.0, 0.0) for v in row) for row in z.tolist()], dtype=torch.float64)


# -- beta-TCVAE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tcvae_terms_against_double_sums_and_their_sum_is_the_kl_estimate(estimator):
    mu, logvar, z = hand_built_case()
    log_pz = standard_normal_logpdf(z)
    n = 50
    parts = decompose(mu, logvar, z, log_pz, n, estimator)
    ref_qzx, ref_qz, ref_prod, ref_pz = reference_decomposition(mu, logvar, z, log_pz, n, estimator)
    for key, ref in (("log_qzx", ref_qzx), ("log_qz", ref_qz), ("log_qz_prod", ref_prod)):
        torch.testing.assert_close(parts[key], ref.double(), rtol=1e-12, atol=1e-12)
    mi = (ref_qzx - ref_qz).mean()
    tc = (ref_qz - ref_prod).mean()
    dwkl = (ref_prod - ref_pz).mean()
    torch.testing.assert_close(
        torch.stack([parts["mi"], parts["tc"], parts["dwkl"]]), torch.stack([mi, tc, dwkl]).double(), rtol=1e-12, atol=1e-12
    )
    # the decomposition identity under the same estimator: MI + TC + dwKL = E[log q(z|x) - log p(z)]
    kl_estimate = (ref_qzx - ref_pz).mean().item()
    assert parts["mi"].item() + parts["tc"].item() + parts["dwkl"].item() == pytest.approx(kl_estimate, abs=1e-10)
    assert parts["kl"].item() == pytest.approx(kl_estimate, abs=1e-12)


def test_mss_weights_sum_to_one_per_row_and_one_dimension_has_no_total_correlation():
    w = log_weights(6, 40, "mss", torch.zeros((), dtype=torch.float64)).exp()
    torch.testing.assert_close(w.sum(1), torch.ones(6, dtype=torch.float64))
    mu, logvar, z = hand_built_case(b=6, d=1, seed=3)
    for est in ("mws", "mss"):  # with one latent dimension q(z) is its own product of marginals
        assert decompose(mu, logvar, z, standard_normal_logpdf(z), 40, est)["tc"].item() == pytest.approx(0, abs=1e-12)


def test_tcvae_kl_term_weights_mi_tc_dwkl_and_uses_the_run_size():
    mu, logvar, z = hand_built_case()
    model = tiny_model(StandardGaussian(3), zdim=3).double()
    reg = TCVAE(TCVAEConfig(alpha=0.5, beta=4.0, gamma=15.0, estimator="mss"))
    reg.data_size = 77
    parts = decompose(mu, logvar, z, standard_normal_logpdf(z), 77, "mss")
    expected = 0.5 * parts["mi"] + 4.0 * parts["tc"] + 15.0 * parts["dwkl"]
    # (the prior's log-density carries log(2 pi) in float32: agreement to ~1e-7 relative)
    torch.testing.assert_close(reg.kl_term(model, mu, logvar, z, 0), expected, rtol=1e-6, atol=1e-6)
    d = TCVAEConfig()
    assert (d.alpha, d.beta, d.gamma, d.estimator) == (1.0, 4.0, 15.0, "mws")


# -- the decoupled prior: the KL through g --------------------------------------------------------------


def flow_prior(zdim=2, seed=0):
    torch.manual_seed(seed)
    prior = FlowPrior(zdim, L=4, hidden=16).double()
    with torch.no_grad():  # a clearly non-linear g
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return prior


def log_p_by_autograd(prior, z):
    """log N(g(z); 0, I) + log|det dg/dz| with the Jacobian from autograd (not the coupling log-dets)."""
    out = []
    for row in z:
        jac = torch.autograd.functional.jacobian(lambda v: prior.g(v.unsqueeze(0))[0].squeeze(0), row)
        z0 = prior.g(row.unsqueeze(0))[0].squeeze(0)
        out.append(-0.5 * (z0.square() + LOG2PI).sum() + torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def test_beta_h_with_flow_is_beta_times_the_kl_through_g_by_autograd():
    prior = flow_prior()
    model = tiny_model(prior).double()
    mu, logvar, _ = hand_built_case(b=6, d=2, seed=1)
    reg = BetaH(BetaHConfig())
    torch.manual_seed(11)
    term = reg.kl_term(model, mu, logvar, None, 0)
    torch.manual_seed(11)  # the prior's one posterior draw, replayed
    z = mu + torch.randn((1, 6, 2), dtype=torch.float64)[0] * torch.exp(0.5 * logvar)
    # seed 004 Eq. 18: analytic entropy, E_q[||g(z)||^2 / 2 - log|det dg/dz|] by the same sample
    log_p = log_p_by_autograd(prior, z)
    kl = (-0.5 * logvar.sum(-1) - 0.5 * 2 * (1 + LOG2PI) - log_p).mean()
    assert term.item() == pytest.approx(4.0 * kl.item(), rel=1e-10)


def test_tcvae_with_flow_sums_to_the_kl_through_g_and_matches_monte_carlo():
    prior = flow_prior()
    mu, logvar, z = hand_built_case(b=6, d=2, seed=2)
    parts = decompose(mu, logvar, z, prior.log_prob(z), 100, "mws")
    log_qzx = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    expected = (log_qzx - log_p_by_autograd(prior, z)).mean()
    total = parts["mi"] + parts["tc"] + parts["dwkl"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-10)
    # over many draws from one posterior the one-sample estimate averages to the flow's KL (Eq. 18)
    b = 1500
    mu1, lv1 = mu[:1].expand(b, 2), logvar[:1].expand(b, 2)
    torch.manual_seed(4)
    zs = mu1 + torch.exp(0.5 * lv1) * torch.randn(b, 2, dtype=torch.float64)
    with torch.no_grad():
        per = decompose(mu1, lv1, zs, prior.log_prob(zs), 100, "mws")
        one = per["log_qzx"] - per["log_pz"]
        prior.kl_samples = 20_000
        kl = prior.kl(mu[:1], logvar[:1]).item()
    assert abs(one.mean().item() - kl) < 4 * one.std().item() / math.sqrt(b) + 0.01


# -- MMD (InfoVAE) ----------------------------------------------------------------------------------


def mmd_double_sum(z, y, kernel, c, estimator):
    def k(a, b):
        d2 = sum((u - v) ** 2 for u, v in zip(a, b))
        return math.exp(-d2 / c) if kernel == "rbf" else c / (c + d2)

    z, y = z.tolist(), y.tolist()
    n, m = len(z), len(y)
    if estimator == "biased":
        zz = sum(k(a, b) for a in z for b in z) / n**2
        yy = sum(k(a, b) for a in y for b in y) / m**2
    else:
        zz = sum(k(z[i], z[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return zz + yy - 2 * sum(k(a, b) for a in z for b in y) / (n * m)


@pytest.mark.parametrize("kernel,c", [("rbf", None), ("imq", None), ("rbf", 0.7), ("imq", 3.0)])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd_against_a_direct_double_sum(kernel, c, estimator):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = 1.5 * torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.3
    scale = c if c is not None else (9.0 if kernel == "rbf" else 6.0)  # zdim^2 (Zhao et al.) / 2 zdim (WAE)
    assert mmd2(z, y, kernel, c, estimator).item() == pytest.approx(
        mmd_double_sum(z, y, kernel, scale, estimator), rel=1e-12, abs=1e-14
    )


def test_info_term_is_weighted_kl_plus_mmd_with_prior_samples():
    model = tiny_model(StandardGaussian(3), zdim=3).double()
    mu, logvar, z = hand_built_case(b=7, d=3, seed=6)
    reg = Info(InfoConfig(alpha=0.25, lam=10.0))
    torch.manual_seed(9)
    term = reg.kl_term(model, mu, logvar, z, 0)
    torch.manual_seed(9)
    y = torch.randn(7, 3, dtype=torch.float64)
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean().item()
    expected = 0.75 * kl + 9.25 * mmd_double_sum(z, y, "rbf", 9.0, "biased")
    assert term.item() == pytest.approx(expected, rel=1e-10)
    d = InfoConfig()
    assert (d.alpha, d.lam) == (0.0, 1000.0)


def test_info_with_flow_samples_in_z0_space_and_trains_g():
    prior = flow_prior()
    model = tiny_model(prior).double()
    mu, logvar, z = hand_built_case(b=8, d=2, seed=7)
    reg = Info(InfoConfig(alpha=1.0, lam=2.0))  # the MMD term alone
    torch.manual_seed(3)
    term = reg.kl_term(model, mu, logvar, z, 0)
    torch.manual_seed(3)
    y = prior.g_inverse(torch.randn(8, 2, dtype=torch.float64))  # z = g^-1(z0), z0 ~ N(0, I)
    assert term.item() == pytest.approx(2.0 * mmd_double_sum(z, y.detach(), "rbf", 4.0, "biased"), rel=1e-10)
    term.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in prior.parameters())


# -- FactorVAE --------------------------------------------------------------------------------------


class Holder(nn.Module):
    zdim = 2

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))


def correlated(n, rho, g):
    a, b = torch.randn(n, generator=g), torch.randn(n, generator=g)
    return torch.stack([a, rho * a + math.sqrt(1 - rho**2) * b], 1)


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_factor_tc_estimate_near_zero_when_factorised_and_positive_when_correlated(rho):
    torch.manual_seed(0)
    reg = Factor(FactorConfig(layers=2, hidden=32, lr=2e-3))
    reg.bind(Holder())
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        reg.train_discriminator(correlated(256, rho, g))
    with torch.no_grad():
        tc = reg.tc(correlated(8192, rho, g)).item()
    true_tc = -0.5 * math.log(1 - rho**2)  # 0 and 0.83 nats
    if rho == 0:
        assert abs(tc) < 0.1
    else:
        assert tc > 0.5 and abs(tc - true_tc) < 0.2


def test_permute_dims_permutes_each_column_and_breaks_the_pairs():
    torch.manual_seed(0)
    z = torch.arange(20.0).reshape(10, 2) * torch.tensor([1.0, -1.0])
    p = permute_dims(z)
    for k in range(2):
        assert sorted(p[:, k].tolist()) == sorted(z[:, k].tolist())
    assert not torch.equal(p, z)


def test_factor_term_is_kl_plus_gamma_logit_mean_and_leaves_the_discriminator_alone():
    model = tiny_model(StandardGaussian(2)).double()
    reg = Factor(FactorConfig(layers=2, hidden=16, gamma=7.0))
    reg.bind(model)
    mu, logvar, z = hand_built_case(b=6, d=2, seed=8)
    z = z.requires_grad_()
    term = reg.kl_term(model, mu, logvar, z, 0)
    with torch.no_grad():
        logit = reg.disc(z).squeeze(-1)
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    torch.testing.assert_close(term, kl + 7.0 * logit.mean())
    term.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in reg.parameters())
    d = FactorConfig()
    assert (d.gamma, d.layers, d.hidden, d.lr, d.beta1, d.beta2) == (1000.0, 5, 1000, 1e-4, 0.5, 0.9)


def vae_objective(reg, prior=None, seed=0, cls=VAEObjective, config=None):
    model = tiny_model(prior or StandardGaussian(2), seed=seed)
    return cls(config or VAEConfig(), model, [reg], TrainSettings(batch_size=32))


def batch(seed=0, n=32):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def test_factor_discriminator_state_round_trips_through_a_checkpoint():
    obj = vae_objective(Factor(FactorConfig(layers=2, hidden=16, lr=1e-3)))
    for it in range(3):
        losses = obj.train_step(batch(it), it)
    assert {"tc", "d_loss"} <= set(losses)
    buf = io.BytesIO()
    torch.save({"model": obj.model.state_dict(), "objective": obj.state_dict()}, buf)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    fresh = vae_objective(Factor(FactorConfig(layers=2, hidden=16, lr=1e-3)), seed=1)
    fresh.model.load_state_dict(saved["model"])
    fresh.load_state_dict(saved["objective"])
    a, b = obj.regularizers[0], fresh.regularizers[0]
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert a.optimizer.state_dict()["state"][0]["step"] == b.optimizer.state_dict()["state"][0]["step"] == 3
    torch.manual_seed(5)
    la = obj.train_step(batch(9), 3)
    torch.manual_seed(5)
    lb = fresh.train_step(batch(9), 3)
    assert all(torch.equal(la[k], lb[k]) for k in la)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


# -- beta-VAE forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("t,expected", [(0, 25e-5), (1, 50e-5), (39_999, 10.0), (99_999, 25.0), (250_000, 25.0)])
def test_capacity_schedule_against_its_formula(t, expected):
    """C = C_max (t + 1) / C_stop at the 0-based iteration t (the first iteration counts as 1)."""
    assert capacity(t, 25.0, 100_000) == pytest.approx(expected, rel=1e-12)


def test_beta_b_uses_the_training_iteration_and_gamma_abs_kl_minus_c():
    obj = vae_objective(BetaB(BetaBConfig(C_max=20.0, C_stop=1000)))
    losses = obj.train_step(batch(), 250)
    assert losses["capacity"].item() == pytest.approx(5.02)  # 20 * (250 + 1) / 1000
    assert losses["kl"].item() == pytest.approx(15.0 * abs(losses["kl_raw"].item() - 5.02), rel=1e-6)


def test_beta_h_vae_loss_is_rec_plus_beta_kl_exactly():
    obj = vae_objective(BetaH(BetaHConfig()))
    m, x = obj.model, batch()
    torch.manual_seed(4)
    with torch.no_grad():
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        rec = (x - m.decode(z)).square().sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    torch.manual_seed(4)
    losses = obj.train_step(x, 0)
    torch.testing.assert_close(losses["kl"], 4.0 * kl)
    torch.testing.assert_close(losses["loss"], rec + 4.0 * kl)


# -- composition with the objectives -------------------------------------------------------------------


@pytest.mark.parametrize("cls,config", [(SoftIntroVAE, SoftConfig()), (IntroVAE, IntroConfig(m=1.0))])
def test_introspective_encoder_uses_the_tcvae_term_for_the_real_kl(cls, config):
    obj = vae_objective(TCVAE(TCVAEConfig()), cls=cls, config=config)
    losses = obj.train_step(batch(), 0)
    expected = losses["mi"] + 4.0 * losses["tc"] + 15.0 * losses["dwkl"]
    torch.testing.assert_close(losses["kl"], expected)


def test_warmup_of_an_introspective_objective_has_no_regularizer_term():
    obj = vae_objective(TCVAE(TCVAEConfig()), cls=SoftIntroVAE, config=SoftConfig(num_vae=5))
    assert "mi" not in obj.train_step(batch(), 0)
    assert "mi" in obj.train_step(batch(), 5)


def test_flow_prior_composes_and_the_vae_step_trains_g_through_the_term():
    for reg in (
        BetaH(BetaHConfig()),
        BetaB(BetaBConfig()),
        TCVAE(TCVAEConfig()),
        Factor(FactorConfig(layers=2, hidden=16)),
        Info(InfoConfig()),
    ):
        torch.manual_seed(0)
        prior = FlowPrior(2, L=2, hidden=8)
        obj = vae_objective(reg, prior=prior)
        before = [p.detach().clone() for p in prior.parameters()]
        losses = obj.train_step(batch(), 0)
        assert all(math.isfinite(float(v)) for v in losses.values())
        assert any(not torch.equal(a, b) for a, b in zip(before, prior.parameters())), reg.name


def test_two_kl_replacing_regularizers_are_refused():
    model = tiny_model(StandardGaussian(2))
    with pytest.raises(UsageError, match="beta-h, tcvae each replace the KL"):
        VAEObjective(VAEConfig(), model, [BetaH(BetaHConfig()), TCVAE(TCVAEConfig())], TrainSettings())


# -- batch_weighting="authors": the dpVAE code's 1/B on the batch-mean terms ---------------------------


def test_authors_batch_weighting_divides_the_batch_mean_terms_by_b():
    """The dpVAE code sums reconstruction and KL over the batch but averages the TC / MMD / TCVAE terms:
    relative to introzoo's batch means those terms weigh 1/B. By hand, on one batch (B = 5): factor
    keeps KL + gamma TC / B, info KL + (lambda - 1) MMD^2 / B, tcvae its whole MI + TC + dwKL term / B."""
    mu, logvar, z = hand_built_case()
    b = z.shape[0]
    model = tiny_model(StandardGaussian(3), zdim=3).double()
    kl = model.kl(mu, logvar).mean()
    for cls, cfg in ((TCVAE, TCVAEConfig), (Info, InfoConfig), (Factor, FactorConfig)):
        terms, logs = {}, {}
        for w in ("paper", "authors"):
            reg = cls(cfg(batch_weighting=w, **({"layers": 1, "hidden": 4} if cls is Factor else {})))
            if cls is Factor:
                torch.manual_seed(0)
                reg.bind(model)
                reg.disc.double()
            torch.manual_seed(1)  # the MMD's prior samples
            terms[w] = reg.kl_term(model, mu, logvar, z, 0)
            logs[w] = getattr(reg, "_logs", {}) or {"tc": getattr(reg, "_tc", None)}
        if cls is TCVAE:
            expected = terms["paper"] / b
        elif cls is Info:
            expected = kl + 999.0 * logs["paper"]["mmd"] / b
            assert torch.equal(logs["paper"]["mmd"], logs["authors"]["mmd"])
        else:
            expected = kl + 1000.0 * logs["paper"]["tc"] / b
        torch.testing.assert_close(terms["authors"], expected, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(terms["authors"], terms["paper"])
    assert TCVAEConfig().batch_weighting == InfoConfig().batch_weighting == FactorConfig().batch_weighting == "paper"
