"""What ``introzoo sweep`` does, behind the Typer command in :mod:`introzoo.cli.sweep` (the leaderboard it
prints is :mod:`introzoo.sweeps.leaderboard`)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..sweeps import leaderboard as lb
from ..errors import UsageError, first_error, suggest, unknown
from ..options import train_option_names
from ..inputs import check_device
from ..paths import check_output_dir
from ..training.run_dir import atomic_write_json
from ..spec import parse_spec, resolve as resolve_spec
from ..sweeps.grid import SweepSpec, Task, expand, expand_axis, load_sweep_file, pending, write_manifest
from ..sweeps.packs import PackTask, auto_pack_size, pack_units

EXIT_FAILED_RUNS = 4


def build_spec(file: Path | None, **cli: Any) -> SweepSpec:
    """The sweep file's spec with the command line's options over it (training options by their
    :class:`~introzoo.options.TrainOptions` names)."""
    spec = load_sweep_file(file) if file else SweepSpec(name="sweep")
    updates: dict[str, Any] = {}
    if cli.get("data"):  # the file's per-dataset tables keep the datasets the command line names
        if not cli.get("objective"):  # each of them needs the table's entry
            for d in (d for text in cli["data"] for d in expand_axis(text, "data")):
                spec.axis_for("objective", d)
        updates.update(spec.restricted_to(list(cli["data"])))
    for key in ("objective", "data", "prior", "backbone"):  # over the file's list or table
        if cli.get(key):
            updates[key] = list(cli[key])
    if cli.get("reg"):
        updates["regularizers"] = list(cli["reg"])
    if cli.get("metric"):
        updates["metrics"] = list(cli["metric"])
    for key in ("seeds", "select", "executor", "pack", "device", "kernels", *train_option_names()):
        if cli.get(key) is not None:
            updates[key] = cli[key]
    try:
        return SweepSpec(**{**spec.model_dump(), **updates})
    except ValidationError as exc:
        raise UsageError(first_error(exc, flag=True)) from None


# training options in a command-line sweep's directory name even when not given (as before lr_gamma and
# lr_milestones were sweep options), so that such directories keep their names; unset newer ones are left out
_NAMED_WHEN_UNSET = ("iterations", "epochs", "batch_size", "lr", "zdim")


def default_dir(spec: SweepSpec, file: Path | None) -> Path:
    if file:
        return Path("sweeps") / file.stem
    body = spec.model_dump(mode="json", exclude={"executor", "executor_options", "name", "pack", "device", "kernels"})
    body = {k: v for k, v in body.items() if v is not None or k not in train_option_names() or k in _NAMED_WHEN_UNSET}
    if not body.get("regularizer"):  # the regularizer axis, when unused, keeps older directory names
        body.pop("regularizer", None)
    return Path("sweeps") / f"sweep-{hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]}"


def check_select(metric: str, tasks: list[Task], given_as: str) -> None:
    """Before anything trains: the selection metric must be one that runs of the grid report."""
    reported = list(dict.fromkeys(m for t in tasks for m in t.reports))
    if tasks and metric not in reported:
        raise UsageError(
            f"{given_as} '{metric}': no run of this sweep reports it{suggest(metric, reported) or ';'} "
            f"its metrics: {', '.join(reported) or '(none)'}"
        )


def make_executor(registry, spec: SweepSpec, workers: int | None, threads: int | None, resume_every: float | None = None):
    """The executor of ``spec.executor`` (a spec string) with the sweep file's ``[executor.NAME]`` options
    under it and ``--workers`` / ``--threads`` / ``--resume-every`` over it (``-e local,workers=2
    --workers 4``: 4 workers)."""
    name = parse_spec(spec.executor, "executors").name
    options: dict[str, Any] = {}
    if name == "local":
        check_device(spec.device)  # the runs train on this machine
        if workers is None and spec.device == "cuda":
            workers = 1  # one process (one CUDA context) holds the GPU; packs fill it
        options.update(
            {k: v for k, v in (("workers", workers), ("threads", threads), ("resume_every", resume_every)) if v is not None}
        )
    elif workers is not None:
        raise UsageError(f"--workers applies to the local executor, not '{name}'")
    elif resume_every is not None:
        raise UsageError(f"--resume-every applies to the local executor, not '{name}' (submitit: its checkpoint option)")
    elif threads is not None and name == "submitit":
        options["cpus"] = threads
    comp, cfg = resolve_spec(
        registry, "executors", spec.executor, defaults=file_executor_options(registry, spec, name), overrides=options
    )
    return comp.build(cfg), cfg


def file_executor_options(registry, spec: SweepSpec, name: str) -> dict[str, Any]:
    """The sweep file's ``[executor.NAME]`` options for executor ``name`` (the command line's override
    them), after checking every table names a known executor and only its options."""
    for ex_name, options in spec.executor_options.items():
        comp = registry.get("executors", ex_name)
        fields = list(comp.config.model_fields)
        bad = [k for k in options if k not in fields]
        if bad:
            raise UsageError(f"sweep file [executor.{ex_name}]: {unknown('option', bad[0], fields)}")
    return dict(spec.executor_options.get(name, {}))


class SweepProgress:
    def __init__(self, console: Console, total: int, already: int, workers: int, enabled: bool) -> None:
        self.enabled, self.total, self.workers = enabled, total, workers
        self.counts = {"finished": 0, "diverged": 0, "failed": 0}
        self.already = already
        if enabled:
            self.bar = Progress(
                TextColumn("[bold]sweep"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
            )
            self.bar.start()
            self.task = self.bar.add_task("sweep", total=total, info=self.info())

    def info(self) -> str:
        done = sum(self.counts.values())
        left = self.total - done
        return (
            f"done {done}/{self.total} (+{self.already} earlier) running {min(self.workers, left)} "
            f"diverged {self.counts['diverged']} failed {self.counts['failed']} left {left}"
        )

    def update(self, status: str) -> None:
        self.counts[status if status in self.counts else "failed"] += 1
        if self.enabled:
            self.bar.update(self.task, advance=1, info=self.info())

    def stop(self) -> None:
        if self.enabled:
            self.bar.stop()


def pack_size(spec: SweepSpec, tasks: list[Task], workers: int) -> int:
    """The sweep's pack size: ``--pack N``; ``auto`` (the default on a GPU) from the free memory
    (:func:`introzoo.sweeps.packs.auto_pack_size`); 1 (no packing) by default on the CPU."""
    import torch

    on_gpu = spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available())
    if isinstance(spec.pack, int):
        return spec.pack
    if spec.pack == "auto" or on_gpu:
        return auto_pack_size([t.config for t in tasks if t.pack_key], spec.device, workers)
    return 1


def pack_summary(todo: list[Task], size: int) -> str:
    units = pack_units(todo, size)
    packs = [u for u in units if isinstance(u, PackTask)]
    alone = len(units) - len(packs)
    return f"packs of at most {size}: {sum(len(p.members) for p in packs)} runs in {len(packs)} packs, {alone} alone"


def _run_tasks(console, err_console, executor, workers, todo, sweep_dir, quiet, already, size=1) -> dict[str, int]:
    progress = SweepProgress(console, len(todo), already, workers, enabled=not quiet)
    units = pack_units(todo, size)

    def on_done(task: Task, result: dict[str, Any]) -> None:
        progress.update(result["status"])
        if result["status"] == "failed":
            err_console.print(f"[red]run {task.hash} failed:[/] {result.get('reason', '')}", highlight=False, soft_wrap=True)

    try:
        executor.run(units, sweep_dir, on_done)
    finally:
        progress.stop()
    return progress.counts


def warmup_note(tasks: list[Task]) -> str | None:
    """A warning when some runs spend half their iterations or more in the objective's plain-VAE warm-up
    (:func:`introzoo.references.warmup_dominates`): their rows describe a VAE, not the objective."""
    from ..references import recorded_warmup_dominates

    short = [t for t in tasks if recorded_warmup_dominates(t.config)]
    if not short:
        return None
    t = short[0]
    warm, n = t.config["objective"]["options"]["num_vae"], t.config["train"]["iterations"]
    names = sorted({x.config["objective"]["name"] for x in short})
    return (
        f"{len(short)} of {len(tasks)} runs ({', '.join(names)}) spend half their iterations or more in the "
        f"plain-VAE warm-up (e.g. num_vae={warm} of {n:,} iterations): their results describe a VAE, not the "
        f"objective; give at least {2 * warm:,} iterations (-n) or a shorter warm-up (num_vae=N); the "
        "leaderboard marks their rows with †"
    )


def print_grid(console: Console, tasks: list[Task], finished: set[str]) -> None:
    table = Table(title=f"grid: {len(tasks)} runs ({len(finished)} finished earlier)")
    for col in (*lb.AXES, "seed", "run", "state"):
        table.add_column(col)
    for t, labels in zip(tasks, lb.axis_labels([t.config for t in tasks])):
        table.add_row(
            *[labels[a] for a in lb.AXES], str(t.config["seed"]), t.hash, "finished" if t.hash in finished else "to run"
        )
    console.print(table)


def run_sweep(
    console, err_console, registry, *, file, dry_run, quiet, out, workers, threads, resume_every=None, **cli
) -> int:
    spec = build_spec(file, **cli)
    sweep_dir = check_output_dir(out or default_dir(spec, file), "--out" if out else "sweep directory")
    if (sweep_dir / "runs").exists() and not (sweep_dir / "runs").is_dir():
        raise UsageError(
            f"sweep directory '{sweep_dir}': '{sweep_dir / 'runs'}' exists as a file; the run store is a directory"
        )
    executor, ex_cfg = make_executor(registry, spec, workers, threads, resume_every)
    n_workers = getattr(executor, "workers", 1)
    stage1_seeds = [spec.seed_start] if spec.select else None
    tasks = expand(spec, registry, seeds=stage1_seeds, sweep_dir=sweep_dir)
    if spec.select:
        check_select(spec.select, tasks, "--select" if cli.get("select") else "the sweep file's select")
    finished, todo = pending(tasks)
    size = pack_size(spec, tasks, n_workers)
    note = warmup_note(tasks)
    if note:  # with --dry-run and without, before anything trains
        err_console.print(f"warning: {note}", highlight=False, soft_wrap=True)
    if dry_run:
        print_grid(console, tasks, {t.hash for t in finished})
        if spec.select:
            console.print(
                f"then the best configuration per (objective, data) by {spec.select} reruns with {spec.seeds} seeds",
                highlight=False,
            )
        console.print(
            f"{len(tasks)} runs, {len(todo)} to run, {len(finished)} finished earlier -> {sweep_dir}", highlight=False
        )
        if size > 1:
            console.print(pack_summary(todo, size), highlight=False)
        return 0
    write_manifest(sweep_dir, spec, tasks, {"executor": spec.executor, "stage": "grid"})
    if not quiet:
        console.print(
            f"sweep -> {sweep_dir}: {len(tasks)} runs, {len(finished)} finished earlier, {len(todo)} to run, "
            f"executor {spec.executor} ({json.dumps(ex_cfg.model_dump())})",
            highlight=False,
        )
        if size > 1:
            console.print(pack_summary(todo, size), highlight=False)
    t0 = time.time()
    counts = _run_tasks(console, err_console, executor, n_workers, todo, sweep_dir, quiet, len(finished), size)
    all_tasks = tasks
    selected = None
    if spec.select:
        selected = lb.select_best(sweep_dir, [t.hash for t in tasks], spec.select)
        full = expand(spec, registry, sweep_dir=sweep_dir)
        stage2 = [t for t in full if t.key in set(selected)]
        fin2, todo2 = pending(stage2)
        atomic_write_json(
            sweep_dir / "selection.json", {"metric": spec.select, "keys": selected, "runs": [t.hash for t in stage2]}
        )
        if not quiet:
            console.print(
                f"selected {len(selected)} configurations by {spec.select}; {len(todo2)} seed runs to do", highlight=False
            )
        c2 = _run_tasks(console, err_console, executor, n_workers, todo2, sweep_dir, quiet, len(fin2), size)
        counts = {k: counts[k] + c2[k] for k in counts}
        all_tasks = tasks + [t for t in stage2 if t.hash not in {x.hash for x in tasks}]
        write_manifest(sweep_dir, spec, all_tasks, {"executor": spec.executor, "stage": "selected", "selected": selected})
    elapsed = time.time() - t0
    if not quiet:
        console.print(
            f"done in {elapsed:.0f} s: {counts['finished']} finished, {counts['diverged']} diverged, "
            f"{counts['failed']} failed (this invocation)",
            highlight=False,
        )
    ended = counts["finished"] + counts["diverged"] + len(finished)
    if ended or not quiet:  # -q hides the progress, not the results
        lb.render_leaderboard(
            console, sweep_dir, fmt="table", sort=spec.select, group_by="data", published=False, show_all=False, out=None
        )
    return EXIT_FAILED_RUNS if counts["failed"] else 0
