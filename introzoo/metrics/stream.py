"""Bounded evaluation: passes of at most ``chunk`` images, noise that does not depend on the chunking,
and the progress / timing protocol every metric reports through.

- **Chunks.** ``EvalContext.chunk`` (``introzoo eval --chunk``, ``introzoo run --eval-chunk``, default
  :data:`EVAL_CHUNK`) is the most images that go through the model or a feature extractor in one pass,
  importance samples included: ``nll`` with ``k`` samples decodes ``chunk`` of the ``k * n`` images at a
  time, so memory depends on the chunk, not on ``k`` or ``n``.
- **Position-keyed noise.** A metric's random draws are keyed by what they are for, not by the order they
  are made in: the posterior noise of sample ``j`` of image ``i`` is the row ``j mod B`` of a
  ``(B, zdim)`` standard normal block drawn from a generator seeded with ``(key, i, j div B)``
  (``B = NOISE_BLOCK``). A chunked evaluation therefore draws exactly the numbers of an unchunked one and
  gives the same value up to float rounding, whatever the chunk.
- **Progress.** ``ctx.phase(description, total)`` opens a phase (a progress bar in the command line,
  nothing in the library) and yields ``advance(n)``; each metric's wall time is reported to
  ``ctx.progress.timed(name, seconds)`` and kept in ``ctx.times``.
"""

from __future__ import annotations

import time
import zlib
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..options import EVAL_CHUNK as EVAL_CHUNK  # re-exported: the metrics' chunk default

#: posterior noise is drawn in blocks of this many samples per image (fixed: the values never depend on it
#: being a divisor of anything the user chooses)
NOISE_BLOCK = 64

Advance = Callable[[int], None]


class Phases:
    """The reporter of a quiet evaluation: phases and timings go nowhere."""

    @contextmanager
    def phase(self, description: str, total: int | None) -> Iterator[Advance]:
        yield lambda n=1: None

    def timed(self, name: str, seconds: float) -> None:
        pass


def noise_key(seed: int, name: str) -> int:
    """A metric's noise key, from the evaluation seed and what the noise is for (``"nll"``, ``"ood:in"``)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**62)


def random_key() -> int:
    """A noise key drawn from torch's global generator (library calls without a seed)."""
    return int(torch.randint(0, 2**62, (1,)))


def _block(key: int, index: int, block: int, zdim: int) -> torch.Tensor:
    state = np.random.SeedSequence([key, index, block]).generate_state(2, np.uint64)
    g = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
    return torch.randn(NOISE_BLOCK, zdim, generator=g)


def posterior_noise(key: int, indices: Sequence[int], start: int, count: int, zdim: int) -> torch.Tensor:
    """Standard normal noise ``(count, len(indices), zdim)``: samples ``start .. start + count - 1`` of each
    image ``indices[c]``, the same numbers however the samples and images are split into passes."""
    b0, b1 = start // NOISE_BLOCK, (start + count - 1) // NOISE_BLOCK
    lo = start - b0 * NOISE_BLOCK
    out = torch.empty(count, len(indices), zdim)
    for col, i in enumerate(indices):
        blocks = torch.cat([_block(key, int(i), b, zdim) for b in range(b0, b1 + 1)])
        out[:, col] = blocks[lo : lo + count]
    return out


def timed(metric, ctx) -> dict[str, float]:
    """``metric.compute(ctx)``, its wall time recorded under the metric's first value name; a metric that
    reports nothing for this model (``resp_entropy`` without a mixture prior) is neither timed nor shown."""
    name = next(iter(metric.directions), type(metric).__name__)
    t0 = time.perf_counter()
    values = metric.compute(ctx)
    seconds = time.perf_counter() - t0
    if values:
        ctx.times[name] = round(seconds, 3)
        ctx.progress.timed(name, seconds)
    return values
