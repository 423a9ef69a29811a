"""The training loop, readable top to bottom: build, train, check for divergence, evaluate, write.

:func:`build` turns a :class:`ResolvedRun` into a model, an objective and a dataset; :func:`train` runs
it and leaves a run directory (see :mod:`introzoo.training.run_dir`). ``metrics.json`` is written last.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import kernels
from . import progressive, resume
from ..config import ResolvedRun
from ..errors import UsageError
from ..figures.pictures import save_image_progress
from .lifecycle import RunRecorder
from .limits import check_fits
from ..model import VAE
from ..objectives.base import Objective, TrainSettings
from .perf import tune_allocator
from .run_dir import RunDir

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


def build(run: ResolvedRun, device: torch.device | None = None, dataset: Any = None) -> Built:
    """The run's model, objective and dataset on ``device``; ``dataset``: one already built for it (a pack's
    members share theirs), else the one :func:`introzoo.config.resolve` built, else a new one."""
    device = device or pick_device(run.device)
    seed_everything(run.seed)
    if dataset is None:
        dataset = run.dataset if run.dataset is not None else run.data.component.build(run.data.config)
    zdim = int(run.train["zdim"])
    check_fits(run, dataset.shape, zdim, device)
    try:
        encoder, decoder = run.backbone.component.build(run.backbone.config, data_shape=dataset.shape, zdim=zdim)
    except ValueError as exc:
        raise UsageError(
            f"backbone '{run.backbone.component.name}' cannot take dataset '{run.data.component.name}': {exc}"
        ) from None
    prior = run.prior.component.build(run.prior.config, zdim=zdim)
    if run.train.get("conditional"):  # --conditional: label-conditioned networks, labelled batches
        from ..conditional import LabelledStream, build_model

        model = build_model(run.backbone, dataset, prior, zdim).to(device)
        dataset = LabelledStream(dataset, model)
    else:
        model = VAE(encoder, decoder, prior, dataset.shape, zdim).to(device)
    if run.train.get("rec_loss", "mse") != "mse":  # --rec-loss perceptual,weights=FILE: REC is a VGG distance
        from ..perceptual import rec_distance

        model.set_rec_loss(rec_distance(run.train["rec_loss"], dataset, device))
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
    from ..config import from_json
    from ..plugins import state
    from ..readers import ReadError, load_checkpoint, read_json

    rd = RunDir(run_dir)
    if not rd.config.exists():
        raise UsageError(f"{rd.path} is not a run directory (no config.json)")
    if not rd.checkpoint.exists():
        raise UsageError(f"{rd.path} has no checkpoint.pt (the run did not finish)")
    record = read_json(rd.config, "run configuration")
    try:
        run = from_json(record, registry or state().registry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReadError(
            "run configuration", rd.config, f"is not an introzoo run configuration ({type(exc).__name__}: {exc})"
        ) from None
    if device is not None:
        run.device = device
    built = build(run)
    state_dict = load_checkpoint(rd.checkpoint, map_location=built.device)
    try:
        built.model.load_state_dict(state_dict["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())
        raise ReadError("checkpoint", rd.checkpoint, f"does not match {rd.config.name} ({detail[:300]})") from None
    built.model.eval()
    return run, built


def choose_kernels(run: ResolvedRun, built: Built, ddp: bool = False) -> tuple[str, str]:
    """The kernel path of the run's Linear products (:func:`introzoo.training.kernels.choose`: ``--kernels``, or
    for ``auto`` the faster path for a few steps of a copy of this run, measured once per machine; a
    data-parallel run does not measure, since its steps synchronise the processes: ``aten``)."""
    if ddp and run.kernels == "auto":
        return "aten", "data parallel: not measured"
    p = next(built.model.parameters())
    batch = int(run.train["batch_size"])
    return kernels.choose(
        run.kernels,
        built.device,
        p.dtype,
        kernels.linear_shapes(built.model),
        batch,
        timer=lambda path: _time_steps(built, batch, path),
        what=f"{run.objective.component.name}+{run.prior.component.name}",
    )


def _time_steps(built: Built, batch: int, path: str, steps: int = 3) -> float:
    """Best seconds of one adversarial training step of a copy of the run (objective, model, optimisers)
    on kernel ``path``; the run's random streams are left as they were."""
    state = torch.get_rng_state()
    try:
        dtype = next(built.model.parameters()).dtype
        x = built.dataset.sample(batch, torch.Generator().manual_seed(0)).to(built.device, dtype)
        obj = copy.deepcopy(built.objective)  # after the draw: a conditional model's copy has its labels
        best = float("inf")
        with kernels.use(path):
            for i in range(steps + 1):
                t = time.perf_counter()
                obj.train_step(x, 10**9)
                if i:  # the first step warms up
                    best = min(best, time.perf_counter() - t)
        return best
    finally:
        torch.set_rng_state(state)


def train(
    run: ResolvedRun,
    out_dir: str | Path,
    progress: Any = None,
    resumable: resume.Resumable | None = None,
    eval_chunk: int | None = None,
    ddp: Any = None,
) -> dict[str, Any]:
    """Train and evaluate one run; returns the content of ``metrics.json`` (:func:`train_built` also
    returns the trained model).

    ``progress``: an object with ``start(total)``, ``update(iteration, losses)`` and ``stop()`` (the CLI
    passes a rich progress bar), or ``None``. ``resumable``: write resume points and continue from the
    one an earlier attempt left (see :mod:`introzoo.training.resume`); ``None`` starts afresh and writes none.
    ``eval_chunk``: the evaluation's most images per pass (:mod:`introzoo.metrics.stream`); the progress
    object's ``eval_phases``, if it has one, shows the evaluation's phases.
    ``ddp``: this process's :class:`introzoo.training.distributed.DataParallel` (``introzoo run --ddp``): it trains
    its shard of each batch; only process 0 writes ``out_dir`` and evaluates.
    """
    return train_built(run, out_dir, progress, resumable, eval_chunk, ddp)[0]


def train_built(
    run: ResolvedRun,
    out_dir: str | Path,
    progress: Any = None,
    resumable: resume.Resumable | None = None,
    eval_chunk: int | None = None,
    ddp: Any = None,
) -> tuple[dict[str, Any], Built]:
    """:func:`train`, returning ``(metrics.json content, the trained Built)``. The step is the
    objective's; everything around it is the run's :class:`~introzoo.training.lifecycle.RunRecorder`."""
    tune_allocator()
    main = ddp is None or ddp.main
    if ddp is not None:
        resumable = None  # a data-parallel run starts afresh
        device = ddp.device(run.device)
        ddp.start(run, device)
    built = build(run, device if ddp is not None else None)
    built.dataset.ensure_available()  # a missing dataset stops before any file
    if ddp is not None:
        ddp.attach(built)
    kernel_path, why = choose_kernels(run, built, ddp=ddp is not None)
    if progress is not None and isinstance(getattr(progress, "plan", None), list):
        progress.plan.append(f"kernels {kernel_path} ({why})")
    config = {
        **run.record(),
        "device_used": str(built.device),
        "kernels_used": kernel_path,
    }  # the hash names the run directory
    grow = progressive.attach(run, built, ddp)  # --resolution: the stage of each iteration, else None
    rec = RunRecorder(
        run,
        built,
        out_dir if main else ddp.scratch(),
        config,
        hooks=main,
        resumable=resumable,
        progress=progress if main else None,
        data=grow.data(built.dataset) if grow else None,
    )
    data_gen = torch.Generator()
    data_gen.manual_seed(run.seed)
    batches = rec.begin(data_gen)
    with kernels.use(kernel_path):  # --kernels: the Linear products' CPU kernels (introzoo.training.kernels)
        for it in range(rec.start_iteration, rec.iterations):
            x = next(batches).to(built.device, non_blocking=True)
            if grow is not None:
                grow.before_step(it)
            losses = ddp.train_step(built, x, it) if ddp is not None else built.objective.train_step(x, it)
            if grow is not None:
                grow.after_step(it, x, rec.rd.path, lambda x, path, it=it: save_image_progress(built, x, path, run, it + 1))
            if rec.after_step(it, losses, x):
                break
    getattr(batches, "close", lambda: None)()  # the stream ends (a conditional run's batch labels are cleared)
    if not main:  # data parallel: process 0 saves, evaluates and reports
        ddp.close()
        return {"status": rec.status, "iterations": rec.done, "rank": ddp.rank}, built
    result = rec.finish(eval_chunk=eval_chunk)
    if ddp is not None:
        ddp.close()
    return result, built
