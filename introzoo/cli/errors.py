"""The command line's one error path: :func:`report` turns what a command raised into one line on
stderr and an exit code.

- introzoo's own errors (:class:`~introzoo.errors.IntrozooError`): their message, their exit code (2);
- OS errors (a path that cannot be read or written, a full disk): the path and the reason, exit 2;
- load errors of a file a user gave that no reader caught (JSON, TOML, pickle, UTF-8), exit 2;
- allocation failures (``MemoryError``, ``torch.OutOfMemoryError``, PyTorch's allocator refusing):
  what was asked and the memory limit (:mod:`introzoo.training.limits`), exit 2;
- anything else is a bug in introzoo or a plugin: ``internal error: Type: message`` and a hint to
  rerun with ``--debug`` (or ``INTROZOO_DEBUG=1``), which shows the traceback; exit 1.
"""

from __future__ import annotations

import json
import os
import pickle
from ..errors import IntrozooError, first_line

EXIT_USAGE = 2
EXIT_INTERNAL = 1
DEBUG_ENV = "INTROZOO_DEBUG"
HINT = f"rerun with --debug (or {DEBUG_ENV}=1) to see the traceback"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _allocation_failure(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def _os_line(exc: OSError) -> str:
    reason = exc.strerror or first_line(exc)
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(f"'{os.fsdecode(n)}'" for n in names)
    return f"{where}: {reason}" if where else reason


def _memory_line(exc: BaseException) -> str:
    from ..training.limits import ENV, format_size, memory_limit

    try:
        limit, source = memory_limit()
        where = f"the memory limit is {format_size(limit)} ({source})"
    except IntrozooError:
        where = f"{ENV} sets the limit introzoo checks sizes against"
    asked = first_line(exc)
    if "you tried to allocate" in asked:
        asked = "tried to allocate " + asked.split("you tried to allocate", 1)[1].strip(" .")
    elif isinstance(exc, MemoryError):
        asked = f"MemoryError{': ' + asked if asked != 'MemoryError' else ''}"
    return f"out of memory ({asked}); {where}: use smaller sizes (--batch-size, --n, the model's options)"


def classify(exc: BaseException) -> tuple[int, str, bool]:
    """(exit code, one line, whether it is an internal error) for an exception a command raised."""
    import tomllib

    if isinstance(exc, IntrozooError):
        return exc.exit_code, str(exc), False
    if _allocation_failure(exc):
        return EXIT_USAGE, _memory_line(exc), False
    if isinstance(exc, OSError):
        return EXIT_USAGE, _os_line(exc), False
    if isinstance(exc, (json.JSONDecodeError, tomllib.TOMLDecodeError, pickle.UnpicklingError, UnicodeDecodeError)):
        return EXIT_USAGE, f"a file could not be read ({type(exc).__name__}: {first_line(exc)})", False
    return EXIT_INTERNAL, f"internal error: {first_line(exc, with_type=True)}", True


def report(exc: BaseException, console, debug: bool = False) -> int:
    """Print the one line for ``exc`` on ``console`` (a rich console on stderr; plus the hint for an
    internal error) and return the exit code; under ``debug`` an internal error is raised again, so
    that its traceback shows."""
    from rich.markup import escape

    code, line, internal = classify(exc)
    if internal and (debug or debug_enabled()):
        raise exc
    console.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if internal:
        console.print(f"hint: {HINT}", highlight=False, soft_wrap=True)
    return code
