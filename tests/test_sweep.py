"""Sweeps: grid syntax, expansion, the run store, executors, resumption after SIGKILL, leaderboards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from introzoo.sweeps import leaderboard as lb
from introzoo import plugins
from introzoo.cli import main
from introzoo.errors import UsageError
from introzoo.sweeps.executors import LocalConfig, LocalExecutor
from introzoo.training.run_dir import atomic_write_json
from introzoo.sweeps.grid import SweepSpec, Task, expand, expand_axis, load_sweep_file, pending, satisfies

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["--metric", "kl,n_samples=500", "--metric", "gnelbo,grid=32,n_data=256"]
#: a narrower network and batch for the tests of sweep mechanics (the default network's numbers are checked
#: by tests/test_metrics_toy2d.py and tests/test_pack_float32.py)
SMALL = ["-b", "mlp,hidden=64", "--batch-size", "128"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("vae,soft,intro,m=2", ["vae", "soft", "intro,m=2"]),
        (
            "soft,beta_kl=0.1|0.3,beta_neg=0.5|1",
            [
                "soft,beta_kl=0.1,beta_neg=0.5",
                "soft,beta_kl=0.1,beta_neg=1",
                "soft,beta_kl=0.3,beta_neg=0.5",
                "soft,beta_kl=0.3,beta_neg=1",
            ],
        ),
        ("mog:10|100,learn_weights=true", ["mog:10,learn_weights=true", "mog:100,learn_weights=true"]),
        ("resnet,channels=[64,128]|[32,64]", ["resnet,channels=[64,128]", "resnet,channels=[32,64]"]),
        ("8gaussians, rings", ["8gaussians", "rings"]),
    ],
)
def test_expand_axis(text, expected):
    assert expand_axis(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("m=2,intro", "option 'm=2' before any"),
        ("soft,beta_kl=0.1||0.3", "empty alternative"),
        ("vae,,soft", "empty item"),
        ("resnet,channels=[64", "unbalanced brackets"),
    ],
)
def test_expand_axis_errors(text, message):
    with pytest.raises(UsageError, match=message):
        expand_axis(text)


def test_constraints():
    cons = ["beta_neg >= beta_kl", "beta_neg <= 5 * beta_kl"]
    assert satisfies(cons, {"beta_kl": 0.2, "beta_neg": 1.0})
    assert not satisfies(cons, {"beta_kl": 0.2, "beta_neg": 1.01})
    assert not satisfies(cons, {"beta_kl": 0.2, "beta_neg": 0.1})
    assert satisfies(cons, {"beta_kl": 0.2})  # vae has no beta_neg: the constraints do not apply
    with pytest.raises(UsageError, match="not a valid expression"):
        satisfies(["beta_kl <"], {"beta_kl": 1})


def test_expand_grid_hashes_and_constraints(tmp_path):
    reg = plugins.registry()
    spec = SweepSpec(
        objective=["vae,beta_kl=0.1|0.5", "soft,beta_kl=0.1,beta_neg=0.1|1.0|0.9"],
        data=["8gaussians", "rings"],
        seeds=3,
        constraints=["beta_neg <= 5 * beta_kl"],
    )
    tasks = expand(spec, reg, sweep_dir=tmp_path)
    # vae: 2 configs; soft: beta_neg 1.0 and 0.9 violate <= 5*0.1 -> 1 config; x 2 datasets x 3 seeds
    assert len(tasks) == (2 + 1) * 2 * 3
    assert len({t.hash for t in tasks}) == len(tasks)
    assert len({t.key for t in tasks}) == len(tasks) // 3
    assert all(t.run_dir == tmp_path / "runs" / t.hash for t in tasks)
    again = expand(spec, reg, sweep_dir=tmp_path)
    assert [t.hash for t in again] == [t.hash for t in tasks]  # stable: the same command resumes
    # each configuration runs with exactly the spec's seeds, in order; seed_start shifts them, and the
    # configuration ids (the seed left out) stay the same
    seeds_of: dict[str, list[int]] = {}
    for t in tasks:
        seeds_of.setdefault(t.key, []).append(t.config["seed"])
    assert list(seeds_of.values()) == [[0, 1, 2]] * 6
    shifted = expand(spec.model_copy(update={"seed_start": 5}), reg, sweep_dir=tmp_path)
    assert [t.key for t in shifted] == [t.key for t in tasks]
    assert [t.config["seed"] for t in shifted] == [5, 6, 7] * 6
    assert not {t.hash for t in shifted} & {t.hash for t in tasks}


def test_explicit_default_is_the_same_run():
    reg = plugins.registry()
    spec = SweepSpec(objective=["soft", "soft,beta_rec=0.2"], data=["8gaussians"])  # 0.2 is the paper default
    assert len(expand(spec, reg)) == 1


def test_benchmark_files_parse():
    reg = plugins.registry()
    for name in ("toy2d", "toy2d_best", "toy2d_smoke"):
        spec = load_sweep_file(ROOT / "benchmarks" / f"{name}.toml")
        assert expand(spec, reg, seeds=[0])
    full = load_sweep_file(ROOT / "benchmarks" / "toy2d.toml")
    assert full.select == "kl" and full.published["rings"]["soft"]["kl"] == [9.18, 0.33]


def test_bad_sweep_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[sweep]\nseeds = -1\n")
    with pytest.raises(UsageError, match="seeds"):
        load_sweep_file(f)
    f.write_text("[sweep\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_sweep_file(f)
    with pytest.raises(UsageError, match="not found"):
        load_sweep_file(tmp_path / "missing.toml")


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    reg = plugins.registry()
    good = expand(SweepSpec(objective=["vae"], iterations=5, metrics=["kl,n_samples=200"]), reg, sweep_dir=tmp_path)[0]
    bad_config = dict(good.config, objective={"name": "no-such-objective", "options": {}})
    bad = Task(tmp_path / "runs" / "bad", bad_config, "bad", "bad")
    seen = {}
    LocalExecutor(LocalConfig(workers=2)).run([bad, good], tmp_path, lambda t, r: seen.__setitem__(t.hash, r))
    assert seen["bad"]["status"] == "failed" and "unknown objective 'no-such-objective'" in seen["bad"]["reason"]
    assert seen[good.hash]["status"] == "finished"
    assert json.loads((tmp_path / "runs" / "bad" / "metrics.json").read_text())["status"] == "failed"
    finished, todo = pending([bad, good])
    assert [t.hash for t in finished] == [good.hash] and [t.hash for t in todo] == ["bad"]  # failed is redone


def _fake_run(root: Path, h: str, key: str, data: str, obj: str, options: dict, seed: int, status: str, metrics: dict):
    d = root / "runs" / h
    d.mkdir(parents=True)
    config = {
        "hash": h,
        "config_key": key,
        "seed": seed,
        "train": {"iterations": 100},
        "objective": {"name": obj, "options": options},
        "prior": {"name": "sg", "options": {}},
        "data": {"name": data, "options": {}},
    }
    atomic_write_json(d / "config.json", config)
    if status != "unfinished":
        atomic_write_json(
            d / "metrics.json", {"status": status, "metrics": metrics, "directions": {"kl": "min", "acc": "max"}}
        )


def test_leaderboard_aggregates_ranks_and_counts(tmp_path):
    _fake_run(tmp_path, "a0", "A", "rings", "soft", {"beta_kl": 0.1}, 0, "finished", {"kl": 1.0, "acc": 0.5})
    _fake_run(tmp_path, "a1", "A", "rings", "soft", {"beta_kl": 0.1}, 1, "finished", {"kl": 3.0, "acc": 0.7})
    _fake_run(tmp_path, "a2", "A", "rings", "soft", {"beta_kl": 0.1}, 2, "diverged", {})
    _fake_run(tmp_path, "b0", "B", "rings", "soft", {"beta_kl": 0.5}, 0, "finished", {"kl": 1.5, "acc": 0.9})
    _fake_run(tmp_path, "b1", "B", "rings", "soft", {"beta_kl": 0.5}, 1, "unfinished", {})
    _fake_run(tmp_path, "c0", "C", "8gaussians", "vae", {"beta_kl": 1.0}, 0, "finished", {"kl": 9.0, "acc": 0.1})
    rows, directions = lb.build_rows(lb.collect(tmp_path))
    assert directions == {"kl": "min", "acc": "max"}
    assert lb.rank(rows, directions, None, "data") == "kl"
    by = {r.key: r for r in rows}
    assert by["A"].stats["kl"] == pytest.approx((2.0, 1.0, 2))  # mean, std (ddof=0), n
    assert (by["A"].finished, by["A"].diverged, by["A"].n_runs) == (2, 1, 3)
    assert by["B"].unfinished == 1 and by["B"].stats["kl"] == (1.5, 0.0, 1)
    assert (by["B"].rank, by["A"].rank, by["C"].rank) == (1, 2, 1)  # ranked within each dataset
    assert by["A"].label == "soft,beta_kl=0.1"  # only the options that vary within soft
    header, body, marks = lb.table_data(rows, directions, "data")
    row_b = body[[r.key for r in rows].index("B")]
    assert row_b[header.index("kl ↓")] == "1.5"  # one seed: no "± 0"; the column's precision from A's std of 1.0
    assert body[[r.key for r in rows].index("A")][header.index("kl ↓")] == "2.0 ± 1.0"
    assert marks[[r.key for r in rows].index("B")][header.index("acc ↑")]  # best acc within rings
    assert lb.rank(rows, directions, "acc", "data") == "acc" and by["B"].rank == 1
    with pytest.raises(UsageError, match="unknown metric 'fid'"):
        lb.rank(rows, directions, "fid", "data")
    data = json.loads(lb.to_json(rows, directions, "kl"))
    assert {r["objective"] for r in data["rows"]} == {"soft,beta_kl=0.1", "soft,beta_kl=0.5", "vae"}
    csv_text = lb.to_csv(rows, directions)
    assert csv_text.splitlines()[0].startswith("rank,data,objective,prior,backbone,published,n,runs,diverged")
    assert "<b>" in lb.to_html(header, body, marks, "t") and "**" in lb.to_markdown(header, body, marks)


def test_leaderboard_cli_errors(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path), "--format", "xls"]) == 2


def _sweep_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "introzoo.cli",
        "sweep",
        "-o",
        "vae,soft,num_vae=20",
        "-d",
        "8gaussians,rings",
        "--seeds",
        "2",
        "-n",
        "60",
        *CHEAP,
        *SMALL,
        "--workers",
        "2",
        "--out",
        str(out),
        "-q",
        *extra,
    ]


def _leaderboard(out: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "introzoo.cli", "leaderboard", str(out), "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(_sweep_cmd(ref), check=True, capture_output=True)
    proc = subprocess.Popen(_sweep_cmd(cut), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        done = list((cut / "runs").glob("*/metrics.json")) if (cut / "runs").exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-run
    proc.wait()
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in (cut / "runs").glob("*/metrics.json")}
    assert 2 <= len(finished_before) < 8
    subprocess.run(_sweep_cmd(cut), check=True, capture_output=True)
    assert _leaderboard(cut) == _leaderboard(ref)
    events = [json.loads(line) for line in (cut / "events.jsonl").read_text().splitlines()]
    starts = {}
    for e in events:
        if e["event"] == "start":
            starts[e["run"]] = starts.get(e["run"], 0) + 1
    for run, mtime in finished_before.items():
        assert starts[run] == 1, f"finished run {run} was trained again"
        assert (cut / "runs" / run / "metrics.json").stat().st_mtime_ns == mtime
    assert len(list((cut / "runs").glob("*/metrics.json"))) == 8


@pytest.mark.slow
def test_submitit_executor_matches_local(tmp_path):
    pytest.importorskip("submitit")
    base = ["sweep", "-o", "vae,soft,num_vae=10", "-d", "rings", "--seeds", "1", "-n", "30", *CHEAP, *SMALL, "-q"]
    assert main([*base, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "sub"), "-e", "submitit,cluster=local,poll=0.2"]) == 0
    assert _leaderboard(tmp_path / "sub") == _leaderboard(tmp_path / "local")


@pytest.mark.slow
def test_smoke_benchmark_leaderboard(tmp_path):
    out = tmp_path / "smoke"
    # the file's grid and network, 500 of its 900 iterations (200 past soft's warm-up), a coarser gnelbo grid
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "introzoo.cli",
            "sweep",
            str(ROOT / "benchmarks" / "toy2d_smoke.toml"),
            "-n",
            "500",
            "--metric",
            "kl",
            "--metric",
            "jsd",
            "--metric",
            "gnelbo,grid=64",
            "--workers",
            "2",
            "--out",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    board = _leaderboard(out)
    assert board["sort"] == "kl" and board["directions"] == {"kl": "min", "jsd": "min", "gnelbo": "min"}
    rows = {row["objective"].split(",")[0]: row for row in board["rows"]}
    assert set(rows) == {"vae", "soft"}
    for row in rows.values():
        assert row["n"] == 2 and row["runs"] == 2 and row["diverged"] == 0
        assert set(row["metrics"]) == {"kl", "jsd", "gnelbo"}
        assert all(m["n"] == 2 and m["std"] >= 0 for m in row["metrics"].values())
    # the unmistakable case: a collapsed VAE (beta_rec=0.05, beta_kl=1) loses to Soft-IntroVAE on KL
    assert rows["soft"]["rank"] == 1 and rows["vae"]["rank"] == 2
    assert rows["soft"]["metrics"]["kl"]["mean"] < rows["vae"]["metrics"]["kl"]["mean"]


def test_select_protocol_reruns_the_best_with_all_seeds(tmp_path, capsys):
    out = tmp_path / "sel"
    args = [
        "sweep",
        "-o",
        "vae,beta_rec=0.8,beta_kl=0.05|1.0",
        "-d",
        "8gaussians",
        "--seeds",
        "2",
        "-n",
        "150",
        *SMALL,
        "--metric",
        "kl,n_samples=2000",
        "--select",
        "kl",
        "--workers",
        "1",
        "--out",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    selection = json.loads((out / "selection.json").read_text())
    assert selection["metric"] == "kl" and len(selection["keys"]) == 1
    runs = list((out / "runs").glob("*/metrics.json"))
    assert len(runs) == 3  # 2 configurations x seed 0, then the best one's seed 1
    capsys.readouterr()
    assert main(["leaderboard", str(out), "-f", "json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert len(board["rows"]) == 1 and board["rows"][0]["n"] == 2
    assert main(["leaderboard", str(out), "-f", "json", "--all"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert len(everything["rows"]) == 2
    chosen = [r for r in everything["rows"] if r["n"] == 2][0]
    other = [r for r in everything["rows"] if r["n"] == 1][0]
    # chosen by its seed-0 KL; seed 0 of the chosen is no worse than the other's seed 0
    seed0 = {}
    for p in runs:
        cfg = json.loads((p.parent / "config.json").read_text())
        if cfg["seed"] == 0:
            seed0[cfg["config_key"]] = json.loads(p.read_text())["metrics"]["kl"]
    assert seed0[selection["keys"][0]] == min(seed0.values())
    assert chosen["objective"] != other["objective"]


@pytest.mark.slow
def test_resume_every_continues_an_interrupted_run(tmp_path):
    """``--resume-every``: a sweep killed mid-run continues that run from its last resume point (noted in
    events.jsonl) and ends with the result of an uninterrupted sweep."""
    cmd = (
        lambda out, *extra: [
            sys.executable,
            "-m",
            "introzoo.cli",
            "sweep",
            "-o",
            "soft",
            "-d",
            "rings",  # noqa: E731
            "--seeds",
            "1",
            "-n",
            "600",
            "--batch-size",
            "64",
            *CHEAP,
            *SMALL[:2],
            "--workers",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
            "-q",
            *extra,
        ]
    )
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(cmd(ref), check=True, capture_output=True)
    proc = subprocess.Popen(
        cmd(cut, "--resume-every", "0.05"), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list(cut.glob("runs/*/resume.pt")):
        time.sleep(0.05)
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(cut.glob("runs/*/resume.pt")) and not list(cut.glob("runs/*/metrics.json"))
    subprocess.run(cmd(cut, "--resume-every", "0.05"), check=True, capture_output=True)
    events = [json.loads(line) for line in (cut / "events.jsonl").read_text().splitlines()]
    resumed = [e for e in events if e["event"] == "resumed"]
    assert len(resumed) == 1 and 0 < resumed[0]["iteration"] < 600
    assert not list(cut.glob("runs/*/resume.pt"))
    assert _leaderboard(cut) == _leaderboard(ref)
