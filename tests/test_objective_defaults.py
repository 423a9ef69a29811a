"""``defaults_from``: a plugin objective takes a dataset's defaults of the objective it declares."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from introzoo import hookimpl, plugins
from introzoo.config import RunConfig, resolve
from introzoo.data.toy2d import BEST
from introzoo.errors import UsageError
from introzoo.objectives.defaults import defaults_chain, objective_defaults
from introzoo.objectives.soft import SoftConfig, SoftIntroVAE
from introzoo.testing import check_component


class Variant(SoftIntroVAE):
    """A soft variant registered as its own factory, declaring defaults_from on the class."""

    defaults_from = "soft"


class NoDecl(SoftIntroVAE):
    pass


class Small(BaseModel):  # a subset of soft's options: the others of soft's defaults are ignored
    model_config = ConfigDict(extra="forbid")
    defaults_from: ClassVar[str] = "my-soft"  # declared on the config class, inheriting in turn
    beta_neg: float = Field(1.0, ge=0, description="weight of the fakes' KL")
    beta_rec: float = Field(1.0, gt=0, description="weight of reconstruction terms")
    beta_kl: float = Field(1.0, ge=0, description="weight of the real KL")
    gamma_r: float = Field(1e-8, gt=0, description="weight of the decoder's reconstruction of fakes")
    num_vae: int = Field(0, ge=0, description="warm-up iterations")


class Loop(SoftConfig):
    defaults_from: ClassVar[str] = "loop-b"


class LoopB(SoftConfig):
    defaults_from: ClassVar[str] = "loop"


class Objectives:
    @hookimpl
    def introzoo_register_objectives(self, register):
        register("my-soft", Variant, SoftConfig, "A soft variant with soft's dataset defaults.")
        register("plain-soft", NoDecl, SoftConfig, "A soft variant that declares nothing.")
        register("small-soft", Variant, Small, "Inherits my-soft's, so soft's, defaults.")
        register("loop", Variant, Loop, "defaults_from cycle.")
        register("loop-b", Variant, LoopB, "defaults_from cycle.")


def resolved(objective: str, data: str = "8gaussians"):
    return resolve(RunConfig(objective=objective, data=data), plugins.registry()).objective.config


def test_plugin_objective_takes_the_declared_objectives_defaults(register_plugin):
    register_plugin(Objectives(), name="variants")
    beta_rec, beta_kl, beta_neg = BEST["rings"]["soft"]
    cfg = resolved("my-soft", "rings")
    assert (cfg.beta_rec, cfg.beta_kl, cfg.beta_neg) == (beta_rec, beta_kl, beta_neg)
    assert cfg.num_vae == resolved("soft", "rings").num_vae > 0
    plain = resolved("plain-soft", "rings")  # without a declaration: the config's own defaults
    assert (plain.beta_rec, plain.beta_neg, plain.num_vae) == (1.0, 1.0, 0)
    small = resolved("small-soft", "rings")  # a chain: small-soft -> my-soft -> soft
    assert small.beta_neg == beta_neg and defaults_chain(plugins.registry(), "small-soft") == [
        "small-soft",
        "my-soft",
        "soft",
    ]
    # the contract checks build it with the inherited defaults too
    check_component("objectives", "my-soft")


def test_own_defaults_win_over_inherited_ones(register_plugin):
    register_plugin(Objectives(), name="variants")
    ds = plugins.registry().get("datasets", "rings").build(plugins.registry().get("datasets", "rings").config())
    ds.objective_defaults = {**ds.objective_defaults, "my-soft": {"beta_neg": 7.0}}
    merged = objective_defaults(ds, plugins.registry(), "my-soft")
    assert merged == {**ds.objective_defaults["soft"], "beta_neg": 7.0}


def test_a_defaults_from_cycle_is_one_clear_error(register_plugin):
    register_plugin(Objectives(), name="variants")
    with pytest.raises(UsageError, match="defaults_from forms a cycle"):
        resolved("loop")


def test_soft_boot_inherits_soft(register_plugin):
    cfg, soft = resolved("soft-boot", "2spirals"), resolved("soft", "2spirals")
    own = {"gamma_r"}  # soft-boot's own default (the official bootstrap's 1.0), not a dataset default
    assert {k: getattr(cfg, k) for k in type(soft).model_fields if k not in own} == {
        k: v for k, v in dict(soft).items() if k not in own
    }
    assert cfg.gamma_r == 1.0 and soft.gamma_r == 1e-8
