"""``introzoo leaderboard``: a sweep's runs as a table beside the papers' numbers, and the papers'
selection protocol (:func:`select_best`).

The parts: :mod:`introzoo.sweeps.rows` (aggregation over seeds, ranking), :mod:`introzoo.sweeps.verdicts`
(reference columns, Welch's t-test), :mod:`introzoo.sweeps.formats` (cells and output formats). Their
names stay importable from here.
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import UsageError
from ..paths import check_output_file
from ..readers import ReadError, read_json
from ..references import plain
from .formats import (
    LABEL_WIDTH,
    TABLE_WIDTH,
    column_decimals,
    compact,
    fmt_stat,
    iterations_text,
    mixed_code,
    short_of_protocol,
    table_data,
    to_csv,
    to_html,
    to_json,
    to_latex,
    to_markdown,
    warmup_heavy_note,
)
from .records import Record, collect
from .rows import (
    AXES,
    PREFERRED_SORT,
    Row,
    axis_labels,
    best_values,
    build_rows,
    group_key,
    metric_direction,
    rank,
    settings_line,
    written_options,
    _strings,
)
from .verdicts import (
    ALPHA,
    REPORTED,
    _matches,
    interleave,
    judge,
    no_published,
    published_rows,
    reference_columns,
    summary_lines,
    verdict_text,
    welch,
)

#: the names of the parts, importable from here as before the split
__all__ = [
    "ALPHA",
    "AXES",
    "LABEL_WIDTH",
    "PREFERRED_SORT",
    "REPORTED",
    "Record",
    "Row",
    "TABLE_WIDTH",
    "_matches",
    "axis_labels",
    "best_values",
    "build_rows",
    "collect",
    "column_decimals",
    "compact",
    "fmt_stat",
    "group_key",
    "interleave",
    "iterations_text",
    "judge",
    "metric_direction",
    "mixed_code",
    "no_published",
    "published_rows",
    "rank",
    "reference_columns",
    "render_leaderboard",
    "select_best",
    "settings_line",
    "short_of_protocol",
    "summary_lines",
    "table_data",
    "to_csv",
    "to_html",
    "to_json",
    "to_latex",
    "to_markdown",
    "verdict_text",
    "warmup_heavy_note",
    "welch",
    "written_options",
]


def select_best(sweep_dir: Path, runs: list[str], metric: str) -> list[str]:
    """The papers' protocol: configuration keys of the best configuration per (objective, data) by
    ``metric`` among the runs ``runs`` (hashes)."""
    rows, directions = build_rows(collect(sweep_dir, only=runs))
    if metric not in directions:
        raise UsageError(
            f"--select {metric}: no finished run reports '{metric}'; metrics: {', '.join(directions) or '(none)'}"
        )
    sign = 1 if directions[metric] == "min" else -1
    best: dict[tuple[str, ...], Row] = {}
    for r in rows:
        if metric not in r.stats:
            continue
        cur = best.get(group_key(r, "select"))
        if cur is None or sign * r.stats[metric][0] < sign * cur.stats[metric][0]:
            best[group_key(r, "select")] = r
    return sorted(r.key for r in best.values())


def render_leaderboard(
    console: Console,
    sweep_dir: Path,
    *,
    fmt: str,
    sort: str | None,
    group_by: str,
    published: bool,
    show_all: bool,
    out: Path | None,
    versions: bool = False,
) -> None:
    sweep_dir = Path(sweep_dir)
    if out is not None:
        check_output_file(out, "--out")
    manifest = {}
    if (sweep_dir / "sweep.json").exists():
        manifest = read_json(sweep_dir / "sweep.json", "sweep manifest")
        if not _strings(manifest.get("runs", [])) or not isinstance(manifest.get("spec", {}), dict):
            raise ReadError(
                "sweep manifest",
                sweep_dir / "sweep.json",
                "is not an introzoo sweep manifest ('runs' a list of run names, 'spec' an object)",
            )
    only = manifest.get("runs")
    skipped: list[tuple[str, str]] = []
    records = collect(sweep_dir, only=only, skipped=skipped)
    selection = sweep_dir / "selection.json"
    if selection.exists() and not show_all:
        chosen = read_json(selection, "sweep selection")
        if not _strings(chosen.get("keys")):
            raise ReadError("sweep selection", selection, "has no 'keys' list of configuration keys")
        keys = set(chosen["keys"])
        records = [r for r in records if r.key in keys]
    if skipped and records:  # with no readable run, the error line below names them instead
        Console(stderr=True).print(
            f"warning: {len(skipped)} unreadable run(s) left out of the leaderboard: "
            + "; ".join(reason for _, reason in skipped),
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    spec = manifest.get("spec") if isinstance(manifest.get("spec"), dict) else {}
    rows, directions = build_rows(records, written_options(spec) if spec else None)
    if not rows:
        raise UsageError(
            f"no runs in '{sweep_dir}' yet"
            + (f" ({len(skipped)} unreadable: " + "; ".join(reason for _, reason in skipped) + ")" if skipped else "")
        )
    summary = None
    if published:
        refs = published_rows(spec, {r.data for r in rows})
        if not refs:  # one line, beside whatever format goes to stdout
            Console(stderr=True).print(no_published(spec, rows), highlight=False, soft_wrap=True, markup=False)
        rows += refs
        for m in sorted({m for r in rows if r.published for m in r.stats} - set(directions)):
            directions[m] = metric_direction(m)  # a published metric none of the runs reports
        summary = judge(rows)
    notes = summary_lines(summary, spec) if summary else []
    sort_metric = rank(rows, directions, sort, group_by)
    interleave(rows, group_by)
    header, body, marks = table_data(rows, directions, group_by, versions=versions)
    title = f"leaderboard: {sweep_dir.name} (ranked by {sort_metric} within {group_by}; mean ± std over seeds)"
    src = plain(str(spec.get("published_source") or "")) if published and any(r.published for r in rows) else ""
    legend: list[str] = []
    if fmt in ("table", "latex"):
        header, body, marks, legend = compact(rows, header, body, marks)
    lines = (
        ([f"published: {src}"] if src else [])
        + legend
        + [x for x in (settings_line(spec), short_of_protocol(rows), warmup_heavy_note(rows)) if x]
    )
    mixed = mixed_code(rows)
    if mixed and not versions and fmt == "table":
        notes = notes + [
            f"note: {len(mixed)} row(s) mix runs made by different code (introzoo or plugin "
            "versions); see them with --versions"
        ]
    if fmt == "table":
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
        for h in header:
            table.add_column("#" if h == "rank" else h, justify="left" if h in AXES else "right", no_wrap=True)
        for cells, flags in zip(body, marks):
            table.add_row(*[f"[bold green]{escape(c)}[/]" if f else escape(c) for c, f in zip(cells, flags)])
        target = Console(file=open(out, "w"), width=200) if out else console
        try:
            target.print(table)
            for line in lines + notes:
                target.print(line, highlight=False, markup=False, soft_wrap=True)
        finally:
            if out:
                target.file.close()
        return
    text = {
        "md": lambda: (
            f"**{title}**\n\n" + to_markdown(header, body, marks) + "\n" + "".join(f"\n{x}\n" for x in lines + notes)
        ),
        "csv": lambda: to_csv(rows, directions),
        "json": lambda: to_json(rows, directions, sort_metric, summary) + "\n",
        "html": lambda: to_html(header, body, marks, title, lines + notes),
        "latex": lambda: to_latex(header, body, marks, [group_key(r, group_by) for r in rows], title, lines + notes),
    }[fmt]()
    if out:
        out.write_text(text)
    else:
        console.file.write(text)
