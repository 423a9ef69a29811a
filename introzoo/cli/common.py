"""What the command modules share: the consoles, the training progress bar and the evaluation's phase
bars, the registry with plugin warnings, the command-line options derived from
:class:`introzoo.options.TrainOptions`, and the execution options (``--device``, ``--threads``, the
evaluation chunk) every computing command takes, defined once here."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ..errors import UsageError
from ..options import EVAL_CHUNK, TrainOptions
from ..progress import RichPhases, RichProgress, console, err_console  # noqa: F401 (the commands' consoles)


def _no_flag_types() -> None:
    """A boolean flag takes no value, so ``--help`` shows no type beside it (recent Typer prints
    ``<bool>`` there, which reads as if the flag wanted one)."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - an older Typer
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_untyped", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.flags_untyped = True
    TyperOption.display_type_rich = display_type_rich


_no_flag_types()


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
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[annotation], default=option)
        )
    func.__signature__ = sig.replace(parameters=params)
    return func


def output_path(text: str) -> Path:
    """The value of an ``--out`` option (its ``parser``): a path; an empty one, which would write into
    the current directory, is refused."""
    if not text.strip():
        raise typer.BadParameter("an empty path; give a file or directory name")
    return Path(text)


def given(train: dict[str, Any]) -> dict[str, Any]:
    """The training options given on the command line (a repeatable option given no times is not)."""
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in train.items() if v not in (None, [], ())}


EXECUTION = "Execution options"


def device_option(default: str | None = None) -> Any:
    """``--device``: ``run`` defaults to ``auto``; the saved-run commands to the run's own setting."""
    return typer.Option(
        default,
        "--device",
        rich_help_panel=EXECUTION,
        help="auto | cpu | cuda" + ("" if default else " (the run's setting)"),
    )


def kernels_option(default: str | None = "auto") -> Any:
    """``--kernels``: the CPU kernels of the Linear products (:mod:`introzoo.training.kernels`)."""
    return typer.Option(
        default,
        "--kernels",
        rich_help_panel=EXECUTION,
        help="auto | aten | onednn: CPU kernels of the Linear layers' products (auto: the faster here, "
        "measured once and cached); recorded in config.json, not part of a run's hash",
    )


def threads_option() -> Any:
    return typer.Option(
        None,
        "--threads",
        rich_help_panel=EXECUTION,
        help="torch CPU threads (run: 1 on 2D data, else the free cores; other commands: torch's default)",
    )


def default_threads(kind: str) -> tuple[int, str]:
    """(threads, why) when ``--threads`` is not given: one for 2D data (its 256-wide products gain
    nothing from a second thread and lose much when another process holds a core); for images torch's
    default, at most the cores the load average leaves free (at least one)."""
    import os

    import torch

    if kind == "2d":
        return 1, "2D: one thread"
    cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:
        busy = 0
    n = max(1, min(torch.get_num_threads(), cores - busy))
    return n, f"{cores} cores, about {busy} busy"


def chunk_option(flag: str = "--chunk") -> Any:
    return typer.Option(
        EVAL_CHUNK,
        flag,
        rich_help_panel=EXECUTION,
        help="evaluation: the most images through the model in one pass (importance samples "
        "included); bounds memory, not the values",
    )


def apply_execution(device: str | None, threads: int | None, chunk: int | None = None, flag: str = "--chunk") -> None:
    """Check ``--device`` and the chunk, and set torch's CPU threads (``--threads``)."""
    from ..inputs import check_device

    check_device(device)
    if chunk is not None and chunk < 1:
        raise UsageError(f"{flag} must be at least 1")
    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be at least 1")
        import torch

        torch.set_num_threads(threads)


def registry():
    from ..plugins import state

    st = state()
    warn_failures(st)
    return st.registry


def warn_failures(st) -> None:
    for name, error in st.failures:
        err_console.print(
            f"[yellow]warning:[/] plugin '{name}' failed to load and was skipped: {error}", highlight=False, soft_wrap=True
        )
    for _, line in st.clashes:  # components registered as plugin:name
        from rich.markup import escape

        err_console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def set_data_root(path: Optional[Path]) -> None:
    """--data-root: where image datasets are looked for (also seen by sweep workers, through the environment)."""
    if path is not None:
        os.environ["INTROZOO_DATA_ROOT"] = str(path.expanduser().resolve())


def print_plan(resolved, out) -> None:
    """The plan line of ``introzoo run``: the objective and the prior with their resolved options, the
    dataset, backbone, length, batch, seed and run directory."""
    opts = ", ".join(f"{k}={v}" for k, v in resolved.objective.config.model_dump().items())
    prior_opts = ", ".join(f"{k}={v}" for k, v in resolved.prior.config.model_dump().items())
    train = resolved.train
    console.print(
        f"[bold]{resolved.objective.component.name}[/] ({opts}) on [bold]{resolved.data.component.name}[/],"
        f" prior {resolved.prior.component.name}"
        + (f" ({prior_opts})" if prior_opts else "")
        + f", backbone {resolved.backbone.component.name}, {train['iterations']} iterations"
        + (f" ({train['epochs']} epochs)," if train.get("epochs") else ",")
        + f" batch {train['batch_size']}, seed {resolved.seed} -> {out}",
        highlight=False,
    )
