"""Output paths checked before any work starts: a directory a command will fill (``run --out``,
``sweep --out``) or a file it will write (``sample --out``, ``leaderboard --out``). Each check raises
a :class:`~introzoo.errors.UsageError` naming the path and why it cannot be used (exists as a file, is
under a file, not writable, no such parent, under a virtual file system) and creates nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UsageError

#: file systems that hold no user files (writing there fails, or worse, does something)
VIRTUAL = (Path("/proc"), Path("/sys"), Path("/dev"))


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    return p


def _virtual(path: Path) -> Path | None:
    resolved = path.resolve()
    return next((v for v in VIRTUAL if resolved == v or v in resolved.parents), None)


def _writable(directory: Path) -> bool:
    """Whether a file can be created in ``directory`` (tried: permission bits do not stop root, a
    read-only mount does)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".introzoo-probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _check_parents(path: Path, flag: str, create_parents: bool) -> None:
    base = _existing_ancestor(path.parent)
    if base.exists() and not base.is_dir():
        raise UsageError(f"{flag} '{path}': '{base}' is a file, not a directory")
    if not base.exists():
        raise UsageError(f"{flag} '{path}': no such parent directory '{path.parent}'")
    if base != path.parent and not create_parents:
        raise UsageError(f"{flag} '{path}': no such parent directory '{path.parent}'")
    if not _writable(base):
        raise UsageError(f"{flag} '{path}': directory '{base}' is not writable")


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """``path`` can be (or already is) a directory that introzoo writes into (missing parents are made)."""
    path = Path(path).expanduser()
    virtual = _virtual(path)
    if virtual is not None:
        raise UsageError(f"{flag} '{path}' is under {virtual}, a virtual file system; choose a directory on disk")
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{flag} '{path}' exists as a file; a directory is needed")
        if not _writable(path):
            raise UsageError(f"{flag} '{path}' is not writable")
        return path
    _check_parents(path, flag, create_parents=True)
    return path


def check_output_file(
    path: str | Path, flag: str = "--out", suffixes: tuple[str, ...] | None = None, create_parents: bool = False
) -> Path:
    """``path`` can be written as a file (an existing file is replaced); ``suffixes``: the known types."""
    path = Path(path).expanduser()
    virtual = _virtual(path)
    if virtual is not None:
        raise UsageError(f"{flag} '{path}' is under {virtual}, a virtual file system; choose a file on disk")
    if suffixes is not None and path.suffix not in suffixes:
        raise UsageError(f"{flag} '{path}': unknown output type '{path.suffix}'; known: {', '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"{flag} '{path}' is a directory; a file name is needed")
    if path.exists():
        if not os.access(path, os.W_OK) or not _writable(path.parent):
            raise UsageError(f"{flag} '{path}' is not writable")
        return path
    _check_parents(path, flag, create_parents=create_parents)
    return path


def cache_dir() -> Path:
    """introzoo's cache: ``$INTROZOO_CACHE``, else ``~/.cache/introzoo`` (extractor weights, the kernel
    measurements of :mod:`introzoo.training.kernels`)."""
    env = os.environ.get("INTROZOO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "introzoo"
