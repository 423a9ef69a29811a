"""Run directories: atomic writes, the files a run leaves, and its status.

A run directory holds ``config.json`` (every resolved option and which plugin/version supplied each
component), ``history.jsonl`` (losses), ``checkpoint.pt``, PNG plots, and ``metrics.json``, written
**last and atomically**: its presence marks a run as ended (``finished`` or ``diverged``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATUS_FINISHED = "finished"
STATUS_DIVERGED = "diverged"
STATUS_FAILED = "failed"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    history = property(lambda self: self.path / "history.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    resume = property(lambda self: self.path / "resume.pt")  # mid-run state (see introzoo.resume)

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def reset(self) -> None:
        """Remove what an unfinished earlier attempt left (never a finished run's results)."""
        for p in (self.history, self.metrics, self.checkpoint, self.resume):
            p.unlink(missing_ok=True)

    def record_failure(self, reason: str, **extra: Any) -> dict[str, Any]:
        """Write the ``metrics.json`` of a run that failed outside training's own bookkeeping (bad
        request, crashed worker, ended job) and return it; ``extra``: fields such as the Slurm job."""
        self.create()
        result = {"status": STATUS_FAILED, "reason": reason, **extra, "metrics": {}}
        atomic_write_json(self.metrics, result)
        return result

    def append_history(self, record: dict[str, Any]) -> None:
        with open(self.history, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read_history(self) -> list[dict[str, Any]]:
        if not self.history.exists():
            return []
        out = []
        for line in self.history.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                break
        return out

    def read_metrics(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.metrics.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> str:
        m = self.read_metrics()
        if m is None:
            return "unfinished" if self.path.exists() else "missing"
        return m.get("status", "unknown")
