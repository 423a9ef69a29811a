"""The contract checks of introzoo.testing catch what they promise to: each is run on a component with
one deliberate defect (and the fixture restores the registry after a test)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from introzoo import hookimpl, plugins
from introzoo.backbones.mlp import MLPConfig, build as build_mlp
from introzoo.data.toy2d import Toy2D
from introzoo.errors import RegistryError, UsageError
from introzoo.plugins import PluginClashWarning
from introzoo.metrics.base import Metric
from introzoo.objectives.vae import VAEObjective
from introzoo.priors.base import Prior
from introzoo.priors.gaussian import StandardGaussian
from introzoo.regularizers import Regularizer
from introzoo.testing import check_component, components_of
from introzoo.testing.checks_model import check_objective


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


def plugin(kind: str, name: str, factory, config=Empty, doc: str = "A deliberately defective component."):
    """A plugin object registering one component."""

    class P:
        pass

    P.__name__ = f"{kind}-{name}"  # the plugin's name in the registry

    def hook(register):
        register(name, factory, config, doc)

    setattr(P, f"introzoo_register_{kind}", staticmethod(hookimpl(hook)))
    return P()


def fails(kind: str, name: str, match: str, **kwargs) -> None:
    with pytest.raises(AssertionError, match=match):
        check_component(kind, name, **kwargs)


# -- registration --------------------------------------------------------------------------------------


class Open(BaseModel):
    x: int = Field(1, description="an option")


class Undocumented(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 1


class BadPrimary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary: ClassVar[str] = "K"
    x: int = Field(1, description="an option")


@pytest.mark.parametrize(
    "config,name,doc,match",
    [
        (Open, "p", "doc", "must refuse unknown options"),
        (Undocumented, "p", "doc", "options without a description .*: x"),
        (BadPrimary, "p", "doc", "primary = 'K' is not one of its options"),
        (Empty, "p", "", "without a doc line"),
        (Empty, "p,q", "doc", "must not contain"),
    ],
)
def test_registration_check(register_plugin, config, name, doc, match):
    register_plugin(plugin("priors", name, lambda c, zdim: StandardGaussian(zdim), config, doc))
    fails("priors", name, match)


# -- priors --------------------------------------------------------------------------------------------


class Unnormalised(StandardGaussian):
    def log_prob(self, z, stop_gradient=False):
        return super().log_prob(z) + 0.1


class WrongScale(StandardGaussian):
    def sample(self, n, with_grad=False):
        return 1.15 * super().sample(n)


class HalfKL(StandardGaussian):
    def kl(self, mu, logvar, stop_gradient=False):
        return 0.5 * super().kl(mu, logvar)


class Shifted(Prior):
    """N(m, I) with a learnable mean; defects switched on by flags."""

    learnable = True
    closed_form_kl = True

    def __init__(self, zdim, leak_sg=False, no_grad_samples=False, unregistered=False):
        super().__init__(zdim)
        self.leak_sg, self.no_grad_samples = leak_sg, no_grad_samples
        m = torch.randn(zdim) * 0.3
        if unregistered:  # a tensor attribute, not a parameter: lost in the state_dict
            self.learnable = False
            self.m = m
        else:
            self.m = nn.Parameter(m)

    def sample(self, n, with_grad=False):
        z = self.m + torch.randn(n, self.zdim, dtype=self.m.dtype)
        return z.detach() if (not with_grad or self.no_grad_samples) else z

    def log_prob(self, z, stop_gradient=False):
        m = self.m.detach() if stop_gradient and not self.leak_sg else self.m
        return -0.5 * ((z - m) ** 2 + math.log(2 * math.pi)).sum(-1)

    def kl(self, mu, logvar, stop_gradient=False):
        m = self.m.detach() if stop_gradient and not self.leak_sg else self.m
        return 0.5 * ((mu - m) ** 2 + logvar.exp() - 1 - logvar).sum(-1)


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda c, zdim: Unnormalised(zdim), "log_prob is not the density of sample: total variation"),
        (lambda c, zdim: WrongScale(zdim), "log_prob is not the density of sample"),
        (lambda c, zdim: HalfKL(zdim), r"kl\(mu, logvar\) = .* but the Monte Carlo estimate"),
        (lambda c, zdim: Shifted(zdim, leak_sg=True), "stop_gradient=True\\) must not reach the prior's parameters"),
        (
            lambda c, zdim: Shifted(zdim, no_grad_samples=True),
            r"sample\(n, with_grad=True\) of a learnable prior must carry",
        ),
        (
            lambda c, zdim: Shifted(zdim, unregistered=True),
            "after loading the model's state_dict into a fresh build, log_prob differs",
        ),
        (lambda c, zdim: Shifted(zdim + 1), r"sample\(7\) with zdim 3 has shape \(7, 4\)"),
    ],
)
def test_prior_checks_catch(register_plugin, factory, match):
    register_plugin(plugin("priors", "bad", factory))
    fails("priors", "bad", match)


def test_a_correct_plugin_prior_passes(register_plugin):
    register_plugin(plugin("priors", "shifted", lambda c, zdim: Shifted(zdim)))
    check_component("priors", "shifted")


# -- objectives ----------------------------------------------------------------------------------------


class TouchesFixedPrior(VAEObjective):
    def step(self, x, iteration):
        losses = super().step(x, iteration)
        with torch.no_grad():
            self.model.prior.mu += 0.01  # a fixed mog's means: no optimiser owns them
        return losses


class ForgetsOptimiserState(VAEObjective):
    def state_dict(self):
        return {"warm": self._warm}

    def load_state_dict(self, state):
        self._warm = state["warm"]


class AttachedLosses(VAEObjective):
    def step(self, x, iteration):
        mu, logvar = self.model.encode(x)
        loss = self.model.kl(mu, logvar).mean() + ((self.model.decode(mu) - x) ** 2).sum(1).mean()
        for opt in self.optimizers.values():
            opt.zero_grad()
        loss.backward(retain_graph=True)
        for opt in self.optimizers.values():
            opt.step()
        return {"loss": loss}


class EncoderOnly(VAEObjective):
    def _build_optimizers(self):
        super()._build_optimizers()
        self.optimizers.pop("decoder")
        self.schedulers.pop("decoder")


class VAEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    beta_rec: float = Field(1.0, description="reconstruction weight")
    beta_kl: float = Field(1.0, description="KL weight")


def _fixed_mog(zdim):
    from introzoo.priors.mog import MixturePrior

    return MixturePrior(zdim, 3, learn_means=False, learn_logvars=False)


class BacksPropagatesItself(VAEObjective):
    """Steps through self.step_optimizers but calls loss.backward() itself: in fp32 the same step, under
    --precision fp16 unscaled gradients (a crash in GradScaler at the first step)."""

    def step(self, x, iteration):
        mu, logvar = self.model.encode(x)
        loss = (
            self.model.kl(mu, logvar).mean()
            + ((self.model.decode(self.model.reparameterize(mu, logvar)) - x) ** 2).sum(1).mean()
        )
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        self.step_optimizers(*self.optimizers)
        return {"loss": loss.detach()}


class StepsItself(BacksPropagatesItself):
    """loss.backward() and optimizer.step(), as a plain PyTorch loop writes them: in fp32 the same steps
    with or without a loss scale, since neither side of it is used; fp16 then fails at once."""

    def step_optimizers(self, *names):
        for name in names:
            self.optimizers[name].step()


class ScalesButStepsItself(VAEObjective):
    """self.backward, then optimizer.step() itself: the gradients stay scaled."""

    def step_optimizers(self, *names):
        for name in names:
            self.optimizers[name].step()


@pytest.mark.parametrize(
    "cls,prior,match",
    [
        (TouchesFixedPrior, "fixed-mog", "changed what it has no optimiser for: param prior.mu"),
        (ForgetsOptimiserState, None, "does not continue identically"),
        (AttachedLosses, None, "still carries a graph"),
        (EncoderOnly, None, "did not change the decoder"),
        (BacksPropagatesItself, None, r"scaled by 2\*\*12 .* change the parameters differently .*never loss.backward\(\)"),
        (ScalesButStepsItself, None, r"scaled by 2\*\*12 .* change the parameters differently .*self.step_optimizers"),
        (
            StepsItself,
            None,
            (
                r"under --precision fp16 .* train_step raised AssertionError: .*never loss.backward\(\) or "
                r"optimizer.step\(\) directly"
            ),
        ),
    ],
)
def test_objective_checks_catch(register_plugin, cls, prior, match):
    register_plugin(
        plugin(
            "objectives",
            "bad",
            lambda c, model, regularizers=None, train=None: cls(c, model, regularizers, train),
            VAEOptions,
        )
    )
    register_plugin(plugin("priors", "fixed-mog", lambda c, zdim: _fixed_mog(zdim)))
    fails("objectives", "bad", match, prior=prior)


@pytest.mark.parametrize("cls", [BacksPropagatesItself, StepsItself])
def test_objective_that_bypasses_the_loss_scale_fails_under_fp16(register_plugin, cls):
    """Both pass every step check where no loss is scaled (bf16); under --precision fp16 they fail with
    the reason, not with GradScaler's internal error alone."""
    register_plugin(
        plugin(
            "objectives",
            "bad",
            lambda c, model, regularizers=None, train=None: cls(c, model, regularizers, train),
            VAEOptions,
        )
    )
    check_objective("bad", precisions=("bf16",))  # the steps themselves, without the routing check ...
    with pytest.raises(
        AssertionError,
        match=r"under --precision fp16 with prior 'sg', train_step at iteration 0: "
        r"train_step raised AssertionError: Attempted .*self.backward\(loss",
    ):
        check_objective("bad", precisions=("fp16",))  # ... crash under fp16


# -- regularizers --------------------------------------------------------------------------------------


class TypeErrorCheck(Regularizer):
    def check(self, prior):
        raise TypeError("no")


class ReachesDecoder(Regularizer):
    def encoder_loss(self, model, mu, logvar, z):
        return model.decode(z).square().mean()


class Unused(Regularizer):
    """An encoder term whose value depends on the encoder, but that the objective never sees."""

    def encoder_loss(self, model, mu, logvar, z):
        return mu.square().mean()


class UnusedObjective(VAEObjective):
    def step(self, x, iteration):
        return self.vae_step(x, 1.0, 1.0, regularize=False)


class NotJSON(Regularizer):
    def report(self, model):
        return {"tensor": torch.zeros(2)}


@pytest.mark.parametrize(
    "cls,match",
    [
        (TypeErrorCheck, "must raise introzoo.errors.UsageError"),
        (ReachesDecoder, "reaches the decoder"),
        (NotJSON, "not JSON-serialisable"),
    ],
)
def test_regularizer_checks_catch(register_plugin, cls, match):
    register_plugin(plugin("regularizers", "bad", lambda c: cls()))
    fails("regularizers", "bad", match)


class CountsInAnInt(Regularizer):
    """An encoder term whose weight grows with the iterations seen, counted in a plain int: the default
    state_dict (its tensor attributes) leaves the count out, so a resumed run starts again from 0."""

    def __init__(self):
        self.seen = 0

    def encoder_loss(self, model, mu, logvar, z):
        return 0.1 * (1 + min(self.seen, 10)) * mu.square().mean()

    def after_step(self, model, x, iteration):
        self.seen += 1


class CountsInState(CountsInAnInt):
    """The same, with the count in its state_dict."""

    def state_dict(self):
        return {"seen": self.seen}


class EmptyState(Regularizer):
    """A moving average of the batch's mean |mu|^2 (a tensor) as the encoder's target, with a state_dict
    that returns {}."""

    def __init__(self):
        self.target = torch.zeros(())

    def encoder_loss(self, model, mu, logvar, z):
        return (mu.square().sum(1).mean() - self.target).square()

    def after_step(self, model, x, iteration):
        with torch.no_grad():
            self.target = 0.5 * self.target + 0.5 * model.encode(x)[0].square().sum(1).mean() + 0.1
        return {"target": self.target.clone()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.mark.parametrize(
    "cls,match",
    [
        (
            CountsInAnInt,
            (
                r"its state is lost in a checkpoint: after 4 iterations.*encoder_loss gives .* \(differing: "
                r"attribute seen: 4 vs 0\)"
            ),
        ),
        (
            EmptyState,
            (
                r"its state is lost in a checkpoint: after 4 iterations.*encoder_loss gives .* \(differing: "
                r"attribute target: "
            ),
        ),
    ],
)
def test_regularizer_state_must_survive_a_checkpoint(register_plugin, cls, match):
    register_plugin(plugin("regularizers", "bad", lambda c: cls()))
    fails("regularizers", "bad", match)


@pytest.mark.parametrize(
    "cls,problem",
    [
        (CountsInAnInt, "attribute seen: 6 vs 2"),
        (EmptyState, "attribute target: "),
    ],
)
def test_regularizer_resume_compares_every_attribute(register_plugin, cls, problem, monkeypatch):
    """Even where the hooks' outputs right after restoring agree, the continued state is compared."""
    from introzoo.testing import checks_model

    register_plugin(plugin("regularizers", "bad", lambda c: cls()))
    monkeypatch.setattr(checks_model, "_diff", _without_hook_outputs(checks_model._diff))
    with pytest.raises(AssertionError, match="do not continue as without the checkpoint: .*" + problem):
        check_component("regularizers", "bad")


def _without_hook_outputs(diff):
    def only_after_training(a, b, where, depth=0):
        return [] if where == "" else diff(a, b, where, depth)  # "" = encoder_loss / kl_term just after restoring

    return only_after_training


def test_regularizer_with_its_count_in_state_dict_passes(register_plugin):
    register_plugin(plugin("regularizers", "counts", lambda c: CountsInState()))
    check_component("regularizers", "counts")


def test_regularizer_without_effect_on_the_step_is_caught(register_plugin):
    register_plugin(plugin("regularizers", "bad", lambda c: Unused()))
    register_plugin(
        plugin(
            "objectives",
            "ignores-regs",
            lambda c, model, regularizers=None, train=None: UnusedObjective(c, model, regularizers, train),
            VAEOptions,
        )
    )
    check_component("regularizers", "bad")  # with vae, which adds the term, it passes
    fails("regularizers", "bad", "does not change the encoder's update", objective="ignores-regs")


# -- backbones -----------------------------------------------------------------------------------------


class Crop(nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, z):
        return self.dec(z)[:, :1]


def wrong_output(c, data_shape, zdim):
    enc, dec = build_mlp(MLPConfig(hidden=8, layers=0), data_shape, zdim)
    return enc, Crop(dec)


def unused_parameter(c, data_shape, zdim):
    enc, dec = build_mlp(MLPConfig(hidden=8, layers=0), data_shape, zdim)
    enc.spare = nn.Linear(2, 2)
    return enc, dec


def images_only(c, data_shape, zdim):
    if len(data_shape) != 3:
        raise ValueError("images only")
    return build_mlp(MLPConfig(hidden=8, layers=0), data_shape, zdim)


class Declares(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_shapes: ClassVar = ((2, 5, 5),)


@pytest.mark.parametrize(
    "factory,config,match",
    [
        (wrong_output, Empty, r"decoder output has shape \(4, 1\), expected \(4, 2\)"),
        (unused_parameter, Empty, "parameters that receive no gradient: encoder.spare.weight"),
        (lambda c, data_shape, zdim: (_ for _ in ()).throw(ValueError("never")), Empty, "builds and runs for none"),
        (lambda c, data_shape, zdim: wrong_output(c, data_shape, zdim), Declares, r"for data shape \(2, 5, 5\)"),
    ],
)
def test_backbone_checks_catch(register_plugin, factory, config, match):
    register_plugin(plugin("backbones", "bad", factory, config))
    fails("backbones", "bad", match)


def test_backbone_for_images_is_checked_on_an_image_shape(register_plugin):
    seen = []

    def factory(c, data_shape, zdim):
        seen.append(tuple(data_shape))
        return images_only(c, data_shape, zdim)

    register_plugin(plugin("backbones", "img", factory))
    check_component("backbones", "img")
    assert seen[0] == (2,) and seen[1] == (3, 32, 32) and set(seen[1:]) == {(3, 32, 32)}


# -- datasets ------------------------------------------------------------------------------------------


class IgnoresGenerator(Toy2D):
    def __init__(self):
        super().__init__("8gaussians")

    def sample(self, n, generator=None):
        return super().sample(n, None)


class Typo(Toy2D):
    def __init__(self):
        super().__init__("8gaussians")
        self.objective_defaults = {"soft": {"beta_nge": 1.0}}


class BadValue(Toy2D):
    def __init__(self):
        super().__init__("8gaussians")
        self.objective_defaults = {"soft": {"beta_neg": -1.0}}


def offline(c):
    raise UsageError("dataset 'offline' is not under /data and could not be downloaded")


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda c: IgnoresGenerator(), "the same generator seed gives different samples"),
        (lambda c: Typo(), "defaults for objective 'soft' name options it does not have: beta_nge"),
        (lambda c: BadValue(), "invalid defaults for objective 'soft': beta_neg"),
    ],
)
def test_dataset_checks_catch(register_plugin, factory, match):
    register_plugin(plugin("datasets", "bad", factory))
    fails("datasets", "bad", match)


def test_unavailable_dataset_is_skipped_with_the_reason(register_plugin):
    register_plugin(plugin("datasets", "offline", offline))
    with pytest.raises(pytest.skip.Exception, match="not available here: dataset 'offline' is not under /data"):
        check_component("datasets", "offline")


class Lazy(Toy2D):
    """Loads its data on first use; it is "not here" unless downloads are allowed."""

    def __init__(self, download: bool):
        super().__init__("8gaussians")
        self.download = download
        self.kind = "lazy"

    def sample(self, n, generator=None):
        if not self.download:
            raise UsageError("dataset 'lazy' is not under /data and could not be downloaded (downloads off)")
        return super().sample(n, generator)


class DownloadOption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    download: bool = Field(True, description="download when missing")


def test_checks_never_download_and_skip_data_missing_at_first_use(register_plugin):
    register_plugin(plugin("datasets", "lazy", lambda c: Lazy(c.download), DownloadOption))
    with pytest.raises(pytest.skip.Exception, match="not available here: dataset 'lazy' is not under /data"):
        check_component("datasets", "lazy")
    check_component("datasets", "lazy", options={"download": True})  # with the data there, it passes


def test_metric_is_computed_on_the_first_dataset_that_is_available(register_plugin):
    seen = []

    class OnLazy(Metric):
        directions = {"m": "max"}
        kinds = frozenset({"lazy", "2d"})

        def compute(self, ctx):
            seen.append(ctx.dataset.name)
            return {"m": 1.0}

    register_plugin(plugin("datasets", "0lazy", lambda c: Lazy(c.download), DownloadOption))
    register_plugin(plugin("metrics", "on-lazy", lambda c: OnLazy()))
    check_component("metrics", "on-lazy")
    assert seen == ["2spirals"] * 4  # "0lazy" comes first but is not available offline; untrained, then trained


# -- metrics -------------------------------------------------------------------------------------------


class Noisy(Metric):
    directions = {"noise": "min"}
    kinds = frozenset({"2d"})

    def compute(self, ctx):
        return {"noise": float(np.random.default_rng().random())}  # not from ctx.generator


class Undirected(Metric):
    directions = {"a": "min"}
    kinds = frozenset({"2d"})

    def compute(self, ctx):
        return {"a": 1.0, "b": 2.0}


class Heavy(Noisy):
    heavy = True


class NoData(Noisy):
    kinds = frozenset({"no-such-kind"})


class WellReconstructed(Metric):
    """The fraction of data points reconstructed within squared distance 0.05, through one posterior
    draw taken from torch's global RNG (not inside ctx.seeded): an untrained model reconstructs none,
    whatever the draw, so only a trained one shows the randomness."""

    directions = {"well_reconstructed": "max"}
    kinds = frozenset({"2d"})

    def compute(self, ctx):
        x = ctx.dataset.sample(1024, ctx.generator("well")).to(ctx.dtype)
        ctx.model.eval()
        with torch.no_grad():
            mu, logvar = ctx.model.encode(x)
            err = (ctx.model.decode(ctx.model.reparameterize(mu, logvar)) - x).square().sum(1)
        return {"well_reconstructed": float((err < 0.05).double().mean())}


@pytest.mark.parametrize(
    "cls,match",
    [
        (WellReconstructed, r"the model trained 30 iterations \(vae\): the same seed gives different values"),
        (Noisy, "the same seed gives different values"),
        (Undirected, "reports 'b' but directions has no entry for it"),
    ],
)
def test_metric_checks_catch(register_plugin, cls, match):
    register_plugin(plugin("metrics", "bad", lambda c: cls()))
    fails("metrics", "bad", match)


@pytest.mark.parametrize("cls,match", [(Heavy, "declares heavy = True"), (NoData, "applies to no dataset available here")])
def test_metric_compute_is_skipped_with_a_reason(register_plugin, cls, match):
    register_plugin(plugin("metrics", "skip-me", lambda c: cls()))
    with pytest.raises(pytest.skip.Exception, match=match):
        check_component("metrics", "skip-me")


# -- the fixture and the parameter list ----------------------------------------------------------------


def _twice(register):
    register("extra", lambda c, zdim: StandardGaussian(zdim), Empty, "one")
    register("extra", lambda c, zdim: StandardGaussian(zdim), Empty, "two")


def test_register_plugin_is_strict_and_restores_the_registry(register_plugin):
    twice = type("Twice", (), {"introzoo_register_priors": staticmethod(hookimpl(_twice))})()
    with pytest.raises(RegistryError, match="'extra' is registered twice"):
        register_plugin(twice)
    st = register_plugin(plugin("priors", "extra", lambda c, zdim: StandardGaussian(zdim)), name="mine")
    assert plugins.registry() is st.registry and plugins.registry().get("priors", "extra").plugin == "mine"
    with pytest.warns(
        PluginClashWarning,
        match=r"plugin 'priors-sg' registers names that are taken: prior 'sg' "
        r"\(taken by introzoo\); its own are selected as priors-sg:sg",
    ):
        st = register_plugin(plugin("priors", "sg", lambda c, zdim: Shifted(zdim)))  # not an error: qualified
    assert plugins.registry() is st.registry and st.registry.get("priors", "sg").plugin == "introzoo"
    assert st.registry.get("priors", "priors-sg:sg").plugin == "priors-sg"
    assert st.registry.get("priors", "extra").plugin == "mine"


def test_the_registry_is_back_to_built_ins():
    assert "extra" not in plugins.registry().names("priors")


def test_components_of_lists_what_a_plugin_registers():
    params = components_of(plugin("priors", "extra", lambda c, zdim: StandardGaussian(zdim)))
    assert [p.values for p in params] == [("priors", "extra")] and params[0].id == "prior:extra"
