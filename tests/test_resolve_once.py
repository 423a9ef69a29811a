"""A run is resolved once: its dataset and metrics are built once, its hash and config.json come from
one record, and a sweep's worker trains what the sweep's process resolved. Also: the training options
have one declaration, executor options merge as values, leaderboard rows name every varying axis."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from introzoo import config as config_mod
from introzoo.sweeps import leaderboard as lb
from introzoo import plugins
from introzoo.sweeps import grid as sweep
from introzoo.cli import app, main
from introzoo.options import TrainOptions
from introzoo.registry import Component
from introzoo.training.run_dir import atomic_write_json
from introzoo.sweeps.grid import SweepSpec, expand

CHEAP = ["kl,n_samples=300", "jsd,n_samples=300"]


@pytest.fixture
def builds(monkeypatch):
    """Counts of component constructions by (kind, name), through the one factory call every component has."""
    counts: Counter = Counter()
    original = Component.build

    def counting(self, cfg, **context):
        counts[(self.kind, self.name)] += 1
        return original(self, cfg, **context)

    monkeypatch.setattr(Component, "build", counting)
    return counts


def _of(counts: Counter, kind: str) -> dict[str, int]:
    return {name: n for (k, name), n in counts.items() if k == kind}


def test_introzoo_run_builds_the_dataset_and_each_metric_once(builds, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "-o", "vae", "-d", "rings", "-n", "4", "--log-every", "2", "-q"]
    assert main(args + [f"--metric={m}" for m in CHEAP]) == 0
    assert _of(builds, "datasets") == {"rings": 1}
    assert _of(builds, "metrics") == {"kl": 1, "jsd": 1}
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert run_dir.name.endswith("-" + config["hash"])  # the name and the record: one computation


def test_default_metrics_are_built_once_while_resolving(builds):
    run = config_mod.resolve(config_mod.RunConfig(data="8gaussians"), plugins.registry())
    chosen = [m.component.name for m in run.metrics]
    assert {"kl", "jsd", "gnelbo"} <= set(chosen)
    assert all(_of(builds, "metrics")[name] == 1 for name in chosen)  # the applicability check's own build is kept
    assert len(run.built_metrics) == len(chosen) and _of(builds, "datasets") == {"8gaussians": 1}


def test_sweep_worker_trains_the_resolved_run_without_resolving_again(builds, tmp_path, monkeypatch):
    reg = plugins.registry()
    (task,) = expand(SweepSpec(objective=["vae"], data=["rings"], iterations=4, metrics=CHEAP), reg, sweep_dir=tmp_path)
    assert task.hash == task.config["hash"] and task.run_dir.name == task.hash
    shipped = json.loads(json.dumps(task.config))  # what a worker process or a Slurm job receives
    builds.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("the worker resolved or hashed the run again")

    monkeypatch.setattr(config_mod, "resolve", refuse)
    monkeypatch.setattr(sweep, "resolve", refuse)
    monkeypatch.setattr(config_mod.ResolvedRun, "hash", refuse)
    result = sweep.execute(str(task.run_dir), shipped)
    assert result["status"] == "finished", result
    assert _of(builds, "datasets") == {"rings": 1}  # in the worker: once, for training and evaluation
    assert _of(builds, "metrics") == {"kl": 1, "jsd": 1}
    written = json.loads((task.run_dir / "config.json").read_text())
    assert written["hash"] == task.hash == task.run_dir.name
    assert {k: v for k, v in written.items() if k not in ("device_used", "kernels_used")} == task.config


def test_every_training_option_is_on_every_surface():
    """One declaration (TrainOptions): each field is a `run` and a `sweep` option, a sweep-file key and
    a RunConfig field, and reaches the resolved run."""
    import typer.main

    cli = typer.main.get_command(app)
    for name in TrainOptions.model_fields:
        flag = "--" + name.replace("_", "-")
        for command in ("run", "sweep"):
            assert any(flag in p.opts for p in cli.commands[command].params), f"introzoo {command} has no {flag}"
        assert name in SweepSpec.model_fields and name in config_mod.RunConfig.model_fields
    spec = SweepSpec(objective=["vae"], lr=1e-3, lr_gamma=0.5, lr_milestones=[2], zdim=3, iterations=4, metrics=CHEAP)
    (task,) = expand(spec, plugins.registry())
    train = task.config["train"]
    assert (train["lr"], train["lr_gamma"], train["lr_milestones"], train["zdim"]) == (1e-3, 0.5, [2], 3)


def test_sweep_takes_lr_gamma_and_zdim_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "s"
    assert (
        main(
            [
                "sweep",
                "-o",
                "vae",
                "-n",
                "5",
                "--lr-gamma",
                "0.5",
                "--zdim",
                "3",
                "--lr",
                "1e-3",
                "--lr-milestones",
                "2",
                "--lr-milestones",
                "4",
                "--dry-run",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "1 runs" in capsys.readouterr().out
    assert main(["sweep", "-o", "vae", "--lr-gamma", "0", "--dry-run"]) == 2
    assert "--lr-gamma: Input should be greater than 0" in capsys.readouterr().err


def test_workers_flag_wins_over_the_executor_spec():
    from introzoo.cli.sweep_run import build_spec, make_executor

    reg = plugins.registry()
    executor, cfg = make_executor(reg, build_spec(None, executor="local,workers=2"), 4, None)
    assert cfg.workers == 4 and executor.workers == 4
    _, cfg = make_executor(reg, build_spec(None, executor="local,workers=2,threads=3"), None, 2)
    assert (cfg.workers, cfg.threads) == (2, 2)


def test_sweep_command_with_workers_in_both_places(tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "-o",
                "vae",
                "-n",
                "5",
                "-e",
                "local,workers=2",
                "--workers",
                "4",
                "--dry-run",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert "given twice" not in capsys.readouterr().err


def _fake_run(root: Path, h: str, data: dict, backbone: dict, train: dict, regs: list | None = None) -> None:
    d = root / "runs" / h
    d.mkdir(parents=True)
    atomic_write_json(
        d / "config.json",
        {
            "hash": h,
            "config_key": h,
            "seed": 0,
            "train": train,
            "regularizers": regs or [],
            "objective": {"name": "soft", "options": {"beta_kl": 0.5}},
            "prior": {"name": "sg", "options": {}},
            "backbone": backbone,
            "data": data,
        },
    )
    atomic_write_json(
        d / "metrics.json", {"status": "finished", "metrics": {"kl": float(len(h))}, "directions": {"kl": "min"}}
    )


def test_leaderboard_rows_name_every_varying_axis(tmp_path):
    rings = {"name": "rings", "options": {"n": 1000}}
    mlp = {"name": "mlp", "options": {"hidden": 64, "layers": 3}}
    train = {"iterations": 100, "lr": 2e-4}
    _fake_run(tmp_path, "a", rings, mlp, train)
    _fake_run(tmp_path, "bb", rings, {"name": "mlp", "options": {"hidden": 128, "layers": 3}}, train)
    _fake_run(tmp_path, "ccc", {"name": "rings", "options": {"n": 5000}}, mlp, train)
    _fake_run(tmp_path, "dddd", rings, mlp, {"iterations": 100, "lr": 1e-3})
    _fake_run(tmp_path, "eeeee", rings, mlp, train, regs=[{"name": "clip-logvar", "options": {"min": -8}}])
    rows, directions = lb.build_rows(lb.collect(tmp_path))
    header, body, _ = lb.table_data(rows, directions, "none")
    shown = {tuple(cells[header.index(c)] for c in ("data", "objective", "prior", "backbone")) for cells in body}
    assert len(shown) == len(rows) == 5  # no two configurations look alike
    by = {r.key: r for r in rows}
    assert by["bb"].backbone == "mlp,hidden=128" and by["a"].backbone == "mlp,hidden=64"
    assert by["ccc"].data == "rings,n=5000" and by["a"].data == "rings,n=1000"
    assert "[lr=0.001]" in by["dddd"].label and "clip-logvar" in by["eeeee"].label
    assert json.loads(lb.to_json(rows, directions, "kl"))["rows"][0]["backbone"].startswith("mlp")


def test_dry_run_grid_has_a_backbone_column():
    from introzoo.cli.sweep_run import print_grid

    tasks = expand(
        SweepSpec(objective=["vae"], backbone=["mlp,hidden=32|64"], iterations=5, metrics=CHEAP), plugins.registry()
    )
    console = Console(record=True, width=200)
    print_grid(console, tasks, set())
    text = console.export_text()
    assert "backbone" in text and "mlp,hidden=32" in text and "mlp,hidden=64" in text
