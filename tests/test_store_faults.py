"""Faults of the run store: two sweep processes on one store at once, and a disk that fills up mid-run
(kill -9 of a sweep and its workers is tests/test_sweep.py::test_sigkill_then_resume_equals_uninterrupted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from introzoo.cli import main

SMALL = ["-b", "mlp,hidden=16,layers=1", "-m", "kl,n_samples=300", "-n", "40", "--threads", "1", "-q"]


def _starts(store: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in (store / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "start":
            counts[e["run"]] = counts.get(e["run"], 0) + 1
    return counts


def _statuses(store: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["status"] for p in (store / "runs").glob("*/metrics.json")}


@pytest.mark.slow
def test_two_sweeps_at_once_train_each_run_once(tmp_path):
    store = tmp_path / "store"
    cmd = [
        sys.executable,
        "-m",
        "introzoo.cli",
        "sweep",
        "-o",
        "vae",
        "--seeds",
        "4",
        "--workers",
        "1",
        "--out",
        str(store),
        *SMALL,
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _starts(store) == {h: 1 for h in _statuses(store)}, "a run was trained by both sweeps"
    assert list(_statuses(store).values()) == ["finished"] * 4
    for d in (store / "runs").iterdir():  # nothing half-written: every file of a run is complete
        json.loads((d / "config.json").read_text())
        assert (d / "checkpoint.pt").stat().st_size > 0 and not list(d.glob(".*.tmp"))


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_disk_full_mid_run_keeps_finished_runs_and_a_rerun_completes(small_disk, capsys):
    store = small_disk / "store"
    base = ["sweep", "-o", "vae", "--workers", "1", "--out", str(store), *SMALL]
    assert main([*base, "--seeds", "2"]) == 0
    finished = {p.relative_to(store): p.stat().st_mtime_ns for p in (store / "runs").rglob("*") if p.is_file()}
    # fill the disk, leaving room to start the new runs but not to write their checkpoints and plots
    filler = small_disk / "filler"
    st = os.statvfs(small_disk)
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize - 48 * 1024)
    rc = main([*base, "--seeds", "4"])
    err = capsys.readouterr().err
    assert rc in (2, 4) and "Traceback" not in err and "No space left on device" in err
    for rel, mtime in finished.items():
        assert (store / rel).stat().st_mtime_ns == mtime, f"{rel} of a finished run changed"
    assert list(_statuses(store).values()).count("finished") == 2
    filler.unlink()
    assert main([*base, "--seeds", "4"]) == 0
    assert list(_statuses(store).values()) == ["finished"] * 4
    starts = _starts(store)
    assert all(starts[rel.parts[1]] == 1 for rel in finished), "a finished run was trained again"
    capsys.readouterr()
    assert main(["leaderboard", str(store), "-f", "json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [row["n"] for row in board["rows"]] == [4]
