"""Sweep executors: where the runs of a sweep train. Registered components, like everything else.

- ``local``: N runs in parallel as separate processes (spawned), one torch thread each by default.
- ``submitit``: Slurm job arrays through the ``submitit`` package (``pip install 'introzoo[slurm]'``);
  ``cluster=local`` runs the same code path through submitit's local executor. Runs write resume points
  and react to Slurm's signals (requeue when preempted; end and resume on rerun when cancelled or at
  the time limit); a job that ends without a result is recorded with its accounting state. See
  ``docs/slurm.md``.

Both write each run into the same store through :func:`introzoo.sweep.execute`, so a leaderboard
cannot tell which executor made a run; both receive the runs resolved (:attr:`introzoo.sweep.Task.config`)
and resolve nothing again. A failing run is recorded in its ``metrics.json`` (status ``failed`` and the
reason) and the sweep goes on; a rerun redoes failed and unfinished runs. This module holds ``local``
and the registration; ``submitit`` lives in :mod:`introzoo.executors_slurm`.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from . import hookimpl
from .executors_slurm import Callback, SubmititConfig, SubmititExecutor, _record_failure
from .runs import RunDir
from .sweep import Task, execute


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
                futures = {pool.submit(execute, str(t.run_dir), t.config, self.config.threads, str(sweep_dir)): t
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


@hookimpl
def introzoo_register_executors(register):
    register("local", LocalExecutor, LocalConfig, "Parallel local processes, one torch thread per run.")
    register("submitit", SubmititExecutor, SubmititConfig, "Slurm job arrays through submitit (extra 'slurm').")
