"""Running one run of a sweep in a worker: under its claim in the run store, from its resolved record
(nothing is resolved again), a failure recorded rather than raised, and the sweep's event log
(``events.jsonl``). Used by every executor (:mod:`introzoo.sweeps.executors`, :mod:`introzoo.sweeps.slurm`)
and by a pack's worker (:mod:`introzoo.sweeps.packs`) for a pack of one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..config import from_json
from ..training.run_dir import RunDir


def log_event(sweep_dir: Path, **event: Any) -> None:
    """Append one JSON line to ``events.jsonl`` (single small write: atomic with O_APPEND)."""
    line = (json.dumps({"time": round(time.time(), 3), "pid": os.getpid(), **event}) + "\n").encode()
    fd = os.open(sweep_dir / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


#: what :func:`execute` returns for a run that another sweep process is training (``wait=False``)
STATUS_BUSY = "busy"


def _log(sweep_dir: str | None, **event: Any) -> None:
    if sweep_dir:
        try:
            log_event(Path(sweep_dir), **event)
        except OSError:  # e.g. a full disk: the event log is a record, not the result
            pass


def execute(
    run_dir: str,
    config: dict[str, Any],
    threads: int | None = None,
    sweep_dir: str | None = None,
    resumable=None,
    wait: bool = True,
    ddp=None,
) -> dict[str, Any]:
    """Train one run of a sweep under its claim (:meth:`RunDir.claim`, a lock another sweep process on
    the same store respects); see :func:`_execute`. A run another process holds is waited for
    (``wait``), after which its result counts, or reported as :data:`STATUS_BUSY` at once."""
    rd = RunDir(run_dir)
    try:
        claim = rd.claim(wait=wait)
    except OSError as exc:  # a store that cannot even take a lock file (full disk, read-only)
        return {"status": "failed", "reason": f"cannot claim {rd.path}: {exc.strerror or exc}"}
    if claim is None:
        return {"status": STATUS_BUSY, "reason": "trained by another sweep process"}
    with claim:
        m = rd.read_metrics()
        if m is not None and m.get("status") in ("finished", "diverged"):  # done meanwhile by another process
            return {"status": m["status"], "reason": m.get("reason", ""), "elsewhere": True}
        return _execute(run_dir, config, threads, sweep_dir, resumable, ddp)


def _execute(
    run_dir: str, config: dict[str, Any], threads: int | None = None, sweep_dir: str | None = None, resumable=None, ddp=None
) -> dict[str, Any]:
    """Train one run of a sweep (in a worker process) from its resolved record (:attr:`Task.config`;
    nothing is resolved again, the record's hash is the one written). Never raises for a failing run:
    the failure is recorded in its ``metrics.json`` with the reason, and the sweep goes on.
    ``resumable``: an :class:`introzoo.training.resume.Resumable` (resume points; continue from an earlier
    attempt's). ``ddp``: process 0 of a data-parallel run (:mod:`introzoo.training.distributed`)."""
    import torch

    from .. import plugins
    from ..training.loop import train

    if threads:
        torch.set_num_threads(threads)
    rd = RunDir(run_dir)
    _log(sweep_dir, event="start", run=rd.path.name)
    try:
        result = train(from_json(config, plugins.registry()), run_dir, resumable=resumable, ddp=ddp)
    except Exception as exc:  # recorded, not raised: one bad run must not take the sweep down
        reason = f"{type(exc).__name__}: {exc}"
        try:
            result = rd.record_failure(reason)
        except OSError:  # e.g. the disk is full: reported; a rerun redoes the run (no metrics.json)
            result = {"status": "failed", "reason": reason}
    _log(sweep_dir, event="end", run=rd.path.name, status=result["status"])
    return {"status": result["status"], "reason": result.get("reason", "")}
