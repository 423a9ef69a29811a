"""What the command modules share: the consoles, the training progress bar, the registry with plugin
warnings, and the command-line options derived from :class:`introzoo.options.TrainOptions`."""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .options import TrainOptions

console = Console()
err_console = Console(stderr=True)


def train_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a Typer command one option per training option (``--lr-gamma``; help from the field's
    description); the values arrive in the command's ``**kwargs`` (``None``: not given; see :func:`given`)."""
    sig = inspect.signature(func, eval_str=True)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for name, field in TrainOptions.model_fields.items():
        flags = [f"--{name.replace('_', '-')}", *((field.json_schema_extra or {}).get("flags", []))]
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        if type(None) in args:  # Optional[X] -> X
            annotation = next(a for a in args if a is not type(None))
        option = typer.Option(None, *flags, help=field.description, rich_help_panel="Training options")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[annotation],
                                        default=option))
    func.__signature__ = sig.replace(parameters=params)
    return func


def given(train: dict[str, Any]) -> dict[str, Any]:
    """The training options given on the command line (a repeatable option given no times is not)."""
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in train.items() if v not in (None, [], ())}


class RichProgress:
    """Progress bar with live losses for :func:`introzoo.train.train`."""

    def __init__(self, title: str, enabled: bool = True, batch_size: int | None = None) -> None:
        self.title, self.enabled, self.batch_size = title, enabled, batch_size
        self._last = 0.0

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("eta"),
                            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=console)
        self.bar.start()
        self.task = self.bar.add_task(self.title, total=total, losses="", speed="")
        self.t0 = time.perf_counter()

    def update(self, iteration: int, losses: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.25 and iteration < self.bar.tasks[0].total:
            return
        self._last = now
        shown = " ".join(f"{k}={float(v):.3g}" for k, v in list(losses.items())[:4])
        rate = iteration / max(now - self.t0, 1e-9)
        speed = f"{rate:.1f} it/s" + (f" {rate * self.batch_size:.0f} img/s" if self.batch_size else "")
        self.bar.update(self.task, completed=iteration, losses=shown, speed=speed)

    def stop(self) -> None:
        if self.enabled:
            self.bar.stop()


def registry():
    from .plugins import state

    st = state()
    warn_failures(st)
    return st.registry


def warn_failures(st) -> None:
    for name, error in st.failures:
        err_console.print(f"[yellow]warning:[/] plugin '{name}' failed to load and was skipped: {error}",
                          highlight=False, soft_wrap=True)


def set_data_root(path: Optional[Path]) -> None:
    """--data-root: where image datasets are looked for (also seen by sweep workers, through the environment)."""
    if path is not None:
        os.environ["INTROZOO_DATA_ROOT"] = str(path.expanduser().resolve())
