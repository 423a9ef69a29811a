"""Sweeps with packs (``introzoo sweep --pack``): grouping, claims, the pack size rule, the 2D metrics
evaluated over a pack, the smoke benchmark's leaderboard with and without packs, and kill -9 mid-pack."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from introzoo import plugins
from introzoo.sweeps import packs as sp
from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.training.run_dir import RunDir
from introzoo.sweeps.grid import SweepSpec, expand
from introzoo.training.loop import build

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(iterations=30, batch_size=32, metrics=["kl,n_samples=300"])


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# ---------------------------------------------------------------- grouping


def test_compatible_runs_are_packed_up_to_the_size_and_the_rest_run_alone():
    reg = plugins.registry()
    spec = SweepSpec(
        objective=["vae,beta_kl=0.1|0.5", "soft,beta_neg=0.5|1.0,num_vae=10|20"],
        regularizer=["none", "factor"],
        data=["8gaussians", "rings"],
        seeds=2,
        **TINY,
    )
    tasks = expand(spec, reg)
    assert len(tasks) == (2 + 4) * 2 * 2 * 2
    units = sp.pack_units(tasks, 3)
    packs = [u for u in units if isinstance(u, sp.PackTask)]
    alone = [u for u in units if not isinstance(u, sp.PackTask)]
    # factor does not pack: its 24 runs alone; sg: vae 4 runs and soft 8 runs per dataset -> packs of 3, 3, 2, 1...
    assert sorted(t.hash for u in units for t in sp.members(u)) == sorted(t.hash for t in tasks)
    assert all([r["name"] for r in t.config["regularizers"]] == ["factor"] for t in alone if t.pack_key is None)
    assert sum(t.pack_key is None for t in alone) == 24
    assert all(len(p.members) <= 3 for p in packs)
    sizes = {}
    for u in units:
        ms = sp.members(u)
        if ms[0].pack_key is not None:
            key = (ms[0].config["objective"]["name"], ms[0].config["data"]["name"])
            sizes.setdefault(key, []).append(len(ms))
            assert {m.pack_key for m in ms} == {ms[0].pack_key}
            assert len({m.config["data"]["name"] for m in ms}) == 1
            assert len({m.config["objective"]["name"] for m in ms}) == 1
    assert sizes == {
        ("vae", "8gaussians"): [3, 1],
        ("vae", "rings"): [3, 1],
        ("soft", "8gaussians"): [3, 3, 2],
        ("soft", "rings"): [3, 3, 2],
    }
    assert sp.pack_units(tasks, 1) == tasks  # no packing
    # a training option other than lr and its schedule separates packs
    other = expand(SweepSpec(objective=["vae"], seeds=2, batch_size=16, iterations=30), reg)
    assert other[0].pack_key != tasks[0].pack_key


def test_auto_pack_size_follows_the_free_gpu_memory(monkeypatch):
    reg = plugins.registry()
    config = expand(SweepSpec(objective=["soft"], data=["8gaussians"]), reg)[0].config
    per = sp.member_bytes(config)  # 3x256 MLP, batch 512: about 73 MB
    assert 60e6 < per < 80e6
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (10 * per, 80 * per))
    assert sp.auto_pack_size([config], "cuda") == 8  # floor(0.8 x 10)
    assert sp.auto_pack_size([config], "cuda", workers=2) == 4
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (per // 2, 80 * per))
    assert sp.auto_pack_size([config], "cuda") == 1  # never below one member
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (10_000 * per, 80_000 * per))
    assert sp.auto_pack_size([config], "auto") == sp.PACK_MAX
    assert sp.auto_pack_size([config], "cpu") == sp.PACK_CPU


def test_member_bytes_counts_parameters_and_activations():
    reg = plugins.registry()
    config = expand(SweepSpec(objective=["soft"], backbone=["mlp,hidden=8,layers=1"], batch_size=10), reg)[0].config
    run = resolve(RunConfig(objective="soft", backbone="mlp,hidden=8,layers=1", batch_size=10), reg)
    n_params = sum(p.numel() for p in build(run).model.parameters())
    assert sp.member_bytes(config) == 4 * (4 * n_params + 16 * 10 * 2 * 16)


def test_sweep_file_pack_key(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('[sweep]\nobjective = ["vae"]\nseeds = 3\npack = 2\n')
    assert main(["sweep", str(f), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert "packs of at most 2: 2 runs in 1 packs, 1 alone" in capsys.readouterr().out
    assert main(["sweep", str(f), "--dry-run", "--pack", "3", "--out", str(tmp_path / "o")]) == 0  # the flag wins
    assert "3 runs in 1 packs" in capsys.readouterr().out
    f.write_text('[sweep]\npack = 0\n')
    assert main(["sweep", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "s.toml" in err and "pack" in err and len(err.strip().splitlines()) == 1


def test_pack_option_errors_are_one_line(capsys):
    for bad in ("0", "x", "-3"):
        assert main(["sweep", "-o", "vae", "--pack", bad, "--dry-run", "-q"]) == 2
        err = capsys.readouterr().err
        assert "--pack" in err and "'auto'" in err and "Traceback" not in err
    assert main(["sweep", "-o", "vae", "--device", "gpu", "--dry-run", "-q"]) == 2
    assert "--device" in capsys.readouterr().err


# ---------------------------------------------------------------- claims


def test_a_pack_claims_every_member_and_skips_one_held_elsewhere(tmp_path, monkeypatch):
    import introzoo.packing.loop

    real = introzoo.packing.loop.train_pack

    def checked(runs, dirs, *a, **k):  # while the pack trains, no other process can claim a member
        assert all(RunDir(d).claim(wait=False) is None for d in dirs)
        return real(runs, dirs, *a, **k)

    monkeypatch.setattr(introzoo.packing.loop, "train_pack", checked)
    reg = plugins.registry()
    tasks = expand(
        SweepSpec(objective=["vae,beta_kl=0.1|0.5"], seeds=2, backbone=["mlp,hidden=16,layers=1"], **TINY),
        reg,
        sweep_dir=tmp_path,
    )
    held = RunDir(tasks[1].run_dir).claim(wait=False)  # another process's claim (its own open file)
    done = tasks[2]
    RunDir(done.run_dir).create()
    (done.run_dir / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": {"kl": 1.0}}))
    try:
        out = sp.execute_pack([str(t.run_dir) for t in tasks], [t.config for t in tasks], 1, str(tmp_path), wait=False)
    finally:
        held.release()
    assert [r["status"] for r in out] == ["finished", "busy", "finished", "finished"]
    assert out[2].get("elsewhere") and not out[0].get("elsewhere")
    assert not RunDir(tasks[1].run_dir).config.exists()  # the held run was not touched
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert {e["run"] for e in starts} == {tasks[0].hash, tasks[3].hash} and {e["members"] for e in starts} == {2}
    for t in (tasks[0], tasks[3]):
        assert json.loads((t.run_dir / "metrics.json").read_text())["packed"] == 2


# ---------------------------------------------------------------- the smoke benchmark, packed

#: the smoke benchmark's grid, 400 iterations (100 past soft's warm-up), a narrower network (mlp 3x64: the
#: default 3x256 packs bit for bit in tests/test_pack_float32.py) and smaller metrics
SMOKE = [
    str(ROOT / "benchmarks" / "toy2d_smoke.toml"),
    "-n",
    "400",
    "-q",
    "-b",
    "mlp,hidden=64",
    "--metric",
    "kl,n_samples=1000",
    "--metric",
    "jsd,n_samples=1000",
    "--metric",
    "gnelbo,grid=64,n_data=512",
]


def _sweep(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "introzoo.cli", "sweep", *SMOKE, "--out", str(out), *extra]


def _board(out: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "introzoo.cli", "leaderboard", str(out), "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout)


def _content(run: Path) -> tuple:
    """A run's results without its timings: metrics and directions, the history's losses."""
    m = json.loads((run / "metrics.json").read_text())
    history = [
        {k: v for k, v in json.loads(x).items() if k != "time_s"} for x in (run / "history.jsonl").read_text().splitlines()
    ]
    return m["status"], m["metrics"], m["directions"], history


def _starts(out: Path) -> Counter:
    events = map(json.loads, (out / "events.jsonl").read_text().splitlines())
    return Counter(e["run"] for e in events if e["event"] == "start")


@pytest.mark.slow
def test_smoke_sweep_packed_equals_unpacked_and_resumes_after_kill_mid_pack(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(_sweep(ref, "--workers", "2"), check=True, capture_output=True)

    # one worker: the first pack ends, the second is killed while it trains
    proc = subprocess.Popen(
        _sweep(cut, "--pack", "4", "--workers", "1"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        started = list((cut / "runs").glob("*/history.jsonl")) if (cut / "runs").exists() else []
        done = list((cut / "runs").glob("*/metrics.json")) if (cut / "runs").exists() else []
        if len(done) == 2 and len(started) == 4:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in (cut / "runs").glob("*/metrics.json")}
    assert len(before) == 2, "the kill was not mid-pack"
    half = [d for d in (cut / "runs").iterdir() if d.name not in before]
    assert all((d / "config.json").exists() and not (d / "metrics.json").exists() for d in half)
    subprocess.run(_sweep(cut, "--pack", "4", "--workers", "1"), check=True, capture_output=True)
    assert _board(cut) == _board(ref)  # float32: the same leaderboard, packed and cut or solo
    runs = [json.loads(p.read_text()) for p in (cut / "runs").glob("*/metrics.json")]
    assert len(runs) == 4 and all(m["packed"] == 2 for m in runs)  # vae x 2 seeds, soft x 2 seeds
    for d in (ref / "runs").iterdir():  # and the same run store, file by file
        assert _content(cut / "runs" / d.name) == _content(d)
    starts = _starts(cut)
    for run, mtime in before.items():
        assert starts[run] == 1, f"finished run {run} was trained again"
        assert (cut / "runs" / run / "metrics.json").stat().st_mtime_ns == mtime
    assert all(starts[d.name] == 2 for d in half)
    for d in (cut / "runs").iterdir():
        assert json.loads((d / "metrics.json").read_text())["status"] == "finished"
        assert not list(d.glob(".*.tmp"))


@pytest.mark.slow
def test_submitit_array_task_trains_a_pack(tmp_path):
    pytest.importorskip("submitit")
    base = [
        "sweep",
        "-o",
        "vae,beta_kl=0.2|1.0",
        "-d",
        "rings",
        "--seeds",
        "1",
        "-n",
        "30",
        "-b",
        "mlp,hidden=16,layers=1",
        "-m",
        "kl,n_samples=300",
        "-q",
    ]
    assert main([*base, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "sub"), "--pack", "4", "-e", "submitit,cluster=local,poll=0.2"]) == 0
    assert _board(tmp_path / "sub") == _board(tmp_path / "local")  # float32: equal, packed or not
    submits = [json.loads(x) for x in (tmp_path / "sub" / "events.jsonl").read_text().splitlines() if '"submit"' in x]
    assert len(submits) == 2 and len({e["job"] for e in submits}) == 1  # one array task for the pack
