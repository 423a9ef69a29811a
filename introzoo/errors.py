"""Errors that the command line reports as one line with exit code 2 (bad input)."""

from __future__ import annotations

import difflib
from typing import Iterable


class IntrozooError(Exception):
    """Base class of every error introzoo reports to a user without a traceback."""

    exit_code = 2


class UsageError(IntrozooError):
    """Bad input: unknown component, malformed spec, impossible hyperparameter, missing data."""


class RegistryError(IntrozooError):
    """Conflicting or malformed plugin registrations."""


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name when the message is empty), for
    one-line reports; ``with_type``: ``"Type: first line"``."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if with_type:
        return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line or type(exc).__name__


def suggest(name: str, choices: Iterable[str]) -> str:
    """'; did you mean 'x'?' for the nearest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown(what: str, name: str, choices: Iterable[str]) -> str:
    """ "unknown prior 'mogg'; did you mean 'mog'? known: mog, sg" (the hint only when one is close)."""
    choices = list(choices)
    hint = suggest(name, choices) or ";"
    return f"unknown {what} '{name}'{hint} known: {', '.join(choices) or '(none)'}"


def first_error(exc: Exception, flag: bool = False) -> str:
    """One line for a pydantic ``ValidationError``: ``field: message (got value)``; ``flag=True`` names
    the field as its command-line option (``--batch-size: ...``). Other exceptions: their first line."""
    errors = getattr(exc, "errors", None)
    found = errors() if callable(errors) else []
    if not found:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    e = found[0]
    loc = ".".join(map(str, e["loc"])) or "option"
    if flag and e["loc"]:
        loc = "--" + str(e["loc"][0]).replace("_", "-")
    got = "" if e.get("type") == "missing" or "input" not in e else f" (got {e['input']!r})"
    return f"{loc}: {e['msg']}{got}"
