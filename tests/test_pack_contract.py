"""The contract check "packed == one by one" (introzoo.testing.check_packs) for plugin components."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict

from introzoo import hookimpl, plugins
from introzoo.losses import kl_standard_normal
from introzoo.priors.base import Prior
from introzoo.regularizers import Regularizer
from introzoo.testing import check_component, check_packs


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def packable_plugin(kind: str, name: str, factory):
    """A plugin registering one component whose factory declares ``packable = True``."""

    def build(*args, **kwargs):
        return factory(*args, **kwargs)

    build.packable = True

    def hook(register):
        register(name, build, NoOptions, "A component for the pack check.")

    P = type(f"pack-{name}", (), {f"introzoo_register_{kind}": staticmethod(hookimpl(hook))})
    return P()


class Shifted(Prior):
    """N(1, I) drawn with torch's generator: packs."""

    closed_form_kl = True

    def sample(self, n, with_grad=False):
        return torch.randn(n, self.zdim) + 1.0

    def log_prob(self, z, stop_gradient=False):
        return -0.5 * ((z - 1.0) ** 2 + np.log(2 * np.pi)).sum(-1)

    def kl(self, mu, logvar, stop_gradient=False):
        return kl_standard_normal(mu - 1.0, logvar)


class NumpyNoise(Shifted):
    """Draws its samples from numpy's global generator: not each member's stream in a pack."""

    def sample(self, n, with_grad=False):
        return torch.as_tensor(np.random.standard_normal((n, self.zdim)), dtype=torch.get_default_dtype()) + 1.0


class CyclePenalty(Regularizer):
    """A small penalty on the means of the re-encoded reconstructions (decoder frozen), computed with the
    model it is handed: packs."""

    def encoder_loss(self, model, mu, logvar, z):
        return 1e-2 * model.encode(model.decode(z).detach())[0].pow(2).sum(-1).mean()


class StaleModel(CyclePenalty):
    """The same penalty computed with the model kept from ``bind``: in a pack that is the member's solo
    model, whose weights the pack does not train."""

    def bind(self, model):
        self.model = model

    def encoder_loss(self, model, mu, logvar, z):
        return super().encoder_loss(self.model, mu, logvar, z)


def test_a_correct_packable_prior_and_regularizer_pass(register_plugin):
    register_plugin(packable_plugin("priors", "shifted", lambda c, zdim: Shifted(zdim)))
    register_plugin(packable_plugin("regularizers", "penalty", lambda c: CyclePenalty()))
    check_packs("priors", "shifted")
    check_packs("regularizers", "penalty")


@pytest.mark.parametrize(
    "kind,name,factory,match",
    [
        ("priors", "numpy-noise", lambda c, zdim: NumpyNoise(zdim), r"member 0, iteration 1: 'loss_e'"),
        ("regularizers", "stale", lambda c: StaleModel(), r"member 0, iteration 2: 'loss_e'"),
    ],
)
def test_the_pack_check_catches_a_broken_packable_component(register_plugin, kind, name, factory, match):
    register_plugin(packable_plugin(kind, name, factory))
    with pytest.raises(AssertionError, match="declares packable = True but a pack differs from the runs alone.*" + match):
        check_packs(kind, name)


def test_check_component_runs_the_pack_check_for_packable_components(register_plugin):
    """StaleModel passes every other regularizer check; only the pack check sees the stale model."""
    register_plugin(packable_plugin("regularizers", "stale", lambda c: StaleModel()))
    with pytest.raises(AssertionError, match="packable = True but a pack differs"):
        check_component("regularizers", "stale")


def test_list_marks_every_component_that_packs():
    reg = plugins.registry()
    packs = {
        (k, c.name)
        for k in ("objectives", "priors", "regularizers", "backbones")
        for c in reg.all(k)
        if c.describe()["packable"]
    }
    assert packs == (
        {("objectives", n) for n in ("vae", "intro", "soft", "soft-prior")}
        | {("priors", n) for n in ("sg", "mog", "vamp", "flow")}
        | {("regularizers", n) for n in ("clip-logvar", "resp-entropy")}
        | {("backbones", n) for n in ("mlp", "conv", "resnet")}
    )
