"""Agreement with the authors' code where it differs from a plain reading of the formulas, each against
an independent float64 computation written out here: clip-logvar's derivative at the bound and sharpness
(seed 003 official code), the resp-entropy estimator and its log K rule (seed 003 official code), the
original IntroVAE weighting of the hinge, and the 2D prior initialisation of the seed 003 configurations."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from introzoo import plugins
from introzoo.backbones.mlp import MLPConfig, build as build_mlp
from introzoo.config import RunConfig, resolve
from introzoo.model import VAE
from introzoo.objectives.intro import IntroConfig, IntroVAE
from introzoo.objectives.soft_prior import SoftIntroVAEPrior, SoftPriorConfig
from introzoo.priors.mog import MixturePrior
from introzoo.regularizers.clip_logvar import ClipLogvar, ClipLogvarConfig, soft_clip, softplus
from introzoo.regularizers.resp_entropy import RespEntropy, RespEntropyConfig
from tests.test_soft_prior import make as make_soft_prior_model
from tests.test_soft_prior import patch, reference_decoder_prior_loss, reference_losses

pytestmark = pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")


# ---- clip-logvar ---------------------------------------------------------------------------------
def reference_clip(l, lo, hi, K=10.0):
    """Seed 003 official form, float64: f = l - sp(b(l - hi))/b + sp(b(lo - l))/b, b = K/(|hi - lo| + 1e-8)."""
    b = K / ((hi - lo).abs() + 1e-8)
    return l - F.softplus(b * (l - hi)) / b + F.softplus(b * (lo - l)) / b


def test_softplus_and_clip_derivatives_at_the_bound():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(softplus(x).sum(), x)
    torch.testing.assert_close(g, torch.full_like(g, 0.5), rtol=0, atol=0)  # sigmoid(0)
    lo = torch.tensor([-1.5, 0.2], dtype=torch.float64)
    hi = torch.tensor([0.5, 2.7], dtype=torch.float64)
    for at in (hi, lo):
        l = at.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(soft_clip(l, lo, hi, 10.0).sum(), l)
        # f'(l) = 1 - sigmoid(b(l - hi)) - sigmoid(b(lo - l)); on either bound 1/2 - sigmoid(-b(hi - lo))
        for j in range(2):
            b = 10.0 / (float(hi[j] - lo[j]) + 1e-8)
            expected = 0.5 - 1.0 / (1.0 + math.exp(b * float(hi[j] - lo[j])))
            assert g[j].item() == pytest.approx(expected, rel=1e-14)
        torch.testing.assert_close(soft_clip(at, lo, hi, 10.0), reference_clip(at, lo, hi), rtol=1e-15, atol=1e-15)


def test_first_adversarial_step_with_the_range_components_on_the_bound():
    """soft-prior + clip-logvar: one warm-up step, then the first adversarial step, whose range-defining
    components sit exactly on [lo, hi]; the decoder+prior loss and the prior's gradients against the
    same step written out with the official clipping function (autograd of F.softplus, float64)."""
    c = SoftPriorConfig(beta_rec=0.7, beta_kl=0.4, beta_neg=0.9, num_vae=1)
    model = make_soft_prior_model(seed=2)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    obj = SoftIntroVAEPrior(c, model, regularizers=[ClipLogvar(ClipLogvarConfig())])
    obj.train_step(x, 0)  # warm-up
    after_warmup = copy.deepcopy(model)
    out = obj.train_step(x, 1)  # the range is fixed here, then the first adversarial step

    raw = after_warmup.prior.raw_logvar.detach()
    lo, hi = raw.min(0).values, raw.max(0).values
    on_bound = (raw == lo) | (raw == hi)
    assert on_bound.sum() == 4  # two components per dimension define the range

    def with_reference_clip(m):
        m = patch(m)
        m.prior.set_logvar_transform(lambda r: reference_clip(r, lo, hi))
        return m

    ref = with_reference_clip(copy.deepcopy(after_warmup))
    le, z, mu, lv = reference_losses(ref, x, c)
    torch.testing.assert_close(out["loss_e"], le.detach(), rtol=1e-12, atol=1e-12)
    ref2 = with_reference_clip(copy.deepcopy(after_warmup))  # initial decoder and prior, updated encoder
    with torch.no_grad():
        for p_ref, p in zip(ref2.encoder.parameters(), model.encoder.parameters()):
            p_ref.copy_(p)
    ld = reference_decoder_prior_loss(ref2, x, c, z.detach(), mu.detach(), lv.detach())
    torch.testing.assert_close(out["loss_d"], ld.detach(), rtol=1e-12, atol=1e-12)
    g_mu, g_raw = torch.autograd.grad(ld, [ref2.prior.mu, ref2.prior.raw_logvar])
    assert g_raw[on_bound].abs().min() > 1e-6  # the bound components do receive a gradient
    torch.testing.assert_close(model.prior.raw_logvar.grad, g_raw, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(model.prior.mu.grad, g_mu, rtol=1e-10, atol=1e-13)


# ---- resp-entropy --------------------------------------------------------------------------------
def tiny_vae(prior):
    torch.manual_seed(0)
    enc, dec = build_mlp(MLPConfig(hidden=8, layers=1), (3,), 2)
    return VAE(enc, dec, prior, (3,), 2).double()  # s = 1/3


def hand_mixture(K):
    prior = MixturePrior(2, K=K, learn_weights=True).double()
    with torch.no_grad():
        prior.mu.copy_(torch.tensor([[-1.0, 0.3], [0.8, -0.2], [0.1, 1.1]], dtype=torch.float64)[:K])
        prior.raw_logvar.copy_(torch.tensor([[-0.5, 0.2], [0.1, -0.3], [0.4, 0.0]], dtype=torch.float64)[:K])
        prior.logits.copy_(torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)[:K])
    return prior


def reference_resp_entropy(prior, mu, logvar, eps, s, r, normalize_small_k):
    """Eq. 11 with direct sums: eps[t, i] is draw t of point i; responsibilities averaged over all draws."""
    K = prior.K
    pm, plv, w = prior.mu.detach(), prior.raw_logvar.detach(), torch.softmax(prior.logits.detach(), 0)
    z = mu.unsqueeze(0) + eps * torch.exp(0.5 * logvar).unsqueeze(0)  # (T, B, 2)
    dens = []
    for k in range(K):
        log_n = -0.5 * (math.log(2 * math.pi) * 2 + plv[k].sum() + ((z - pm[k]) ** 2 / plv[k].exp()).sum(-1))
        dens.append(w[k] * torch.exp(log_n))
    total = sum(dens)
    c = torch.stack([(d / total).mean() for d in dens])
    h = -sum(c[k] * torch.log(c[k] + 1e-8) for k in range(K))
    if math.log(K) > 1 or normalize_small_k:
        h = h / math.log(K)
    return -s * r * h


@pytest.mark.parametrize("K,normalize", [(3, "official"), (2, "official"), (2, "always")])
def test_resp_entropy_official_estimator(K, normalize):
    """Default: 100 fresh posterior draws per point (not the training sample z), log K rule of the official
    code (K = 2 is not normalised); ``normalize=always`` divides by log K for every K."""
    model = tiny_vae(hand_mixture(K))
    B, T = 6, 100
    mu = torch.linspace(-1.2, 1.0, B * 2, dtype=torch.float64).reshape(B, 2).requires_grad_(True)
    logvar = torch.linspace(-1.0, 0.3, B * 2, dtype=torch.float64).reshape(B, 2).flip(0).requires_grad_(True)
    z_train = mu.detach() + 0.01  # a training sample the official estimator does not use
    cfg = (
        RespEntropyConfig(r_entropy=3.0)
        if normalize == "official"
        else RespEntropyConfig(r_entropy=3.0, normalize=normalize)
    )
    torch.manual_seed(11)
    term = RespEntropy(cfg).encoder_loss(model, mu, logvar, z_train)
    torch.manual_seed(11)
    eps = torch.randn(T * B, 2, dtype=torch.float64).reshape(T, B, 2)  # row t*B + i: draw t of point i
    expected = reference_resp_entropy(model.prior, mu, logvar, eps, 1 / 3, 3.0, normalize == "always")
    torch.testing.assert_close(term, expected, rtol=1e-12, atol=1e-15)
    g = torch.autograd.grad(term, [mu, logvar])
    g_ref = torch.autograd.grad(expected, [mu, logvar])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert model.prior.mu.grad is None  # the prior is a frozen target


def test_resp_entropy_one_sample_option_uses_the_training_sample():
    model = tiny_vae(hand_mixture(3))
    mu = torch.zeros(4, 2, dtype=torch.float64)
    z = torch.tensor([[-1.0, 0.3], [0.8, -0.2], [0.1, 1.1], [0.0, 0.0]], dtype=torch.float64)
    term = RespEntropy(RespEntropyConfig(r_entropy=2.0, samples=0)).encoder_loss(model, mu, mu, z)
    expected = reference_resp_entropy(
        model.prior, z, torch.full_like(z, -math.inf), torch.zeros(1, 4, 2, dtype=torch.float64), 1 / 3, 2.0, False
    )  # exp(-inf) = 0: z itself
    torch.testing.assert_close(term, expected, rtol=1e-12, atol=1e-15)


# ---- IntroVAE, the original weighting ------------------------------------------------------------
def REC(x, y):
    return ((x - y) ** 2).sum(1)


def KL(mu, logvar):
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)


def test_intro_original_weighting(tiny_model):
    """``decoder_kl_weight=introvae``: the original IntroVAE code's ``lossE = w_rec*REC + w_kl*(KL_real +
    w_neg*0.5*(relu(m - KL_rec) + relu(m - KL_fake)))`` and ``lossG = w_rec*REC + w_kl*0.5*(KL_rec + KL_fake)``."""
    model = tiny_model()
    initial = copy.deepcopy(model)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z_p = model.prior.sample(16)
    with torch.no_grad():
        m_plus = 3.0 * float(KL(*model.encode(model.decode(z_p))).mean())  # both hinges active
    wr, wk, wn = 0.6, 0.4, 0.8
    c = IntroConfig(m=m_plus, beta_rec=wr, beta_kl=wk, beta_neg=wn, decoder_kl_weight="introvae")
    out = IntroVAE(c, model).train_step(x, 0)

    ref = copy.deepcopy(initial)  # the original loop, written out (batch hinge)
    fake = ref.decode(z_p)
    mu, logvar = ref.encode(x)
    z = ref.reparameterize(mu, logvar)
    rec = ref.decode(z)
    kl_rec_e = KL(*ref.encode(rec.detach())).mean()
    kl_fake_e = KL(*ref.encode(fake.detach())).mean()
    loss_margin = KL(mu, logvar).mean() + (F.relu(m_plus - kl_rec_e) + F.relu(m_plus - kl_fake_e)) * 0.5 * wn
    loss_e = REC(x, rec).mean() * wr + loss_margin * wk
    assert kl_rec_e < m_plus and kl_fake_e < m_plus
    torch.testing.assert_close(out["loss_e"], loss_e.detach(), rtol=1e-12, atol=1e-12)
    g_e = torch.autograd.grad(loss_e, list(ref.encoder.parameters()), retain_graph=True)
    for a, b in zip([p.grad for p in model.encoder.parameters()], g_e):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

    with torch.no_grad():  # decoder step: encoder updated
        for p_ref, p in zip(ref.encoder.parameters(), model.encoder.parameters()):
            p_ref.copy_(p)
    rec2 = ref.decode(z.detach())
    loss_g = wr * REC(x, rec2).mean() + (KL(*ref.encode(rec2)).mean() + KL(*ref.encode(fake)).mean()) * 0.5 * wk
    torch.testing.assert_close(out["loss_d"], loss_g.detach(), rtol=1e-12, atol=1e-12)


# ---- 2D prior initialisation ---------------------------------------------------------------------
@pytest.mark.parametrize("data", ["8gaussians", "2spirals", "checkerboard", "rings"])
def test_2d_mog_starts_from_data_unless_asked_otherwise(data):
    reg = plugins.registry()
    run = resolve(RunConfig(prior="mog:64", data=data, metrics=[]), reg)
    assert run.prior.config.init == "data"
    assert run.to_json()["prior"]["options"]["init"] == "data"  # what config.json records
    explicit = resolve(RunConfig(prior="mog:64,init=random", data=data, metrics=[]), reg)
    assert explicit.prior.config.init == "random"
    assert resolve(RunConfig(prior="mog:10", data="digits", metrics=[]), reg).prior.config.init == "random"


def test_2d_mog_data_init_is_the_encoders_posterior_of_k_training_points():
    from introzoo.data.toy2d import eight_gaussians
    from introzoo.training.loop import build

    cfg = RunConfig(prior="mog:8", data="8gaussians", metrics=[], seed=3, device="cpu")
    run = resolve(cfg, plugins.registry())
    built = build(run)
    with torch.no_grad():
        points = eight_gaussians(8, torch.Generator().manual_seed(3)).double()
        enc = copy.deepcopy(built.model.encoder).double()
        mu, logvar = enc(points).chunk(2, dim=1)
    torch.testing.assert_close(built.model.prior.mu.detach().double(), mu, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(built.model.prior.raw_logvar.detach().double(), logvar, rtol=1e-6, atol=1e-6)


# -- details found against the authors' code (soft-boot, beta-b, tcvae, log 2π) ----------------------


def test_soft_boot_gamma_r_is_the_official_bootstraps_one_on_every_dataset():
    """The official bootstrap trainer's default gamma_r = 1.0 (its main.py never passes -g on)."""
    from introzoo import plugins
    from introzoo.config import RunConfig, resolve
    from introzoo.objectives.soft_boot import SoftBootConfig

    assert SoftBootConfig().gamma_r == 1.0
    for data in ("8gaussians", "digits"):
        run = resolve(RunConfig(objective="soft-boot", data=data, metrics=[]), plugins.registry())
        assert run.objective.config.gamma_r == 1.0
    soft = resolve(RunConfig(objective="soft", data="8gaussians", metrics=[]), plugins.registry())
    assert soft.objective.config.gamma_r == 1e-8  # soft keeps its own


def test_beta_b_capacity_counts_the_first_iteration_as_one():
    """Burgess et al.'s reference code and the dpVAE code: C = C_max * (t + 1) / C_stop."""
    from introzoo.regularizers.beta import capacity

    assert capacity(0, 25.0, 100_000) == 25.0 / 100_000
    assert capacity(99_999, 25.0, 100_000) == 25.0


def test_gaussian_log_prob_is_exact_in_float64():
    from scipy.stats import multivariate_normal

    from introzoo.losses import gaussian_log_prob

    g = torch.Generator().manual_seed(0)
    z, mu = torch.randn(50, 3, generator=g, dtype=torch.float64), torch.randn(50, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(50, 3, generator=g, dtype=torch.float64) * 0.5
    got = gaussian_log_prob(z, mu, logvar)
    ref = [multivariate_normal(mu[i].numpy(), np.diag(logvar[i].exp().numpy())).logpdf(z[i].numpy()) for i in range(50)]
    assert np.abs(got.numpy() - np.array(ref)).max() < 1e-12


def test_tcvae_docstring_states_what_the_official_weight_matrix_fills():
    """rtqichen/beta-tcvae's log_importance_weight_matrix, replicated: its slices stride by a row, so it
    fills columns 0 and 1, not the diagonal; introzoo's intended matrix differs and its docstring says so."""
    import introzoo.regularizers.tcvae as tc

    B, N = 6, 100
    M = B - 1
    W = torch.empty(B, B).fill_(1 / M)
    W.view(-1)[:: M + 1] = 1 / N
    W.view(-1)[1 :: M + 1] = (N - M) / (N * M)
    W[M - 1, 0] = (N - M) / (N * M)
    assert torch.all(W[:, 1] == (N - M) / (N * M)) and W[0, 0] == 1 / N and W[2, 2] == 1 / M
    doc = " ".join(tc.__doc__.split())
    assert "column 0" in doc and "column 1" in doc and "vae_quant.py" in doc
