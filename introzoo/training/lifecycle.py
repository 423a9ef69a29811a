"""A run's lifecycle, written once: what happens around each training step and at the end.

:class:`RunRecorder` is used by every loop that trains: a solo run (:func:`introzoo.training.loop.train`), each
member of a pack (:func:`introzoo.packing.loop.train_pack`, one recorder per member) and process 0 of a
data-parallel run. The loops differ only in how a step runs; everything else is here:

- :meth:`~RunRecorder.begin`: the run directory (fresh, or continued from a resume point), ``config.json``
  and the plugins' ``introzoo_run_start`` hooks;
- :meth:`~RunRecorder.after_step`, once per iteration: the loss sums of the history window, the
  divergence check (every iteration on the CPU, every ``log_every`` on a GPU, where a check is a
  device-to-host sync), ``history.jsonl`` and ``introzoo_run_log`` every ``log_every``, the progress
  bar, the image progress grid (once per epoch or ``--image-every``) and resume points;
- :meth:`~RunRecorder.finish`: the regularizers' reports, ``checkpoint.pt``, the evaluation (each
  metric timed) and ``metrics.json`` (last, atomically), then ``introzoo_run_end``.

So a packed member's ``history.jsonl``, ``metrics.json``, hook calls and ``diverged_at`` are those of its
solo run (``introzoo.testing.compare_pack`` checks them).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from . import resume
from ..errors import first_line
from ..metrics.base import EvalContext
from ..metrics.stream import timed
from ..options import EVAL_CHUNK
from ..figures.finished import save_plots
from ..figures.pictures import save_image_progress
from ..plugins import RunHooks
from .run_dir import STATUS_DIVERGED, STATUS_FINISHED, RunDir, atomic_write_json

#: draws a run's image progress grid: (batch, path, iteration, keep_rng); with ``keep_rng`` the run's
#: random streams are left as they were (the early grid: it must not change the run)
Grid = Callable[[torch.Tensor, Path, int, bool], None]

#: the iteration of an image run's early progress grid (when its first periodic grid comes later): a
#: look at the run within minutes on a CPU, drawn without touching the run's random streams
EARLY_GRID = 25


def finite(losses: dict[str, Any]) -> bool:
    """Whether every loss is finite (a device-to-host sync per value on a GPU)."""
    return all(math.isfinite(float(v)) for v in losses.values())


def run_metrics(run: Any) -> list[Any]:
    """The run's metrics: those :func:`~introzoo.config.resolve` built, else built now (a rebuilt run)."""
    if run.built_metrics is not None:
        return run.built_metrics
    return [m.component.build(m.config) for m in run.metrics]


def evaluate(metrics: list[Any], ctx: EvalContext) -> tuple[dict[str, float], dict[str, str]]:
    """(values, directions) of built metrics on one evaluation context (training's end and ``eval``); each
    metric's time goes to ``ctx.times`` and its reporter."""
    values: dict[str, float] = {}
    directions: dict[str, str] = {}
    for metric in metrics:
        reported = timed(metric, ctx)
        values.update(reported)
        directions.update({k: d for k, d in metric.directions.items() if k in reported})  # what it reported
    return values, directions


def evaluate_run(run: Any, built: Any, path: Path, ctx: EvalContext) -> dict[str, Any]:
    """A finished run's evaluation, as ``metrics.json`` records it: ``metrics``, ``directions``, each
    metric's time (``eval_times_s``), ``metric_info`` if any, the plots and the total ``eval_time_s``
    (a solo run and each member of a pack, :mod:`introzoo.packing.loop`)."""
    t1 = time.perf_counter()
    out: dict[str, Any] = {}
    out["metrics"], out["directions"] = evaluate(run_metrics(run), ctx)
    out["eval_times_s"] = ctx.times
    if ctx.info:
        out["metric_info"] = ctx.info
    out["plots"] = save_plots(run, built, path, ctx)
    out["eval_time_s"] = round(time.perf_counter() - t1, 3)
    return out


class RunRecorder:
    """One run's directory, history, divergence, hooks, resume points and final record.

    ``run``: the :class:`~introzoo.config.ResolvedRun`; ``built``: its :class:`~introzoo.training.loop.Built`
    (model, objective, dataset, device); ``config``: the ``config.json`` record (``hash`` names the run).
    ``lr``: the current learning rate for the history (default: the encoder optimiser's).
    ``grid``: draws the image progress grid (default :func:`introzoo.figures.pictures.save_image_progress` on
    ``built``). ``hooks``: call the plugins' run hooks (not on the helper processes of ``--ddp``).
    ``resumable``: write resume points and continue from one (:mod:`introzoo.training.resume`).
    ``data``: where the training batches come from (default ``built.dataset``; a growing run's
    :class:`~introzoo.training.progressive.StagedData`).
    """

    def __init__(
        self,
        run: Any,
        built: Any,
        out_dir: str | Path,
        config: dict[str, Any],
        *,
        lr: Callable[[], float] | None = None,
        grid: Grid | None = None,
        hooks: bool = True,
        resumable: resume.Resumable | None = None,
        progress: Any = None,
        data: Any = None,
    ) -> None:
        self.run, self.built, self.config = run, built, config
        self.rd = RunDir(out_dir)
        self.iterations = int(run.train["iterations"])
        self.batch_size = int(run.train["batch_size"])
        self.log_every = run.log_every
        self.check_every = 1 if built.device.type == "cpu" else run.log_every
        self.image_every = self.early_grid = 0
        if built.dataset.kind == "image":  # a progress grid once per epoch (or --image-every), and one early
            self.image_every = run.image_every or built.dataset.steps_per_epoch(self.batch_size)
            self.early_grid = EARLY_GRID if EARLY_GRID < min(self.image_every, self.iterations) else 0
        self._lr = lr or (lambda: built.objective.optimizers["encoder"].param_groups[0]["lr"])
        self._grid = grid
        self.hooks = RunHooks(run) if hooks else None
        self.resumable, self.progress = resumable, progress
        self.data = data if data is not None else built.dataset
        self.status, self.diverged_at = STATUS_FINISHED, None
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.start_iteration, self.elapsed_before = 0, 0.0
        self.t0 = 0.0
        self.data_gen: torch.Generator | None = None

    @property
    def stopped(self) -> bool:
        """Whether the run ended early (diverged)."""
        return self.status == STATUS_DIVERGED

    def begin(self, data_gen: torch.Generator) -> Iterator[torch.Tensor]:
        """Prepare the run directory and return the run's batches (``data_gen``: the data stream's
        generator, seeded with the run's seed). With a resume point of this run's hash, the model, the
        objective, every random stream and the history window are restored and the batches continue
        where it stopped (:attr:`start_iteration`); otherwise the directory is reset."""
        rd, built = self.rd, self.built
        rd.create()
        self.data_gen = data_gen
        saved = resume.load(rd, self.config["hash"]) if self.resumable is not None else None
        try:
            batches = resume.stream_at(saved, self.data, self.batch_size, data_gen) if saved is not None else None
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise resume.damaged(rd, first_line(exc, with_type=True)) from None
        if batches is None:  # from the start
            saved = None
            rd.reset()
            batches = self.data.batches(self.batch_size, data_gen)
        atomic_write_json(rd.config, self.config)
        if self.hooks:
            self.hooks.start(rd.path)
        if saved is not None:
            try:
                resume.restore(built, saved)
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
                raise resume.damaged(rd, first_line(exc, with_type=True)) from None
            resume.truncate_history(rd, saved["iteration"])
            for p in (rd.metrics, rd.checkpoint):
                p.unlink(missing_ok=True)
            self.start_iteration, self.sums, self.count = saved["iteration"], saved["sums"], saved["count"]
            self.elapsed_before = saved["elapsed"]
            self.resumable.resumed(self.start_iteration)
        self.t0 = time.perf_counter() - self.elapsed_before
        if self.progress:
            self.progress.start(self.iterations)
        return batches

    def after_step(self, it: int, losses: dict[str, Any], x: torch.Tensor) -> bool:
        """Record iteration ``it`` (0-based) with its ``losses`` on batch ``x``; True when the run stops
        here (diverged: no further step may run)."""
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        if (it + 1) % self.check_every == 0 and not finite(losses):
            self.status, self.diverged_at = STATUS_DIVERGED, it
        last = it + 1 == self.iterations or self.stopped
        if (it + 1) % self.log_every == 0 or last:
            record = {
                "iteration": it + 1,
                **{k: float(v) / self.count for k, v in self.sums.items()},
                "lr": self._lr(),
                "time_s": round(time.perf_counter() - self.t0, 3),
            }
            self.rd.append_history(record)
            if self.hooks:
                self.hooks.log(it + 1, record)
            self.sums, self.count = {}, 0
            if not self.stopped and not all(math.isfinite(v) for v in record.values()):
                self.status, self.diverged_at = STATUS_DIVERGED, it  # found at a coarser check (GPU)
        if self.progress:
            self.progress.update(it + 1, losses)
        if self.stopped:
            return True
        if self.image_every and ((it + 1) % self.image_every == 0 or it + 1 == self.iterations):
            self._progress_grid(x, it + 1, keep_rng=False)
        elif it + 1 == self.early_grid:
            self._progress_grid(x, it + 1, keep_rng=True)
        r = self.resumable
        if r is not None and (it + 1 == self.iterations or r.due()):
            resume.save(
                self.rd,
                self.config["hash"],
                self.built,
                it + 1,
                self.data_gen,
                self.sums,
                self.count,
                time.perf_counter() - self.t0,
            )
            r.mark_saved()
            r.saved(it + 1)
        return False

    def _progress_grid(self, x: torch.Tensor, iteration: int, keep_rng: bool) -> None:
        """``progress/iter_<iteration>.png``. The periodic grids draw their prior samples from the run's
        stream (as they always have: runs keep their results); the early grid leaves it untouched."""
        path = self.rd.path / "progress" / f"iter_{iteration:07d}.png"
        if self._grid is not None:
            self._grid(x, path, iteration, keep_rng)
            return
        device = self.built.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=keep_rng):
            save_image_progress(self.built, x, path, self.run, iteration)

    @property
    def done(self) -> int:
        """Iterations trained (up to and including the diverging one)."""
        return self.diverged_at + 1 if self.diverged_at is not None else self.iterations

    def finish(
        self, elapsed: float | None = None, built: Any = None, eval_chunk: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The run's final record: checkpoint and evaluation (a finished run), ``metrics.json`` written
        last, then the ``introzoo_run_end`` hooks; returns the record. ``elapsed``: training seconds
        (default: since :meth:`begin`, resumed time included); ``built``: the trained model to save and
        evaluate (default the recorder's; a pack passes its member's exported solo model); ``extra``: keys
        added to the record (a pack's ``packed``)."""
        if self.progress:
            self.progress.stop()
        if elapsed is None:
            elapsed = time.perf_counter() - self.t0
        done = self.done
        result: dict[str, Any] = {
            "status": self.status,
            "iterations": done,
            "train_time_s": round(elapsed, 3),
            "it_per_s": round(done / elapsed, 2) if elapsed > 0 else None,
            **extra,
        }
        if self.stopped:
            result["diverged_at"] = self.diverged_at
            result["reason"] = f"non-finite loss at iteration {self.diverged_at}"
            result["metrics"] = {}
        else:
            built = built or self.built
            reports = {r.name or type(r).__name__: r.report(built.model) for r in built.objective.regularizers}
            if any(reports.values()):
                result["regularizers"] = reports
            torch.save(
                {
                    "model": built.model.state_dict(),
                    "objective": built.objective.state_dict(),
                    "iterations": done,
                    "config": self.config,
                },
                self.rd.checkpoint,
            )
            ctx = EvalContext(built.model, built.dataset, built.device, self.run.seed, chunk=eval_chunk or EVAL_CHUNK)
            if getattr(self.progress, "eval_phases", None) is not None:
                ctx.progress = self.progress.eval_phases
            result.update(evaluate_run(self.run, built, self.rd.path, ctx))
        atomic_write_json(self.rd.metrics, result)
        self.rd.resume.unlink(missing_ok=True)
        if self.hooks:
            self.hooks.end(result)
        return result
