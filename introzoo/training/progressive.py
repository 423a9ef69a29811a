"""Progressive growing as a training schedule (``--resolution``): from 4x4 to the image size, one stage
per doubling, each new block blended in smoothly (seed 001 §6.3 and Appendix 9.2.2; the official
``style_soft_intro_vae/lod_driver.py`` and ``train_style_soft_intro_vae.py``).

:class:`Schedule` is a pure function of the iteration: :meth:`Schedule.at` gives the stage's ``level``
(``2^(level+2)`` pixels), the blend weight ``alpha``, the stage's batch size and its ``beta_neg``. So a run
resumed from ``resume.pt`` (which holds the iteration) continues at the same stage and blend weight.

- Stage lengths: ``stage_iterations``, or ``stage_epochs`` epochs at the stage's batch size (the official
  ``EPOCHS_PER_LOD``; 30 unless given). Every stage but the last has that length; the last one runs to the
  end of training (``iterations`` defaults to the sum of the stage lengths).
- Blend: for the first ``blend_iterations`` (or ``blend_epochs``; default half the stage, as
  ``lod_driver.py``) iterations of every stage after the first, ``alpha = sin(t*pi - pi/2)/2 + 1/2`` with
  ``t`` the fraction of the blend done (``get_blend_factor``), then 1.
- ``stage_batch_size`` / ``stage_beta_neg``: one value per stage from 4x4 (the official
  ``LOD_2_BATCH_*`` and ``BETA_NEG`` lists; a shorter list repeats its last value).

:class:`Growing` applies the schedule to a built run: before each step it sets the networks' stage
(``set_stage(level, alpha)``), the objective's ``beta_neg`` and, at the first iteration of each stage,
empties the optimisers' moments (as ``lod_driver.set_epoch``); after the last step of a stage it writes
``progress/stage_<side>.png``. :class:`StagedData` is the training stream: batches of the stage's size,
average-pooled to the stage's resolution and, while a block blends in, mixed with their 2x-coarser copy
upsampled, ``alpha * x + (1 - alpha) * up(pool(x))`` (the official input blend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from ..errors import UsageError

#: the training options of the schedule besides ``resolution`` (they apply only with it)
STAGE_OPTIONS = (
    "stage_iterations",
    "stage_epochs",
    "blend_iterations",
    "blend_epochs",
    "stage_batch_size",
    "stage_beta_neg",
)
#: stage length in epochs when none is given (seed 001 Appendix 9.2.2: 30 epochs per resolution)
DEFAULT_STAGE_EPOCHS = 30


def blend_weight(t: float) -> float:
    """The official blend factor at fraction ``t`` of the blend: ``sin(t*pi - pi/2)/2 + 1/2``, clamped to [0, 1]."""
    t = min(max(t, 0.0), 1.0)
    return math.sin(t * math.pi - 0.5 * math.pi) * 0.5 + 0.5


@dataclass(frozen=True)
class Stage:
    level: int
    start: int
    length: int
    blend: int
    batch_size: int
    beta_neg: float | None

    @property
    def side(self) -> int:
        return 2 ** (self.level + 2)


@dataclass(frozen=True)
class Point:
    """The schedule at one iteration: ``first`` / ``last``: the stage's first / last iteration."""

    level: int
    alpha: float
    batch_size: int
    beta_neg: float | None
    first: bool
    last: bool


def _per_stage(values: list | None, level: int, default: Any) -> Any:
    return default if not values else values[min(level, len(values) - 1)]


class Schedule:
    """Stages from 4x4 to ``resolution`` pixels over ``iterations`` iterations."""

    def __init__(self, stages: list[Stage], iterations: int) -> None:
        self.stages, self.iterations = stages, iterations

    @classmethod
    def from_train(cls, train: dict[str, Any], steps_per_epoch: Callable[[int], int]) -> "Schedule":
        """The schedule of resolved training options (``resolution`` set); ``steps_per_epoch(batch)``:
        the dataset's iterations per epoch at a batch size."""
        res = int(train["resolution"])
        levels = int(math.log2(res)) - 1
        stages, start = [], 0
        for level in range(levels):
            batch = int(_per_stage(train.get("stage_batch_size"), level, train["batch_size"]))
            steps = steps_per_epoch(batch)
            if train.get("stage_iterations") is not None:
                length = int(train["stage_iterations"])
                blend = length // 2
            else:
                epochs = int(train.get("stage_epochs") or DEFAULT_STAGE_EPOCHS)
                length, blend = epochs * steps, epochs // 2 * steps
            if train.get("blend_iterations") is not None:
                blend = int(train["blend_iterations"])
            elif train.get("blend_epochs") is not None:
                blend = int(train["blend_epochs"]) * steps
            blend = 0 if level == 0 else min(blend, length)
            stages.append(Stage(level, start, length, blend, batch, _per_stage(train.get("stage_beta_neg"), level, None)))
            start += length
        return cls(stages, int(train.get("iterations") or start))

    @property
    def total(self) -> int:
        """Iterations to the end of the last stage's own length."""
        last = self.stages[-1]
        return last.start + last.length

    def stage(self, iteration: int) -> Stage:
        for s in reversed(self.stages):
            if iteration >= s.start:
                return s
        raise ValueError(f"iteration {iteration} is negative")

    def at(self, iteration: int) -> Point:
        s = self.stage(iteration)
        alpha = 1.0 if s.blend == 0 else blend_weight((iteration - s.start) / s.blend)
        final = s is self.stages[-1]
        last = iteration == self.iterations - 1 if final else iteration == s.start + s.length - 1
        return Point(s.level, alpha, s.batch_size, s.beta_neg, iteration == s.start, last)


def stage_input(x: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """A full-resolution batch at the stage's resolution (average pooling), blended with its 2x-coarser
    copy (nearest upsampling) while ``alpha < 1``."""
    side = 2 ** (level + 2)
    if x.shape[-1] != side:
        x = F.avg_pool2d(x, x.shape[-1] // side)
    if alpha < 1.0:
        x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, alpha)
    return x


class StagedData:
    """The training stream of a growing run: a fresh stream of the dataset at each stage's batch size,
    its batches at the stage's resolution (:func:`stage_input`). Its batches depend on the data
    generator and the iteration only, so a resume point replays it (:func:`introzoo.training.resume.stream_at`)."""

    def __init__(self, dataset: Any, schedule: Schedule) -> None:
        self.dataset, self.schedule = dataset, schedule

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        it, stream, level = 0, None, None
        while True:
            p = self.schedule.at(it)
            if p.level != level:
                stream, level = self.dataset.batches(p.batch_size, generator), p.level
            yield stage_input(next(stream), p.level, p.alpha)
            it += 1


def check_train(train: dict[str, Any], dataset: Any, iterations_given: bool) -> None:
    """Check the schedule's options against the dataset when the run is resolved and, unless
    ``--iterations`` / ``--epochs`` was given, set ``iterations`` to the stages' total (``epochs`` is then
    dropped: the stages count their own)."""
    if train.get("resolution") is None:
        stray = [k for k in STAGE_OPTIONS if train.get(k) is not None]
        if stray:
            raise UsageError(f"--{stray[0].replace('_', '-')} applies only with --resolution (progressive growing)")
        return
    for key, low in (("stage_batch_size", 1), ("stage_beta_neg", 0)):
        bad = [v for v in train.get(key) or () if not v >= low or not math.isfinite(v)]
        if bad:
            raise UsageError(
                f"--{key.replace('_', '-')} {bad[0]}: every value must be {'positive' if low else 'non-negative'}"
            )
    res = int(train["resolution"])
    if res < 8 or res & (res - 1):
        raise UsageError(f"--resolution {res}: give a power of two from 8 (8, 16, 32, ..., 256, ...)")
    shape = tuple(getattr(dataset, "shape", ()))
    if getattr(dataset, "kind", "") != "image" or len(shape) != 3 or shape[1:] != (res, res):
        raise UsageError(
            f"--resolution {res} grows to {res}x{res} images, but dataset '{getattr(dataset, 'name', '?')}' "
            f"has samples of shape {shape}; choose images of that size (e.g. folder:DIR,size={res})"
        )
    if train.get("stage_iterations") is None and train.get("stage_epochs") is None:
        train["stage_epochs"] = DEFAULT_STAGE_EPOCHS
    schedule = Schedule.from_train({**train, "iterations": None}, dataset.steps_per_epoch)
    if not iterations_given:
        train["iterations"] = schedule.total
        train.pop("epochs", None)
    last = schedule.stages[-1]
    if int(train["iterations"]) < last.start + last.blend:
        raise UsageError(
            f"--iterations {train['iterations']} ends before the last stage ({res}x{res}) is blended in "
            f"(iteration {last.start + last.blend}); give more iterations or shorter stages"
        )


class Growing:
    """The schedule applied to a built run (see the module's docstring)."""

    def __init__(self, schedule: Schedule, built: Any) -> None:
        model, objective = built.model, built.objective
        nets = (model.encoder, model.decoder)
        if not all(hasattr(n, "set_stage") for n in nets):
            raise UsageError(
                "--resolution grows the networks progressively; the backbone has no stages "
                "(set_stage); choose one that grows: style"
            )
        if nets[0].levels != len(schedule.stages):
            raise UsageError(f"the backbone has {nets[0].levels} stages, the schedule {len(schedule.stages)}")
        if any(s.beta_neg is not None for s in schedule.stages) and "beta_neg" not in type(objective.config).model_fields:
            raise UsageError(
                f"--stage-beta-neg sets beta_neg per stage; objective '{objective.name}' has no beta_neg "
                "(soft, soft-boot and soft-prior have)"
            )
        self.schedule, self.built, self.nets = schedule, built, nets

    def data(self, dataset: Any) -> StagedData:
        return StagedData(dataset, self.schedule)

    def before_step(self, iteration: int) -> Point:
        p = self.schedule.at(iteration)
        for net in self.nets:
            net.set_stage(p.level, p.alpha)
        obj = self.built.objective
        if p.beta_neg is not None and obj.config.beta_neg != p.beta_neg:
            obj.config = obj.config.model_copy(update={"beta_neg": float(p.beta_neg)})
        if p.first and iteration > 0:  # a new stage: the optimisers' moments start again (lod_driver.set_epoch)
            for opt in obj.optimizers.values():
                opt.state.clear()
        return p

    def after_step(self, iteration: int, x: torch.Tensor, run_dir: Path, draw: Callable[[torch.Tensor, Path], None]) -> None:
        """``progress/stage_<side>.png`` after the stage's last iteration (drawn without touching the
        run's random streams)."""
        p = self.schedule.at(iteration)
        if p.last:
            device = x.device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                draw(x, Path(run_dir) / "progress" / f"stage_{2 ** (p.level + 2)}.png")


def attach(run: Any, built: Any, ddp: Any = None) -> Growing | None:
    """The :class:`Growing` of a run with ``--resolution`` (``None`` without)."""
    if run.train.get("resolution") is None:
        return None
    if ddp is not None:
        raise UsageError("--resolution (progressive growing) does not combine with --ddp; train it on one process")
    return Growing(Schedule.from_train(run.train, built.dataset.steps_per_epoch), built)
