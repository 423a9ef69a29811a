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

import numpy as np
import pytest
import torch

from introzoo import plugins
from introzoo import sweep_pack as sp
from introzoo.cli import main
from introzoo.config import RunConfig, resolve
from introzoo.metrics.base import EvalContext
from introzoo.metrics.toy2d import JSD, KL, Gnelbo, GnelboConfig, HistConfig, histogram, histograms
from introzoo.pack import evaluate_pack
from introzoo.runs import RunDir
from introzoo.sweep import SweepSpec, expand
from introzoo.train import build

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
    spec = SweepSpec(objective=["vae,beta_kl=0.1|0.5", "soft,beta_neg=0.5|1.0,num_vae=10|20"], regularizer=["none", "factor"],
                     data=["8gaussians", "rings"], seeds=2, **TINY)
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
    assert sizes == {("vae", "8gaussians"): [3, 1], ("vae", "rings"): [3, 1],
                     ("soft", "8gaussians"): [3, 3, 2], ("soft", "rings"): [3, 3, 2]}
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
    import introzoo.pack

    real = introzoo.pack.train_pack

    def checked(runs, dirs, *a, **k):  # while the pack trains, no other process can claim a member
        assert all(RunDir(d).claim(wait=False) is None for d in dirs)
        return real(runs, dirs, *a, **k)

    monkeypatch.setattr(introzoo.pack, "train_pack", checked)
    reg = plugins.registry()
    tasks = expand(SweepSpec(objective=["vae,beta_kl=0.1|0.5"], seeds=2, backbone=["mlp,hidden=16,layers=1"], **TINY),
                   reg, sweep_dir=tmp_path)
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


# ---------------------------------------------------------------- batched 2D metrics

def _contexts(n: int, data: str = "rings") -> list[EvalContext]:
    reg = plugins.registry()
    ctxs = []
    for seed in range(n):
        run = resolve(RunConfig(objective="vae", data=data, seed=seed, backbone="mlp,hidden=24,layers=1", device="cpu"), reg)
        b = build(run)
        with torch.no_grad():  # weights far from the initial ones, different per member
            for p in b.model.parameters():
                p.mul_(1.5 + 0.1 * seed)
        ctxs.append(EvalContext(b.model, b.dataset, b.device, seed))
    return ctxs


def _fresh(ctxs):
    return [EvalContext(c.model, c.dataset, c.device, c.seed) for c in ctxs]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-6)])
def test_batched_2d_metrics_equal_per_run_metrics(dtype, tol):
    with default_dtype(dtype):
        ctxs = _contexts(5)
        metrics = [Gnelbo(GnelboConfig(grid=128, n_data=2000)), KL(HistConfig(n_samples=3000, bins=50)),
                   JSD(HistConfig(n_samples=3000, bins=50))]
        for m in metrics:
            batched = m.compute_many(_fresh(ctxs))
            assert batched is not None
            solo = [m.compute(c) for c in _fresh(ctxs)]
            for b, s in zip(batched, solo):
                (k, v), = s.items()
                assert abs(b[k] - v) <= tol * abs(v), (k, b[k], v)
            assert len({round(next(iter(s.values())), 6) for s in solo}) == len(solo)  # the members differ


def test_evaluate_pack_batches_shared_metrics_and_keeps_each_members_order(monkeypatch):
    with default_dtype(torch.float64):
        _evaluate_pack_case(monkeypatch)


def _evaluate_pack_case(monkeypatch):
    ctxs = _contexts(3)
    lists = [[KL(HistConfig(n_samples=500)), Gnelbo(GnelboConfig(grid=32, n_data=300))],
             [Gnelbo(GnelboConfig(grid=32, n_data=300)), KL(HistConfig(n_samples=500))],
             [KL(HistConfig(n_samples=500, bins=20))]]  # other options: its own group, computed alone
    calls = []
    for cls in (KL, Gnelbo):
        orig = cls.compute_many
        monkeypatch.setattr(cls, "compute_many", lambda self, cs, orig=orig: calls.append(len(cs)) or orig(self, cs))
    out = evaluate_pack(lists, _fresh(ctxs))
    assert sorted(calls) == [2, 2]
    for (values, directions), metrics, ctx in zip(out, lists, _fresh(ctxs)):
        ref = {}
        for m in metrics:
            ref.update(m.compute(EvalContext(ctx.model, ctx.dataset, ctx.device, ctx.seed)))
        assert list(values) == list(ref)
        assert all(abs(values[k] - ref[k]) <= 1e-10 * abs(ref[k]) for k in ref)


def test_histograms_are_numpys_bin_for_bin():
    rng = np.random.default_rng(0)
    r, bins = 2.0, 10
    edges = np.linspace(-r, r, bins + 1)
    pts = rng.uniform(-2.5, 2.5, size=(3, 400, 2))
    pts[0, :11, 0] = edges  # every edge, the last one included
    pts[1, :11, 1] = edges
    pts[2, :5] = [-r, -r]
    got = histograms(pts, bins, r)
    for i in range(3):
        assert np.array_equal(got[i], histogram(pts[i], bins, r))


def test_batched_metrics_decline_models_that_do_not_batch():
    reg = plugins.registry()
    run = resolve(RunConfig(objective="vae", prior="mog:3", data="rings", backbone="mlp,hidden=8,layers=1"), reg)
    b = build(run)
    ctxs = [EvalContext(b.model, b.dataset, b.device, s) for s in range(2)]
    assert Gnelbo(GnelboConfig(grid=16, n_data=100)).compute_many(ctxs) is None  # Monte Carlo KL
    assert KL(HistConfig(n_samples=100)).compute_many(ctxs) is None


# ---------------------------------------------------------------- the smoke benchmark, packed

SMOKE = [str(ROOT / "benchmarks" / "toy2d_smoke.toml"), "-n", "320", "-b", "mlp,hidden=64,layers=2", "-q"]
#: float32: a pack's batched products round differently from a solo run's (docs/packing.md)
LEADERBOARD_TOL = 1e-6


def _sweep(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "introzoo.cli", "sweep", *SMOKE, "--out", str(out), *extra]


def _board(out: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "introzoo.cli", "leaderboard", str(out), "-f", "json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def _same_board(a: dict, b: dict, tol: float) -> None:
    assert a["sort"] == b["sort"] and a["directions"] == b["directions"]
    assert [(r["objective"], r["rank"], r["n"], r["runs"]) for r in a["rows"]] == \
           [(r["objective"], r["rank"], r["n"], r["runs"]) for r in b["rows"]]
    for ra, rb in zip(a["rows"], b["rows"]):
        for k, m in rb["metrics"].items():
            assert abs(ra["metrics"][k]["mean"] - m["mean"]) <= tol * abs(m["mean"]), (ra["objective"], k)
            assert abs(ra["metrics"][k]["std"] - m["std"]) <= tol * abs(m["mean"]), (ra["objective"], k)


def _starts(out: Path) -> Counter:
    events = map(json.loads, (out / "events.jsonl").read_text().splitlines())
    return Counter(e["run"] for e in events if e["event"] == "start")


@pytest.mark.slow
def test_smoke_sweep_packed_equals_unpacked_and_resumes_after_kill_mid_pack(tmp_path):
    ref, packed, cut = tmp_path / "ref", tmp_path / "packed", tmp_path / "cut"
    subprocess.run(_sweep(ref, "--workers", "2"), check=True, capture_output=True)
    subprocess.run(_sweep(packed, "--pack", "16", "--workers", "2"), check=True, capture_output=True)
    _same_board(_board(packed), _board(ref), LEADERBOARD_TOL)
    runs = [json.loads(p.read_text()) for p in (packed / "runs").glob("*/metrics.json")]
    assert len(runs) == 4 and all(m["packed"] == 2 for m in runs)  # vae x 2 seeds, soft x 2 seeds

    # one worker: the first pack ends, the second is killed while it trains
    proc = subprocess.Popen(_sweep(cut, "--pack", "16", "--workers", "1"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    subprocess.run(_sweep(cut, "--pack", "16", "--workers", "1"), check=True, capture_output=True)
    assert _board(cut) == _board(packed)  # the same packs again: the same numbers
    _same_board(_board(cut), _board(ref), LEADERBOARD_TOL)
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
    base = ["sweep", "-o", "vae,beta_kl=0.2|1.0", "-d", "rings", "--seeds", "1", "-n", "30",
            "-b", "mlp,hidden=16,layers=1", "-m", "kl,n_samples=300", "-q"]
    assert main([*base, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "sub"), "--pack", "4", "-e", "submitit,cluster=local,poll=0.2"]) == 0
    _same_board(_board(tmp_path / "sub"), _board(tmp_path / "local"), LEADERBOARD_TOL)
    submits = [json.loads(x) for x in (tmp_path / "sub" / "events.jsonl").read_text().splitlines()
               if '"submit"' in x]
    assert len(submits) == 2 and len({e["job"] for e in submits}) == 1  # one array task for the pack
