"""The library facade (introzoo.build / train / load_run), the command hook and the run-lifecycle hooks.

The README's "From Python" example is run as written, with a tiny iteration count and fast metrics,
and must give exactly the run that the command line it names makes with the same settings.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer

import introzoo
from introzoo import hookimpl
from introzoo.cli import main
from introzoo.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
FAST_METRICS = ["kl,n_samples=500", "gnelbo,grid=32,n_data=256"]


def readme_example() -> tuple[str, str]:
    """The python block of README.md's "From Python" section and the ``introzoo run`` line of its bash
    block (the same run from the command line)."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## From Python\n(.*?)(?=^## )", text, flags=re.S | re.M).group(1)
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    cli = next(
        line
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)
        for line in block.splitlines()
        if line.startswith("introzoo run")
    )
    return code, cli


def test_import_introzoo_is_cheap():
    code = "import sys, introzoo; assert 'torch' not in sys.modules and 'typer' not in sys.modules; print(introzoo.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in ("build", "train", "load_run", "Run"))


def test_readme_example_gives_the_command_lines_run(tmp_path, monkeypatch, capsys):
    code, cli_line = readme_example()
    iterations = re.search(r"iterations=(\d+)", code).group(1)
    assert f"-n {iterations}" in cli_line or f"--iterations {iterations}" in cli_line
    small = code.replace(f"iterations={iterations}", f"iterations=6, metric={FAST_METRICS!r}")
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    scope: dict = {}
    exec(compile(small, "README.md", "exec"), scope)  # noqa: S102 - the documented example, as written
    run = scope["run"]
    assert isinstance(run, introzoo.Run) and run.status == "finished" and set(run.metrics) == {"kl", "gnelbo"}

    args = shlex.split(cli_line, comments=True)[1:]
    args[args.index("-n" if "-n" in args else "--iterations") + 1] = "6"
    out = tmp_path / "cli-run"
    args += [a for m in FAST_METRICS for a in ("--metric", m)] + ["--out", str(out), "-q", "--threads", "1"]
    assert main(args) == 0
    cli_result = json.loads((out / "metrics.json").read_text())
    assert run.metrics == cli_result["metrics"]  # identical, not close
    cli_config = json.loads((out / "config.json").read_text())
    facade_config = json.loads((run.path / "config.json").read_text())
    assert facade_config["hash"] == cli_config["hash"] == run.hash
    assert run.path.name.endswith(run.hash)  # the default directory the command line uses without --out
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(run.history) == strip([json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()])

    loaded = introzoo.load_run(run.path)
    x = run.sample(64, seed=3)
    assert x.shape == (64, 2) and torch.equal(x, loaded.sample(64, seed=3)) and torch.equal(x, run.sample(64, seed=3))
    assert loaded.metrics == run.metrics and loaded.config.to_json() == run.config.to_json()
    for a, b in zip(run.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)


def test_build_gives_the_untrained_model_of_the_run():
    built = introzoo.build(objective="soft", prior="mog:5", data="rings", zdim=3, seed=2, device="cpu")
    assert built.status == "built" and built.metrics == {} and built.path is None
    assert built.model.zdim == 3 and built.model.prior.K == 5 and built.dataset.name == "rings"
    again = introzoo.build(objective="soft", prior="mog:5", data="rings", zdim=3, seed=2, device="cpu")
    assert torch.equal(built.model.prior.mu, again.model.prior.mu)  # seeded
    assert built.hash == again.hash


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"prior": "mogg"}, UsageError, "unknown prior 'mogg'; did you mean 'mog'"),
        ({"iterations": 0}, UsageError, "iterations: Input should be greater than 0"),
        ({"reg": ["clip-logvar"]}, UsageError, "needs a mixture prior"),
        ({"itrations": 5}, TypeError, "itrations"),
    ],
)
def test_bad_options_are_refused(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        introzoo.train(out=tmp_path / "r", **kwargs)
    assert not (tmp_path / "r").exists()


def test_the_facade_takes_every_training_option(tmp_path):
    """Each field of the one options declaration (introzoo.options.TrainOptions) is a keyword of
    introzoo.train and introzoo.build, and reaches the run's resolved options."""
    import inspect

    from introzoo import api
    from introzoo.options import TrainOptions

    values = {
        "iterations": 3,
        "epochs": None,
        "batch_size": 16,
        "lr": 1e-3,
        "lr_milestones": [2],
        "lr_gamma": 0.5,
        "zdim": 2,
        "precision": "bf16",
        "conditional": False,
        "rec_loss": "mse",  # 2D data: no labels, no stages
        **dict.fromkeys(
            [
                "resolution",
                "stage_epochs",
                "stage_iterations",
                "blend_epochs",
                "blend_iterations",
                "stage_batch_size",
                "stage_beta_neg",
            ]
        ),
    }
    assert set(values) == set(TrainOptions.model_fields)  # a new option: add it here
    sig = inspect.signature(api.resolve_run).parameters
    assert set(TrainOptions.model_fields) <= set(sig)
    built = introzoo.build(data="8gaussians", device="cpu", **values)
    assert {k: built.config.train.get(k) for k in values if values[k] is not None} == {
        k: v for k, v in values.items() if v is not None
    }
    run = introzoo.train(
        out=tmp_path / "r",
        data="8gaussians",
        device="cpu",
        metric=["kl,n_samples=200"],
        objective="soft,num_vae=1",
        threads=1,
        **values,
    )
    assert run.status == "finished" and run.config.train["precision"] == "bf16"
    assert run.config.train["lr_milestones"] == [2] and run.config.train["lr_gamma"] == 0.5


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(UsageError, match="is not a run directory"):
        introzoo.load_run(tmp_path)


# -- a plugin with a command and a run logger -----------------------------------------------------------


class Logger:
    """A test plugin: the ``logged`` command, and a logger recording every run-lifecycle call."""

    __name__ = "logger"

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def _record(self, *call):
        self.calls.append(call)
        if call[0] == self.fail_on:
            raise RuntimeError(f"{self.fail_on} failed")

    @hookimpl
    def introzoo_register_commands(self, cli):
        @cli.command("logged")
        def logged(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
            """Print the iterations the logger saw for a run."""
            seen = [c[2] for c in self.calls if c[0] == "log" and c[1] == run_dir.name]
            typer.echo(f"{run_dir.name}: {len(seen)} records, last at {seen[-1] if seen else None}")

    @hookimpl
    def introzoo_run_start(self, run, out_dir):
        assert (out_dir / "config.json").exists() and not (out_dir / "metrics.json").exists()
        self.current = out_dir.name
        self._record("start", out_dir.name, run.hash())

    @hookimpl
    def introzoo_run_log(self, run, iteration, record):
        record["loss"] = "changed"  # a copy: the history is not affected
        self._record("log", self.current, iteration, sorted(record))

    @hookimpl
    def introzoo_run_end(self, run, result):
        self._record("end", result["status"], result["iterations"], sorted(result["metrics"]))


def _run(tmp_path, *extra):
    return main(
        [
            "run",
            "-n",
            "5",
            "--log-every",
            "2",
            "--metric",
            "kl,n_samples=200",
            "-q",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "logged-run"),
            *extra,
        ]
    )


def test_run_hooks_see_start_each_record_and_end_in_order(register_plugin, tmp_path):
    logger = Logger()
    register_plugin(logger, name="logger")
    assert _run(tmp_path) == 0
    history = [json.loads(line) for line in (tmp_path / "logged-run" / "history.jsonl").read_text().splitlines()]
    config = json.loads((tmp_path / "logged-run" / "config.json").read_text())
    keys = sorted(history[0])
    assert logger.calls == [
        ("start", "logged-run", config["hash"]),
        ("log", "logged-run", 2, keys),
        ("log", "logged-run", 4, keys),
        ("log", "logged-run", 5, keys),
        ("end", "finished", 5, ["kl"]),
    ]
    assert [r["iteration"] for r in history] == [2, 4, 5] and all(isinstance(r["loss"], float) for r in history)


def test_a_failing_logger_is_one_warning_and_the_run_goes_on(register_plugin, tmp_path, capsys):
    logger = Logger(fail_on="log")
    register_plugin(logger, name="logger")
    assert _run(tmp_path) == 0
    err = capsys.readouterr().err
    assert err.count("warning: plugin 'logger': introzoo_run_log raised RuntimeError: log failed") == 1
    assert [c[0] for c in logger.calls] == ["start", "log"]  # its hooks are skipped for the rest of the run
    assert json.loads((tmp_path / "logged-run" / "metrics.json").read_text())["status"] == "finished"


def test_a_plugin_command_works_through_main(register_plugin, tmp_path, capsys):
    logger = Logger()
    register_plugin(logger, name="logger")
    assert _run(tmp_path) == 0
    capsys.readouterr()
    assert main(["logged", str(tmp_path / "logged-run")]) == 0
    assert capsys.readouterr().out.strip() == "logged-run: 3 records, last at 5"
    assert main(["--help"]) == 0
    assert "logged" in capsys.readouterr().out
    assert main(["--no-plugins", "logged", "x"]) == 2  # not there without plugins
    assert "No such command 'logged'" in capsys.readouterr().err


def test_a_plugin_command_may_not_take_a_builtin_name(register_plugin, capsys):
    class Clash:
        __name__ = "clash"

        @hookimpl
        def introzoo_register_commands(self, cli):
            @cli.command("run")
            def run() -> None:
                """Not the real run."""

            @cli.command("extra")
            def extra() -> None:
                """Left out with the clashing one."""

    register_plugin(Clash(), name="clash")
    assert main(["extra"]) == 2
    err = capsys.readouterr().err
    assert "warning: plugin 'clash': introzoo_register_commands raised ValueError: 'run' is a built-in command" in err
    assert "No such command 'extra'" in err


def test_train_returns_the_model_it_trained_without_rebuilding_it(tmp_path, monkeypatch):
    """``introzoo.train()`` hands back the trained model it holds (not a copy rebuilt from disk), in
    eval mode, equal to the saved checkpoint."""
    import introzoo.train as loop

    def no_rebuild(*a, **k):
        raise AssertionError("the run was rebuilt from disk")

    monkeypatch.setattr(loop, "load", no_rebuild)
    torch.set_num_threads(1)
    run = introzoo.train(
        iterations=30,
        metric=["kl,n_samples=100"],
        out=tmp_path / "r",
        progress=False,
        precision="bf16",
        lr_gamma=0.5,
        lr_milestones=[10],
    )
    assert run.result["status"] == "finished" and not run.model.training
    saved = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in run.model.state_dict().items())


def test_merged_training_defaults_are_validated(monkeypatch):
    """A dataset's protocol (e.g. from a plugin) that gives an impossible training option is refused when
    the run is resolved, naming the option and where it came from."""
    from types import SimpleNamespace

    from introzoo.config import RunConfig, resolve_train

    bad = SimpleNamespace(
        name="fake", train_defaults={"batch_size": 0}, regularizer_defaults={}, steps_per_epoch=lambda b: 1
    )
    with pytest.raises(UsageError, match=r"'batch_size' = 0 from the dataset 'fake' protocol"):
        resolve_train(RunConfig(), bad)
    good = SimpleNamespace(
        name="fake", train_defaults={"batch_size": 7}, regularizer_defaults={}, steps_per_epoch=lambda b: 1
    )
    assert resolve_train(RunConfig(), good)["batch_size"] == 7
