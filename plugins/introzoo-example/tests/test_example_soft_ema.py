"""soft-ema: the moving average of the target decoder by hand, no gradient to the target, the losses of
introzoo's soft-boot given the same target, and a dataset's soft defaults."""

import torch

from introzoo import plugins
from introzoo.config import RunConfig, resolve
from introzoo.objectives.base import TrainSettings
from introzoo.objectives.soft_boot import SoftBootConfig, SoftIntroVAEBootstrap
from introzoo.priors.gaussian import StandardGaussian
from introzoo.testing import tiny_model
from introzoo_example.soft_ema import SoftEMA, SoftEMAConfig


def test_target_is_the_moving_average_of_the_decoder_and_gets_no_gradient():
    tau = 0.7
    model = tiny_model(StandardGaussian(2), seed=0)
    obj = SoftEMA(SoftEMAConfig(tau=tau, num_vae=1, gamma_r=1.0), model, train=TrainSettings(lr=1e-2))
    target = [p.clone() for p in model.decoder.parameters()]  # starts as a copy
    g = torch.Generator().manual_seed(0)
    for it in range(4):
        obj.train_step(torch.randn(32, 2, generator=g), it)
        target = [tau * t + (1 - tau) * p.detach() for t, p in zip(target, model.decoder.parameters())]
        for got, want in zip(obj.target.parameters(), target):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
            assert got.grad is None and not got.requires_grad


def test_losses_are_soft_boots_with_the_same_target():
    def first_step(cls, cfg):
        model = tiny_model(StandardGaussian(2), seed=1)
        obj = cls(cfg, model, train=TrainSettings())
        torch.manual_seed(3)
        return obj.train_step(torch.randn(16, 2, generator=torch.Generator().manual_seed(2)), 0)

    a = first_step(SoftEMA, SoftEMAConfig(gamma_r=0.5))  # both targets start as the decoder
    b = first_step(SoftIntroVAEBootstrap, SoftBootConfig(gamma_r=0.5))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_takes_the_datasets_soft_defaults():
    reg = plugins.registry()
    ema = resolve(RunConfig(objective="soft-ema", data="rings"), reg).objective.config
    soft = resolve(RunConfig(objective="soft", data="rings"), reg).objective.config
    assert (ema.beta_rec, ema.beta_kl, ema.beta_neg, ema.num_vae) == (
        soft.beta_rec,
        soft.beta_kl,
        soft.beta_neg,
        soft.num_vae,
    )
    assert (ema.beta_rec, ema.num_vae) != (SoftEMAConfig().beta_rec, SoftEMAConfig().num_vae)
