"""The submitit executor on a real Slurm cluster with job accounting (``tests/slurm/cluster.sh``).

A sweep through job arrays gives the leaderboard the local executor gives; a task cancelled mid-run is
recorded as CANCELLED and a rerun submits exactly the unfinished run, which resumes; a preempted run
requeues and resumes from the resume point it saved on Slurm's signal; a run killed at its time limit
is recorded as TIMEOUT. Skipped, with the reason, where no cluster answers at ``$SLURM_CONF``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from introzoo.cli import main

CHEAP = ["--metric", "kl,n_samples=500", "--metric", "gnelbo,grid=32,n_data=256"]
EXIT_FAILED_RUNS = 4


def _cluster_problem() -> str | None:
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        return 'no Slurm cluster: SLURM_CONF is not set (start one with: eval "$(tests/slurm/cluster.sh start)")'
    if not shutil.which("sinfo"):
        return "no Slurm cluster: the Slurm client commands are not installed"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"no Slurm cluster: sinfo did not answer (SLURM_CONF={conf})"
    if r.returncode != 0 or not r.stdout.strip():
        return f"no Slurm cluster answers at SLURM_CONF={conf}: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
    if importlib.util.find_spec("submitit") is None:
        return "submitit is not installed (pip install -e '.[slurm]')"
    return None


PROBLEM = _cluster_problem()
if PROBLEM and os.environ.get("INTROZOO_REQUIRE_SLURM"):  # CI's Slurm step: a missing cluster is an error
    raise RuntimeError(PROBLEM)
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "introzoo.cli", *args]


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _leaderboard(out: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["leaderboard", str(out), "-f", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _metrics(out: Path, run: str) -> dict:
    return json.loads((out / "runs" / run / "metrics.json").read_text())


def _sacct(job: str, final: bool = True, timeout: float = 30) -> list[str]:
    """Every accounting record of a job (a requeued job has one per attempt), oldest first; with
    ``final``, waits until the last one is an end state (the database lags the controller a little)."""
    deadline = time.time() + timeout
    while True:
        r = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-D", "-o", "JobID,State", "-j", job.split("_")[0]],
            capture_output=True,
            text=True,
            check=True,
        )
        states = [s.split()[0] for j, _, s in (ln.partition("|") for ln in r.stdout.splitlines()) if j == job]
        if not final or (states and states[-1] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING")):
            return states
        if time.time() > deadline:
            return states
        time.sleep(0.5)


def _wait_for(what: str, check, timeout: float = 120, proc: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.1)
    pytest.fail(f"no {what} after {timeout} s")


def _submitted(out: Path) -> dict[str, str]:
    """run -> the job that last ran it."""
    if not (out / "events.jsonl").exists():
        return {}
    return {e["run"]: e["job"] for e in _events(out) if e["event"] == "submit"}


def _history(out: Path, run: str) -> list[dict]:
    path = out / "runs" / run / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module", autouse=True)
def time_limited_sweep(tmp_path_factory):
    """Started before the other tests and checked last, since Slurm enforces time limits in minutes
    (checked every 30 s): one run far longer than its 1-minute limit, in the partition whose jobs are
    never preempted (so that the preemption test preempts only its own job)."""
    out = tmp_path_factory.mktemp("timeout") / "sweep"
    proc = subprocess.Popen(
        _cli(
            "sweep",
            "-o",
            "vae",
            "-d",
            "rings",
            "-n",
            "1000000",
            "--batch-size",
            "64",
            "--metric",
            "kl,n_samples=200",
            "--out",
            str(out),
            "-q",
            "-e",
            "submitit,partition=steady,time=1,checkpoint=600,poll=0.5",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    started = lambda: any(e["event"] == "start" for e in _events(out)) if (out / "events.jsonl").exists() else False  # noqa: E731
    _wait_for("time-limited run training", started, timeout=90, proc=proc)
    # it waits for the clock, not for CPU time: let it have only what the other tests leave
    (job,) = _submitted(out).values()
    listed = subprocess.run(["scontrol", "listpids", job], capture_output=True, text=True).stdout.split()
    tids = [t.name for pid in listed if pid.isdigit() for t in Path(f"/proc/{pid}/task").glob("*")]
    subprocess.run(["renice", "-n", "19", "-p", *tids], capture_output=True)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        for job in _submitted(out).values():
            subprocess.run(["scancel", job], check=False)


def test_sweep_through_slurm_equals_local(tmp_path, capsys):
    """The CI smoke sweep: 2 objectives x 2 seeds as one job array; the same leaderboard as the local
    executor's for the same sweep, seeds and threads per run."""
    base = [
        "sweep",
        "-o",
        "vae,soft,num_vae=20",
        "-d",
        "rings",
        "--seeds",
        "2",
        "-n",
        "60",
        "--batch-size",
        "64",
        *CHEAP,
        "--threads",
        "1",
        "-q",
    ]
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    reference = subprocess.Popen(_cli(*base, "--out", str(local), "--workers", "2"), stderr=subprocess.PIPE, text=True)
    assert main([*base, "--out", str(slurm), "-e", "submitit,poll=0.5"]) == 0
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    board = _leaderboard(slurm, capsys)
    assert board == _leaderboard(local, capsys)
    assert [r["n"] for r in board["rows"]] == [2, 2] and set(board["directions"]) == {"kl", "gnelbo"}
    jobs = _submitted(slurm)
    assert len(jobs) == 4 and len({j.split("_")[0] for j in jobs.values()}) == 1  # one array
    for run, job in jobs.items():
        assert _sacct(job) == ["COMPLETED"]  # real accounting
        assert _metrics(slurm, run)["status"] == "finished"
        assert json.loads((slurm / "runs" / run / "config.json").read_text())["train"]["iterations"] == 60


def test_cancelled_task_is_recorded_and_a_rerun_finishes_every_run_once(tmp_path, capsys):
    out = tmp_path / "cancel"
    args = [
        "sweep",
        "-o",
        "vae",
        "-d",
        "rings",
        "--seeds",
        "2",
        "-n",
        "1000",
        "--batch-size",
        "64",
        "--metric",
        "kl,n_samples=500",
        "-e",
        "submitit,poll=0.5,checkpoint=0.2",
        "--out",
        str(out),
        "-q",
    ]
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def mid_run():  # a run with a resume point and no result yet
        runs = out / "runs"
        return (
            next(
                (d.name for d in sorted(runs.iterdir()) if (d / "resume.pt").exists() and not (d / "metrics.json").exists()),
                None,
            )
            if runs.exists()
            else None
        )

    victim = _wait_for("run in the middle of training", mid_run, proc=proc)
    job = _submitted(out)[victim]
    subprocess.run(["scancel", job], check=True)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT_FAILED_RUNS, err
    m = _metrics(out, victim)
    assert m["status"] == "failed" and m["slurm"] == {"job": job, "state": "CANCELLED"}
    assert f"Slurm job {job} CANCELLED" in m["reason"] and f"{victim} failed" in err
    assert _sacct(job) == ["CANCELLED"]
    others = [r for r in _submitted(out) if r != victim]
    assert len(others) == 1 and _metrics(out, others[0])["status"] == "finished"
    kept = (out / "runs" / others[0] / "metrics.json").stat().st_mtime_ns
    n_events = len(_events(out))

    assert main(args) == 0  # the rerun
    rerun = _events(out)[n_events:]
    assert [e["run"] for e in rerun if e["event"] == "submit"] == [victim]  # exactly the unfinished run
    # on scancel's SIGTERM the job saved a resume point at the next iteration and ended; the rerun
    # continued from exactly there
    stopped = [e for e in _events(out)[:n_events] if e["event"] == "stopped"]
    resumed = [e for e in rerun if e["event"] == "resume"]
    assert [e["run"] for e in stopped] == [victim] and 0 < stopped[0]["iteration"] < 1000
    assert len(resumed) == 1 and resumed[0]["run"] == victim
    assert resumed[0]["iteration"] == stopped[0]["iteration"]
    ends = [(e["run"], e["status"]) for e in _events(out) if e["event"] == "end"]
    assert sorted(ends) == sorted([(victim, "finished"), (others[0], "finished")])  # each finished once
    assert (out / "runs" / others[0] / "metrics.json").stat().st_mtime_ns == kept
    assert _metrics(out, victim)["status"] == "finished" and _metrics(out, victim)["iterations"] == 1000
    assert [r["iteration"] for r in _history(out, victim)] == list(range(100, 1001, 100))


def test_run_killed_at_its_time_limit_is_recorded(time_limited_sweep):
    import torch

    proc, out = time_limited_sweep
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == EXIT_FAILED_RUNS, err
    ((run, job),) = _submitted(out).items()
    m = _metrics(out, run)
    assert m["status"] == "failed" and m["slurm"] == {"job": job, "state": "TIMEOUT"}
    assert "time limit of 1 min" in m["reason"]
    assert _sacct(job) == ["TIMEOUT"]
    # Slurm's warning made the run save a resume point and train on; at the limit, its SIGTERM made it
    # save another and end: a rerun with a longer limit continues from there
    events = [e for e in _events(out) if e["event"] in ("time-limit-warning", "stopped")]
    assert [e["event"] for e in events] == ["time-limit-warning", "stopped"]
    assert 0 < events[0]["iteration"] < events[1]["iteration"]
    saved = torch.load(out / "runs" / run / "resume.pt", weights_only=False)
    assert saved["iteration"] == events[1]["iteration"]


def test_preempted_run_requeues_and_resumes_and_a_rerun_waits_for_it(tmp_path, capsys):
    """The run is preempted by a job in 'urgent'; meanwhile its sweep process dies. The same command,
    run again, waits for the requeued job rather than submitting the run a second time; the run
    resumes from the iteration it saved on Slurm's signal and ends as an uninterrupted run."""
    args = ["sweep", "-o", "vae", "-d", "rings", "-n", "1000", "--batch-size", "64", "--metric", "kl,n_samples=500", "-q"]
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    slurm_args = [*args, "--out", str(slurm), "-e", "submitit,poll=0.5,checkpoint=600"]  # no periodic points
    proc = subprocess.Popen(_cli(*slurm_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = _wait_for("submission", lambda: next(iter(_submitted(slurm)), None), proc=proc)
    _wait_for("training progress", lambda: _history(slurm, run), proc=proc)
    # a job in the higher-priority partition that needs this run's CPU (and any idle one)
    idle = int(
        subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True).stdout.split("/")[1]
    )  # allocated/idle/other/total
    subprocess.run(
        ["sbatch", "--parsable", "-p", "urgent", "-c", str(idle + 1), "-o", "/dev/null", "--wrap", "sleep 1"],
        check=True,
        capture_output=True,
    )
    _wait_for("preemption", lambda: [e for e in _events(slurm) if e["event"] == "preempted"], proc=proc)
    proc.kill()  # the sweep process dies; its requeued job stays queued
    proc.communicate()
    assert not (slurm / "runs" / run / "metrics.json").exists()
    reference = subprocess.Popen(_cli(*args, "--out", str(local), "--workers", "1"), stderr=subprocess.PIPE, text=True)
    assert main(slurm_args) == 0
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    job = _submitted(slurm)[run]
    events = [e for e in _events(slurm) if e["event"] in ("submit", "start", "preempted", "resume", "end")]
    assert [e["event"] for e in events] == ["submit", "start", "preempted", "start", "resume", "end"]
    preempted, resumed = events[2], events[4]
    assert preempted["requeued"] and 0 < preempted["iteration"] < 1000
    assert resumed["iteration"] == preempted["iteration"]  # not from the start
    states = _sacct(job)
    assert states[-1] == "COMPLETED" and states[0] in ("REQUEUED", "PREEMPTED") and len(states) == 2
    assert [r["iteration"] for r in _history(slurm, run)] == list(range(100, 1001, 100))
    assert _leaderboard(slurm, capsys) == _leaderboard(local, capsys)  # as if never interrupted
