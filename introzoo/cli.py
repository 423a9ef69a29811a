"""The ``introzoo`` command line (Typer). Bad input: one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .errors import IntrozooError, UsageError, unknown
from .hookspecs import KINDS
from .plugins import BUILTIN_PLUGIN, DISABLE_ENV
from .registry import SINGULAR

EXIT_USAGE = 2
# Typer raises click's usage errors (vendored in recent Typer): find the class without importing click.
_ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(
    name="introzoo",
    help="The reference zoo of introspective VAEs: train, compare and extend IntroVAE-family models.\n\n"
         "Example: introzoo run --objective soft --data 8gaussians",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


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


def _registry():
    from .plugins import state

    st = state()
    _warn_failures(st)
    return st.registry


def _warn_failures(st) -> None:
    for name, error in st.failures:
        err_console.print(f"[yellow]warning:[/] plugin '{name}' failed to load and was skipped: {error}",
                          highlight=False, soft_wrap=True)


def _kind(text: str) -> str:
    t = text.strip().lower()
    for kind in KINDS:
        if t in (kind, SINGULAR[kind]):
            return kind
    raise UsageError(unknown("component kind", text, KINDS))


RUN_EPILOG = (
    "Examples:\n\n"
    "  introzoo run --objective soft --data 8gaussians\n\n"
    "  introzoo run --objective intro,m=2 --data rings --iterations 5000 --seed 1\n\n"
    "  introzoo run -o soft,beta_kl=0.5,beta_neg=1.0 -d 2spirals --out runs/spirals\n\n"
    "  introzoo run --objective soft --data digits --epochs 20\n\n"
    "  introzoo run --objective soft --data fashion-mnist --epochs 3 --data-root ~/data\n\n"
    "Exit codes: 0 finished, 2 bad input, 3 diverged (non-finite loss; metrics.json says where)."
)


@app.command(epilog=RUN_EPILOG)
def run(
    objective: str = typer.Option("soft", "--objective", "-o", help="objective spec, e.g. 'soft,beta_neg=0.9'"),
    data: str = typer.Option("8gaussians", "--data", "-d", help="dataset spec"),
    prior: str = typer.Option("sg", "--prior", "-p", help="prior spec, e.g. 'sg'"),
    reg: list[str] = typer.Option([], "--reg", help="regularizer spec (repeatable)"),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="backbone spec (dataset default: mlp for 2D, resnet for images)"),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", help="training iterations (dataset default)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="image datasets: training epochs (dataset default)"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are (default $INTROZOO_DATA_ROOT or ~/.cache/introzoo/data)"),
    image_every: Optional[int] = typer.Option(None, "--image-every", help="image datasets: iterations between progress grids (one epoch)"),
    resume_every: Optional[float] = typer.Option(None, "--resume-every", help="seconds between resume points (image datasets: 300; 0: none); a rerun with the same --out continues from the last one"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="batch size (dataset default)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate (2e-4)"),
    zdim: Optional[int] = typer.Option(None, "--zdim", help="latent size (dataset default)"),
    seed: int = typer.Option(0, "--seed", "-s", help="random seed; the same seed gives the same metrics"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    metric: list[str] = typer.Option([], "--metric", "-m", help="metric spec (repeatable) (all that apply)"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (runs/<data>-<objective>-s<seed>-<hash>)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (torch's default)"),
    log_every: int = typer.Option(100, "--log-every", help="iterations between history records"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print metrics.json instead of a table"),
) -> None:
    """Train one model, evaluate it, and write a run directory.

    The run directory holds config.json (every resolved option and the plugin and version of each component), history.jsonl, checkpoint.pt, samples/density plots (PNG) and metrics.json, written last.

    For a known 2D dataset the defaults are the papers' protocol and best hyperparameters (override any option in the spec string).
    """
    import torch

    from .config import RunConfig, resolve
    from .train import EXIT_DIVERGED, train

    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown device '{device}'; known: auto, cpu, cuda")
    _set_data_root(data_root)
    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be at least 1")
        torch.set_num_threads(threads)
    registry = _registry()
    cfg = _run_config(RunConfig, objective=objective, data=data, prior=prior, regularizers=list(reg),
                      backbone=backbone, iterations=iterations, epochs=epochs, batch_size=batch_size, lr=lr,
                      zdim=zdim, seed=seed, device=device, metrics=list(metric) or None, log_every=log_every,
                      image_every=image_every)
    resolved = resolve(cfg, registry)
    out = out or Path("runs") / f"{resolved.data.component.name}-{resolved.objective.component.name}-s{seed}-{resolved.hash()}"
    if not quiet and not as_json:
        opts = ", ".join(f"{k}={v}" for k, v in resolved.objective.config.model_dump().items())
        console.print(f"[bold]{resolved.objective.component.name}[/] ({opts}) on [bold]{resolved.data.component.name}[/],"
                      f" prior {resolved.prior.component.name}, backbone {resolved.backbone.component.name},"
                      f" {resolved.train['iterations']} iterations"
                      + (f" ({resolved.train['epochs']} epochs)," if resolved.train.get('epochs') else ",")
                      +
                      f" batch {resolved.train['batch_size']}, seed {seed} -> {out}", highlight=False)
    image = getattr(resolved.data.component.build(resolved.data.config), "kind", "") == "image"
    bar = RichProgress("training", enabled=not quiet and not as_json,
                       batch_size=resolved.train["batch_size"] if image else None)
    from .resume import Resumable

    every = resume_every if resume_every is not None else (300.0 if image else 0.0)
    result = train(resolved, out, bar, resumable=Resumable(every_s=every) if every > 0 else None)
    if as_json:
        console.print_json(json.dumps(result))
    else:
        _print_result(result, out)
    if result["status"] != "finished":
        raise typer.Exit(EXIT_DIVERGED)


def _set_data_root(path: Optional[Path]) -> None:
    """--data-root: where image datasets are looked for (also seen by sweep workers, through the environment)."""
    import os

    if path is not None:
        os.environ["INTROZOO_DATA_ROOT"] = str(path.expanduser().resolve())


def _run_config(cls, **kwargs):
    from pydantic import ValidationError

    try:
        return cls(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "option"
        raise UsageError(f"--{field.replace('_', '-')}: {err['msg']} (got {err.get('input')!r})") from None


def _print_result(result: dict[str, Any], out: Path) -> None:
    if result["status"] != "finished":
        err_console.print(f"[red]diverged[/] at iteration {result.get('diverged_at')}: {result.get('reason')}; "
                          f"history kept in {out}/history.jsonl", highlight=False, soft_wrap=True)
        return
    from .saved_cli import metrics_table

    console.print(metrics_table(f"metrics ({result['iterations']} iterations, {result['it_per_s']} it/s)",
                                result["metrics"], result.get("directions", {})))
    console.print(f"run directory: {out}  (plots: {', '.join(result.get('plots', [])) or 'none'})", highlight=False)


LIST_EPILOG = "Examples:\n\n  introzoo list\n\n  introzoo list priors\n\n  introzoo list objective --json"


@app.command("list", epilog=LIST_EPILOG)
def list_(
    kind: Optional[str] = typer.Argument(None, help=f"one of: {', '.join(KINDS)} (singular works too)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List the registered components with their options (type = default) and docs."""
    registry = _registry()
    kinds = [_kind(kind)] if kind else list(KINDS)
    data = {k: [c.describe() for c in registry.all(k)] for k in kinds}
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    for k in kinds:
        if not data[k]:
            continue
        table = Table(title=k, title_justify="left", show_lines=False)
        table.add_column("name", style="bold")
        table.add_column("options (type = default)")
        table.add_column("description")
        table.add_column("plugin")
        for d in data[k]:
            opts = []
            for o in d["options"]:
                default = "REQUIRED" if o["required"] else json.dumps(o["default"])
                mark = " (:value)" if d["primary"] == o["name"] else ""
                opts.append(f"{o['name']}: {o['type']} = {default}{mark}")
            plugin = d["plugin"] if d["plugin"] == BUILTIN_PLUGIN else f"{d['plugin']} {d['version']}"
            name = d["name"] + ("\n(packs)" if d.get("packable") else "")
            table.add_row(name, "\n".join(opts) or "-", d["doc"], plugin)
        console.print(table)
    console.print("Spec strings: name[:value][,key=value...], e.g. --objective soft,beta_neg=0.9", highlight=False)


PLUGINS_EPILOG = (
    "Examples:\n\n  introzoo plugins\n\n  introzoo plugins --json\n\n  introzoo --no-plugins plugins\n\n"
    "Switch plugins off with INTROZOO_DISABLE_PLUGINS=name1,name2 (or =all), or for one command with "
    "'introzoo --no-plugins ...'."
)


@app.command(epilog=PLUGINS_EPILOG)
def plugins(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Show installed plugins, their versions and the components each supplies; failed and disabled ones too."""
    from .plugins import state

    st = state()
    rows = [{"name": p.name, "version": p.version, "module": p.module, "builtin": p.builtin,
             "package": p.package, "registers": p.registers} for p in st.plugins]
    if as_json:
        console.print_json(json.dumps({"plugins": rows, "failed": [{"name": n, "error": e} for n, e in st.failures],
                                       "disabled": st.disabled}))
        return
    table = Table(title="plugins")
    table.add_column("plugin", style="bold")
    table.add_column("version")
    table.add_column("registers")
    for r in rows:
        name = r["name"] + (" (built-in)" if r["builtin"] else f" ({r['package']})" if r["package"] else "")
        regs = "\n".join(f"{SINGULAR[k]}: {', '.join(v)}" for k, v in r["registers"].items())
        table.add_row(name, r["version"], regs or "-")
    for name in st.disabled:
        table.add_row(name, "", f"disabled ({DISABLE_ENV} or --no-plugins)")
    for name, error in st.failures:
        table.add_row(name, "", f"[red]failed to load[/]: {error}")
    console.print(table)
    _warn_failures(st)


SWEEP_EPILOG = (
    "Examples:\n\n"
    "  introzoo sweep --objective vae,soft,intro,m=2 --data 8gaussians,rings --seeds 5 --iterations 3000\n\n"
    "  introzoo sweep -o 'soft,beta_kl=0.1|0.3|0.5' -d rings --seeds 3 --dry-run\n\n"
    "  introzoo sweep benchmarks/toy2d_smoke.toml --workers 2\n\n"
    "  introzoo sweep benchmarks/toy2d.toml --select kl --seeds 5\n\n"
    "  introzoo sweep benchmarks/toy2d_smoke.toml -e 'submitit,time=30,cpus=2'\n\n"
    "Syntax: commas separate components, key=value attaches to the component before it, '|' separates "
    "alternatives (crossed): 'vae,soft,beta_kl=0.1|0.3' is vae, soft(0.1), soft(0.3). "
    "Rerunning the same command resumes: finished runs are skipped. "
    "Exit codes: 0 done (diverged runs are results), 2 bad input, 4 some runs failed."
)


@app.command(epilog=SWEEP_EPILOG)
def sweep(
    file: Optional[Path] = typer.Argument(None, help="sweep file (TOML); options given here override it"),
    objective: list[str] = typer.Option([], "--objective", "-o", help="objectives, sweep syntax (repeatable)"),
    data: list[str] = typer.Option([], "--data", "-d", help="datasets (repeatable)"),
    prior: list[str] = typer.Option([], "--prior", "-p", help="priors, sweep syntax (repeatable)"),
    backbone: list[str] = typer.Option([], "--backbone", "-b", help="backbones, sweep syntax"),
    reg: list[str] = typer.Option([], "--reg", help="regularizer spec for every run (repeatable)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="seeds per configuration (0..N-1)"),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", help="training iterations per run"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="image datasets: epochs per run"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="batch size per run"),
    metric: list[str] = typer.Option([], "--metric", "-m", help="metric spec (repeatable) (all that apply)"),
    select: Optional[str] = typer.Option(None, "--select", help="papers' protocol: best per (objective, data) by this metric with one seed, then rerun with --seeds"),
    executor: Optional[str] = typer.Option(None, "--executor", "-e", help="executor spec, e.g. 'local' or 'submitit,partition=gpu'"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="local executor: runs in parallel (the machine's cores)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per run (1)"),
    out: Optional[Path] = typer.Option(None, "--out", help="sweep directory (sweeps/<name>)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the expanded grid and its size, run nothing"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
) -> None:
    """Run a grid of configurations x seeds x datasets, resumably, and print its leaderboard."""
    from .sweeps_cli import run_sweep

    raise typer.Exit(run_sweep(console, err_console, _registry(), file=file, objective=objective, data=data,
                               prior=prior, backbone=backbone, reg=reg, seeds=seeds, iterations=iterations,
                               epochs=epochs, batch_size=batch_size, metric=metric, select=select, executor=executor,
                               workers=workers, threads=threads, out=out, dry_run=dry_run, quiet=quiet))


LEADERBOARD_EPILOG = (
    "Examples:\n\n"
    "  introzoo leaderboard sweeps/toy2d_smoke\n\n"
    "  introzoo leaderboard sweeps/toy2d --sort jsd --published\n\n"
    "  introzoo leaderboard sweeps/toy2d --format md --out results.md\n\n"
    "  introzoo leaderboard sweeps/toy2d_smoke --versions"
)


@app.command(epilog=LEADERBOARD_EPILOG)
def leaderboard(
    sweep_dir: Path = typer.Argument(..., help="a sweep directory"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | md | csv | json | html"),
    sort: Optional[str] = typer.Option(None, "--sort", help="metric to rank by (kl, else the first)"),
    group_by: str = typer.Option("data", "--group-by", help="data | objective | none: rank within these groups"),
    published: bool = typer.Option(False, "--published", help="show the papers' numbers beside ours where the sweep file has them"),
    show_all: bool = typer.Option(False, "--all", help="with --select sweeps: every configuration, not only the selected"),
    versions: bool = typer.Option(False, "--versions", help="a column saying which code made each row: introzoo's and third-party plugins' versions (json and csv always have it)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write to a file instead of the terminal"),
) -> None:
    """Aggregate a sweep over seeds: mean ± std, n, direction, best per group marked, rank."""
    from .sweeps_cli import render_leaderboard

    if fmt not in ("table", "md", "csv", "json", "html"):
        raise UsageError(unknown("format", fmt, ["table", "md", "csv", "json", "html"]))
    if group_by not in ("data", "objective", "none"):
        raise UsageError(unknown("grouping", group_by, ["data", "objective", "none"]))
    render_leaderboard(console, sweep_dir, fmt=fmt, sort=sort, group_by=group_by, published=published,
                       show_all=show_all, out=out, versions=versions)


SAMPLE_EPILOG = (
    "Examples:\n\n"
    "  introzoo sample runs/first\n\n"
    "  introzoo sample runs/fmnist-soft --n 100 --out grid.png --seed 3\n\n"
    "  introzoo sample runs/first --n 5000 --out samples.npy"
)


@app.command(epilog=SAMPLE_EPILOG)
def sample(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    n: int = typer.Option(64, "--n", help="number of samples"),
    out: Optional[Path] = typer.Option(None, "--out", help=".png (grid / scatter), .pt or .npy (default RUN/samples_n<N>_s<seed>.png)"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the prior draws"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda (the run's setting)"),
) -> None:
    """Draw samples from a saved model (prior -> decoder)."""
    from .saved_cli import sample as do_sample

    if n < 1:
        raise UsageError("--n must be at least 1")
    do_sample(console, run_dir, n, out, seed, device)


EVAL_EPILOG = (
    "Examples:\n\n"
    "  introzoo eval runs/first\n\n"
    "  introzoo eval runs/fmnist-soft --metric fid_gen --metric nll,k=1000\n\n"
    "  introzoo eval runs/fmnist-soft --metric 'fid_gen,features=inception,weights=pt_inception.pth' --no-save"
)


@app.command("eval", epilog=EVAL_EPILOG)
def eval_(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    metric: list[str] = typer.Option([], "--metric", "-m", help="metric spec (repeatable) (the run's metrics)"),
    seed: Optional[int] = typer.Option(None, "--seed", "-s", help="evaluation seed (the run's seed)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda (the run's setting)"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
    save: bool = typer.Option(True, "--save/--no-save", help="merge the values into the run's metrics.json"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Evaluate a saved run with any metric (FID, probes, NLL, 2D metrics) and record the values."""
    from .saved_cli import evaluate

    _set_data_root(data_root)
    evaluate(console, run_dir, list(metric), seed, device, save, as_json)


OOD_EPILOG = (
    "Examples:\n\n"
    "  introzoo ood runs/fmnist-soft runs/fmnist-vae --against mnist\n\n"
    "  introzoo ood runs/cifar-soft --against svhn --score iw --k 100\n\n"
    "Datasets of another image size or channel count are converted (grey <-> RGB, bilinear resize); the "
    "table says so."
)


@app.command(epilog=OOD_EPILOG)
def ood(
    runs: list[Path] = typer.Argument(..., help="finished run directories (image datasets)"),
    against: str = typer.Option(..., "--against", help="the out-of-distribution dataset (its test split)"),
    score: str = typer.Option("elbo", "--score", help="elbo (seed 001 Table 7) | iw (importance-weighted, --k samples)"),
    k: int = typer.Option(100, "--k", help="importance samples for --score iw"),
    n: int = typer.Option(5000, "--n", help="test images from each side"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the posterior draws"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda (the run's setting)"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Out-of-distribution detection: AUROC of in-distribution test images vs another dataset's."""
    from .saved_cli import ood as do_ood

    if k < 1 or n < 1:
        raise UsageError("--k and --n must be at least 1")
    _set_data_root(data_root)
    do_ood(console, list(runs), against, score, k, n, seed, device, as_json)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit"),
    no_plugins: bool = typer.Option(False, "--no-plugins", help=f"built-in components only: skip every installed plugin (as {DISABLE_ENV}=all)"),
) -> None:
    if version:
        console.print(f"introzoo {__version__}")
        raise typer.Exit(0)
    if no_plugins:
        from . import plugins as _plugins

        os.environ[DISABLE_ENV] = "all"  # also for the worker processes of a sweep
        _plugins.reset()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the Typer app, turning introzoo and click errors into one line + exit 2."""
    disable = os.environ.get(DISABLE_ENV)
    try:
        rc = app(args=argv, standalone_mode=False)
    except IntrozooError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except _ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 0
        where = f"introzoo {exc.ctx.command_path.split(' ', 1)[1]}" if exc.ctx and " " in exc.ctx.command_path else "introzoo"
        err_console.print(f"[red]error:[/] {exc.format_message()} (see '{where} --help')", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    finally:
        if os.environ.get(DISABLE_ENV) != disable:  # --no-plugins holds for one command
            from . import plugins as _plugins

            if disable is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = disable
            _plugins.reset()
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
