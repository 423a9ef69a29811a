"""One reader per file format introzoo reads but someone else may have written (sweep files, sweep
manifests, a run's ``config.json`` / ``metrics.json``, checkpoints): each names the file and what is
wrong with it in one :class:`ReadError` (a :class:`~introzoo.errors.UsageError`: exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UsageError, first_line


class ReadError(UsageError):
    """A file introzoo reads is missing, unreadable or malformed: ``what 'path': problem``."""

    def __init__(self, what: str, path: str | Path, problem: str) -> None:
        self.what, self.path, self.problem = what, Path(path), problem
        super().__init__(f"{what} '{path}' {problem}")


def _os_problem(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return "is under something that is not a directory"
    if isinstance(exc, PermissionError):
        return "is not readable (permission denied)"
    return f"cannot be read: {exc.strerror or first_line(exc)}"


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ReadError(what, path, _os_problem(exc)) from None


def read_text(path: str | Path, what: str = "file") -> str:
    """The file's text (UTF-8)."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(what, path, f"is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from None


def read_json(path: str | Path, what: str = "JSON file", expect: type = dict) -> Any:
    """The JSON value in ``path``, which must be of type ``expect`` (``None``: any)."""
    text = read_text(path, what)
    if not text.strip():
        raise ReadError(what, path, "is empty")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (truncated?)" if exc.pos >= len(text.rstrip()) else ""
        raise ReadError(what, path, f"is not valid JSON{cut}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if expect is not None and not isinstance(value, expect):
        raise ReadError(what, path, f"holds a JSON {_json_kind(value)}, not a JSON {_json_kind(expect())}")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_toml(path: str | Path, what: str = "TOML file") -> dict[str, Any]:
    import tomllib

    text = read_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ReadError(what, path, f"is not valid TOML: {exc}") from None


def load_checkpoint(
    path: str | Path, map_location: Any = "cpu", what: str = "checkpoint", keys: tuple[str, ...] = ("model",)
) -> dict[str, Any]:
    """A ``torch.save`` dictionary of tensors (``weights_only``) holding ``keys``."""
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise ReadError(what, path, "is a directory, not a file" if p.is_dir() else "does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise ReadError(what, path, _os_problem(exc)) from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError, AttributeError) as exc:
        raise ReadError(
            what, path, f"is not a readable PyTorch checkpoint (truncated or another format?): {first_line(exc)}"
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise ReadError(what, path, f"is not an introzoo checkpoint (no {', '.join(repr(k) for k in keys)} entry)")
    return state
