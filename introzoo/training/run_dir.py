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


def _umask() -> int:
    """The process's umask (Linux reports it in /proc; elsewhere it is read by setting it back)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``. The file gets
    the mode a plainly created one would: 0666 less the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


class Claim:
    """A held :meth:`RunDir.claim`; a context manager that releases it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    history = property(lambda self: self.path / "history.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    resume = property(lambda self: self.path / "resume.pt")  # mid-run state (see introzoo.training.resume)

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
        """``metrics.json``, or ``None`` when there is none or it is not a JSON object (then the run
        counts as unfinished and a sweep redoes it)."""
        try:
            m = json.loads(self.metrics.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return m if isinstance(m, dict) else None

    def claim(self, wait: bool = True) -> "Claim | None":
        """Hold this run for one process: an exclusive ``flock`` on ``.lock`` in the run directory
        (released when the process ends, however it ends, so no claim outlives its owner). ``None``
        when another process holds it and ``wait`` is false."""
        import fcntl

        self.create()
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return Claim(fd)

    def status(self) -> str:
        m = self.read_metrics()
        if m is None:
            return "unfinished" if self.path.exists() else "missing"
        return m.get("status", "unknown")
