"""Mid-run checkpoints: stop a run at an iteration boundary and continue it bit-identically.

A run trained with a :class:`Resumable` writes ``resume.pt`` (atomically) every ``every_s`` seconds of
training, when :attr:`Resumable.requested` is set (e.g. by a signal handler) and once training ends
(before evaluation). It holds everything the loop needs to go on as if it had never stopped:

- the model's and the objective's state (optimisers, schedules, whether the warm-up has ended, and
  each regularizer's ``state_dict``: ``clip-logvar``'s range, FactorVAE's discriminator);
- every random stream: torch (and CUDA), numpy, ``random`` and the data generator;
- the loss sums of the unfinished history window, and the training time so far.

A later :func:`introzoo.training.loop.train` with a ``Resumable`` finds ``resume.pt`` (if it was written for the
same configuration hash) and continues from it: the result equals an uninterrupted run's. A finished run
removes ``resume.pt``. A resume point written for this run's hash that does not hold a run's state (keys
missing, of the wrong type, or not matching the model) is refused with a :class:`UsageError` naming the
file (one checked from the file alone is refused before anything in the run directory changes); removing
it trains the run from the start. The data stream continues from the saved generator state, or is
replayed from the seed where it keeps state between batches (see :func:`stream_at`).
"""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import Dataset
from ..errors import UsageError
from .run_dir import RunDir, atomic_write_bytes

FORMAT = 1


class Resumable:
    """How a run saves resume points. Subclass and override :meth:`resumed` / :meth:`saved` to react
    (the Slurm executor requeues its job in :meth:`saved` after a preemption signal)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self.requested = False  # set asynchronously: save at the next iteration boundary
        self._last = time.monotonic()

    def due(self) -> bool:
        return self.requested or (self.every_s > 0 and time.monotonic() - self._last >= self.every_s)

    def mark_saved(self) -> None:
        self.requested = False
        self._last = time.monotonic()

    def resumed(self, iteration: int) -> None:
        """Called once when a run continues from a resume point, before its first iteration."""

    def saved(self, iteration: int) -> None:
        """Called after each resume point is written (``iteration`` iterations done)."""


def save(
    rd: RunDir,
    run_hash: str,
    built,
    iteration: int,
    data_gen: torch.Generator,
    sums: dict[str, Any],
    count: int,
    elapsed: float,
) -> None:
    state = {
        "format": FORMAT,
        "hash": run_hash,
        "iteration": iteration,
        "model": built.model.state_dict(),
        "objective": built.objective.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if built.device.type == "cuda" else None,
            "numpy": np.random.get_state(),
            "random": random.getstate(),
            "data": data_gen.get_state(),
        },
        "sums": sums,
        "count": count,
        "elapsed": elapsed,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(rd.resume, buf.getvalue())


def load(rd: RunDir, run_hash: str) -> dict[str, Any] | None:
    """The resume point of this run, or ``None`` (none, another configuration's, or unreadable)."""
    path = Path(rd.resume)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a file cut by a crash cannot be: it is written with a rename; be safe anyway
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("hash") != run_hash:
        return None
    problem = _malformed(state)
    if problem:
        raise damaged(rd, problem)
    return state


def damaged(rd: RunDir, why: str) -> UsageError:
    """The error for a resume point of this run that cannot be continued from."""
    return UsageError(f"resume point '{rd.resume}' cannot be used ({why}); remove it to train the run from the start")


def _malformed(state: dict[str, Any]) -> str | None:
    """What is wrong with the content of a resume point (as :func:`save` writes it), or ``None``."""
    kinds = {
        "iteration": int,
        "model": dict,
        "objective": dict,
        "rng": dict,
        "sums": dict,
        "count": int,
        "elapsed": (int, float),
    }
    for key, kind in kinds.items():
        if key not in state:
            return f"no '{key}'"
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            return f"'{key}' is a {type(state[key]).__name__}"
    if state["iteration"] < 0:
        return f"'iteration' is {state['iteration']}"
    streams = {"torch": torch.Tensor, "numpy": tuple, "random": tuple, "data": torch.Tensor}
    for key, kind in streams.items():
        if key not in state["rng"]:
            return f"no random state '{key}'"
        if not isinstance(state["rng"][key], kind):
            return f"random state '{key}' is a {type(state['rng'][key]).__name__}"
    return None


def stream_at(state: dict[str, Any], dataset, batch_size: int, data_gen: torch.Generator):
    """The training stream positioned at the resume point (``data_gen`` freshly seeded), or ``None``
    when it cannot be put there exactly (then the run starts afresh).

    A stream whose batches depend only on the generator's state (the :class:`Dataset` default, the 2D
    generators) continues from the saved generator state. Any other (e.g. an image dataset's epoch
    permutations) is replayed from the seed up to the resume point, which must reproduce the saved
    generator state; the global random streams are left as they were."""
    if type(dataset).batches is Dataset.batches:
        data_gen.set_state(state["rng"]["data"])
        return dataset.batches(batch_size, data_gen)
    streams = torch.get_rng_state(), np.random.get_state(), random.getstate()
    batches = dataset.batches(batch_size, data_gen)
    for _ in range(state["iteration"]):
        next(batches)
    torch.set_rng_state(streams[0])
    np.random.set_state(streams[1])
    random.setstate(streams[2])
    return batches if torch.equal(data_gen.get_state(), state["rng"]["data"]) else None


def restore(built, state: dict[str, Any]) -> None:
    """Put a freshly built run into the saved state (the random streams last; the data stream is placed
    by :func:`stream_at`)."""
    obj = built.objective
    if state["objective"].get("warm") and not obj._warm:
        obj.in_warmup(obj.num_vae)  # replay the end of the warm-up: prior conversion, optimisers, hooks
    built.model.load_state_dict(state["model"])
    obj.load_state_dict(state["objective"])
    for reg, saved in zip(obj.regularizers, state.get("regularizers", ())):  # files written before the
        reg.load_state_dict(saved)  # objective's state held its regularizers'
    rng = state["rng"]
    random.setstate(rng["random"])
    np.random.set_state(rng["numpy"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    torch.set_rng_state(rng["torch"])


def truncate_history(rd: RunDir, iteration: int) -> None:
    """Keep the history records up to ``iteration`` (later ones are written again)."""
    kept = [r for r in rd.read_history() if r.get("iteration", 0) <= iteration]
    atomic_write_bytes(rd.history, "".join(json.dumps(r) + "\n" for r in kept).encode())
