"""Sweep executors: where the runs of a sweep train. Registered components, like everything else.

- ``local``: N runs in parallel as separate processes (spawned), one torch thread each by default.
- ``submitit``: Slurm job arrays through the ``submitit`` package (``pip install 'introzoo[slurm]'``);
  ``cluster=local`` runs the same code path through submitit's local executor.

Both write each run into the same store through :func:`introzoo.sweep.execute`, so a leaderboard
cannot tell which executor made a run. A failing run is recorded in its ``metrics.json`` (status
``failed`` and the reason) and the sweep goes on; a rerun redoes failed and unfinished runs.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import hookimpl
from .errors import UsageError
from .runs import RunDir, atomic_write_json
from .sweep import Task, execute

Callback = Callable[[Task, dict[str, Any]], None]


def _record_failure(task: Task, reason: str) -> dict[str, Any]:
    rd = RunDir(task.run_dir)
    rd.create()
    result = {"status": "failed", "reason": reason, "metrics": {}}
    atomic_write_json(rd.metrics, result)
    return result


def _die_with_parent() -> None:
    """Worker initializer: on Linux, end this worker when the sweep process dies (even by SIGKILL), so
    no orphaned run keeps training after an interrupted sweep."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalConfig(BaseModel):
    """Options of the ``local`` executor."""

    model_config = ConfigDict(extra="forbid")

    workers: int | None = Field(None, gt=0, description="runs in parallel (default: the machine's cores)")
    threads: int = Field(1, gt=0, description="torch threads per run")


class LocalExecutor:
    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    @property
    def workers(self) -> int:
        return self.config.workers or os.cpu_count() or 1

    def run(self, tasks: list[Task], sweep_dir: Path, on_done: Callback) -> None:
        remaining = list(tasks)
        ctx = multiprocessing.get_context("spawn")
        while remaining:
            with ProcessPoolExecutor(max_workers=min(self.workers, len(remaining)), mp_context=ctx,
                                     initializer=_die_with_parent) as pool:
                futures = {pool.submit(execute, str(t.run_dir), t.request, self.config.threads, str(sweep_dir)): t
                           for t in remaining}
                remaining = []
                broken = False
                for fut in as_completed(futures):
                    task = futures[fut]
                    try:
                        on_done(task, fut.result())
                    except BrokenProcessPool:
                        broken = True
                        if RunDir(task.run_dir).path.exists():  # it was running when its worker died
                            on_done(task, _record_failure(task, "worker process died (killed or crashed)"))
                        else:
                            remaining.append(task)
                if not broken:
                    return


class SubmititConfig(BaseModel):
    """Options of the ``submitit`` executor (Slurm job arrays)."""

    model_config = ConfigDict(extra="forbid")

    cluster: Literal["slurm", "local", "debug"] | None = Field(None, description="submitit cluster (default: slurm if available)")
    folder: str | None = Field(None, description="submitit logs and pickles (default: SWEEP_DIR/submitit)")
    partition: str | None = Field(None, description="Slurm partition")
    time: int = Field(60, gt=0, description="time limit per run, minutes")
    cpus: int = Field(1, gt=0, description="CPUs per run (also its torch threads)")
    gpus: int = Field(0, ge=0, description="GPUs per run")
    mem_gb: float | None = Field(None, gt=0, description="memory per run, GB")
    array_size: int = Field(1000, gt=0, description="largest job array; bigger sweeps are split")
    parallel: int = Field(256, gt=0, description="array tasks running at once (%% throttle)")
    sbatch: list[str] = Field(default_factory=list, description="extra #SBATCH options, e.g. ['--qos=high']")
    poll: float = Field(1.0, gt=0, description="seconds between status checks")


def _sbatch_params(lines: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for line in lines:
        key, _, value = line.lstrip("-").partition("=")
        params[key.replace("-", "_")] = value if value else True
    return params


class SubmititExecutor:
    def __init__(self, config: SubmititConfig) -> None:
        self.config = config

    def run(self, tasks: list[Task], sweep_dir: Path, on_done: Callback) -> None:
        try:
            import submitit
        except ImportError:
            raise UsageError("the submitit executor needs the submitit package: pip install 'introzoo[slurm]'") from None
        c = self.config
        ex = submitit.AutoExecutor(folder=c.folder or str(sweep_dir / "submitit"), cluster=c.cluster)
        params: dict[str, Any] = {"timeout_min": c.time, "cpus_per_task": c.cpus, "slurm_array_parallelism": c.parallel}
        if c.gpus:
            params["gpus_per_node"] = c.gpus
        if c.mem_gb:
            params["mem_gb"] = c.mem_gb
        if c.partition:
            params["slurm_partition"] = c.partition
        if c.sbatch:
            params["slurm_additional_parameters"] = _sbatch_params(c.sbatch)
        ex.update_parameters(**{k: v for k, v in params.items() if ex.cluster == "slurm" or not k.startswith("slurm_")})
        for start in range(0, len(tasks), c.array_size):
            chunk = tasks[start:start + c.array_size]
            jobs = ex.map_array(execute, [str(t.run_dir) for t in chunk], [t.request for t in chunk],
                                [c.cpus] * len(chunk), [str(sweep_dir)] * len(chunk))
            waiting = dict(zip(jobs, chunk))
            while waiting:
                for job in [j for j in waiting if j.done()]:
                    task = waiting.pop(job)
                    try:
                        on_done(task, job.result())
                    except Exception as exc:  # cancelled, timed out, node failure
                        state = getattr(job, "state", "UNKNOWN")
                        on_done(task, _record_failure(task, f"job {job.job_id} {state}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
                if waiting:
                    time.sleep(c.poll)


@hookimpl
def introzoo_register_executors(register):
    register("local", LocalExecutor, LocalConfig, "Parallel local processes, one torch thread per run.")
    register("submitit", SubmititExecutor, SubmititConfig, "Slurm job arrays through submitit (extra 'slurm').")
