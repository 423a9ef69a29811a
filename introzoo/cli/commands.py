"""The ``introzoo`` command line (Typer). Bad input: one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import __version__
from . import latent as cli_latent
from . import sweep as cli_sweep
from . import translate as cli_translate
from .common import (
    RichPhases,
    RichProgress,
    apply_execution,
    chunk_option,
    console,
    device_option,
    err_console,
    given,
    default_threads,
    kernels_option,
    output_path,
    print_plan,
    registry,
    set_data_root,
    threads_option,
    train_options,
    warn_failures,
)
from .errors import DEBUG_ENV, report
from ..errors import IntrozooError, UsageError, first_error, unknown
from ..references import warmup_warning
from ..hookspecs import KINDS
from ..inputs import check_resume_every, check_seed
from ..loggers import LOG_ENV
from ..paths import check_output_dir, check_output_file
from ..plugins import BUILTIN_PLUGIN, DISABLE_ENV
from ..registry import SINGULAR

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C
_debug = [False]  # --debug of this invocation
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
    "  introzoo run -o intro -d rings -n 5000 --dry-run\n\n"
    "  introzoo run --objective soft --data fashion-mnist --epochs 3 --data-root ~/data\n\n"
    "  introzoo run -o soft -d digits --precision bf16 --log tensorboard\n\n"
    "  torchrun --standalone --nproc_per_node 2 -m introzoo run -o soft -d digits --ddp\n\n"
    "Exit codes: 0 finished, 2 bad input, 3 diverged (non-finite loss; metrics.json says where)."
)


@app.command(epilog=RUN_EPILOG)
@train_options
def run(
    objective: str = typer.Option("soft", "--objective", "-o", help="objective spec, e.g. 'soft,beta_neg=0.9'"),
    data: str = typer.Option("8gaussians", "--data", "-d", help="dataset spec"),
    prior: str = typer.Option("sg", "--prior", "-p", help="prior spec, e.g. 'sg'"),
    reg: list[str] = typer.Option([], "--reg", help="regularizer spec (repeatable)"),
    backbone: Optional[str] = typer.Option(
        None, "--backbone", "-b", help="backbone spec (dataset default: mlp for 2D, resnet for images)"
    ),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="where image datasets are (default $INTROZOO_DATA_ROOT or ~/.cache/introzoo/data)"
    ),
    image_every: Optional[int] = typer.Option(
        None, "--image-every", help="image datasets: iterations between progress grids (one epoch)"
    ),
    resume_every: Optional[float] = typer.Option(
        None,
        "--resume-every",
        help="seconds between resume points (image datasets: 300; 0: none); a rerun with the same --out continues from the last one",
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="random seed; the same seed gives the same metrics"),
    device: str = device_option("auto"),
    kernels: str = kernels_option(),
    metric: list[str] = typer.Option([], "--metric", "-m", help="metric spec (repeatable) (all that apply)"),
    out: Optional[Path] = typer.Option(
        None, "--out", parser=output_path, metavar="PATH", help="run directory (runs/<data>-<objective>-s<seed>-<hash>)"
    ),
    threads: Optional[int] = threads_option(),
    eval_chunk: int = chunk_option("--eval-chunk"),
    log_every: int = typer.Option(100, "--log-every", help="iterations between history records"),
    log: list[str] = typer.Option(
        [], "--log", help="experiment logger (repeatable): tensorboard (RUN/tensorboard/), or an installed logger plugin"
    ),
    ddp: bool = typer.Option(
        False,
        "--ddp",
        help="data parallel over the processes torchrun starts, --batch-size the global batch (docs/images.md)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print metrics.json instead of a table"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="check the options, print the plan (and any warning) and train nothing"
    ),
    **train_opts: Any,
) -> None:
    """Train one model, evaluate it, and write a run directory.

    The run directory holds config.json (every resolved option and the plugin and version of each component), history.jsonl, checkpoint.pt, samples/density plots (PNG) and metrics.json, written last.

    For a known 2D dataset the defaults are the papers' protocol and best hyperparameters (override any option in the spec string).
    """
    from pydantic import ValidationError

    from ..config import RunConfig, resolve
    from ..training.loop import EXIT_DIVERGED, train

    apply_execution(device, threads, eval_chunk, "--eval-chunk")
    check_resume_every(resume_every)
    if out is not None:
        check_output_dir(out)
    set_data_root(data_root)
    components = registry()
    from ..loggers import select

    select(list(log))  # --log, else the loggers INTROZOO_LOG names
    try:
        cfg = RunConfig(
            objective=objective,
            data=data,
            prior=prior,
            regularizers=list(reg),
            backbone=backbone,
            seed=seed,
            device=device,
            kernels=kernels,
            metrics=list(metric) or None,
            log_every=log_every,
            image_every=image_every,
            **given(train_opts),
        )
    except ValidationError as exc:
        raise UsageError(first_error(exc, flag=True)) from None
    resolved = resolve(cfg, components)
    resolved.dataset.ensure_available()  # a missing dataset stops here
    out = out or check_output_dir(resolved.default_dir(), "run directory")
    if dry_run:
        print_plan(resolved, out)
        note = warmup_warning(resolved)
        if note:
            err_console.print(f"warning: {note}", highlight=False, soft_wrap=True)
        return
    done = _finished(out, resolved)
    if done is not None and not ddp:  # the same run finished there earlier: nothing to train
        (err_console if as_json else console).print(
            f"already finished: {out} holds this run ({done.get('iterations')} iterations, metrics.json written); "
            "its results are below. To train again, delete the directory or give another --out",
            highlight=False,
            soft_wrap=True,
        )
        if as_json:
            console.print_json(json.dumps(done))
        else:
            _print_result(done, out, resolved)
        return
    dp = None
    if ddp:
        from ..training.distributed import DataParallel

        dp = DataParallel.from_env()
        quiet = quiet or not dp.main  # process 0 reports
        as_json = as_json and dp.main
    plan_threads = None
    if threads is None and not ddp:  # the default from the work's size and the free cores
        import torch

        n, why = default_threads(getattr(resolved.dataset, "kind", ""))
        torch.set_num_threads(n)
        plan_threads = f"threads {n} ({why}; --threads to choose)"
    if not quiet and not as_json:
        print_plan(resolved, out)
        if plan_threads:
            console.print(plan_threads, highlight=False)
    image = getattr(resolved.dataset, "kind", "") == "image"
    bar = RichProgress(
        "training",
        enabled=not quiet and not as_json,
        batch_size=resolved.train["batch_size"] if image else None,
        notes=[warmup_warning(resolved)] if dp is None or dp.main else [],
    )  # once training starts
    every = resume_every if resume_every is not None else (300.0 if image else 0.0)
    resumable = _run_resumable(every) if every > 0 and not ddp else None
    try:
        with _stop_at_resume_point(bar, resumable):
            result = train(resolved, out, bar, resumable=resumable, eval_chunk=eval_chunk, ddp=dp)
    except KeyboardInterrupt:
        bar.stop()
        raise _Interrupted(_interrupted_line(bar, resumable, int(resolved.train["iterations"]), out)) from None
    if dp is not None and not dp.main:
        return
    if as_json:
        console.print_json(json.dumps(result))
    else:
        _print_result(result, out, resolved)
    if result["status"] != "finished":
        raise typer.Exit(EXIT_DIVERGED)


class _Interrupted(Exception):
    """Ctrl-C during ``introzoo run``: the message says where the run stopped and how to continue it."""


def _run_resumable(every_s: float) -> Any:
    """The resume points of ``introzoo run`` (an :class:`introzoo.training.resume.Resumable`, imported with torch
    when a run needs it): remembers the last one (written, or continued from) in ``last``; after a
    Ctrl-C during training (``stop()``) one is written at the next iteration boundary and the run stops
    there (``KeyboardInterrupt``)."""
    from ..training.resume import Resumable

    class RunResumable(Resumable):
        last: int | None = None
        stopping = False

        def stop(self) -> None:  # from a signal handler: only set flags
            self.stopping = self.requested = True

        def resumed(self, iteration: int) -> None:
            self.last = iteration

        def saved(self, iteration: int) -> None:
            self.last = iteration
            if self.stopping:
                raise KeyboardInterrupt

    return RunResumable(every_s)


@contextmanager
def _stop_at_resume_point(bar: RichProgress, resumable: Any) -> Iterator[None]:
    """While the block runs, a first Ctrl-C inside the training loop of a run with resume points stops it
    at the next iteration boundary, with a resume point written there; a second one, or one outside the
    loop (building, evaluating), stops at once (``KeyboardInterrupt``)."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # e.g. started in the background: left so
    if resumable is None or ignored or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        if bar.training and not resumable.stopping:
            resumable.stop()
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted_line(bar: RichProgress, resumable: Any, total: int, out: Path) -> str:
    """Where an interrupted run stopped and how to continue it."""
    last = resumable.last if resumable is not None else None
    done = bar.done if bar.done is not None else last
    if done is None:
        where = "before training started"
    elif bar.training or done < total:
        where = f"at iteration {done} of {total}"
    else:
        where = f"after training ({total} iterations), during the evaluation"
    if last is not None:
        how = f"rerun the same command to continue from iteration {last} (resume point {out / 'resume.pt'})"
    elif resumable is not None:
        how = (
            f"no resume point yet (one every {resumable.every_s:g} s): rerun the same command to train the run "
            "from the start"
        )
    else:
        how = (
            f"{out} has no resume point: rerun the same command to train the run from the start "
            "(--resume-every SECONDS writes resume points that a rerun continues from)"
        )
    return f"{where}; {how}"


def _finished(out: Path, resolved: Any) -> dict[str, Any] | None:
    """``metrics.json`` of ``out`` when it holds this very run (same hash in its ``config.json``), finished."""
    from ..training.run_dir import STATUS_FINISHED, RunDir

    rd = RunDir(out)
    result = rd.read_metrics()
    if result is None or result.get("status") != STATUS_FINISHED or not rd.checkpoint.is_file():
        return None
    try:
        recorded = json.loads(rd.config.read_text()).get("hash")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return result if recorded == resolved.record()["hash"] else None


def _print_result(result: dict[str, Any], out: Path, resolved: Any = None) -> None:
    if result["status"] != "finished":
        err_console.print(
            f"[red]diverged[/] at iteration {result.get('diverged_at')}: {result.get('reason')}; "
            f"history kept in {out}/history.jsonl",
            highlight=False,
            soft_wrap=True,
        )
        return
    from .saved import metrics_table, paper_comparison

    refs, notes = paper_comparison(resolved, int(result["iterations"]), result["metrics"]) if resolved else ([], [])
    speed = f", {result['it_per_s']} it/s" if result.get("it_per_s") is not None else ""
    console.print(
        metrics_table(
            f"metrics ({result['iterations']} iterations{speed})", result["metrics"], result.get("directions", {}), refs
        )
    )
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"run directory: {out}  (plots: {', '.join(result.get('plots', [])) or 'none'})", highlight=False)


LIST_EPILOG = "Examples:\n\n  introzoo list\n\n  introzoo list priors\n\n  introzoo list objective --json"


@app.command("list", epilog=LIST_EPILOG)
def list_(
    kind: Optional[str] = typer.Argument(None, help=f"one of: {', '.join(KINDS)} (singular works too)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List the registered components with their options (type = default) and docs."""
    components = registry()
    kinds = [_kind(kind)] if kind else list(KINDS)
    data = {k: [c.describe() for c in components.all(k)] for k in kinds}
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
            table.add_row(name, escape("\n".join(opts)) or "-", escape(d["doc"]), plugin)  # list[int] is no markup
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
    from ..plugins import state

    st = state()
    rows = [
        {
            "name": p.name,
            "version": p.version,
            "module": p.module,
            "builtin": p.builtin,
            "package": p.package,
            "registers": p.registers,
        }
        for p in st.plugins
    ]
    if as_json:
        console.print_json(
            json.dumps(
                {"plugins": rows, "failed": [{"name": n, "error": e} for n, e in st.failures], "disabled": st.disabled}
            )
        )
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
    warn_failures(st)


app.command(epilog=cli_sweep.SWEEP_EPILOG)(cli_sweep.sweep)
app.command(epilog=cli_sweep.LEADERBOARD_EPILOG)(cli_sweep.leaderboard)


SAMPLE_EPILOG = (
    "Examples:\n\n"
    "  introzoo sample runs/first\n\n"
    "  introzoo sample runs/fmnist-soft --n 100 --out grid.png --seed 3\n\n"
    "  introzoo sample runs/first --n 5000 --out samples.npy\n\n"
    "  introzoo sample runs/moons-vae --low-posterior --candidates 20\n\n"
    "  introzoo sample runs/fmnist-cond --class 3 --n 16"
)


@app.command(epilog=SAMPLE_EPILOG)
def sample(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    n: int = typer.Option(64, "--n", help="number of samples"),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        parser=output_path,
        metavar="PATH",
        help=".png (grid / scatter), .pt or .npy (default RUN/samples_n<N>_s<seed>.png)",
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the prior draws"),
    device: Optional[str] = device_option(),
    threads: Optional[int] = threads_option(),
    low_posterior: bool = typer.Option(
        False,
        "--low-posterior",
        help="LP-Gen (dpVAE): the prior's samples of lowest aggregate posterior (priors that have it: flow)",
    ),
    candidates: int = typer.Option(
        10, "--candidates", help="--low-posterior: keep the lowest N of candidates x N prior draws"
    ),
    klass: Optional[int] = typer.Option(
        None,
        "--class",
        help="a class-conditional run (--conditional): samples of class K (default: classes drawn from the training labels)",
    ),
) -> None:
    """Draw samples from a saved model (prior -> decoder)."""
    from .saved import sample as do_sample

    if n < 1 or candidates < 1:
        raise UsageError("--n and --candidates must be at least 1")
    check_seed(seed)
    apply_execution(device, threads)
    if out is not None:
        check_output_file(out, suffixes=(".png", ".pt", ".npy"), create_parents=True)
    elif Path(run_dir).is_dir():
        check_output_dir(run_dir, "run directory")
    do_sample(console, run_dir, n, out, seed, device, low_posterior, candidates, klass=klass)


app.command(epilog=cli_latent.TRAVERSE_EPILOG)(cli_latent.traverse)
app.command(epilog=cli_latent.INTERPOLATE_EPILOG)(cli_latent.interpolate)
app.command(epilog=cli_translate.TRANSLATE_EPILOG)(cli_translate.translate)


EVAL_EPILOG = (
    "Examples:\n\n"
    "  introzoo eval runs/first\n\n"
    "  introzoo eval runs/fmnist-soft --metric fid_gen --metric nll,k=1000\n\n"
    "  introzoo eval runs/fmnist-soft --metric 'fid_gen,features=(inception,weights=pt_inception.pth)' --no-save\n\n"
    "  introzoo eval runs/fmnist-soft --chunk 128 --threads 4 --device cpu"
)


@app.command("eval", epilog=EVAL_EPILOG)
def eval_(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    metric: list[str] = typer.Option([], "--metric", "-m", help="metric spec (repeatable) (the run's metrics)"),
    seed: Optional[int] = typer.Option(None, "--seed", "-s", help="evaluation seed (the run's seed)"),
    device: Optional[str] = device_option(),
    threads: Optional[int] = threads_option(),
    chunk: int = chunk_option(),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
    save: bool = typer.Option(True, "--save/--no-save", help="merge the values into the run's metrics.json"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars or timings"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Evaluate a saved run with any metric (FID, probes, NLL, 2D metrics) and record the values.

    Every phase shows a progress bar and each metric its time; images go through the model at most --chunk at a time, so memory does not grow with a metric's sample counts.
    """
    from .saved import evaluate

    check_seed(seed)
    apply_execution(device, threads, chunk)
    if save and Path(run_dir).is_dir():
        check_output_dir(run_dir, "run directory")
    set_data_root(data_root)
    evaluate(
        console,
        run_dir,
        list(metric),
        seed,
        device,
        save,
        as_json,
        chunk=chunk,
        progress=RichPhases(enabled=not quiet and not as_json),
    )


OOD_EPILOG = (
    "Examples:\n\n"
    "  introzoo ood runs/fmnist-soft runs/fmnist-vae --against mnist\n\n"
    "  introzoo ood runs/cifar-soft --against svhn --score iw --k 100\n\n"
    "  introzoo ood runs/fmnist-soft runs/fmnist-vae --against mnist --out roc.png\n\n"
    "Datasets of another image size or channel count are converted (grey <-> RGB, bilinear resize); the "
    "table says so. The ROC curves (AUROC in the legend) go to RUN/ood_<against>_<score>_s<seed>.png, one "
    "figure per run, or with --out into one figure."
)


@app.command(epilog=OOD_EPILOG)
def ood(
    runs: list[Path] = typer.Argument(..., help="finished run directories (image datasets)"),
    against: str = typer.Option(..., "--against", help="the out-of-distribution dataset (its test split)"),
    score: str = typer.Option(
        "elbo", "--score", help="elbo (Soft-IntroVAE Table 7) | iw (importance-weighted, --k samples)"
    ),
    k: int = typer.Option(100, "--k", help="importance samples for --score iw"),
    n: int = typer.Option(5000, "--n", help="test images from each side"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the posterior draws"),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        parser=output_path,
        metavar="PATH",
        help=".png: one ROC figure with every run's curve (default: RUN/ood_<against>_<score>_s<seed>.png per run)",
    ),
    device: Optional[str] = device_option(),
    threads: Optional[int] = threads_option(),
    chunk: int = chunk_option(),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="where image datasets are"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Out-of-distribution detection: AUROC of in-distribution test images vs another dataset's, and the ROC curves as a figure."""
    from .saved import ood as do_ood

    if k < 1 or n < 1:
        raise UsageError("--k and --n must be at least 1")
    check_seed(seed)
    apply_execution(device, threads, chunk)
    if out is not None:
        check_output_file(out, suffixes=(".png",), create_parents=True)
    else:
        for run_dir in runs:
            if Path(run_dir).is_dir():
                check_output_dir(run_dir, "run directory")
    set_data_root(data_root)
    do_ood(
        console,
        list(runs),
        against,
        score,
        k,
        n,
        seed,
        device,
        as_json,
        chunk=chunk,
        progress=RichPhases(enabled=not quiet and not as_json),
        out=out,
    )


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit"),
    no_plugins: bool = typer.Option(
        False, "--no-plugins", help=f"built-in components only: skip every installed plugin (as {DISABLE_ENV}=all)"
    ),
    debug: bool = typer.Option(False, "--debug", help=f"show the traceback of an internal error (as {DEBUG_ENV}=1)"),
) -> None:
    _debug[0] = debug
    if version:
        console.print(f"introzoo {__version__}")
        raise typer.Exit(0)
    if no_plugins:
        from .. import plugins as _plugins

        os.environ[DISABLE_ENV] = "all"  # also for the worker processes of a sweep
        _plugins.reset()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the Typer app; whatever a command raises ends as one line and an exit code
    (:mod:`introzoo.cli.errors`: 2 bad input, 1 an internal error, with its traceback under --debug)."""
    disable, log_env = os.environ.get(DISABLE_ENV), os.environ.get(LOG_ENV)
    try:
        from .plugin_commands import with_plugin_commands

        cli = with_plugin_commands(app, argv, lambda line: err_console.print(escape(line), highlight=False, soft_wrap=True))
        rc = cli(args=argv, standalone_mode=False)
    except IntrozooError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except _Interrupted as exc:
        err_console.print(f"[yellow]interrupted[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    except _ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 0
        names, ctx = [], exc.ctx  # the subcommands, whatever the program was called (python -m introzoo.cli)
        while ctx is not None and ctx.parent is not None:
            names.insert(0, ctx.info_name)
            ctx = ctx.parent
        where = " ".join(["introzoo", *names])
        err_console.print(f"[red]error:[/] {exc.format_message()} (see '{where} --help')", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # the one error path: one line and an exit code (see introzoo.cli.errors)
        return report(exc, err_console, debug=_debug[0])
    finally:
        _debug[0] = False
        if log_env is None:  # --log holds for one command
            os.environ.pop(LOG_ENV, None)
        else:
            os.environ[LOG_ENV] = log_env
        if os.environ.get(DISABLE_ENV) != disable:  # --no-plugins holds for one command
            from .. import plugins as _plugins

            if disable is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = disable
            _plugins.reset()
    if rc == EXIT_INTERRUPTED:  # Typer turned a Ctrl-C inside a command into this code
        err_console.print("aborted")
    return rc if isinstance(rc, int) else 0
