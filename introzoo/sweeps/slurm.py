"""The ``submitit`` sweep executor: Slurm job arrays through the ``submitit`` package
(``pip install 'introzoo[slurm]'``); ``cluster=local`` runs the same code path through submitit's local
executor. Runs write resume points and react to Slurm's signals (requeue when preempted; end and resume
on rerun when cancelled or at the time limit); a job that ends without a result is recorded with its
accounting state. Each array task trains a run resolved by the sweep (:attr:`introzoo.sweeps.grid.Task.config`),
or a pack of runs (``introzoo sweep --pack``; :func:`introzoo.sweeps.packs.execute_pack`).
See ``docs/slurm.md``; registered in :mod:`introzoo.sweeps.executors`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import UsageError, first_line
from ..training.resume import Resumable
from ..training.run_dir import STATUS_DIVERGED, STATUS_FINISHED, RunDir
from .grid import Task
from .run import execute, log_event
from .packs import PackTask, execute_pack, members, unit_args

Callback = Callable[[Task, dict[str, Any]], None]


def _record_failure(task: Task, reason: str, **extra: Any) -> dict[str, Any]:
    return RunDir(task.run_dir).record_failure(reason, **extra)


class SubmititConfig(BaseModel):
    """Options of the ``submitit`` executor (Slurm job arrays)."""

    model_config = ConfigDict(extra="forbid")

    cluster: Literal["slurm", "local", "debug"] | None = Field(
        None, description="submitit cluster (default: slurm if available)"
    )
    folder: str | None = Field(None, description="submitit logs and pickles (default: SWEEP_DIR/submitit)")
    partition: str | None = Field(None, description="Slurm partition")
    time: int = Field(60, gt=0, description="time limit per run, minutes")
    cpus: int = Field(1, gt=0, description="CPUs per run (also its torch threads)")
    gpus: int = Field(0, ge=0, description="GPUs per run (runs then train on cuda)")
    ddp: bool = Field(
        False, description="one process per GPU of a run, training data parallel (introzoo run --ddp); needs gpus >= 1"
    )
    mem_gb: float | None = Field(None, gt=0, description="memory per run, GB")
    array_size: int = Field(1000, gt=0, description="largest job array; bigger sweeps are split")
    parallel: int = Field(256, gt=0, description="array tasks running at once (%% throttle)")
    sbatch: list[str] = Field(default_factory=list, description="extra #SBATCH options, e.g. ['--qos=high']")
    checkpoint: float = Field(
        60.0, ge=0, description="seconds between a run's resume points (0: on signals and at the end only)"
    )
    signal_delay: int = Field(
        90,
        ge=1,
        description="seconds before the time limit that Slurm signals a run to save a resume point (at most half the limit)",
    )
    poll: float = Field(1.0, gt=0, description="seconds between status checks")

    @field_validator("sbatch")
    @classmethod
    def _check_sbatch(cls, lines: list[str]) -> list[str]:
        sbatch_params(lines)  # raises ValueError with the reason
        return lines

    @model_validator(mode="after")
    def _check_ddp(self) -> "SubmititConfig":
        if self.ddp and self.gpus < 1:
            raise ValueError("ddp runs one process per GPU: give gpus=N (N >= 1) with it")
        return self


# sbatch options the executor writes itself, and the option to use instead where there is one
_MANAGED = {
    "array": None,
    "signal": None,
    "output": None,
    "error": None,
    "open-mode": None,
    "job-name": None,
    "wrap": None,
    "partition": "partition",
    "time": "time",
    "cpus-per-task": "cpus",
    "gpus-per-node": "gpus",
    "mem": "mem_gb",
    "ntasks-per-node": "ddp",
}


def sbatch_params(lines: list[str]) -> dict[str, Any]:
    """``['--qos=high', '#SBATCH --account lab', '--exclusive']`` -> ``{'qos': 'high', 'account': 'lab',
    'exclusive': True}``; raises ``ValueError`` for a short or executor-managed option."""
    params: dict[str, Any] = {}
    for raw in lines:
        line = raw.strip()
        if line.startswith("#SBATCH"):
            line = line[len("#SBATCH") :].strip()
        if not line.startswith("--") or len(line) < 3:
            raise ValueError(f"sbatch line '{raw}': give a long option, e.g. '--qos=high'")
        key, sep, value = line[2:].partition("=")
        if not sep:
            key, _, value = key.partition(" ")
        key, value = key.strip(), value.strip()
        if not key or " " in key:
            raise ValueError(f"sbatch line '{raw}': expected '--option=value' or '--flag'")
        if key in _MANAGED:
            instead = _MANAGED[key]
            raise ValueError(
                f"sbatch line '{raw}': "
                + (f"use the executor option '{instead}'" if instead else f"--{key} is set by the executor")
            )
        params[key] = value if value else True
    return params


# Slurm job states; a job in any other state has ended
ACTIVE = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "COMPLETING",
    "CONFIGURING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
    "STOPPED",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
REASONS = {
    "CANCELLED": "cancelled (scancel)",
    "TIMEOUT": "killed at its time limit of {time} min",
    "OUT_OF_MEMORY": "killed for lack of memory",
    "NODE_FAIL": "its node failed",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "reached its deadline",
    "PREEMPTED": "preempted and not requeued",
    "FAILED": "failed before or after training",
    "COMPLETED": "ended without a result",
    "LOST": "is no longer known to Slurm and left no result",
}
PREEMPTED_WAIT_S = 120  # a preempted job is requeued within this, else it counts as ended
RESULT_WAIT_S = 30  # a job that completed (or vanished): time for its result file to appear (shared file systems lag)
FINAL_WAIT_S = 3  # a job that ended otherwise (cancelled, timed out, ...)


def _parse_states(text: str) -> dict[str, str]:
    """``JOBID|STATE`` lines (sacct -P, squeue -o '%i|%T') -> {'12_3': 'CANCELLED', ...}; array ranges
    such as ``12_[4-6%2]`` are expanded; job steps are skipped."""
    from submitit.slurm.slurm import read_job_id

    out: dict[str, str] = {}
    for line in text.splitlines():
        job, _, state = line.strip().partition("|")
        if not job or not state or "." in job:
            continue
        state = state.split()[0].upper().rstrip("+")  # 'CANCELLED by 0'
        try:
            ids = read_job_id(job)
        except Exception:
            continue
        for parts in ids:
            out["_".join(parts[:2])] = state
            if len(parts) >= 3:
                for k in range(int(parts[1]), int(parts[2]) + 1):
                    out[f"{parts[0]}_{k}"] = state
    return out


def _run_quiet(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def slurm_states(job_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(accounting states from sacct, live states from squeue) of these jobs (array tasks ``A_i``).
    squeue knows jobs until a few minutes after they end and says whether processes are still ending
    (COMPLETING); sacct keeps the record. Either may be empty (no accounting, or an old job)."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    if not arrays:
        return {}, {}
    acct = _run_quiet(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(arrays)])
    live = _run_quiet(["squeue", "-h", "--states=all", "-o", "%i|%T", "-j", ",".join(arrays)])
    return _parse_states(acct or ""), _parse_states(live or "")


def _record_end(task: Task, job_id: str, state: str, time_min: int, log: str) -> dict[str, Any]:
    """A job that ended without a result: keep the run's own record if it got that far, else record why
    (each member of a pack on its own)."""
    m = RunDir(task.run_dir).read_metrics()
    if m and m.get("status") in (STATUS_FINISHED, STATUS_DIVERGED):
        return {"status": m["status"], "reason": m.get("reason", "")}
    reason = f"Slurm job {job_id} {state}: {REASONS.get(state, 'ended without a result').format(time=time_min)}"
    return _record_failure(task, f"{reason} (log: {log})", slurm={"job": job_id, "state": state})


class _JobResumable(Resumable):
    """Inside a Slurm job: resume points every ``every_s`` and, on a signal, one at the next iteration
    boundary. Then, by what Slurm says of the job (``scontrol show job``):

    - preempted (a PreemptTime is set, or the user signal came long before the time limit's warning,
      e.g. ``scancel --signal=USR2``): requeue the job and exit; the requeued job resumes from here;
    - ending (SIGTERM from ``scancel`` or at the time limit; the job is COMPLETING): exit, so that a rerun
      of the sweep resumes from here;
    - otherwise (the warning before the time limit, or a SIGTERM not meant to end it): train on.
    """

    def __init__(self, every_s: float, sweep_dir: str | None, run: str, time_limit_s: float, signal_delay_s: float):
        super().__init__(every_s)
        self.sweep_dir, self.run = (Path(sweep_dir) if sweep_dir else None), run
        self.time_limit_s, self.signal_delay_s = time_limit_s, signal_delay_s
        self.started = time.time()
        self.signals: set[int] = set()
        array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        self.job = f"{array}_{index}" if array and index else os.environ.get("SLURM_JOB_ID", "")

    def on_signal(self, signum, frame) -> None:  # a signal handler: only set flags
        self.signals.add(signum)
        self.requested = True

    def _event(self, **event: Any) -> None:
        if self.sweep_dir is not None:
            log_event(self.sweep_dir, run=self.run, job=self.job, **event)

    def resumed(self, iteration: int) -> None:
        self._event(event="resume", iteration=iteration)

    def saved(self, iteration: int) -> None:
        if not self.signals:
            return
        signals, self.signals = self.signals, set()
        out = _run_quiet(["scontrol", "-o", "show", "job", self.job])  # an array task as A_i, not the array
        info = dict(re.findall(r"(\w+)=(\S*)", out or ""))
        state = info.get("JobState", "")
        early = time.time() - self.started < self.time_limit_s - self.signal_delay_s - 60
        if (
            info.get("PreemptTime", "None") not in ("None", "Unknown", "(null)", "")
            or state == "PREEMPTED"
            or (signal.SIGTERM not in signals and early)
        ):
            requeued = _run_quiet(["scontrol", "requeue", self.job]) is not None
            self._event(event="preempted", iteration=iteration, requeued=requeued)
            if requeued:
                sys.exit(EXIT_STOPPED)  # no result file: the requeued job writes it
        elif signal.SIGTERM in signals and (out is None or state not in ("RUNNING", "CONFIGURING")):
            self._event(event="stopped", iteration=iteration, state=state or "unknown")
            sys.exit(EXIT_STOPPED)  # cancelled or at the time limit: a rerun resumes from here
        elif signal.SIGTERM not in signals:
            self._event(event="time-limit-warning", iteration=iteration)


EXIT_STOPPED = 75  # the job's process ends without a result; the run resumes from its resume point


class SweepRun:
    """What one array task runs: :func:`introzoo.sweeps.grid.execute` with resume points and Slurm signals.
    Picklable (submitit sends it to the job); the run's state lives in its run directory."""

    def __init__(
        self, checkpoint_s: float, time_limit_s: float, signal_delay_s: float, device: str | None = None, ddp: bool = False
    ):
        self.checkpoint_s, self.time_limit_s, self.signal_delay_s = checkpoint_s, time_limit_s, signal_delay_s
        self.device, self.ddp = device, ddp

    def __call__(self, run_dir, config, threads: int, sweep_dir: str):
        """One run (``run_dir`` a path) or one pack (``run_dir`` and ``config`` lists: one result per
        member). A pack writes no resume points: preempted, requeued or rerun, its unfinished members
        train again from the start."""
        if isinstance(run_dir, list):
            return execute_pack(run_dir, config, threads, sweep_dir, wait=True, device=self.device)
        if self.device:
            config = {**config, "device": self.device}
        if self.ddp:  # one of the job's processes, one per GPU; no resume points
            from ..training.distributed import slurm_process

            return slurm_process(run_dir, config, threads, sweep_dir)
        resumable = _JobResumable(self.checkpoint_s, sweep_dir, Path(run_dir).name, self.time_limit_s, self.signal_delay_s)
        if os.environ.get("SLURM_JOB_ID"):  # instead of submitit's handlers (which bypass SIGTERM)
            from submitit import JobEnvironment

            signal.signal(JobEnvironment._usr_sig(), resumable.on_signal)
            signal.signal(signal.SIGTERM, resumable.on_signal)
        return execute(run_dir, config, threads, sweep_dir, resumable=resumable)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue protocol (its handler runs only before training starts)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UsageError("the submitit executor needs the submitit package: pip install 'introzoo[slurm]'") from None
    return submitit


class SubmititExecutor:
    """One job array per sweep (split at ``array_size``); each array task trains one run into the run
    store. Waits with one ``sacct`` and one ``squeue`` call per poll; runs of an earlier invocation that
    are still queued or running are waited for, not submitted again."""

    def __init__(self, config: SubmititConfig) -> None:
        self.config = config

    @property
    def workers(self) -> int:
        return self.config.parallel

    @property
    def signal_delay(self) -> int:
        """Slurm sends the signal at most half the time limit early: sent earlier, it could reach a
        job still starting Python, before any handler, and end it."""
        return min(self.config.signal_delay, self.config.time * 30)

    def parameters(self, on_slurm: bool, name: str) -> dict[str, Any]:
        c = self.config
        params: dict[str, Any] = {"timeout_min": c.time, "cpus_per_task": c.cpus, "name": name}
        if c.gpus:
            params["gpus_per_node"] = c.gpus
        if c.ddp:  # one task (process) per GPU
            params["tasks_per_node"] = c.gpus
        if c.mem_gb:
            params["mem_gb"] = c.mem_gb
        if on_slurm:
            params.update(
                slurm_array_parallelism=c.parallel,
                slurm_signal_delay_s=self.signal_delay,
                slurm_additional_parameters={"requeue": True, **sbatch_params(c.sbatch)},
            )
            if c.partition:
                params["slurm_partition"] = c.partition
        return params

    def run(self, tasks: list[Task], sweep_dir: Path, on_done: Callback) -> None:
        submitit = _submitit()
        c = self.config
        sweep_dir = sweep_dir.resolve()  # jobs may start in another directory
        folder = Path(c.folder).resolve() if c.folder else sweep_dir / "submitit"
        try:
            ex = submitit.AutoExecutor(folder=folder, cluster=c.cluster)
        except RuntimeError as exc:  # cluster=slurm where there is no srun
            raise UsageError(
                f"the submitit executor cannot use cluster '{c.cluster}': {exc}; "
                "use cluster=local to run through submitit on this machine"
            ) from None
        on_slurm = ex.cluster == "slurm"
        ex.update_parameters(**self.parameters(on_slurm, f"introzoo-{sweep_dir.name}"))
        waiting: dict[Any, Task] = self._attach(tasks, sweep_dir, folder) if on_slurm else {}
        todo = [t for t in tasks if t not in waiting.values()]
        func = SweepRun(c.checkpoint, c.time * 60, self.signal_delay, "cuda" if c.gpus else None, ddp=c.ddp)
        try:
            if waiting and not todo:
                self._wait(waiting, on_done, on_slurm)
            for start in range(0, len(todo), c.array_size):
                chunk = todo[start : start + c.array_size]
                try:
                    args = [unit_args(u) for u in chunk]
                    jobs = ex.map_array(
                        func,
                        [a[0] for a in args],
                        [a[1] for a in args],
                        [c.cpus] * len(chunk),
                        [str(sweep_dir)] * len(chunk),
                    )
                except Exception as exc:  # sbatch refused: bad partition, account, limits
                    raise UsageError(f"submitting the job array failed: {first_line(exc)}") from None
                for job, unit in zip(jobs, chunk):
                    for task in members(unit):
                        log_event(sweep_dir, event="submit", run=task.hash, job=job.job_id, folder=str(folder))
                waiting.update(zip(jobs, chunk))
                self._wait(waiting, on_done, on_slurm)
        except KeyboardInterrupt:
            if on_slurm and waiting:
                ids = sorted({j.job_id.split("_")[0] for j in waiting})
                print(
                    f"interrupted: {len(waiting)} runs stay queued or running on the cluster (jobs "
                    f"{', '.join(ids)}); rerun the same command to wait for them without submitting them "
                    f"again, or cancel them with scancel {' '.join(ids)}",
                    file=sys.stderr,
                )
            raise

    def _attach(self, tasks: list, sweep_dir: Path, folder: Path) -> dict[Any, Task]:
        """Jobs an earlier invocation submitted for these units (runs, packs) that are still queued or
        running (a pack: the one job all its members were submitted in)."""
        from submitit.slurm.slurm import SlurmJob

        events = sweep_dir / "events.jsonl"
        if not events.exists():
            return {}
        latest: dict[str, tuple[str, str]] = {}
        for line in events.read_text().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if e.get("event") == "submit":
                latest[e["run"]] = (e["job"], e.get("folder", str(folder)))
        wanted = {}
        for unit in tasks:
            jobs = {latest.get(t.hash) for t in members(unit)}
            if len(jobs) == 1 and None not in jobs:
                wanted[members(unit)[0].hash] = unit
        if not wanted:
            return {}
        acct, live = slurm_states([latest[h][0] for h in wanted])
        out = {}
        for h, task in wanted.items():
            job_id, job_folder = latest[h]
            state = live.get(job_id) or acct.get(job_id)
            if state in ACTIVE or state == "PREEMPTED":
                out[SlurmJob(folder=job_folder, job_id=job_id)] = task
        return out

    def _wait(self, waiting: dict[Any, Task], on_done: Callback, on_slurm: bool) -> None:
        c = self.config
        ended_at: dict[str, float] = {}  # when a job was first seen ended (or preempted) without a result
        while waiting:
            acct, live = slurm_states([j.job_id for j in waiting]) if on_slurm else ({}, {})
            now = time.time()
            for job in list(waiting):
                task = waiting[job]
                has_result = job.paths.result_pickle.exists()
                if has_result or (not on_slurm and job.done()):
                    del waiting[job]
                    try:
                        results = job.result()
                    except Exception as exc:  # the job raised outside the run (it records its own failures)
                        why = f"failed: {_last_line(exc)}" if has_result else f"{job.state}: {first_line(exc)}"
                        for t in members(task):
                            on_done(t, _record_failure(t, f"job {job.job_id} {why}"))
                        continue
                    for t, r in zip(members(task), results if isinstance(task, PackTask) else [results]):
                        on_done(t, r)
                    continue
                if not on_slurm:
                    continue
                now_state, recorded = live.get(job.job_id), acct.get(job.job_id)
                if now_state in ACTIVE:  # queued, running, or its processes still ending
                    state = now_state
                elif now_state is None:  # squeue no longer knows it: the accounting record, if any
                    state = recorded or "LOST"
                else:  # ended: the accounting record says how, where it has caught up
                    state = recorded if recorded and recorded not in ACTIVE else now_state
                if state in ACTIVE:
                    ended_at.pop(job.job_id, None)
                    continue
                first = ended_at.setdefault(job.job_id, now)
                patience = {"PREEMPTED": PREEMPTED_WAIT_S, "COMPLETED": RESULT_WAIT_S, "LOST": RESULT_WAIT_S}.get(
                    state, FINAL_WAIT_S
                )
                if now - first < patience:
                    continue
                del waiting[job]
                for t in members(task):
                    on_done(t, _record_end(t, job.job_id, state, c.time, str(job.paths.stderr)))
            if waiting:
                time.sleep(c.poll)


def _last_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("-")]
    error = [ln for ln in lines if ln and not ln.startswith(" ") and ("Error" in ln or "Exception" in ln)]
    return (error[-1] if error else lines[0] if lines else type(exc).__name__).strip()
