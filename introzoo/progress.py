"""What a person watching sees while introzoo computes (rich): the consoles, the training progress bar with
live losses (:class:`RichProgress`, for :func:`introzoo.training.loop.train` from the command line or
``introzoo.train(..., progress=True)``) and the evaluation's phase bars (:class:`RichPhases`)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console()
err_console = Console(stderr=True)


class RichProgress:
    """Progress bar with live losses for :func:`introzoo.training.loop.train`."""

    def __init__(
        self, title: str, enabled: bool = True, batch_size: int | None = None, notes: list[str | None] = ()
    ) -> None:
        self.title, self.enabled, self.batch_size = title, enabled, batch_size
        self.notes = [n for n in notes if n]  # warnings, printed (even when quiet) once training starts
        self.plan: list[str] = []  # what training chose for itself (the kernel path), printed with the bar
        self._last = 0.0
        self.eval_phases = RichPhases(enabled)  # the evaluation after training
        self.done: int | None = None  # iterations done (None: training has not started)
        self.training = False  # inside the training loop (between start and stop)

    def start(self, total: int) -> None:
        self.training = True
        for note in self.notes:  # after every check that can stop the run (build, memory, precision)
            err_console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
        if not self.enabled:
            return
        for line in self.plan:
            console.print(line, highlight=False, soft_wrap=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.title, total=total, losses="", speed="")
        self.t0 = time.perf_counter()

    def update(self, iteration: int, losses: dict[str, Any]) -> None:
        self.done = iteration
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
        self.training = False
        if self.enabled and hasattr(self, "bar"):
            self.bar.stop()


class RichPhases:
    """The evaluation's reporter (:class:`introzoo.metrics.stream.Phases`): one transient rich bar per
    phase (classifier training, feature extraction, FID, NLL, probes) and a line with each metric's time."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: Progress | None = None
        self.open = 0

    @contextmanager
    def phase(self, description: str, total: int | None):
        if not self.enabled or not console.is_terminal:  # bars only where they can be redrawn
            yield lambda n=1: None
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("  {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.bar.start()
        self.open += 1
        task = self.bar.add_task(description, total=total)
        try:
            yield lambda n=1: self.bar.advance(task, n)
        finally:
            self.bar.remove_task(task)
            self.open -= 1
            if self.open == 0:
                self.bar.stop()
                self.bar = None

    def timed(self, name: str, seconds: float) -> None:
        if self.enabled:
            (self.bar.console if self.bar else console).print(f"  {name}: {seconds:.1f} s", highlight=False)
