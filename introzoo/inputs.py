"""Checks of command-line values that no option model holds: devices, the seeds of saved-run
commands (a training run's seed is bounded in :class:`~introzoo.config.RunConfig`) and the seconds
between resume points."""

from __future__ import annotations

import math

from .errors import UsageError
from .options import MAX_SEED

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def devices_here() -> list[str]:
    """The ``--device`` values that work on this machine."""
    import torch

    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def check_device(name: str | None, flag: str = "--device") -> str | None:
    """``name`` when it is a device of this machine (``None``: the run's own setting)."""
    if name is None:
        return None
    here = devices_here()
    if name in here:
        return name
    if name in DEVICE_CHOICES:
        raise UsageError(f"{flag} {name}: no {name.upper()} device on this machine; devices here: {', '.join(here)}")
    raise UsageError(f"unknown device '{name}' ({flag}); devices here: {', '.join(here)}")


def check_resume_every(seconds: float | None, flag: str = "--resume-every") -> float | None:
    """Seconds between resume points: a finite number, 0 or more (0: none)."""
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"{flag} {seconds:g}: give the seconds between resume points, 0 or more (0: none)")
    return seconds


def check_seed(seed: int | None, flag: str = "--seed") -> int | None:
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{flag} {seed}: a seed is from 0 to {MAX_SEED} (2^32 - 1)")
    return seed
