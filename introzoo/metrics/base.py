"""The metric contract: given a trained model and its data, return named numbers and their direction.

Each evaluation gets an :class:`EvalContext` carrying the model, the dataset, the device, a seed and a
cache, so metrics that share work (the 2D grid's negative ELBO feeds ``gnelbo`` and the density plot)
compute it once; and the bounds of the evaluation (:mod:`introzoo.metrics.stream`): ``chunk``, the most
images per pass, and ``progress``, the reporter of phases and timings. Random numbers come from the
context, per metric name: :meth:`EvalContext.generator` for data draws, :meth:`EvalContext.seeded` for
the model's own draws (priors and ``reparameterize`` draw from torch's global RNG), which it restores
afterwards, so that an evaluation never changes the random stream of the code around it; the streamed
image metrics key their noise by position instead (:func:`introzoo.metrics.stream.noise_key`).
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from ..conditional.model import conditioned
from ..data.base import Dataset
from ..model import VAE
from .stream import EVAL_CHUNK, Phases


@dataclass
class EvalContext:
    """What a metric's ``compute(ctx)`` gets: ``model`` (trained, on ``device``; put it in eval mode),
    ``dataset``, ``device`` (a ``torch.device``), ``seed`` (the run's), ``cache`` (shared by the metrics
    of one evaluation, keyed by what was computed) and ``info`` (metric name -> how it was computed, for
    ``metrics.json``)."""

    model: VAE
    dataset: Dataset
    device: torch.device
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    #: metric name -> how it was computed (extractor and its accuracy, BatchNorm mode, sample counts);
    #: written to metrics.json as ``metric_info``
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the most images through the model or an extractor in one pass (importance samples included)
    chunk: int = EVAL_CHUNK
    #: where phases (progress bars) and metric timings go
    progress: Phases = field(default_factory=Phases)
    #: metric name -> seconds it took
    times: dict[str, float] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype:
        """The model's floating dtype (of its first parameter; float32 for a model without any)."""
        p = next(iter(self.model.parameters()), None) if hasattr(self.model, "parameters") else None
        return torch.float32 if p is None else p.dtype

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images as the model's floats (its dtype, on the device)."""
        return self.dataset.to_float(x).to(self.device, self.dtype)

    def phase(self, description: str, total: int | None):
        """A context manager yielding ``advance(n)`` for one phase of the evaluation (a progress bar)."""
        return self.progress.phase(description, total)

    def _derived(self, name: str) -> int:
        return (self.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**62)

    def generator(self, name: str) -> torch.Generator:
        """A new CPU ``torch.Generator`` for data draws (``dataset.sample(n, g)``, ``randperm``), seeded
        from the run seed and ``name`` so each metric has its own stream. Nothing else is seeded."""
        g = torch.Generator()
        g.manual_seed(self._derived(name))
        return g

    @contextmanager
    def seeded(self, name: str) -> Iterator[None]:
        """``with ctx.seeded(name):`` torch's global RNG, which the model's own draws use
        (``prior.sample``, ``model.sample``, ``reparameterize``), seeded from the run seed and ``name``
        for the block, and restored afterwards (``torch.random.fork_rng``). The seed is
        :meth:`generator`'s plus ``2**62``; torch's CPU generator keeps only the low 32 bits of a seed,
        so on the CPU both streams of one name start alike (kept: the metrics' values stay those of
        earlier runs); use different names for real and generated draws where that matters."""
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
            if cuda:
                torch.manual_seed(self._derived(name) + 2**62)
            else:
                torch.default_generator.manual_seed(self._derived(name) + 2**62)
            yield


@torch.no_grad()
def encode_split(ctx: EvalContext, split: str, n: int | None):
    """Latent means and log-variances of (up to) ``n`` images of an image dataset's split, with labels,
    encoded ``ctx.chunk`` at a time; cached in the context so the probes share one pass. The model is in
    eval mode."""
    key = f"latents:{split}:{n}"
    if key not in ctx.cache:
        x, y = ctx.dataset.images(split)
        if n is not None:
            x, y = x[:n], y[:n]
        ctx.model.eval()
        mus, logvars = [], []
        with ctx.phase(f"encoding {split} images", x.shape[0]) as advance:
            for chunk, labels in zip(x.split(ctx.chunk), y.split(ctx.chunk)):
                with conditioned(ctx.model, labels):  # a conditional model encodes with the labels
                    mu, logvar = ctx.model.encode(ctx.model_input(chunk))
                mus.append(mu.cpu())
                logvars.append(logvar.cpu())
                advance(chunk.shape[0])
        ctx.cache[key] = (torch.cat(mus), torch.cat(logvars), y)
    return ctx.cache[key]


class Metric:
    """Base class of metrics: ``directions``, ``kinds``, ``applies_to``, ``why_not`` and ``compute``."""

    #: metric name -> "min" (lower is better) or "max"
    directions: dict[str, str] = {}
    #: dataset kinds this metric applies to
    kinds: frozenset[str] = frozenset()
    #: needs large downloads, a GPU or minutes: the contract checks do not compute it
    heavy: bool = False
    #: the validated options (an instance of the registered config class) when the metric keeps them, as
    #: the built-ins do (``self.config = config``); ``None`` otherwise
    config: Any = None

    def applies_to(self, dataset: Dataset) -> bool:
        """Whether the metric can be computed on ``dataset``; by default, ``dataset.kind in kinds``."""
        return dataset.kind in self.kinds

    def why_not(self, dataset: Dataset) -> str:
        """Why :meth:`applies_to` refuses ``dataset``, for the error line of ``--metric`` (override it
        with :meth:`applies_to`)."""
        if type(self).applies_to is Metric.applies_to:
            kinds = ", ".join(sorted(self.kinds)) or "no"
            return f"it applies to {kinds} datasets, and '{dataset.name}' is a {dataset.kind} dataset"
        return f"{type(self).__name__}.applies_to refused it"

    def compute(self, ctx: EvalContext) -> dict[str, float]:  # pragma: no cover - abstract
        """``{reported name: float}``; every name has an entry in ``directions``."""
        raise NotImplementedError
