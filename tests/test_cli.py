"""The command line end to end with few iterations, and its error paths (one line, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from introzoo import hookimpl, plugins
from introzoo.cli import main
from introzoo.data.toy2d import Toy2D
from introzoo.objectives.base import Objective

FAST = ["--metric", "kl,n_samples=500", "--metric", "gnelbo,grid=32,n_data=256", "-q"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "introzoo.cli", *args], capture_output=True, text=True)


def test_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = cli("run", "-o", "soft,num_vae=20", "-d", "8gaussians", "-n", "60", "--log-every", "20", "--out", str(out), *FAST)
    assert r.returncode == 0, r.stderr
    assert "gnelbo" in r.stdout and "kl" in r.stdout
    for name in ("config.json", "history.jsonl", "metrics.json", "checkpoint.pt", "samples.png", "density.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["iterations"] == 60
    assert set(metrics["metrics"]) == {"kl", "gnelbo"}
    assert metrics["directions"] == {"kl": "min", "gnelbo": "min"}
    config = json.loads((out / "config.json").read_text())
    # the paper's 8gaussians hyperparameters, overridden only where the spec says so
    assert config["objective"]["options"] == {
        "beta_rec": 0.2,
        "beta_kl": 0.3,
        "beta_neg": 0.9,
        "gamma_r": 1e-8,
        "num_vae": 20,
    }
    assert config["objective"]["plugin"] == "introzoo" and config["objective"]["version"]
    assert config["train"]["batch_size"] == 512 and config["train"]["lr_milestones"] == [10000, 15000]
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == [20, 40, 60]
    assert "loss" in history[0] and "loss_e" in history[-1]  # warm-up, then the adversarial game
    state = torch.load(out / "checkpoint.pt")
    assert set(state) >= {"model", "objective", "config"}


def test_same_seed_same_metrics(tmp_path, capsys):
    args = ["run", "-o", "intro,num_vae=10", "-d", "rings", "-n", "30", *FAST]
    assert main([*args, "--seed", "3", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--seed", "3", "--out", str(tmp_path / "b")]) == 0
    assert main([*args, "--seed", "4", "--out", str(tmp_path / "c")]) == 0
    a, b, c = (json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in "abc")
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["run", "-o", "sotf"],
            "unknown objective 'sotf'; did you mean 'soft'? known: intro, soft, soft-boot, soft-prior, vae",
        ),
        (["run", "-p", "mogg"], "unknown prior 'mogg'; did you mean 'mog'? known: flow, mog, sg, vamp"),
        (["run", "-p", "xyz"], "unknown prior 'xyz'; known: flow, mog, sg, vamp"),
        (["run", "-o", "soft-prior"], "objective 'soft-prior' needs a learnable prior"),
        (["run", "--reg", "clip-logvar"], "regularizer 'clip-logvar' needs a mixture prior"),
        (["run", "-p", "mog:0"], "option 'K': Input should be greater than 0"),
        (["run", "-d", "8gausians"], "unknown dataset '8gausians'; did you mean '8gaussians'?"),
        (["run", "-o", "soft,beta_neg"], "malformed objective spec 'soft,beta_neg': 'beta_neg' is not key=value"),
        (["run", "-o", "soft,beta_kl=-1"], "option 'beta_kl': Input should be greater than or equal to 0"),
        (["run", "-o", "soft,gamma_r=0"], "option 'gamma_r': Input should be greater than 0"),
        (["run", "-n", "0"], "--iterations: Input should be greater than 0"),
        (["run", "--batch-size", "-5"], "--batch-size: Input should be greater than 0"),
        (["run", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--metric", "fid"], "unknown metric 'fid'"),
        (["run", "--iteratons", "5"], "No such option: --iteratons"),
        (["list", "prirs"], "unknown component kind 'prirs'; did you mean 'priors'?"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_bad_input_from_a_real_process_has_no_traceback():
    r = cli("run", "-o", "intro,m=-1")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: invalid objective 'intro' in 'intro,m=-1': option 'm'")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Blob(Toy2D):
    """A plugin dataset with no paper defaults (so intro's margin must be given)."""

    def __init__(self):
        super().__init__("8gaussians")
        self.name = "blob"
        self.objective_defaults = {}


class NaNObjective(Objective):
    name = "nan"

    def step(self, x, iteration):
        value = float("nan") if iteration >= 5 else 1.0 / (iteration + 1)
        return {"loss": torch.tensor(value)}


class TestPlugin:
    @hookimpl
    def introzoo_register_datasets(self, register):
        register("blob", lambda config: Blob(), _Plain, "8 Gaussians without paper defaults.")

    @hookimpl
    def introzoo_register_objectives(self, register):
        register(
            "nan",
            lambda config, model, regularizers=None, train=None: NaNObjective(config, model),
            _Plain,
            "Turns NaN at iteration 5.",
        )


@pytest.fixture
def with_test_plugin():
    plugins.reset(plugins.build(extra_plugins=[("testplugin", TestPlugin())], load_entry_points=False))


def test_intro_without_margin_needs_m(with_test_plugin, capsys):
    assert main(["run", "-o", "intro", "-d", "blob"]) == 2
    err = capsys.readouterr().err
    assert "option 'm' is required" in err and len(err.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_diverged_run_keeps_history_and_exits_3(with_test_plugin, tmp_path, capsys):
    out = tmp_path / "nan"
    assert main(["run", "-o", "nan", "-n", "100", "--log-every", "2", "--out", str(out), "-q"]) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged_at"] == 5 and metrics["iterations"] == 6
    assert metrics["metrics"] == {}
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == [2, 4, 6]
    assert history[0]["loss"] == pytest.approx((1 + 0.5) / 2)
    assert "diverged at iteration 5" in capsys.readouterr().err


def test_list_and_plugins(capsys):
    assert main(["list", "objectives", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    soft = {d["name"]: d for d in data["objectives"]}["soft"]
    assert {o["name"]: o["default"] for o in soft["options"]}["gamma_r"] == 1e-8
    assert {o["name"]: o["required"] for o in data["objectives"][0]["options"]}["m"] is True  # intro
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("soft", "intro", "vae", "sg", "mlp", "8gaussians", "rings", "gnelbo", "jsd"):
        assert name in out
    assert main(["plugins", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    builtin = info["plugins"][0]
    assert builtin["name"] == "introzoo" and builtin["registers"]["priors"] == ["flow", "mog", "sg", "vamp"]


@pytest.mark.parametrize(
    "command", [[], ["run"], ["list"], ["plugins"], ["sample"], ["eval"], ["ood"], ["sweep"], ["leaderboard"]]
)
def test_help_shows_a_working_example(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "introzoo " + (command[0] if command else "run") in out


def test_prior_learning_run_records_the_clipping_range(tmp_path, capsys):
    out = tmp_path / "ip"
    assert (
        main(
            [
                "run",
                "-o",
                "soft-prior,num_vae=10",
                "-p",
                "mog:4",
                "--reg",
                "clip-logvar",
                "-n",
                "30",
                "--metric",
                "kl,n_samples=500",
                "--metric",
                "resp_entropy,n_data=500",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    clip = m["regularizers"]["clip-logvar"]
    assert clip["inside"] is True and len(clip["lo"]) == 2
    assert all(
        lo <= a <= b <= hi + 1e-6 for lo, a, b, hi in zip(clip["lo"], clip["logvar_min"], clip["logvar_max"], clip["hi"])
    )
    assert 1 <= m["metrics"]["active_components"] <= 4 and 0 <= m["metrics"]["resp_entropy"] <= 1
    assert (out / "latent.png").is_file()
