"""The library facade: training from Python is one import.

::

    import introzoo

    run = introzoo.train(objective="soft", prior="sg", data="8gaussians", iterations=4000, seed=0)
    run.metrics           # the metrics of metrics.json
    run.sample(1000)      # (1000, *data_shape) samples of the trained model
    introzoo.load_run(run.path).model

The keyword arguments are those of ``introzoo run`` (``reg`` and ``metric`` take one spec string or a
list, like the repeatable ``--reg`` / ``--metric``), and a run trained here is the run the command line
makes with the same settings: same directory name and hash, same ``config.json``, same metrics.
:func:`build` gives the untrained model; :func:`load_run` a saved run. ``introzoo.build``,
``introzoo.train`` and ``introzoo.load_run`` are these functions, imported on first use (``introzoo.train``
is the module of the training loop, callable as this :func:`train`).
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .training import loop as _loop
from .config import ResolvedRun, RunConfig, from_json, resolve
from .errors import UsageError
from .inputs import check_resume_every
from .options import train_option_names
from .training.run_dir import STATUS_FINISHED, RunDir


@dataclass
class Run:
    """A run: its resolved configuration, its model and, once trained, its directory and results."""

    #: every resolved option (what ``config.json`` records)
    config: ResolvedRun
    #: model, objective, dataset and device (``None`` for a diverged run: it saved no model)
    built: _loop.Built | None
    #: the run directory (``None`` for a run that was only built)
    path: Path | None = None
    #: the content of ``metrics.json`` (``None`` before training)
    result: dict[str, Any] | None = None

    @property
    def model(self):
        """The VAE (eval mode after training or loading)."""
        if self.built is None:
            raise UsageError(f"run {self.path} {self.status}: it has no trained model")
        return self.built.model

    @property
    def dataset(self):
        if self.built is None:
            raise UsageError(f"run {self.path} {self.status}: it has no dataset built")
        return self.built.dataset

    @property
    def status(self) -> str:
        """``built`` (untrained), else the run's status (``finished``, ``diverged``)."""
        return "built" if self.result is None else self.result["status"]

    @property
    def metrics(self) -> dict[str, float]:
        return dict((self.result or {}).get("metrics", {}))

    @property
    def hash(self) -> str:
        """The id of what determines the results (the ``<hash>`` of the default run directory)."""
        return self.config.hash()

    @property
    def history(self) -> list[dict[str, Any]]:
        """The records of ``history.jsonl`` (mean losses every ``log_every`` iterations)."""
        return RunDir(self.path).read_history() if self.path is not None else []

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` decoded prior samples on the CPU; ``seed`` draws them from their own generator state
        (the global random state is left as it was)."""
        model = self.model
        model.eval()
        if seed is None:
            return model.sample(n).cpu()
        device = self.built.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            return model.sample(n).cpu()


def _specs(value: str | Sequence[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def resolve_run(
    *,
    objective: str = "soft",
    data: str = "8gaussians",
    prior: str = "sg",
    reg: str | Sequence[str] = (),
    backbone: str | None = None,
    iterations: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    zdim: int | None = None,
    seed: int = 0,
    device: str = "auto",
    kernels: str = "auto",
    metric: str | Sequence[str] | None = None,
    log_every: int = 100,
    image_every: int | None = None,
    data_root: str | Path | None = None,
    **train_options: Any,
) -> ResolvedRun:
    """Every option of a run spelled out, from the options of ``introzoo run`` (``None``: the dataset's
    or introzoo's default; ``metric=None``: every metric that applies). ``data_root`` sets
    ``$INTROZOO_DATA_ROOT`` as ``--data-root`` does. ``train_options``: the further training options of
    :class:`introzoo.options.TrainOptions` (``lr_milestones``, ``lr_gamma``, ``precision``, ...), each
    accepted by name as ``introzoo run`` accepts its flag."""
    from pydantic import ValidationError

    from .plugins import state

    if data_root is not None:
        os.environ["INTROZOO_DATA_ROOT"] = str(Path(data_root).expanduser().resolve())
    unknown = sorted(set(train_options) - set(train_option_names()))
    if unknown:
        raise TypeError(f"unexpected option {unknown[0]!r}; training options: {', '.join(train_option_names())}")
    options = dict(
        objective=objective,
        data=data,
        prior=prior,
        regularizers=_specs(reg),
        backbone=backbone,
        iterations=iterations,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        zdim=zdim,
        seed=seed,
        device=device,
        kernels=kernels,
        metrics=_specs(metric) or None,
        log_every=log_every,
        image_every=image_every,
        **train_options,
    )
    try:
        cfg = RunConfig(**options)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = {"regularizers": "reg", "metrics": "metric"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise UsageError(f"{name}: {err['msg']} (got {err.get('input')!r})") from None
    return resolve(cfg, state().registry)


def _with_train_options(func):
    """``func``'s signature with every training option of :class:`~introzoo.options.TrainOptions` it does
    not name as a keyword (default ``None``: the dataset's or introzoo's), so that ``bind`` and ``help``
    know them all."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    named = {p.name for p in params}
    params += [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in train_option_names() if n not in named
    ]
    func.__signature__ = sig.replace(parameters=params)
    return func


resolve_run = _with_train_options(resolve_run)


def build(**options: Any) -> Run:
    """The untrained model of a run (``options``: those of :func:`resolve_run`), to inspect or train
    by hand; nothing is written."""
    run = resolve_run(**options)
    return Run(run, _loop.build(run))


build.__signature__ = inspect.signature(resolve_run).replace(return_annotation="Run")  # type: ignore[attr-defined]


def _caller_level() -> int:
    """``warnings.warn``'s stacklevel that names the first frame outside introzoo (the user's line)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("introzoo"):
        frame, level = frame.f_back, level + 1
    return level


def train(
    *,
    out: str | Path | None = None,
    threads: int | None = None,
    resume_every: float = 0.0,
    progress: Any = True,
    **options: Any,
) -> Run:
    """Train and evaluate one run, as ``introzoo run`` does, and return it with its trained model.

    ``options``: those of :func:`resolve_run`. ``out``: the run directory (default
    :meth:`~introzoo.config.ResolvedRun.default_dir`); ``threads``: torch CPU threads;
    ``resume_every``: seconds between resume points (0: none; a rerun with the same ``out`` continues
    from the last); ``progress``: ``True`` (the default) shows the progress bar of ``introzoo run`` (in a
    terminal or a notebook), ``False`` or ``None`` nothing, or an object with ``start(total)``,
    ``update(iteration, losses)`` and ``stop()``. A diverged run is returned with its results and no model.
    """
    inspect.signature(resolve_run).bind(**options)  # an unknown option is a TypeError, before any work
    check_resume_every(resume_every, "resume_every")
    if threads is not None:
        if threads < 1:
            raise UsageError("threads must be at least 1")
        torch.set_num_threads(threads)
    run = resolve_run(**options)
    from .references import warmup_warning

    note = warmup_warning(run)
    if note:
        warnings.warn(note, UserWarning, stacklevel=_caller_level())
    path = Path(out) if out is not None else run.default_dir()
    if progress is True:
        from .progress import RichProgress

        image = getattr(run.dataset, "kind", "") == "image"
        progress = RichProgress("training", batch_size=int(run.train["batch_size"]) if image else None)
    elif progress is False:
        progress = None
    from .training.resume import Resumable

    result, built = _loop.train_built(
        run, path, progress, resumable=Resumable(every_s=resume_every) if resume_every > 0 else None
    )
    if result["status"] == STATUS_FINISHED:
        built.model.eval()  # as load_run gives it: the trained model, not rebuilt from disk
    else:
        built = None
    return Run(run, built, path, result)


def load_run(path: str | Path, device: str | None = None) -> Run:
    """A saved run: its configuration, its results and (when it finished) its trained model, rebuilt
    from ``config.json`` and ``checkpoint.pt`` on ``device`` (default: the run's own setting)."""
    import json

    from .plugins import state

    rd = RunDir(path)
    result = rd.read_metrics()
    if rd.config.exists() and not rd.checkpoint.exists() and result is not None:  # diverged: no model
        return Run(from_json(json.loads(rd.config.read_text()), state().registry), None, rd.path, result)
    run, built = _loop.load(path, device=device)
    return Run(run, built, rd.path, result)
