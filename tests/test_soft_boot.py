"""``soft-boot`` (the official bootstrap variant) against an independent computation, its target decoder's
copy schedule and gradients, and a plugin objective written from the documented parts of ``soft``."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from pydantic import Field

from introzoo import hookimpl, plugins
from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.objectives.base import TrainSettings
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.objectives.soft_boot import SoftBootConfig, SoftIntroVAEBootstrap
from introzoo.testing import check_component, tiny_model as small_vae
from introzoo.priors.gaussian import StandardGaussian
from tests.conftest import make_deterministic
from tests.test_objectives import KL, REC, assert_close_list, batch, grads, soft_reference_encoder_loss


def lagging(model, seed=5):
    """The objective with a target decoder that differs from the decoder (as between two copies)."""
    c = SoftBootConfig(beta_rec=0.7, beta_kl=0.3, beta_neg=0.9, gamma_r=0.6, copy_every=50)
    obj = SoftIntroVAEBootstrap(c, model, train=TrainSettings(lr=1e-3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in obj.target_decoder.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return c, obj


def reference_losses(m, target, x, z_p, c):
    """The official bootstrap loop (train_soft_intro_vae_bootstrap.py), one pass per term: the encoder
    loss on the initial weights (soft's, re-decoded by the target), and a function giving the decoder
    loss for a given encoder."""
    s = 1.0 / 3
    loss_e, z = soft_reference_encoder_loss(m, x, z_p, c, redecode=target)

    def loss_d():
        x_f2 = m.decode(z_p)
        x_r2 = m.decode(z.detach())
        mu_f2, lv_f2 = m.encode(x_f2)
        mu_r2, lv_r2 = m.encode(x_r2)
        z_f, z_r = m.reparameterize(mu_f2, lv_f2), m.reparameterize(mu_r2, lv_r2)
        rr = REC(x_r2, target(z_r)).mean()  # nothing detached: the official decoder step
        rf = REC(x_f2, target(z_f)).mean()
        return s * (
            c.beta_rec * REC(x, x_r2).mean()
            + 0.5 * c.beta_kl * (KL(mu_f2, lv_f2).mean() + KL(mu_r2, lv_r2).mean())
            + 0.5 * c.gamma_r * c.beta_rec * (rr + rf)
        )

    return loss_e, loss_d


def test_one_step_against_the_official_loop(tiny_model):
    model = tiny_model()
    c, obj = lagging(model)
    ref = copy.deepcopy(model)
    make_deterministic(ref)
    target = copy.deepcopy(obj.target_decoder)
    x = batch()
    z_p = model.prior.sample(x.shape[0])

    out = obj.train_step(x, 0)

    le, ld = reference_losses(ref, target, x, z_p, c)
    torch.testing.assert_close(out["loss_e"], le.detach(), rtol=1e-12, atol=1e-12)
    assert_close_list([p.grad for p in model.encoder.parameters()], grads(le, list(ref.encoder.parameters())))
    with torch.no_grad():  # the decoder step sees the updated encoder and the initial decoder
        for p_ref, p in zip(ref.encoder.parameters(), model.encoder.parameters()):
            p_ref.copy_(p)
    ld = ld()
    torch.testing.assert_close(out["loss_d"], ld.detach(), rtol=1e-12, atol=1e-12)
    assert_close_list([p.grad for p in model.decoder.parameters()], grads(ld, list(ref.decoder.parameters())))
    # the re-decoded terms come from the target: with the decoder in its place the losses differ
    le_own, _ = reference_losses(ref, ref.decoder, x, z_p, c)
    assert abs(float(le_own.detach()) - float(out["loss_e"])) > 1e-6


def test_hand_computed_losses_with_linear_maps():
    """L_E and L_D by hand: 1D data, encoder x -> (w x, log v), decoder z -> a z, target z -> t z, fixed
    noise eps = 1 and prior draw z_p, so every term has a closed form."""
    from introzoo.model import VAE

    class Lin(torch.nn.Module):
        def __init__(self, w, out2=False):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
            self.out2 = out2

        def forward(self, v):
            return torch.cat([self.w * v, torch.full_like(v, -1.0)], 1) if self.out2 else self.w * v

    w, a, t, zp, x0, eps = 0.8, 1.5, 0.5, 0.4, 1.2, 1.0
    model = VAE(Lin(w, out2=True), Lin(a), StandardGaussian(1), (1,), 1).double()
    model.reparameterize = lambda mu, logvar: mu + eps * torch.exp(0.5 * logvar)
    model.prior.sample = lambda n, with_grad=False: torch.full((n, 1), zp, dtype=torch.float64)
    c = SoftBootConfig(beta_rec=1.0, beta_kl=0.5, beta_neg=2.0, gamma_r=0.25, copy_every=10)
    obj = SoftIntroVAEBootstrap(c, model, train=TrainSettings(lr=1e-3))
    with torch.no_grad():
        obj.target_decoder.w.fill_(t)
    out = obj.train_step(torch.tensor([[x0]], dtype=torch.float64), 0)

    import math

    sd = math.exp(-0.5)  # logvar = -1
    kl = lambda m: 0.5 * (m * m + math.exp(-1) - 1 + 1)  # KL(N(m, e^-1) || N(0, 1)), per sample
    z = w * x0 + sd
    xr, xf = a * z, a * zp
    zr, zf = w * xr + sd, w * xf + sd
    elbo_r = (xr - t * zr) ** 2 + c.beta_neg * kl(w * xr)
    elbo_f = (xf - t * zf) ** 2 + c.beta_neg * kl(w * xf)
    s = 1.0
    loss_e = s * ((x0 - xr) ** 2 + c.beta_kl * kl(w * x0)) + 0.25 * (math.exp(-2 * elbo_f) + math.exp(-2 * elbo_r))
    assert float(out["loss_e"]) == pytest.approx(loss_e, rel=1e-12)

    w2 = float(model.encoder.w.detach())  # the decoder step uses the updated encoder
    zr2, zf2 = w2 * xr + sd, w2 * xf + sd
    loss_d = s * (
        (x0 - xr) ** 2
        + 0.5 * c.beta_kl * (kl(w2 * xf) + kl(w2 * xr))
        + 0.5 * c.gamma_r * ((xr - t * zr2) ** 2 + (xf - t * zf2) ** 2)
    )
    assert float(out["loss_d"]) == pytest.approx(loss_d, rel=1e-12)


def test_target_decoder_gets_no_gradient_and_is_copied_exactly_every_n_iterations():
    model = small_vae(StandardGaussian(2), seed=0)
    obj = SoftIntroVAEBootstrap(SoftBootConfig(copy_every=3, num_vae=2, gamma_r=1.0), model, train=TrainSettings(lr=1e-2))
    assert all(torch.equal(a, b) for a, b in zip(obj.target_decoder.parameters(), model.decoder.parameters()))
    g = torch.Generator().manual_seed(0)
    copied = []
    for it in range(10):
        before = [p.clone() for p in obj.target_decoder.parameters()]
        obj.train_step(torch.randn(32, 2, generator=g), it)
        after = list(obj.target_decoder.parameters())
        assert all(p.grad is None and not p.requires_grad for p in after)
        same_as_decoder = all(torch.equal(a, b) for a, b in zip(after, model.decoder.parameters()))
        changed = any(not torch.equal(a, b) for a, b in zip(before, after))
        assert same_as_decoder == changed  # a copy, or left alone (the decoder trains every iteration)
        copied.append(changed)
    assert [i for i, c in enumerate(copied) if c] == [2, 5, 8]
    state = obj.state_dict()["target_decoder"]
    assert all(torch.equal(state[k], v) for k, v in obj.target_decoder.state_dict().items())


def _copies(config: SoftBootConfig, epoch_length: int | None, iterations: int) -> list[int]:
    """The 0-based iterations after which the target decoder took the decoder's weights."""
    model = small_vae(StandardGaussian(2), seed=0)
    obj = SoftIntroVAEBootstrap(config, model, train=TrainSettings(lr=1e-2))
    obj.epoch_length = epoch_length
    g = torch.Generator().manual_seed(0)
    out = []
    for it in range(iterations):
        obj.train_step(torch.randn(16, 2, generator=g), it)
        if all(torch.equal(a, b) for a, b in zip(obj.target_decoder.parameters(), model.decoder.parameters())):
            out.append(it)
    return out


def test_official_copy_schedule_after_epochs_counted_from_zero():
    """The official loop: ``if epoch % freq == 0`` after each epoch (from 0): with 4 iterations an epoch,
    freq 1 copies after iterations 3, 7, 11, ...; freq 3 after epochs 0, 3 (iterations 3 and 15)."""
    assert _copies(SoftBootConfig(num_vae=0), 4, 18) == [3, 7, 11, 15]
    assert _copies(SoftBootConfig(num_vae=0, copy_every_epochs=3), 4, 18) == [3, 15]
    assert _copies(SoftBootConfig(num_vae=0, copy_every=5), 4, 12) == [4, 9]  # the iteration form wins
    assert SoftBootConfig().copy_every is None and SoftIntroVAEBootstrap.DEFAULT_COPY_EVERY == 1000


def test_a_run_on_a_dataset_with_epochs_copies_once_an_epoch():
    from introzoo.training.loop import build

    run = resolve(RunConfig(objective="soft-boot", data="digits", batch_size=64, metrics=[]), plugins.registry())
    built = build(run)
    assert built.objective.epoch_length == math.ceil(built.dataset.n_train / 64)
    run2d = resolve(RunConfig(objective="soft-boot", data="8gaussians", metrics=[]), plugins.registry())
    assert build(run2d).objective.epoch_length is None  # a generator: copies every 1000 iterations


def test_official_warmup_reconstructs_through_the_target_decoder():
    """``warmup_target=true``: beta_rec*REC(x, D_t(z)) + beta_kl*KL(x); the decoder does not move."""
    model = small_vae(StandardGaussian(2), seed=0)
    c = SoftBootConfig(num_vae=3, warmup_target=True, beta_rec=0.7, beta_kl=0.4, copy_every=100)
    obj = SoftIntroVAEBootstrap(c, model, train=TrainSettings(lr=1e-2))
    with torch.no_grad():  # a target decoder that differs from the decoder
        for p in obj.target_decoder.parameters():
            p.mul_(0.5)
    dec0 = [p.clone() for p in model.decoder.parameters()]
    enc0 = [p.clone() for p in model.encoder.parameters()]
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        rec = (x - obj.target_decoder(z)).pow(2).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    torch.manual_seed(3)
    out = obj.train_step(x, 0)
    assert float(out["loss"]) == pytest.approx(float(0.7 * rec + 0.4 * kl), rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(dec0, model.decoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(enc0, model.encoder.parameters()))
    plain = SoftIntroVAEBootstrap(
        SoftBootConfig(num_vae=3, copy_every=100), small_vae(StandardGaussian(2), seed=0), train=TrainSettings(lr=1e-2)
    )
    plain.train_step(x, 0)  # the default warm-up trains the decoder
    assert any(not torch.equal(a, b) for a, b in zip(dec0, plain.model.decoder.parameters()))


# -- a plugin objective from the documented parts ----------------------------------------------------


class PluginBoot(SoftIntroVAE):
    """The bootstrap variant as a plugin writes it: only SoftIntroVAE's documented parts."""

    defaults_from = "soft"
    detach_redecoded = False

    def __init__(self, config, model, regularizers=None, train=None):
        super().__init__(config, model, regularizers, train)
        self.target = copy.deepcopy(model.decoder).requires_grad_(False)

    def redecode(self, z):
        return self.target(z)

    def step(self, x, iteration):
        losses = super().step(x, iteration)
        if (iteration + 1) % self.config.copy_every == 0:
            self.target.load_state_dict(self.model.decoder.state_dict())
        return losses

    def state_dict(self):
        return {**super().state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.target.load_state_dict(state["target"])


class PluginBootConfig(SoftConfig):
    copy_every: int = 1000  # no description: the contract checks must refuse it


class Described(SoftConfig):
    copy_every: int = Field(1000, gt=0, description="iterations between copies")


class BootPlugin:
    def __init__(self, config=Described):
        self.config = config

    @hookimpl
    def introzoo_register_objectives(self, register):
        register("my-boot", PluginBoot, self.config, "Soft-IntroVAE with a lagging target decoder.")


def test_plugin_objective_from_documented_parts_passes_the_contract_and_equals_soft_boot(register_plugin):
    register_plugin(BootPlugin(), name="boot")
    check_component("objectives", "my-boot")

    def run(cls, cfg):
        model = small_vae(StandardGaussian(2), seed=1)
        obj = cls(cfg, model, train=TrainSettings())
        g = torch.Generator().manual_seed(2)
        torch.manual_seed(3)
        return [obj.train_step(torch.randn(16, 2, generator=g), it) for it in range(6)]

    kw = dict(copy_every=2, num_vae=1, gamma_r=0.5)
    for a, b in zip(run(PluginBoot, Described(**kw)), run(SoftIntroVAEBootstrap, SoftBootConfig(**kw))):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_contract_checks_catch_a_plugin_objective_without_option_descriptions(register_plugin):
    register_plugin(BootPlugin(PluginBootConfig), name="boot")
    with pytest.raises(AssertionError, match="copy_every"):
        check_component("objectives", "my-boot")


def test_soft_boot_is_listed_and_runs(tmp_path, capsys):
    assert main(["list", "objectives", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    entry = next(d for d in listed["objectives"] if d["name"] == "soft-boot")
    assert "copy_every" in {o["name"] for o in entry["options"]}
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "-o",
                "soft-boot,num_vae=10,copy_every=7",
                "-d",
                "8gaussians",
                "-n",
                "30",
                "--metric",
                "kl,n_samples=300",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    result = json.loads((out / "metrics.json").read_text())
    assert result["status"] == "finished" and "kl" in result["metrics"]
    config = json.loads((out / "config.json").read_text())
    assert config["objective"]["name"] == "soft-boot"
    assert config["objective"]["options"]["beta_neg"] == 0.9  # 8gaussians' soft defaults (defaults_from)
