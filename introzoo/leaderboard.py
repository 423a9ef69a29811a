"""Leaderboards: aggregate a sweep's runs over seeds and compare configurations as the papers do.

One row per configuration (all options but the seed): mean ± std over its finished seeds (std with
ddof=0, numpy's default) and n, per metric with its direction; diverged and failed runs are counted in
their own columns, never silently dropped. Within each group (dataset by default) rows are ranked by
one metric and the best value of every metric is marked. A row's labels name every axis that varies
among the runs shown (:func:`axis_labels`). Reads run directories only. Also the papers' selection
protocol (:func:`select_best`) and the rendering behind ``introzoo leaderboard``.

Each row also knows which code made its runs (:func:`code_of`: introzoo's version and every third-party
plugin, with its version, that supplied a component, as ``config.json`` records them); a row whose
seeds were made by different code says so.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from .errors import UsageError
from .paths import check_output_file
from .readers import ReadError, read_json
from .run_store import Record, code_of, collect, strings as _strings
from .spec import format_spec

PREFERRED_SORT = ("kl", "fid_gen", "gnelbo")


@dataclass
class Row:
    key: str
    data: str
    objective: str
    label: str
    prior: str
    backbone: str = ""
    values: dict[str, list[float]] = field(default_factory=dict)
    n_runs: int = 0
    finished: int = 0
    diverged: int = 0
    failed: int = 0
    unfinished: int = 0
    rank: int | None = None
    published: bool = False
    stats: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    code: set[str] = field(default_factory=set)  # code_of() of each of its runs

    def summarise(self) -> None:
        for m, vals in self.values.items():
            arr = np.asarray(vals, dtype=float)
            self.stats[m] = (float(arr.mean()), float(arr.std()), len(arr))


AXES = ("data", "objective", "prior", "backbone")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)

#: the rows a ranking compares: ``--group-by`` choices, and ``select`` (the papers' protocol, per objective and data)
GROUPS = {"data": ("data",), "objective": ("objective",), "none": (), "select": ("objective", "data")}


def group_key(row: Row, group_by: str) -> tuple[str, ...]:
    return tuple(getattr(row, a) for a in GROUPS[group_by])


def _varying(configs: list[dict[str, Any]], part: str) -> dict[str, set[str]]:
    """Per component name, the options whose values differ between configs."""
    seen: dict[str, dict[str, set[str]]] = {}
    for c in configs:
        comp = c.get(part)
        if not comp:
            continue
        opts = seen.setdefault(comp["name"], {})
        for k, v in comp["options"].items():
            opts.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return {name: {k for k, vs in opts.items() if len(vs) > 1} for name, opts in seen.items()}


def _label(comp: dict[str, Any] | None, varying: dict[str, set[str]]) -> str:
    if not comp:
        return ""
    keys = varying.get(comp["name"], set())
    return format_spec(comp["name"], {k: v for k, v in comp["options"].items() if k in keys})


def axis_labels(configs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Per run config (``config.json``), a label per axis (data, objective, prior, backbone): the
    component's name and the options that vary among ``configs``; ``objective`` also names the
    regularizers and training options where those vary, so that every axis that varies is visible."""
    varying = {a: _varying(configs, a) for a in AXES}
    regs = {json.dumps(c.get("regularizers") or [], sort_keys=True) for c in configs}
    train_vary = sorted({k for c in configs for k in c.get("train") or {}
                         if len({json.dumps((o.get("train") or {}).get(k)) for o in configs}) > 1})
    out = []
    for c in configs:
        labels = {a: _label(c.get(a), varying[a]) for a in AXES}
        if len(regs) > 1:
            names = [format_spec(r["name"], r["options"]) for r in c.get("regularizers") or []]
            labels["objective"] += " + " + (" + ".join(names) or "no regularizer")
        if train_vary:
            labels["objective"] += " [" + ", ".join(f"{k}={(c.get('train') or {}).get(k)}" for k in train_vary) + "]"
        out.append(labels)
    return out


def build_rows(records: list[Record]) -> tuple[list[Row], dict[str, str]]:
    if not records:
        return [], {}
    rows: dict[str, Row] = {}
    directions: dict[str, str] = {}
    for r, labels in zip(records, axis_labels([r.config for r in records])):
        row = rows.setdefault(r.key, Row(r.key, labels["data"], r.config["objective"]["name"], labels["objective"],
                                         labels["prior"], labels["backbone"]))
        row.n_runs += 1
        row.code.add(r.code)
        if r.status == "finished":
            row.finished += 1
            for m, v in r.metrics.items():
                if v is not None and math.isfinite(v):
                    row.values.setdefault(m, []).append(v)
            directions.update(r.directions)
        elif r.status == "diverged":
            row.diverged += 1
        elif r.status == "failed":
            row.failed += 1
        else:
            row.unfinished += 1
    for row in rows.values():
        row.summarise()
    present = {m for row in rows.values() for m in row.stats}  # e.g. no resp_entropy for sg-only sweeps
    return list(rows.values()), {m: d for m, d in directions.items() if m in present}


def rank(rows: list[Row], directions: dict[str, str], sort: str | None, group_by: str) -> str | None:
    metrics = list(directions)
    if sort is None:
        sort = next((m for m in PREFERRED_SORT if m in directions), metrics[0] if metrics else None)
    elif sort not in directions:
        raise UsageError(f"unknown metric '{sort}' to sort by; this sweep has: {', '.join(metrics) or '(none)'}")
    if sort is None:
        return None
    sign = 1 if directions[sort] == "min" else -1

    def group(r: Row) -> tuple[str, ...]:
        return group_key(r, group_by)

    def value(r: Row) -> float:
        return sign * r.stats[sort][0] if sort in r.stats else math.inf

    for g in sorted({group(r) for r in rows}):
        members = sorted([r for r in rows if group(r) == g and not r.published], key=value)
        for i, r in enumerate(members, 1):
            r.rank = i if sort in r.stats else None
    rows.sort(key=lambda r: (group(r), r.rank is None, r.rank or 0, r.published, r.label))
    return sort


def best_values(rows: list[Row], directions: dict[str, str], group_by: str) -> dict[tuple[Any, str], float]:
    best: dict[tuple[Any, str], float] = {}
    for r in rows:
        if r.published:
            continue
        g = group_key(r, group_by)
        for m, (mean, _, _) in r.stats.items():
            cur = best.get((g, m))
            better = cur is None or (mean < cur if directions.get(m) == "min" else mean > cur)
            if better:
                best[(g, m)] = mean
    return best


def published_rows(spec: dict[str, Any], datasets: set[str]) -> list[Row]:
    """Rows of the sweep file's ``[published.DATA]`` tables; a row's key is ``objective``, optionally
    with ``+ regularizer`` and ``@ prior`` (``"vae + tcvae @ flow"``), shown in those columns."""
    rows = []
    for data, per_obj in (spec.get("published") or {}).items():
        if data not in datasets:
            continue
        for obj, metrics in per_obj.items():
            label, _, prior = (part.strip() for part in obj.partition("@"))
            row = Row(f"published:{data}:{obj}", data, label.split("+")[0].strip(), f"{label} (published)", prior,
                      published=True)
            for m, v in metrics.items():
                mean, std = (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, float("nan"))
                row.stats[m] = (float(mean), float(std), 0)
            rows.append(row)
    return rows


def metric_direction(name: str) -> str:
    """``min`` / ``max`` of a registered metric that reports ``name`` (``max`` when none is found)."""
    from .plugins import registry

    try:
        comp = registry().get("metrics", name)
        return comp.build(comp.config()).directions.get(name, "max")
    except Exception:
        return "max"


def fmt_stat(stat: tuple[float, float, int] | None, digits: int = 3) -> str:
    if stat is None:
        return "-"
    mean, std, _ = stat
    if math.isnan(std):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {std:.2g}"


def code_label(row: Row) -> str:
    return "; ".join(sorted(row.code))


def mixed_code(rows: list[Row]) -> list[Row]:
    """Rows whose runs were made by different code (a plugin or introzoo upgraded between seeds)."""
    return [r for r in rows if len(r.code) > 1]


def table_data(rows: list[Row], directions: dict[str, str], group_by: str,
               versions: bool = False) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    metrics = list(directions)
    best = best_values(rows, directions, group_by)
    header = ["rank", "data", "objective", "prior", "backbone", "n"] + [f"{m} {'↓' if directions[m] == 'min' else '↑'}" for m in metrics] + ["diverged", "failed"]
    header += ["code"] if versions else []
    body, marks = [], []
    for r in rows:
        g = group_key(r, group_by)
        cells = ["" if r.rank is None else str(r.rank), r.data, r.label, r.prior, r.backbone,
                 "paper" if r.published else f"{r.finished}/{r.n_runs}"]
        flags = [False] * len(cells)
        for m in metrics:
            stat = r.stats.get(m)
            cells.append(fmt_stat(stat))
            flags.append(bool(stat) and not r.published and math.isclose(stat[0], best.get((g, m), math.nan)))
        cells += ["" if r.published else str(r.diverged), "" if r.published else str(r.failed + r.unfinished)]
        flags += [False, False]
        if versions:
            cells.append(code_label(r))
            flags.append(False)
        body.append(cells)
        marks.append(flags)
    return header, body, marks


def to_json(rows: list[Row], directions: dict[str, str], sort: str | None) -> str:
    out = []
    for r in rows:
        out.append({"rank": r.rank, "data": r.data, "objective": r.label, "prior": r.prior, "backbone": r.backbone, "published": r.published,
                    "n": r.finished, "runs": r.n_runs, "diverged": r.diverged, "failed": r.failed, "unfinished": r.unfinished,
                    "code": sorted(r.code), "metrics": {m: {"mean": s[0], "std": s[1], "n": s[2]} for m, s in r.stats.items()}})
    return json.dumps({"sort": sort, "directions": directions, "rows": out}, indent=2)


def to_markdown(header, body, marks) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cells, flags in zip(body, marks):
        lines.append("| " + " | ".join(f"**{c}**" if f else c for c, f in zip(cells, flags)) + " |")
    return "\n".join(lines)


def to_csv(rows: list[Row], directions: dict[str, str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    metrics = list(directions)
    w.writerow(["rank", "data", "objective", "prior", "backbone", "published", "n", "runs", "diverged", "failed", "unfinished"]
               + [f"{m}_{s}" for m in metrics for s in ("mean", "std")] + ["code"])
    for r in rows:
        vals = []
        for m in metrics:
            s = r.stats.get(m)
            vals += [s[0], s[1]] if s else ["", ""]
        w.writerow([r.rank or "", r.data, r.label, r.prior, r.backbone, r.published, r.finished, r.n_runs, r.diverged, r.failed,
                    r.unfinished] + vals + [code_label(r)])
    return buf.getvalue()


def to_html(header, body, marks, title: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = []
    for cells, flags in zip(body, marks):
        tds = "".join(f"<td><b>{html.escape(c)}</b></td>" if f else f"<td>{html.escape(c)}</td>" for c, f in zip(cells, flags))
        trs.append(f"<tr>{tds}</tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}td:nth-child(-n+5){text-align:left}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
            "<p>mean ± std over seeds; best per group in bold.</p></body></html>\n")


def select_best(sweep_dir: Path, runs: list[str], metric: str) -> list[str]:
    """The papers' protocol: configuration keys of the best configuration per (objective, data) by
    ``metric`` among the runs ``runs`` (hashes)."""
    rows, directions = build_rows(collect(sweep_dir, only=runs))
    if metric not in directions:
        raise UsageError(f"--select {metric}: no finished run reports '{metric}'; metrics: {', '.join(directions) or '(none)'}")
    sign = 1 if directions[metric] == "min" else -1
    best: dict[tuple[str, ...], Row] = {}
    for r in rows:
        if metric not in r.stats:
            continue
        cur = best.get(group_key(r, "select"))
        if cur is None or sign * r.stats[metric][0] < sign * cur.stats[metric][0]:
            best[group_key(r, "select")] = r
    return sorted(r.key for r in best.values())


def render_leaderboard(console: Console, sweep_dir: Path, *, fmt: str, sort: str | None, group_by: str,
                       published: bool, show_all: bool, out: Path | None, versions: bool = False) -> None:
    sweep_dir = Path(sweep_dir)
    if out is not None:
        check_output_file(out, "--out")
    manifest = {}
    if (sweep_dir / "sweep.json").exists():
        manifest = read_json(sweep_dir / "sweep.json", "sweep manifest")
        if not _strings(manifest.get("runs", [])) or not isinstance(manifest.get("spec", {}), dict):
            raise ReadError("sweep manifest", sweep_dir / "sweep.json", "is not an introzoo sweep manifest "
                                                                        "('runs' a list of run names, 'spec' an object)")
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
    if skipped:
        Console(stderr=True).print(f"warning: {len(skipped)} unreadable run(s) left out of the leaderboard: "
                                   + "; ".join(reason for _, reason in skipped), highlight=False, soft_wrap=True,
                                   markup=False)
    rows, directions = build_rows(records)
    if not rows:
        raise UsageError(f"no runs in '{sweep_dir}' yet" + (f" ({len(skipped)} unreadable)" if skipped else ""))
    if published:
        rows += published_rows(manifest.get("spec", {}), {r.data for r in rows})
        for m in sorted({m for r in rows if r.published for m in r.stats} - set(directions)):
            directions[m] = metric_direction(m)  # a published metric none of the runs reports
    sort_metric = rank(rows, directions, sort, group_by)
    header, body, marks = table_data(rows, directions, group_by, versions=versions)
    title = f"leaderboard: {sweep_dir.name} (ranked by {sort_metric} within {group_by}; mean ± std over seeds)"
    if fmt == "table":
        table = Table(title=title)
        for h in header:
            table.add_column(h, justify="left" if h in AXES else "right")
        for cells, flags in zip(body, marks):
            table.add_row(*[f"[bold green]{c}[/]" if f else c for c, f in zip(cells, flags)])
        if out:
            with open(out, "w") as f:
                Console(file=f, width=200).print(table)
        else:
            console.print(table)
            src = manifest.get("spec", {}).get("published_source")
            if published and src:
                console.print(f"published: {src}", highlight=False)
            mixed = mixed_code(rows)
            if mixed and not versions:
                console.print(f"note: {len(mixed)} row(s) mix runs made by different code (introzoo or plugin "
                              "versions); see them with --versions", highlight=False)
        return
    text = {"md": lambda: f"**{title}**\n\n" + to_markdown(header, body, marks) + "\n",
            "csv": lambda: to_csv(rows, directions),
            "json": lambda: to_json(rows, directions, sort_metric) + "\n",
            "html": lambda: to_html(header, body, marks, title)}[fmt]()
    if out:
        out.write_text(text)
    else:
        console.file.write(text)
