"""The training loop, readable top to bottom: build, train, check for divergence, evaluate, write.

:func:`build` turns a :class:`ResolvedRun` into a model, an objective and a dataset; :func:`train` runs
it and leaves a run directory (see :mod:`introzoo.runs`). ``metrics.json`` is written last.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import kernels, resume
from .config import ResolvedRun
from .errors import UsageError, first_line
from .limits import check_fits
from .metrics.base import EvalContext
from .metrics.stream import timed
from .model import VAE
from .objectives.base import Objective, TrainSettings
from .options import EVAL_CHUNK
from .perf import tune_allocator
from .plots import save_image_progress, save_plots
from .plugins import RunHooks
from .runs import STATUS_DIVERGED, STATUS_FINISHED, RunDir, atomic_write_json

#: exit code of ``introzoo run`` when training diverged (non-finite loss)
EXIT_DIVERGED = 3


@dataclass
class Built:
    model: VAE
    objective: Objective
    dataset: Any
    device: torch.device


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(run: ResolvedRun, device: torch.device | None = None) -> Built:
    device = device or pick_device(run.device)
    seed_everything(run.seed)
    dataset = run.dataset if run.dataset is not None else run.data.component.build(run.data.config)
    zdim = int(run.train["zdim"])
    check_fits(run, dataset.shape, zdim, device)
    try:
        encoder, decoder = run.backbone.component.build(run.backbone.config, data_shape=dataset.shape, zdim=zdim)
    except ValueError as exc:
        raise UsageError(f"backbone '{run.backbone.component.name}' cannot take dataset "
                         f"'{run.data.component.name}': {exc}") from None
    prior = run.prior.component.build(run.prior.config, zdim=zdim)
    model = VAE(encoder, decoder, prior, dataset.shape, zdim).to(device)
    if prior.data_init_points:  # e.g. mog init=data: components at K training posteriors
        with torch.no_grad():
            g = torch.Generator().manual_seed(run.seed)
            mu, logvar = model.encode(dataset.sample(prior.data_init_points, g).to(device))
            prior.init_from_posterior(mu, logvar)
    regs = [r.component.build(r.config) for r in run.regularizers]
    for reg in regs:  # the training set's size, for estimators that need it (beta-TCVAE)
        reg.data_size = dataset.n_train or int(run.train["iterations"]) * int(run.train["batch_size"])
    settings = TrainSettings.model_construct(**run.train)  # validated when the run was resolved
    objective = run.objective.component.build(run.objective.config, model=model, regularizers=regs, train=settings)
    if dataset.n_train:  # a dataset with epochs: schedules counted in epochs (Objective.epoch_length)
        objective.epoch_length = dataset.steps_per_epoch(int(run.train["batch_size"]))
    return Built(model, objective, dataset, device)


def load(run_dir: str | Path, registry=None, device: str | None = None) -> tuple[ResolvedRun, Built]:
    """A finished run, rebuilt from its ``config.json`` with the weights of ``checkpoint.pt`` (eval mode)."""
    from .config import from_json
    from .plugins import state
    from .readers import ReadError, load_checkpoint, read_json

    rd = RunDir(run_dir)
    if not rd.config.exists():
        raise UsageError(f"{rd.path} is not a run directory (no config.json)")
    if not rd.checkpoint.exists():
        raise UsageError(f"{rd.path} has no checkpoint.pt (the run did not finish)")
    record = read_json(rd.config, "run configuration")
    try:
        run = from_json(record, registry or state().registry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReadError("run configuration", rd.config, f"is not an introzoo run configuration "
                                                        f"({type(exc).__name__}: {exc})") from None
    if device is not None:
        run.device = device
    built = build(run)
    state_dict = load_checkpoint(rd.checkpoint, map_location=built.device)
    try:
        built.model.load_state_dict(state_dict["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())
        raise ReadError("checkpoint", rd.checkpoint, f"does not match {rd.config.name} "
                                                     f"({detail[:300]})") from None
    built.model.eval()
    return run, built


def choose_kernels(run: ResolvedRun, built: Built, ddp: bool = False) -> tuple[str, str]:
    """The kernel path of the run's Linear products (:func:`introzoo.kernels.choose`: ``--kernels``, or
    for ``auto`` the faster path for a few steps of a copy of this run, measured once per machine; a
    data-parallel run does not measure, since its steps synchronise the processes: ``aten``)."""
    if ddp and run.kernels == "auto":
        return "aten", "data parallel: not measured"
    p = next(built.model.parameters())
    batch = int(run.train["batch_size"])
    return kernels.choose(run.kernels, built.device, p.dtype, kernels.linear_shapes(built.model), batch,
                          timer=lambda path: _time_steps(built, batch, path),
                          what=f"{run.objective.component.name}+{run.prior.component.name}")


def _time_steps(built: Built, batch: int, path: str, steps: int = 3) -> float:
    """Best seconds of one adversarial training step of a copy of the run (objective, model, optimisers)
    on kernel ``path``; the run's random streams are left as they were."""
    state = torch.get_rng_state()
    try:
        obj = copy.deepcopy(built.objective)
        dtype = next(built.model.parameters()).dtype
        x = built.dataset.sample(batch, torch.Generator().manual_seed(0)).to(built.device, dtype)
        best = float("inf")
        with kernels.use(path):
            for i in range(steps + 1):
                t = time.perf_counter()
                obj.train_step(x, 10 ** 9)
                if i:  # the first step warms up
                    best = min(best, time.perf_counter() - t)
        return best
    finally:
        torch.set_rng_state(state)


def _finite(losses: dict[str, torch.Tensor]) -> bool:
    return all(math.isfinite(float(v)) for v in losses.values())


def run_metrics(run: ResolvedRun) -> list[Any]:
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


def evaluate_run(run: ResolvedRun, built: Built, path: Path, ctx: EvalContext) -> dict[str, Any]:
    """A finished run's evaluation, as ``metrics.json`` records it: ``metrics``, ``directions``, each
    metric's time (``eval_times_s``), ``metric_info`` if any, the plots and the total ``eval_time_s``
    (a solo run and each member of a pack, :mod:`introzoo.pack`)."""
    t1 = time.perf_counter()
    out: dict[str, Any] = {}
    out["metrics"], out["directions"] = evaluate(run_metrics(run), ctx)
    out["eval_times_s"] = ctx.times
    if ctx.info:
        out["metric_info"] = ctx.info
    out["plots"] = save_plots(run, built, path, ctx)
    out["eval_time_s"] = round(time.perf_counter() - t1, 3)
    return out


def train(run: ResolvedRun, out_dir: str | Path, progress: Any = None,
          resumable: resume.Resumable | None = None, eval_chunk: int | None = None, ddp: Any = None) -> dict[str, Any]:
    """Train and evaluate one run; returns the content of ``metrics.json``.

    ``progress``: an object with ``start(total)``, ``update(iteration, losses)`` and ``stop()`` (the CLI
    passes a rich progress bar), or ``None``. ``resumable``: write resume points and continue from the
    one an earlier attempt left (see :mod:`introzoo.resume`); ``None`` starts afresh and writes none.
    ``eval_chunk``: the evaluation's most images per pass (:mod:`introzoo.metrics.stream`); the progress
    object's ``eval_phases``, if it has one, shows the evaluation's phases.
    ``ddp``: this process's :class:`introzoo.distributed.DataParallel` (``introzoo run --ddp``): it trains
    its shard of each batch; only process 0 writes ``out_dir`` and evaluates.
    """
    tune_allocator()
    main = ddp is None or ddp.main
    if ddp is not None:
        resumable = None  # a data-parallel run starts afresh
        device = ddp.device(run.device)
        ddp.start(run, device)
    built = build(run, device if ddp is not None else None)
    getattr(built.dataset, "ensure_available", lambda: None)()  # a missing dataset stops before any file
    if ddp is not None:
        ddp.attach(built)
    rd = RunDir(out_dir if main else ddp.scratch())
    rd.create()
    iterations, batch_size = int(run.train["iterations"]), int(run.train["batch_size"])
    data_gen = torch.Generator()
    data_gen.manual_seed(run.seed)
    kernel_path, why = choose_kernels(run, built, ddp=ddp is not None)
    if progress is not None and isinstance(getattr(progress, "plan", None), list):
        progress.plan.append(f"kernels {kernel_path} ({why})")
    config = {**run.record(), "device_used": str(built.device), "kernels_used": kernel_path}  # the hash names the run directory
    saved = resume.load(rd, config["hash"]) if resumable is not None else None
    try:
        batches = resume.stream_at(saved, built.dataset, batch_size, data_gen) if saved is not None else None
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise resume.damaged(rd, first_line(exc, with_type=True)) from None
    if batches is None:  # from the start
        saved = None
        rd.reset()
        batches = built.dataset.batches(batch_size, data_gen)
    atomic_write_json(rd.config, config)
    hooks = RunHooks(run) if main else None  # the plugins' run-lifecycle hooks (loggers)
    if hooks:
        hooks.start(rd.path)

    status, diverged_at, sums, count = STATUS_FINISHED, None, {}, 0
    start, elapsed_before = 0, 0.0
    if saved is not None:
        try:
            resume.restore(built, saved)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise resume.damaged(rd, first_line(exc, with_type=True)) from None
        resume.truncate_history(rd, saved["iteration"])
        for p in (rd.metrics, rd.checkpoint):
            p.unlink(missing_ok=True)
        start, sums, count, elapsed_before = saved["iteration"], saved["sums"], saved["count"], saved["elapsed"]
        resumable.resumed(start)
    check_every = 1 if built.device.type == "cpu" else run.log_every
    image_every = 0
    if built.dataset.kind == "image":  # a progress grid once per epoch (or --image-every)
        image_every = run.image_every or built.dataset.steps_per_epoch(batch_size)

    t0 = time.perf_counter() - elapsed_before
    if progress and main:
        progress.start(iterations)
    with kernels.use(kernel_path):  # --kernels: the Linear products' CPU kernels (introzoo.kernels)
        for it in range(start, iterations):
            x = next(batches).to(built.device, non_blocking=True)
            losses = ddp.train_step(built, x, it) if ddp is not None else built.objective.train_step(x, it)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if (it + 1) % check_every == 0 and not _finite(losses):
                status, diverged_at = STATUS_DIVERGED, it
            last = it + 1 == iterations or status == STATUS_DIVERGED
            if (it + 1) % run.log_every == 0 or last:
                record = {"iteration": it + 1, **{k: float(v) / count for k, v in sums.items()},
                          "lr": built.objective.optimizers["encoder"].param_groups[0]["lr"],
                          "time_s": round(time.perf_counter() - t0, 3)}
                rd.append_history(record)
                if hooks:
                    hooks.log(it + 1, record)
                sums, count = {}, 0
                if status == STATUS_FINISHED and not all(math.isfinite(v) for v in record.values()):
                    status, diverged_at = STATUS_DIVERGED, it  # found at a coarser check (GPU)
            if progress and main:
                progress.update(it + 1, losses)
            if status == STATUS_DIVERGED:
                break
            if image_every and ((it + 1) % image_every == 0 or it + 1 == iterations):
                save_image_progress(built, x, rd.path / "progress" / f"iter_{it + 1:07d}.png", run, it + 1)
            if resumable is not None and (it + 1 == iterations or resumable.due()):
                resume.save(rd, config["hash"], built, it + 1, data_gen, sums, count, time.perf_counter() - t0)
                resumable.mark_saved()
                resumable.saved(it + 1)
    if progress and main:
        progress.stop()
    elapsed = time.perf_counter() - t0
    done = (diverged_at + 1) if diverged_at is not None else iterations
    if not main:  # data parallel: process 0 saves, evaluates and reports
        ddp.close()
        return {"status": status, "iterations": done, "rank": ddp.rank}

    result: dict[str, Any] = {"status": status, "iterations": done, "train_time_s": round(elapsed, 3),
                              "it_per_s": round(done / elapsed, 2) if elapsed > 0 else None}
    if status == STATUS_DIVERGED:
        result["diverged_at"] = diverged_at
        result["reason"] = f"non-finite loss at iteration {diverged_at}"
        result["metrics"] = {}
    else:
        reports = {r.name or type(r).__name__: r.report(built.model) for r in built.objective.regularizers}
        if any(reports.values()):
            result["regularizers"] = reports
        torch.save({"model": built.model.state_dict(), "objective": built.objective.state_dict(),
                    "iterations": done, "config": config}, rd.checkpoint)
        ctx = EvalContext(built.model, built.dataset, built.device, run.seed, chunk=eval_chunk or EVAL_CHUNK)
        if getattr(progress, "eval_phases", None) is not None:
            ctx.progress = progress.eval_phases
        result.update(evaluate_run(run, built, rd.path, ctx))
    atomic_write_json(rd.metrics, result)
    rd.resume.unlink(missing_ok=True)
    hooks.end(result)
    if ddp is not None:
        ddp.close()
    return result


class _CallableModule(types.ModuleType):
    """``introzoo.train`` is this module, and calling it is the library facade :func:`introzoo.api.train`
    (``introzoo.train(objective="soft", ...)``); :func:`train` above is the loop it runs."""

    def __call__(self, **options: Any):
        from .api import train as facade

        return facade(**options)


sys.modules[__name__].__class__ = _CallableModule
