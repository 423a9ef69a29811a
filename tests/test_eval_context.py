"""EvalContext's random streams (explicit generators; the model's draws seeded only inside a block) and
the error line of a metric that does not apply to a dataset."""

from __future__ import annotations

import pytest
import torch

from introzoo import hookimpl, plugins
from introzoo.cli import main
from introzoo.metrics.base import EvalContext, Metric
from introzoo.priors.mog import MoGConfig, build as mog
from introzoo.testing import tiny_model


def context(seed=0):
    reg = plugins.registry()
    ds = reg.get("datasets", "8gaussians").build(reg.get("datasets", "8gaussians").config())
    torch.manual_seed(0)
    return EvalContext(tiny_model(mog(MoGConfig(K=3), zdim=2), seed=4).eval(), ds, torch.device("cpu"), seed=seed)


def test_generator_only_returns_a_generator():
    ctx = context(seed=3)
    state = torch.get_rng_state()
    g = ctx.generator("kl")
    assert torch.equal(torch.get_rng_state(), state)  # torch's global RNG is left alone
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=ctx.generator("kl")))
    assert not torch.equal(torch.rand(3, generator=ctx.generator("jsd")), torch.rand(3, generator=ctx.generator("kl")))
    assert not torch.equal(torch.rand(3, generator=context(4).generator("kl")), torch.rand(3, generator=ctx.generator("kl")))


def test_seeded_is_reproducible_and_restores_the_global_rng():
    ctx = context(seed=3)
    torch.manual_seed(123)
    expected_after = torch.rand(4)  # what the caller's stream gives next, untouched
    torch.manual_seed(123)
    with ctx.seeded("fid:gen"):
        a = ctx.model.prior.sample(5)
    assert torch.equal(torch.rand(4), expected_after)
    with ctx.seeded("fid:gen"):
        b = ctx.model.prior.sample(5)
    assert torch.equal(a, b)
    with ctx.seeded("fid:rec"):
        assert not torch.equal(ctx.model.prior.sample(5), a)


@pytest.mark.parametrize(
    "name,options", [("gnelbo", {"grid": 32, "n_data": 200}), ("kl", {"n_samples": 300}), ("resp_entropy", {"n_data": 200})]
)
def test_an_evaluation_leaves_the_callers_random_stream_as_it_was(name, options):
    comp = plugins.registry().get("metrics", name)
    a, b = context(), context()
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    first = comp.build(comp.config(**options)).compute(a)
    assert torch.equal(torch.rand(4), expected)
    torch.manual_seed(8)  # a different caller state: the same values (the metric seeds its own draws)
    assert comp.build(comp.config(**options)).compute(b) == first


class Picky(Metric):
    """Overrides applies_to without saying why."""

    directions = {"picky": "max"}
    kinds = frozenset({"2d"})

    def __init__(self, config=None):
        pass

    def applies_to(self, dataset):
        return dataset.name == "rings"

    def compute(self, ctx):
        return {"picky": 1.0}


class PickyPlugin:
    @hookimpl
    def introzoo_register_metrics(self, register):
        from pydantic import BaseModel, ConfigDict

        class PickyConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")

        register("picky", Picky, PickyConfig, "Applies to rings only.")


def test_a_refused_metric_says_why_not_which_kind_the_dataset_is(register_plugin, capsys):
    register_plugin(PickyPlugin(), name="picky")
    assert main(["run", "-d", "8gaussians", "--metric", "picky", "-n", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "metric 'picky' does not apply to dataset '8gaussians': Picky.applies_to refused it" in err
    assert "a 2d dataset" not in err  # it is one, and the metric applies to 2d: not the reason
    assert main(["run", "-d", "8gaussians", "--metric", "svm", "-n", "2", "-q"]) == 2
    assert "it applies to image datasets, and '8gaussians' is a 2d dataset" in capsys.readouterr().err


class Unseeded(Metric):
    """Draws the model's samples without ctx.seeded: irreproducible, which the contract checks report."""

    directions = {"spread": "min"}
    kinds = frozenset({"2d"})

    def __init__(self, config=None):
        pass

    def compute(self, ctx):
        ctx.generator("spread")  # no longer seeds the model's draws
        return {"spread": float(ctx.model.sample(64).std())}


class UnseededPlugin:
    @hookimpl
    def introzoo_register_metrics(self, register):
        from pydantic import BaseModel, ConfigDict

        class SpreadConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")

        register("spread", Unseeded, SpreadConfig, "Spread of the samples.")


def test_contract_checks_catch_model_draws_outside_seeded(register_plugin):
    from introzoo.testing import check_component

    register_plugin(UnseededPlugin(), name="spread")
    with pytest.raises(AssertionError, match=r"with ctx.seeded\(name\)"):
        check_component("metrics", "spread")
