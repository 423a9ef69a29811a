"""The submitit executor without a cluster: Slurm options from the command line and the sweep file into
the sbatch script, their errors, job states, how an ended job is recorded, and what a run does on
Slurm's signals (the same code runs on a real cluster in tests/slurm/)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from introzoo import plugins

from introzoo.sweeps import slurm as executors
from introzoo.cli import main
from introzoo.sweeps.slurm import SubmititConfig, SubmititExecutor, _JobResumable, _parse_states, _record_end, sbatch_params
from introzoo.training.run_dir import atomic_write_json
from introzoo.sweeps.grid import Task
from introzoo.cli.sweep_run import build_spec, make_executor

submitit = pytest.importorskip("submitit")


@pytest.mark.parametrize(
    "lines,expected",
    [
        (["--qos=high"], {"qos": "high"}),
        (
            ["#SBATCH --account lab", "--exclusive", " --constraint=a100|h100 "],
            {"account": "lab", "exclusive": True, "constraint": "a100|h100"},
        ),
        ([], {}),
    ],
)
def test_sbatch_lines(lines, expected):
    assert sbatch_params(lines) == expected


@pytest.mark.parametrize(
    "line,message",
    [
        ("-q high", "give a long option"),
        ("qos=high", "give a long option"),
        ("--time=10", "use the executor option 'time'"),
        ("--cpus-per-task=4", "use the executor option 'cpus'"),
        ("--array=0-3", "--array is set by the executor"),
        ("--signal=USR1@60", "--signal is set by the executor"),
    ],
)
def test_sbatch_line_errors(line, message):
    with pytest.raises(ValueError, match=message):
        sbatch_params([line])


def _sbatch_script(cfg: SubmititConfig, tmp_path: Path, monkeypatch) -> str:
    """The sbatch script submitit writes for these options (a stand-in srun makes it think it is on
    a Slurm cluster; nothing is submitted)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    ex.update_parameters(**SubmititExecutor(cfg).parameters(True, "introzoo-demo"))
    return ex._executor._make_submission_file_text("python -m job", "uid")


def test_options_become_sbatch_lines(tmp_path, monkeypatch):
    cfg = SubmititConfig(
        partition="gpu",
        time=30,
        cpus=4,
        gpus=1,
        mem_gb=8,
        parallel=16,
        sbatch=["--qos=high", "--account=vision", "--exclusive"],
    )
    script = _sbatch_script(cfg, tmp_path, monkeypatch)
    for line in (
        "--partition=gpu",
        "--time=30",
        "--cpus-per-task=4",
        "--gpus-per-node=1",
        "--mem=8GB",
        "--qos=high",
        "--account=vision",
        "--exclusive",
        "--requeue",
        "--job-name=introzoo-demo",
        "--signal=USR2@90",
    ):
        assert f"#SBATCH {line}\n" in script, line
    assert "srun" in script


def test_signal_comes_at_most_half_the_time_limit_early(tmp_path, monkeypatch):
    script = _sbatch_script(SubmititConfig(time=1), tmp_path, monkeypatch)
    assert "#SBATCH --signal=USR2@30\n" in script and "#SBATCH --time=1\n" in script
    assert "--partition" not in script  # the cluster's default partition


def _sweep_file(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "grid.toml"
    f.write_text('[sweep]\nobjective = "vae"\ndata = "rings"\niterations = 10\n' + body)
    return f


def test_sweep_file_executor_tables_and_command_line_override(tmp_path):
    f = _sweep_file(
        tmp_path,
        'executor = "submitit"\n\n[executor.submitit]\npartition = "cpu"\ntime = 30\n'
        'sbatch = ["--qos=low"]\n\n[executor.local]\nworkers = 3\n',
    )
    reg = plugins.registry()
    spec = build_spec(f)
    _, cfg = make_executor(reg, spec, None, None)
    assert (cfg.partition, cfg.time, cfg.sbatch, cfg.cpus) == ("cpu", 30, ["--qos=low"], 1)
    _, cfg = make_executor(reg, build_spec(f, executor="submitit,time=5,gpus=1"), None, 2)  # -e, --threads
    assert (cfg.partition, cfg.time, cfg.gpus, cfg.cpus) == ("cpu", 5, 1, 2)
    executor, cfg = make_executor(reg, build_spec(f, executor="local"), None, None)  # its own table
    assert cfg.workers == 3 and executor.workers == 3


@pytest.mark.parametrize(
    "body,message",
    [
        (
            '[executor.submitit]\npartion = "cpu"\n',
            "sweep file [executor.submitit]: unknown option 'partion'; did you mean 'partition'?",
        ),
        ('[executor.slurm]\npartition = "cpu"\n', "unknown executor 'slurm'"),
        ('[executor]\npartition = "cpu"\n', "one table per executor"),
        ('executor = "submitit"\n[executor.submitit]\ntime = -5\n', "option 'time'"),
        ('executor = "submitit"\n[executor.submitit]\nsbatch = ["-p gpu"]\n', "give a long option"),
    ],
)
def test_sweep_file_executor_errors_are_one_line(tmp_path, capsys, body, message):
    f = _sweep_file(tmp_path, body)
    assert main(["sweep", str(f), "--dry-run", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_no_slurm_cluster_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    rc = main(
        ["sweep", "-o", "vae", "-d", "rings", "-n", "5", "--out", str(tmp_path / "s"), "-q", "-e", "submitit,cluster=slurm"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cannot use cluster 'slurm'" in err and "cluster=local" in err and "Traceback" not in err


def test_job_states_from_sacct_and_squeue():
    text = "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_1.batch|CANCELLED\n12_[2-4%2]|PENDING\n13|TIMEOUT\n14|RUNNING+\n"
    assert _parse_states(text) == {
        "12_0": "COMPLETED",
        "12_1": "CANCELLED",
        "12_2": "PENDING",
        "12_3": "PENDING",
        "12_4": "PENDING",
        "13": "TIMEOUT",
        "14": "RUNNING",
    }


def test_an_ended_job_is_recorded_unless_its_run_finished(tmp_path):
    task = Task(tmp_path / "runs" / "a", {}, "a", "a")
    out = _record_end(task, "7_1", "TIMEOUT", 30, "log.err")
    stored = json.loads((task.run_dir / "metrics.json").read_text())
    assert out["status"] == stored["status"] == "failed"
    assert stored["slurm"] == {"job": "7_1", "state": "TIMEOUT"}
    assert "Slurm job 7_1 TIMEOUT: killed at its time limit of 30 min" in stored["reason"]
    done = Task(tmp_path / "runs" / "b", {}, "b", "b")
    atomic_write_json(done.run_dir / "metrics.json", {"status": "finished", "metrics": {"kl": 1.0}})
    assert _record_end(done, "7_2", "CANCELLED", 30, "log")["status"] == "finished"  # it finished in time
    assert json.loads((done.run_dir / "metrics.json").read_text())["metrics"] == {"kl": 1.0}


@pytest.mark.parametrize(
    "signals,scontrol,elapsed,outcome",
    [
        ({signal.SIGUSR2, signal.SIGTERM}, "JobState=RUNNING PreemptTime=2026-01-01T00:00:00", 3000, "preempted"),
        ({signal.SIGUSR2}, "JobState=RUNNING PreemptTime=None", 10, "preempted"),  # scancel --signal=USR2
        ({signal.SIGUSR2}, "JobState=RUNNING PreemptTime=None", 3520, "time-limit-warning"),  # 90 s before the limit
        ({signal.SIGTERM}, "JobState=COMPLETING PreemptTime=None", 10, "stopped"),  # scancel, time limit
        ({signal.SIGTERM}, None, 10, "stopped"),  # no scontrol answer
        ({signal.SIGTERM}, "JobState=RUNNING PreemptTime=None", 10, None),  # a stray SIGTERM
    ],
)
def test_what_a_run_does_on_slurm_signals(tmp_path, monkeypatch, signals, scontrol, elapsed, outcome):
    calls = []

    def fake_run(cmd):
        calls.append(cmd)
        return scontrol if cmd[:2] == ["scontrol", "-o"] else ""

    monkeypatch.setattr(executors, "_run_quiet", fake_run)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "44")
    res = _JobResumable(60, str(tmp_path), "run1", time_limit_s=3600, signal_delay_s=90)
    res.started -= elapsed
    for s in signals:
        res.on_signal(s, None)
    assert res.requested and res.due()
    if outcome in ("preempted", "stopped"):
        with pytest.raises(SystemExit):
            res.saved(120)
    else:
        res.saved(120)
    events = (
        [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        if (tmp_path / "events.jsonl").exists()
        else []
    )
    assert [e["event"] for e in events] == ([outcome] if outcome else [])
    if events:
        assert events[0]["iteration"] == 120 and events[0]["job"] == "40_3"
    assert ["scontrol", "-o", "show", "job", "40_3"] in calls  # the array task, never the whole array
    assert (["scontrol", "requeue", "40_3"] in calls) == (outcome == "preempted")
    res.saved(121)  # signals are handled once
    assert len(calls) == (2 if outcome == "preempted" else 1)


class _FakeJob:
    def __init__(self, job_id: str, folder: Path) -> None:
        from types import SimpleNamespace

        self.job_id = job_id
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl", stderr=folder / f"{job_id}.err")

    def result(self):
        return {"status": "finished", "reason": ""}


def test_waiting_reads_results_and_accounting_states(tmp_path, monkeypatch):
    """Per poll: (sacct states, squeue states). A result file wins; a job still COMPLETING is waited for;
    an ended job is recorded with its state (squeue's while the accounting database lags); a preempted
    job that comes back to PENDING is waited for again; a job squeue has forgotten is judged by sacct."""
    polls = iter(
        [
            ({}, {"5_0": "RUNNING", "5_1": "RUNNING", "5_2": "RUNNING", "5_3": "RUNNING"}),
            ({"5_0": "RUNNING"}, {"5_0": "COMPLETING", "5_1": "RUNNING", "5_3": "PREEMPTED"}),  # 5_2: squeue forgot it
            ({"5_0": "RUNNING", "5_2": "TIMEOUT"}, {"5_0": "CANCELLED", "5_1": "RUNNING", "5_3": "PENDING"}),
            ({"5_0": "CANCELLED"}, {"5_0": "CANCELLED", "5_1": "COMPLETED", "5_3": "RUNNING"}),
            ({}, {"5_3": "RUNNING"}),
        ]
    )
    seen: list[tuple[str, str]] = []
    jobs = {_FakeJob(f"5_{i}", tmp_path): Task(tmp_path / "runs" / f"r{i}", {}, f"r{i}", f"r{i}") for i in range(4)}
    by_id = {j.job_id: j for j in jobs}
    calls = {"n": 0}

    def fake_states(ids):
        calls["n"] += 1
        if calls["n"] == 4:  # 5_1 wrote its result; 5_3 (requeued) does so later
            by_id["5_1"].paths.result_pickle.write_bytes(b"")
        if calls["n"] == 5:
            by_id["5_3"].paths.result_pickle.write_bytes(b"")
        return next(polls)

    monkeypatch.setattr(executors, "slurm_states", fake_states)
    monkeypatch.setattr(executors, "FINAL_WAIT_S", 0)
    monkeypatch.setattr(executors.time, "sleep", lambda s: None)
    ex = SubmititExecutor(SubmititConfig(time=7))
    ex._wait(dict(jobs), lambda task, result: seen.append((task.hash, result["status"])), on_slurm=True)
    assert seen == [("r0", "failed"), ("r2", "failed"), ("r1", "finished"), ("r3", "finished")]
    m0 = json.loads((tmp_path / "runs" / "r0" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "runs" / "r2" / "metrics.json").read_text())
    assert m0["slurm"]["state"] == "CANCELLED" and m2["slurm"]["state"] == "TIMEOUT"
    assert "killed at its time limit of 7 min" in m2["reason"]
