"""inf and nan are bad input for every component option and training option (one line, exit 2)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from introzoo import hookimpl
from introzoo.cli import main
from introzoo.errors import UsageError
from introzoo.priors.gaussian import StandardGaussian
from introzoo.spec import resolve
from introzoo.sweeps.grid import SweepSpec


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["-o", "soft,beta_rec=inf"],
            "objective 'soft' in 'soft,beta_rec=inf': option 'beta_rec' must be a finite number (got inf)",
        ),
        (["-o", "soft,beta_kl=1e400"], "option 'beta_kl' must be a finite number (got inf)"),
        (["-o", "soft,beta_neg=-inf"], "option 'beta_neg'"),
        (["--lr", "inf"], "--lr: Input should be a finite number"),
        (["--lr", "1e400"], "--lr: Input should be a finite number"),
    ],
)
def test_non_finite_is_bad_input(args, message, tmp_path, capsys):
    assert main(["run", *args, "-n", "2", "--device", "cpu", "-q", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r").exists()


class Floats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = Field(1.0, description="a float option")
    weights: list[float] = Field(default_factory=lambda: [1.0])


class AllowsInf(Floats):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=True)  # the documented way to accept inf/nan


def _plugin(config):
    class P:
        @hookimpl
        def introzoo_register_priors(self, register):
            register("floats", lambda c, zdim: StandardGaussian(zdim), config, "A test prior.")

    return P()


@pytest.mark.parametrize(
    "text,option", [("floats,scale=nan", "scale"), ("floats,weights=[1,inf]", "weights"), ("floats,scale=1e999", "scale")]
)
def test_every_component_option_is_checked(register_plugin, text, option):
    st = register_plugin(_plugin(Floats), name="floats-plugin")
    with pytest.raises(UsageError, match=f"prior 'floats' in '.*': option '{option}' must be a finite number"):
        resolve(st.registry, "priors", text)
    assert resolve(st.registry, "priors", "floats,scale=2.5,weights=[1,2]")[1].weights == [1.0, 2.0]


def test_a_config_may_allow_non_finite(register_plugin):
    st = register_plugin(_plugin(AllowsInf), name="inf-plugin")
    assert resolve(st.registry, "priors", "floats,scale=inf")[1].scale == float("inf")


def test_sweep_training_options():
    with pytest.raises(ValidationError, match="finite number"):
        SweepSpec(lr=float("inf"))
