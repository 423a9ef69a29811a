"""The ``sweep`` and ``leaderboard`` commands (registered on the app in :mod:`introzoo.cli`); their
bodies are in :mod:`introzoo.cli.sweep_run` and :mod:`introzoo.sweeps.leaderboard`, imported when run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, err_console, given, kernels_option, output_path, registry, train_options
from ..errors import UsageError, unknown


SWEEP_EPILOG = (
    "Examples:\n\n"
    "  introzoo sweep --objective vae,soft,intro,m=2 --data 8gaussians,rings --seeds 5 --iterations 4000\n\n"
    "  introzoo sweep -o 'soft,beta_kl=0.1|0.3|0.5' -d rings --seeds 3 --dry-run\n\n"
    "  introzoo sweep benchmarks/toy2d_smoke.toml --workers 2\n\n"
    "  introzoo sweep benchmarks/toy2d_best.toml --threads 1 --resume-every 300\n\n"
    "  introzoo sweep benchmarks/toy2d_smoke.toml --pack 16\n\n"
    "  introzoo sweep benchmarks/toy2d.toml --device cuda --pack auto\n\n"
    "  introzoo sweep benchmarks/toy2d.toml --select kl --seeds 5\n\n"
    "  introzoo sweep benchmarks/toy2d_smoke.toml -e 'submitit,time=30,cpus=2'\n\n"
    "Syntax: commas separate components, key=value attaches to the component before it, '|' separates "
    "alternatives (crossed): 'vae,soft,beta_kl=0.1|0.3' is vae, soft(0.1), soft(0.3). "
    "Rerunning the same command resumes: finished runs are skipped. "
    "Exit codes: 0 done (diverged runs are results), 2 bad input, 4 some runs failed."
)


@train_options
def sweep(
    file: Optional[Path] = typer.Argument(None, help="sweep file (TOML); options given here override it"),
    objective: list[str] = typer.Option([], "--objective", "-o", help="objectives, sweep syntax (repeatable)"),
    data: list[str] = typer.Option([], "--data", "-d", help="datasets (repeatable)"),
    prior: list[str] = typer.Option([], "--prior", "-p", help="priors, sweep syntax (repeatable)"),
    backbone: list[str] = typer.Option([], "--backbone", "-b", help="backbones, sweep syntax"),
    reg: list[str] = typer.Option([], "--reg", help="regularizer spec for every run (repeatable)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="seeds per configuration (0..N-1)"),
    metric: list[str] = typer.Option([], "--metric", "-m", help="metric spec (repeatable) (all that apply)"),
    select: Optional[str] = typer.Option(
        None,
        "--select",
        help="papers' protocol: best per (objective, data) by this metric with one seed, then rerun with --seeds",
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", "-e", help="executor spec, e.g. 'local' or 'submitit,partition=gpu'"
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", help="local executor: runs in parallel (the machine's cores)"
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per run (1)"),
    resume_every: Optional[float] = typer.Option(
        None,
        "--resume-every",
        help="local executor: seconds between resume points of each run (0: none); rerunning an interrupted sweep continues its unfinished runs from them",
    ),
    pack: Optional[str] = typer.Option(
        None,
        "--pack",
        help="train compatible runs together in packs of at most N (docs/packing.md); 'auto': as many as fit the GPU's free memory (the default with --device cuda); 1: no packing (the CPU default)",
    ),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda: where every run trains (cpu)"),
    kernels: Optional[str] = kernels_option(None),
    out: Optional[Path] = typer.Option(
        None, "--out", parser=output_path, metavar="PATH", help="sweep directory (sweeps/<name>)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the expanded grid and its size, run nothing"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
    **train_opts: Any,
) -> None:
    """Run a grid of configurations x seeds x datasets, resumably, and print its leaderboard."""
    from ..loggers import select as select_loggers
    from ..inputs import check_resume_every
    from .sweep_run import run_sweep

    check_resume_every(resume_every)
    select_loggers([])  # the loggers INTROZOO_LOG names, which every run of the sweep starts

    raise typer.Exit(
        run_sweep(
            console,
            err_console,
            registry(),
            file=file,
            objective=objective,
            data=data,
            prior=prior,
            backbone=backbone,
            reg=reg,
            seeds=seeds,
            metric=metric,
            select=select,
            executor=executor,
            workers=workers,
            threads=threads,
            resume_every=resume_every,
            pack=pack,
            device=device,
            kernels=kernels,
            out=out,
            dry_run=dry_run,
            quiet=quiet,
            **given(train_opts),
        )
    )


LEADERBOARD_EPILOG = (
    "Examples:\n\n"
    "  introzoo leaderboard sweeps/toy2d_smoke\n\n"
    "  introzoo leaderboard sweeps/toy2d --sort jsd --published\n\n"
    "  introzoo leaderboard sweeps/toy2d --format md --out results.md\n\n"
    "  introzoo leaderboard sweeps/toy2d_best --published --format latex --out table2.tex\n\n"
    "  introzoo leaderboard sweeps/toy2d_smoke --versions"
)


def leaderboard(
    sweep_dir: Path = typer.Argument(..., help="a sweep directory"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | md | csv | json | html | latex (booktabs)"),
    sort: Optional[str] = typer.Option(None, "--sort", help="metric to rank by (kl, else the first)"),
    group_by: str = typer.Option("data", "--group-by", help="data | objective | none: rank within these groups"),
    published: bool = typer.Option(
        False,
        "--published",
        help="the papers' numbers beside ours, each after the row it is compared with, where the sweep file has them (else one line says so)",
    ),
    show_all: bool = typer.Option(False, "--all", help="with --select sweeps: every configuration, not only the selected"),
    versions: bool = typer.Option(
        False,
        "--versions",
        help="a column saying which code made each row: introzoo's and third-party plugins' versions (json and csv always have it)",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", parser=output_path, metavar="PATH", help="write to a file instead of the terminal"
    ),
) -> None:
    """Aggregate a sweep over seeds: mean ± std, n, direction, best per group marked, rank."""
    from ..sweeps.leaderboard import render_leaderboard

    if fmt not in ("table", "md", "csv", "json", "html", "latex"):
        raise UsageError(unknown("format", fmt, ["table", "md", "csv", "json", "html", "latex"]))
    if group_by not in ("data", "objective", "none"):
        raise UsageError(unknown("grouping", group_by, ["data", "objective", "none"]))
    render_leaderboard(
        console,
        sweep_dir,
        fmt=fmt,
        sort=sort,
        group_by=group_by,
        published=published,
        show_all=show_all,
        out=out,
        versions=versions,
    )
