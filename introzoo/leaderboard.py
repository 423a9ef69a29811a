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
    column: str = ""  # a reference row's column (``reported``, ``official_reproduced``, ...)
    verdicts: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # metric -> (verdict, p)
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


#: the verdict's test: Welch's two-sample t-test on (mean, std, n), two-sided, at this level
ALPHA = 0.05
#: the name of the sweep file's ``[published]`` column
REPORTED = "reported"


def reference_columns(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any], str, int | None]]:
    """(name, DATA -> row -> metric -> [mean, std], source, n) of every reference column of a sweep file:
    ``[published]`` as ``reported`` (``published_source``, ``published_n``), then each
    ``[references.NAME]`` table (its ``source`` and ``n`` keys beside its dataset tables)."""
    cols = []
    if spec.get("published"):
        cols.append((REPORTED, spec["published"], spec.get("published_source") or "", spec.get("published_n")))
    for name, table in (spec.get("references") or {}).items():
        data = {k: v for k, v in table.items() if isinstance(v, dict)}
        cols.append((name, data, str(table.get("source", "")), table.get("n")))
    return cols


def published_rows(spec: dict[str, Any], datasets: set[str]) -> list[Row]:
    """Rows of the sweep file's reference columns (:func:`reference_columns`); a row's key is
    ``objective``, optionally with ``+ regularizer`` and ``@ prior`` (``"vae + tcvae @ flow"``), shown in
    those columns; its label names the column (``soft (published)``, ``soft (official_reproduced)``)."""
    rows = []
    for column, tables, _, n in reference_columns(spec):
        for data, per_obj in tables.items():
            if data not in datasets:
                continue
            for obj, metrics in per_obj.items():
                label, _, prior = (part.strip() for part in obj.partition("@"))
                shown = "published" if column == REPORTED else column
                row = Row(f"{column}:{data}:{obj}", data, label.split("+")[0].strip(), f"{label} ({shown})", prior,
                          published=True, column=column)
                for m, v in metrics.items():
                    mean, std = (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, float("nan"))
                    row.stats[m] = (float(mean), float(std), int(n or 0))
                rows.append(row)
    return rows


def welch(ours: tuple[float, float, int], ref: tuple[float, float, int]) -> tuple[str, float | None]:
    """(verdict, p) of Welch's t-test of our mean against a reference's: ``agrees`` when p >= ALPHA,
    ``differs`` below; ``untested`` without two seeds on both sides or a reference std. Our std is
    numpy's (ddof=0, as the leaderboard shows it) and is turned into the sample std (ddof=1) the test
    needs; a paper's ± is taken as a sample std."""
    from scipy.stats import ttest_ind_from_stats

    (m1, sd1, n1), (m2, sd2, n2) = ours, ref
    if n1 < 2 or n2 < 2 or not math.isfinite(sd2) or not math.isfinite(sd1):
        return "untested", None
    s1 = sd1 * math.sqrt(n1 / (n1 - 1))
    if s1 == 0 and sd2 == 0:
        return ("agrees", 1.0) if m1 == m2 else ("differs", 0.0)
    p = float(ttest_ind_from_stats(m1, s1, n1, m2, sd2, n2, equal_var=False).pvalue)
    return ("agrees" if p >= ALPHA else "differs"), p


def _prior_name(label: str) -> str:
    return label.split(",")[0].split(":")[0]


def judge(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Each reference row's verdict per metric against the one row of ours with its dataset, objective
    (and prior, where the reference names one); per column, how many (dataset, objective) cells agree in
    every metric that could be tested."""
    ours = [r for r in rows if not r.published]
    summary: dict[str, dict[str, Any]] = {}
    for ref in (r for r in rows if r.published):
        match = [r for r in ours if r.data == ref.data and r.objective == ref.objective
                 and (not ref.prior or _prior_name(r.prior) == ref.prior)]
        if len(match) != 1:
            continue
        for m, stat in ref.stats.items():
            if m in match[0].stats:
                ref.verdicts[m] = welch(match[0].stats[m], stat)
        tested = [v for v, _ in ref.verdicts.values() if v != "untested"]
        if tested:
            s = summary.setdefault(ref.column, {"agree": 0, "cells": 0})
            s["cells"] += 1
            s["agree"] += all(v == "agrees" for v in tested)
    return summary


def verdict_text(row: Row) -> str:
    if not row.verdicts:
        return ""
    bad = [m for m, (v, _) in row.verdicts.items() if v == "differs"]
    if bad:
        return "differs: " + ", ".join(f"{m} p={row.verdicts[m][1]:.2g}" for m in bad)
    return "agrees" if any(v == "agrees" for v, _ in row.verdicts.values()) else "untested"


def summary_lines(summary: dict[str, dict[str, Any]], spec: dict[str, Any]) -> list[str]:
    sources = {name: src for name, _, src, _ in reference_columns(spec)}
    return [f"{s['agree']} of {s['cells']} cells agree with {name}" + (f" ({sources[name]})" if sources.get(name) else "")
            + f" (Welch's t-test, two-sided, {ALPHA:.0%})" for name, s in summary.items()]


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
    judged = any(r.verdicts for r in rows)
    header = ["rank", "data", "objective", "prior", "backbone", "n"] + [f"{m} {'↓' if directions[m] == 'min' else '↑'}" for m in metrics] + ["diverged", "failed"]
    header += ["verdict"] if judged else []
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
        if judged:
            cells.append(verdict_text(r))
            flags.append(False)
        if versions:
            cells.append(code_label(r))
            flags.append(False)
        body.append(cells)
        marks.append(flags)
    return header, body, marks


def to_json(rows: list[Row], directions: dict[str, str], sort: str | None,
            summary: dict[str, dict[str, Any]] | None = None) -> str:
    out = []
    for r in rows:
        row = {"rank": r.rank, "data": r.data, "objective": r.label, "prior": r.prior, "backbone": r.backbone, "published": r.published,
               "n": r.finished, "runs": r.n_runs, "diverged": r.diverged, "failed": r.failed, "unfinished": r.unfinished,
               "code": sorted(r.code), "metrics": {m: {"mean": s[0], "std": s[1], "n": s[2]} for m, s in r.stats.items()}}
        if r.published:
            row["column"] = r.column
            row["verdict"] = {m: {"verdict": v, "p": p} for m, (v, p) in r.verdicts.items()}
        out.append(row)
    body: dict[str, Any] = {"sort": sort, "directions": directions, "rows": out}
    if summary is not None:
        body["summary"] = {"test": f"Welch's t-test, two-sided, alpha {ALPHA}", **summary}
    return json.dumps(body, indent=2)


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
               + [f"{m}_{s}" for m in metrics for s in ("mean", "std")] + ["column", "verdict", "code"])
    for r in rows:
        vals = []
        for m in metrics:
            s = r.stats.get(m)
            vals += [s[0], s[1]] if s else ["", ""]
        w.writerow([r.rank or "", r.data, r.label, r.prior, r.backbone, r.published, r.finished, r.n_runs, r.diverged, r.failed,
                    r.unfinished] + vals + [r.column, verdict_text(r), code_label(r)])
    return buf.getvalue()


def to_html(header, body, marks, title: str, notes: list[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = []
    for cells, flags in zip(body, marks):
        tds = "".join(f"<td><b>{html.escape(c)}</b></td>" if f else f"<td>{html.escape(c)}</td>" for c, f in zip(cells, flags))
        trs.append(f"<tr>{tds}</tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}td:nth-child(-n+5){text-align:left}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
            "<p>mean ± std over seeds; best per group in bold.</p>"
            + "".join(f"<p>{html.escape(x)}</p>" for x in notes) + "</body></html>\n")


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
    summary = None
    if published:
        rows += published_rows(manifest.get("spec", {}), {r.data for r in rows})
        for m in sorted({m for r in rows if r.published for m in r.stats} - set(directions)):
            directions[m] = metric_direction(m)  # a published metric none of the runs reports
        summary = judge(rows)
    notes = summary_lines(summary, manifest.get("spec", {})) if summary else []
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
            for line in notes:
                console.print(line, highlight=False)
            mixed = mixed_code(rows)
            if mixed and not versions:
                console.print(f"note: {len(mixed)} row(s) mix runs made by different code (introzoo or plugin "
                              "versions); see them with --versions", highlight=False)
        return
    text = {"md": lambda: f"**{title}**\n\n" + to_markdown(header, body, marks) + "\n" + "".join(f"\n{x}\n" for x in notes),
            "csv": lambda: to_csv(rows, directions),
            "json": lambda: to_json(rows, directions, sort_metric, summary) + "\n",
            "html": lambda: to_html(header, body, marks, title, notes)}[fmt]()
    if out:
        out.write_text(text)
    else:
        console.file.write(text)
