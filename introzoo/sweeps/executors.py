"""Sweep executors: where the runs of a sweep train. Registered components, like everything else.

- ``local``: N runs (or packs of runs, ``introzoo sweep --pack``) in parallel as separate processes
  (spawned), one torch thread each by default; with ``resume_every`` (``--resume-every``) each run
  trained alone writes resume points, and rerunning an interrupted sweep continues from them.
- ``submitit``: Slurm job arrays through the ``submitit`` package (``pip install 'introzoo[slurm]'``);
  ``cluster=local`` runs the same code path through submitit's local executor. Runs write resume points
  and react to Slurm's signals (requeue when preempted; end and resume on rerun when cancelled or at
  the time limit); a job that ends without a result is recorded with its accounting state. See
  ``docs/slurm.md``.

Both write each run into the same store through :func:`introzoo.sweeps.grid.execute`, so a leaderboard
cannot tell which executor made a run; both receive the runs resolved (:attr:`introzoo.sweeps.grid.Task.config`)
and resolve nothing again. A failing run is recorded in its ``metrics.json`` (status ``failed`` and the
reason) and the sweep goes on; a rerun redoes failed and unfinished runs. This module holds ``local``
and the registration; ``submitit`` lives in :mod:`introzoo.sweeps.slurm`.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .. import hookimpl
from .slurm import Callback, SubmititConfig, SubmititExecutor, _record_failure
from ..training.resume import Resumable
from ..training.run_dir import RunDir
from .grid import Task
from .run import STATUS_BUSY, _log, execute
from .packs import PackTask, execute_pack, members


def _die_with_parent() -> None:
    """Worker initializer: on Linux, end this worker when the sweep process dies (even by SIGKILL), so
    no orphaned run keeps training after an interrupted sweep."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _died_in(task: Task) -> dict | None:
    """After a worker died: the failure of ``task`` if it had started training (its ``config.json``
    written) and no other process holds it now; ``None``: run it (again) later."""
    rd = RunDir(task.run_dir)
    if not rd.config.exists() or rd.metrics.exists():
        return None
    claim = rd.claim(wait=False)
    if claim is None:  # another sweep process is training it
        return None
    with claim:
        return _record_failure(task, "worker process died (killed or crashed)")


class _LocalResumable(Resumable):
    """Resume points of a run the local executor trains: a continued run is noted in the sweep's
    ``events.jsonl`` (``{"event": "resumed", "run": ..., "iteration": N}``)."""

    def __init__(self, every_s: float, sweep_dir: str, run: str) -> None:
        super().__init__(every_s)
        self.sweep_dir, self.run = sweep_dir, run

    def resumed(self, iteration: int) -> None:
        _log(self.sweep_dir, event="resumed", run=self.run, iteration=iteration)


class LocalConfig(BaseModel):
    """Options of the ``local`` executor."""

    model_config = ConfigDict(extra="forbid")

    workers: int | None = Field(None, gt=0, description="runs in parallel (default: the machine's cores)")
    threads: int = Field(1, gt=0, description="torch threads per run")
    resume_every: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="seconds between resume points of each run trained alone (0: none); "
        "rerunning an interrupted sweep continues its unfinished runs from them",
    )


class LocalExecutor:
    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    @property
    def workers(self) -> int:
        return self.config.workers or os.cpu_count() or 1

    def run(self, tasks: list, sweep_dir: Path, on_done: Callback) -> None:
        """Each unit of work (a run, or a pack of runs: :class:`introzoo.sweeps.packs.PackTask`) in one
        worker, under its runs' claims: a run another sweep process on the same store is training is put
        off (``wait=False``) and waited for after the others, so no run trains twice."""
        remaining, wait = list(tasks), False
        ctx = multiprocessing.get_context("spawn")
        while remaining:
            with ProcessPoolExecutor(
                max_workers=min(self.workers, len(remaining)), mp_context=ctx, initializer=_die_with_parent
            ) as pool:
                futures = {self._submit(pool, unit, sweep_dir, wait): unit for unit in remaining}
                remaining, busy = [], []
                broken = False
                for fut in as_completed(futures):
                    unit = futures[fut]
                    try:
                        results = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        again = []
                        for task in members(unit):
                            died = _died_in(task)
                            if died is not None:
                                on_done(task, died)
                            else:
                                again.append(task)
                        remaining += [PackTask(again)] if len(again) > 1 else again
                        continue
                    if not isinstance(unit, PackTask):
                        results = [results]
                    put_off = []
                    for task, result in zip(members(unit), results):
                        if result["status"] == STATUS_BUSY:
                            put_off.append(task)
                        else:
                            on_done(task, result)
                    busy += [PackTask(put_off)] if len(put_off) > 1 else put_off
                remaining += busy
                wait = wait or bool(busy)
                if not broken and not busy:
                    return

    def _submit(self, pool, unit, sweep_dir: Path, wait: bool):
        if isinstance(unit, PackTask):
            return pool.submit(
                execute_pack,
                [str(t.run_dir) for t in unit.members],
                [t.config for t in unit.members],
                self.config.threads,
                str(sweep_dir),
                wait=wait,
            )
        every = self.config.resume_every
        resumable = _LocalResumable(every, str(sweep_dir), unit.run_dir.name) if every > 0 else None
        return pool.submit(
            execute, str(unit.run_dir), unit.config, self.config.threads, str(sweep_dir), resumable=resumable, wait=wait
        )


@hookimpl
def introzoo_register_executors(register):
    register("local", LocalExecutor, LocalConfig, "Parallel local processes, one torch thread per run.")
    register("submitit", SubmititExecutor, SubmititConfig, "Slurm job arrays through submitit (extra 'slurm').")
