"""Each objective's encoder and decoder losses and gradients against their formulas (docs/conventions.md, "Objectives"), written out
independently here with one pass per term (the official loop's structure), on tiny fixed networks
with deterministic noise (see conftest)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from introzoo.objectives.base import TrainSettings
from introzoo.objectives.intro import IntroConfig, IntroVAE
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.objectives.vae import VAEConfig, VAEObjective

# record_steps wraps optimizer.step after the schedulers were made; torch warns about exactly that
pytestmark = pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")


def REC(x, y):  # per-sample sum of squared errors
    return ((x - y) ** 2).sum(1)


def KL(mu, logvar):  # KL(N(mu, e^logvar) || N(0, I)) per sample
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)


def grads(loss, params):
    return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)


def batch(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64)


def assert_close_list(a, b, tol=1e-10):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u is not None and v is not None
        torch.testing.assert_close(u, v, rtol=tol, atol=tol)


def soft_reference_encoder_loss(m, x, z_p, c, detach_rec_target=False, redecode=None):
    """``soft``, encoder step, with separate passes as in seed 002 Algorithm 2 (``redecode``: the
    decoder of the re-decoded terms, the model's own by default)."""
    s = 1.0 / 3
    redecode = redecode or m.decode
    x_f = m.decode(z_p)
    mu, logvar = m.encode(x)
    z = m.reparameterize(mu, logvar)
    x_r = m.decode(z)
    mu_f, lv_f = m.encode(x_f.detach())
    y_f = redecode(m.reparameterize(mu_f, lv_f))
    mu_r, lv_r = m.encode(x_r.detach())
    y_r = redecode(m.reparameterize(mu_r, lv_r))
    target_r = x_r.detach() if detach_rec_target else x_r
    elbo_f = c.beta_rec * REC(x_f.detach(), y_f) + c.beta_neg * KL(mu_f, lv_f)
    elbo_r = c.beta_rec * REC(target_r, y_r) + c.beta_neg * KL(mu_r, lv_r)
    return (
        s * (c.beta_rec * REC(x, x_r).mean() + c.beta_kl * KL(mu, logvar).mean())
        + 0.25 * (torch.exp(-2 * s * elbo_f).mean() + torch.exp(-2 * s * elbo_r).mean())
    ), z


def soft_reference_decoder_loss(m, x, z_p, z, c):
    s = 1.0 / 3
    x_f = m.decode(z_p)
    x_r = m.decode(z.detach())
    mu_f, lv_f = m.encode(x_f)
    mu_r, lv_r = m.encode(x_r)
    z_f, z_r = m.reparameterize(mu_f, lv_f), m.reparameterize(mu_r, lv_r)
    rr = REC(x_r.detach(), m.decode(z_r.detach())).mean()
    rf = REC(x_f.detach(), m.decode(z_f.detach())).mean()
    return s * (
        c.beta_rec * REC(x, x_r).mean()
        + 0.5 * c.beta_kl * (KL(mu_f, lv_f).mean() + KL(mu_r, lv_r).mean())
        + 0.5 * c.gamma_r * c.beta_rec * (rr + rf)
    )


def record_steps(obj):
    """Wrap the optimisers' steps to record, for each, which parameters it changed."""
    log = []
    params = {name: list(p) for name, p in obj.groups.items()}
    for name, opt in obj.optimizers.items():
        orig = opt.step

        def step(*a, _orig=orig, _name=name, **k):
            before = {g: [p.detach().clone() for p in ps] for g, ps in params.items()}
            grads_present = {g: [p.grad is not None for p in ps] for g, ps in params.items()}
            out = _orig(*a, **k)
            changed = {g: any(not torch.equal(b, p) for b, p in zip(before[g], ps)) for g, ps in params.items()}
            log.append((_name, changed, grads_present))
            return out

        opt.step = step
    return log


@pytest.mark.parametrize("gamma_r", [1e-8, 0.7])
def test_soft_losses_and_gradients_match_spec(tiny_model, gamma_r):
    c = SoftConfig(beta_rec=0.7, beta_kl=0.3, beta_neg=0.9, gamma_r=gamma_r)
    model = tiny_model()
    ref = copy.deepcopy(model)
    from tests.conftest import make_deterministic

    make_deterministic(ref)
    x = batch()
    z_p = model.prior.sample(x.shape[0])

    obj = SoftIntroVAE(c, model, train=TrainSettings(lr=1e-3))
    log = record_steps(obj)
    out = obj.train_step(x, 0)

    # encoder: loss value and gradient w.r.t. encoder parameters, on the initial weights
    le, z = soft_reference_encoder_loss(ref, x, z_p, c)
    torch.testing.assert_close(out["loss_e"], le.detach(), rtol=1e-12, atol=1e-12)
    assert_close_list([p.grad for p in model.encoder.parameters()], grads(le, list(ref.encoder.parameters())))
    # decoder: computed with the encoder *after* its update (official order), the initial decoder
    with torch.no_grad():
        for p_ref, p in zip(ref.encoder.parameters(), model.encoder.parameters()):
            p_ref.copy_(p)
    ld = soft_reference_decoder_loss(ref, x, z_p, z.detach(), c)
    torch.testing.assert_close(out["loss_d"], ld.detach(), rtol=1e-12, atol=1e-12)
    assert_close_list([p.grad for p in model.decoder.parameters()], grads(ld, list(ref.decoder.parameters())))

    # routing: the encoder step changes only the encoder, and no gradient reached the decoder then
    assert [name for name, *_ in log] == ["encoder", "decoder"]
    (_, changed_e, grads_e), (_, changed_d, _) = log
    assert changed_e == {"encoder": True, "decoder": False}
    assert not any(grads_e["decoder"])
    assert changed_d == {"encoder": False, "decoder": True}


def test_soft_keeps_the_official_rec_target_detail(tiny_model):
    """The objective's encoder gradient is the official one, whose x_r target is not detached, and
    not the detached variant's: the two differ by far more than the tolerance (same loss value)."""
    c = SoftConfig(beta_rec=0.7, beta_kl=0.3, beta_neg=0.9)
    model = tiny_model()
    ref = copy.deepcopy(model)
    from tests.conftest import make_deterministic

    make_deterministic(ref)
    x = batch()
    z_p = model.prior.sample(x.shape[0])
    SoftIntroVAE(c, model, train=TrainSettings(lr=1e-3)).train_step(x, 0)
    actual = [p.grad for p in model.encoder.parameters()]

    params = list(ref.encoder.parameters())
    official, _ = soft_reference_encoder_loss(ref, x, z_p, c)
    detached, _ = soft_reference_encoder_loss(ref, x, z_p, c, detach_rec_target=True)
    assert torch.allclose(official, detached)  # same value ...
    assert_close_list(actual, grads(official, params))  # ... the objective has the official gradient
    gap = max((a - b).abs().max().item() for a, b in zip(actual, grads(detached, params)))
    assert gap > 1e-6  # ... which is not the detached target's


def test_soft_hand_computed_loss_on_fixed_posterior():
    """L_E by hand for an encoder/decoder pair with known outputs (identity-like maps)."""
    from introzoo.model import VAE
    from introzoo.priors.gaussian import StandardGaussian

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

        def forward(self, x):  # mu = w*x, logvar = 0
            return torch.cat([self.w * x, torch.zeros_like(x)], 1)

    class Dec(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.v = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

        def forward(self, z):
            return self.v * z

    m = VAE(Enc(), Dec(), StandardGaussian(1), (1,), 1)
    m.reparameterize = lambda mu, logvar: mu  # zero noise
    m.prior.sample = lambda n, with_grad=False: torch.full((n, 1), 0.5, dtype=torch.float64)
    x = torch.tensor([[1.0]], dtype=torch.float64)
    c = SoftConfig(beta_rec=1.0, beta_kl=1.0, beta_neg=1.0)
    out = SoftIntroVAE(c, m).train_step(x, 0)
    # s = 1. real: mu = 1, z = 1, x_r = 2, REC = 1, KL = 0.5. fake: x_f = 1 -> mu 1 -> y 2: REC 1, KL .5
    # rec: x_r = 2 -> mu 2 -> y 4: REC 4, KL 2. L_E = (1 + .5) + .25 (e^{-2*1.5} + e^{-2*6})
    expected = 1.5 + 0.25 * (math.exp(-3.0) + math.exp(-12.0))
    assert out["loss_e"].item() == pytest.approx(expected, rel=1e-12)


def intro_reference(m, x, z_p, c, after_encoder=None):
    x_f = m.decode(z_p)
    mu, logvar = m.encode(x)
    z = m.reparameterize(mu, logvar)
    x_r = m.decode(z)

    def hinge(kl):
        return torch.relu(c.m - kl.mean()) if c.hinge == "batch" else torch.relu(c.m - kl).mean()

    kl_f = KL(*m.encode(x_f.detach()))
    kl_r = KL(*m.encode(x_r.detach()))
    le = c.beta_rec * REC(x, x_r).mean() + c.beta_kl * KL(mu, logvar).mean() + c.beta_neg * 0.5 * (hinge(kl_f) + hinge(kl_r))
    if after_encoder is not None:
        with torch.no_grad():
            for p_ref, p in zip(m.encoder.parameters(), after_encoder.parameters()):
                p_ref.copy_(p)
    x_r2 = m.decode(z.detach())
    w = c.beta_neg if c.decoder_kl_weight == "beta_neg" else c.beta_kl
    ld = c.beta_rec * REC(x, x_r2).mean() + w * 0.5 * (KL(*m.encode(x_f)).mean() + KL(*m.encode(x_r2)).mean())
    return le, ld


@pytest.mark.parametrize("hinge", ["batch", "sample"])
@pytest.mark.parametrize("dkw", ["beta_neg", "beta_kl"])
def test_intro_losses_and_gradients_match_spec(tiny_model, hinge, dkw):
    model = tiny_model()
    initial = copy.deepcopy(model)
    x = batch()
    z_p = model.prior.sample(16)
    with torch.no_grad():  # a margin with some per-sample KLs below it and some above
        kls = KL(*model.encode(model.decode(z_p)))
    c = IntroConfig(m=float(kls.median()), beta_rec=0.6, beta_kl=0.4, beta_neg=0.8, hinge=hinge, decoder_kl_weight=dkw)
    obj = IntroVAE(c, model)
    log = record_steps(obj)
    out = obj.train_step(x, 0)

    ref_e = copy.deepcopy(initial)  # encoder step: initial weights
    le, _ = intro_reference(ref_e, x, z_p, c)
    torch.testing.assert_close(out["loss_e"], le.detach(), rtol=1e-12, atol=1e-12)
    assert_close_list([p.grad for p in model.encoder.parameters()], grads(le, list(ref_e.encoder.parameters())))

    ref_d = copy.deepcopy(initial)  # decoder step: initial decoder, updated encoder
    _, ld = intro_reference(ref_d, x, z_p, c, after_encoder=model.encoder)
    torch.testing.assert_close(out["loss_d"], ld.detach(), rtol=1e-12, atol=1e-12)
    assert_close_list([p.grad for p in model.decoder.parameters()], grads(ld, list(ref_d.decoder.parameters())))

    assert [name for name, *_ in log] == ["encoder", "decoder"]
    assert log[0][1] == {"encoder": True, "decoder": False}
    assert not any(log[0][2]["decoder"])
    assert log[1][1] == {"encoder": False, "decoder": True}


def test_intro_hinge_forms_differ():
    """Batch hinge [m - mean KL]_+ vs per-sample mean [m - KL]_+ on hand values."""
    kl = torch.tensor([0.5, 3.0])
    obj = IntroVAE.__new__(IntroVAE)
    obj.config = IntroConfig(m=2.0, hinge="batch")
    assert obj._hinge(kl).item() == pytest.approx(0.25)  # 2 - 1.75
    obj.config = IntroConfig(m=2.0, hinge="sample")
    assert obj._hinge(kl).item() == pytest.approx(0.75)  # (1.5 + 0) / 2


def test_vae_step_matches_spec(tiny_model):
    model = tiny_model()
    ref = copy.deepcopy(model)
    x = batch()
    c = VAEConfig(beta_rec=0.8, beta_kl=0.05)
    out = VAEObjective(c, model).train_step(x, 0)
    mu, logvar = ref.encode(x)
    loss = c.beta_rec * REC(x, ref.decode(ref.reparameterize(mu, logvar))).mean() + c.beta_kl * KL(mu, logvar).mean()
    torch.testing.assert_close(out["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
    params = list(ref.encoder.parameters()) + list(ref.decoder.parameters())
    assert_close_list(
        [p.grad for p in list(model.encoder.parameters()) + list(model.decoder.parameters())], grads(loss, params)
    )


@pytest.mark.parametrize("cls,cfg", [(SoftIntroVAE, SoftConfig(num_vae=2)), (IntroVAE, IntroConfig(m=1.0, num_vae=2))])
def test_warmup_is_a_vae_step(tiny_model, cls, cfg):
    model = tiny_model()
    ref = copy.deepcopy(model)
    x = batch()
    obj = cls(cfg, model)
    out = obj.train_step(x, 0)
    vae_out = VAEObjective(VAEConfig(beta_rec=cfg.beta_rec, beta_kl=cfg.beta_kl), ref).train_step(x, 0)
    assert set(out) == {"loss", "rec", "kl"}
    torch.testing.assert_close(out["loss"], vae_out["loss"])
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)
    assert obj.train_step(x, 1).keys() == vae_out.keys()
    assert "loss_e" in obj.train_step(x, 2)  # adversarial from num_vae on


def test_lr_schedule_follows_milestones(tiny_model):
    obj = SoftIntroVAE(SoftConfig(num_vae=10), tiny_model(), train=TrainSettings(lr=2e-4, lr_milestones=[3, 5]))
    lrs = []
    for it in range(6):
        lrs.append(obj.optimizers["decoder"].param_groups[0]["lr"])
        obj.train_step(batch(), it)
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 2e-5, 2e-5, 2e-6])


@pytest.mark.parametrize("num_vae", [0, 2])
def test_schedules_step_only_the_optimisers_that_stepped(num_vae):
    """soft with a learnable prior trains the prior in the warm-up only: its schedule must not be stepped
    while its optimiser is idle (torch's "lr_scheduler.step() before optimizer.step()" warning), and the
    encoder's and decoder's schedules follow the milestones as before."""
    import warnings

    from introzoo.priors.mog import MoGConfig, build as mog
    from introzoo.testing import tiny_model as small_vae

    torch.manual_seed(0)
    model = small_vae(mog(MoGConfig(K=3), zdim=2), data_shape=(3,))
    obj = SoftIntroVAE(SoftConfig(num_vae=num_vae), model, train=TrainSettings(lr=1e-3, lr_milestones=[3]))
    assert "prior" in obj.optimizers
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for it in range(5):
            obj.train_step(batch().float(), it)
    assert obj.optimizers["encoder"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert obj.optimizers["decoder"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert obj.schedulers["prior"].last_epoch == num_vae  # one per iteration in which it trained
    assert obj.optimizers["prior"].param_groups[0]["lr"] == pytest.approx(1e-3)
