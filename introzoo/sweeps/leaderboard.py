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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import UsageError
from ..paths import check_output_file
from ..readers import ReadError, read_json
from ..references import plain, recorded_warmup_dominates
from .records import Record, collect
from ..spec import format_spec

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
    iterations: set[int] = field(default_factory=set)  # training iterations of its runs
    warmup_heavy: bool = False  # some run spent half its iterations or more in the plain-VAE warm-up

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


def axis_labels(configs: list[dict[str, Any]], shown: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Per run config (``config.json``), a label per axis (data, objective, prior, backbone): the
    component's name and the options that vary among ``configs``; ``objective`` also names the
    regularizers and training options where those vary, so that every axis that varies is visible.
    ``shown`` (:func:`written_options`): per axis, component name -> options shown even where they do not
    vary (those the sweep wrote: they define the row), and ``regularizers``: name them in every row."""
    varying = {a: _varying(configs, a) for a in AXES}
    for a in AXES:
        for name, keys in ((shown or {}).get(a) or {}).items():
            varying[a][name] = varying[a].get(name, set()) | set(keys)
    regs = {json.dumps(c.get("regularizers") or [], sort_keys=True) for c in configs}
    name_regs = len(regs) > 1 or bool((shown or {}).get("regularizers"))  # varying, or written in the sweep
    train_keys = {k for c in configs for k in c.get("train") or {}}
    train_vary = sorted(k for k in train_keys
                        if len({json.dumps((o.get("train") or {}).get(k)) for o in configs}) > 1)
    out = []
    for c in configs:
        labels = {a: _label(c.get(a), varying[a]) for a in AXES}
        if name_regs:
            names = [format_spec(r["name"], r["options"]) for r in c.get("regularizers") or []]
            labels["objective"] += " + " + (" + ".join(names) or "no regularizer")
        if train_vary:
            labels["objective"] += " [" + ", ".join(f"{k}={(c.get('train') or {}).get(k)}" for k in train_vary) + "]"
        out.append(labels)
    return out


_KINDS = {"data": "datasets", "objective": "objectives", "prior": "priors", "backbone": "backbones"}


def written_options(spec: dict[str, Any]) -> dict[str, Any]:
    """What a sweep wrote (its manifest's ``spec``), as :func:`axis_labels` shows it: per axis, component
    name -> the option names its grid sets (``:value`` as the component's primary option), and
    ``regularizers``: whether every run adds the sweep's regularizers. Those options define the rows, so a
    row names them even where they do not vary (``vae,beta_rec=0.05,beta_kl=1.0`` of a one-VAE sweep)."""
    from ..spec import parse_spec
    from .grid import expand_axis

    out: dict[str, Any] = {"regularizers": bool(spec.get("regularizers"))}
    for axis, kind in _KINDS.items():
        items = spec.get(axis) or []
        if isinstance(items, dict):  # a per-dataset table: dataset name -> list
            items = [t for v in items.values() for t in ([v] if isinstance(v, str) else v or [])]
        for text in [items] if isinstance(items, str) else items:
            try:
                parsed = [parse_spec(one, kind) for one in expand_axis(str(text))]
            except Exception:  # noqa: BLE001 - a manifest written by other code: label what can be read
                continue
            for p in parsed:
                keys = set(p.options) - {":"}
                if ":" in p.options:
                    keys.add(_primary(kind, p.name) or ":")
                out.setdefault(axis, {}).setdefault(p.name, set()).update(keys)
    return out


def _primary(kind: str, name: str) -> str | None:
    from ..plugins import registry

    try:
        return getattr(registry().get(kind, name).config, "primary", None)
    except Exception:  # noqa: BLE001 - a component of a plugin that is not installed here
        return None


def settings_line(spec: dict[str, Any]) -> str | None:
    """The training options a sweep sets for every run (``batch_size=256``), as one line."""
    from ..options import train_option_names

    given = [f"{k}={spec[k]}" for k in train_option_names() if spec.get(k) is not None]
    return ("sweep settings: " + ", ".join(given)) if given else None


def build_rows(records: list[Record], shown: dict[str, Any] | None = None) -> tuple[list[Row], dict[str, str]]:
    if not records:
        return [], {}
    rows: dict[str, Row] = {}
    directions: dict[str, str] = {}
    for r, labels in zip(records, axis_labels([r.config for r in records], shown)):
        row = rows.setdefault(r.key, Row(r.key, labels["data"], r.config["objective"]["name"], labels["objective"],
                                         labels["prior"], labels["backbone"]))
        row.n_runs += 1
        row.code.add(r.code)
        train = r.config.get("train")
        if isinstance(train, dict) and isinstance(train.get("iterations"), int):
            row.iterations.add(train["iterations"])
            row.warmup_heavy |= recorded_warmup_dominates(r.config)
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


def _regularizers(label: str) -> list[str]:
    """The regularizer names of a row label (``vae + tcvae,beta=4 [lr=0.001]`` -> ``["tcvae"]``)."""
    return [part.split(",")[0].split(":")[0].strip() for part in label.split(" [")[0].split(" (")[0].split(" + ")[1:]]


def _matches(ref: Row, row: Row) -> bool:
    """Whether reference row ``ref`` is judged against our ``row``: same data, objective and (where the
    reference names them, ``"vae + tcvae @ flow"``) regularizers and prior."""
    regs = _regularizers(ref.label)
    return (row.data == ref.data and row.objective == ref.objective
            and (not ref.prior or _prior_name(row.prior) == ref.prior)
            and (not regs or _regularizers(row.label) == regs))


def interleave(rows: list[Row], group_by: str) -> None:
    """Each reference row right after the first (best ranked) row of ours it matches, in that row's group;
    references that match none of ours end their group. ``rows``: ranked (:func:`rank`), in place."""
    order = list(dict.fromkeys(group_key(r, group_by) for r in rows))
    refs = sorted((r for r in rows if r.published), key=lambda r: r.column != REPORTED)  # the paper's first
    out: list[Row] = []
    for g in order:
        left = [r for r in refs if group_key(r, group_by) == g]
        for row in (r for r in rows if not r.published and group_key(r, group_by) == g):
            out.append(row)
            out += [r for r in left if _matches(r, row)]
            left = [r for r in left if not _matches(r, row)]
        out += left
    rows[:] = out


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
    (and prior and regularizers, where the reference names them: :func:`_matches`); per column, how many (dataset, objective) cells agree in
    every metric that could be tested."""
    ours = [r for r in rows if not r.published]
    summary: dict[str, dict[str, Any]] = {}
    for ref in (r for r in rows if r.published):
        match = [r for r in ours if _matches(ref, r)]
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
    sources = {name: plain(src) for name, _, src, _ in reference_columns(spec)}
    return [f"{s['agree']} of {s['cells']} cells agree with {name}" + (f" ({sources[name]})" if sources.get(name) else "")
            + f" (Welch's t-test, two-sided, {ALPHA:.0%})" for name, s in summary.items()]


def metric_direction(name: str) -> str:
    """``min`` / ``max`` of a registered metric that reports ``name`` (``max`` when none is found)."""
    from ..plugins import registry

    try:
        comp = registry().get("metrics", name)
        return comp.build(comp.config()).directions.get(name, "max")
    except Exception:
        return "max"


def column_decimals(stats: list[tuple[float, float, int]]) -> int:
    """Decimal places of one metric column, the same for every row: down to the first significant digit of
    the column's smallest std (two digits when it starts with 1: ``1.25 ± 0.11``); without stds (single
    seeds), two significant digits of the spread of the means, or three of a lone value."""
    stds = [sd for _, sd, n in stats if n != 1 and math.isfinite(sd) and sd > 0]
    means = [m for m, _, _ in stats if math.isfinite(m)]
    if stds:
        sd = min(stds)
        exp = math.floor(math.log10(sd))
        places = -exp + (1 if int(round(sd / 10 ** exp, 6)) == 1 else 0)
    elif len(set(means)) > 1:
        places = 1 - math.floor(math.log10(max(means) - min(means)))
    elif means and means[0] != 0:
        places = 2 - math.floor(math.log10(abs(means[0])))
    else:
        places = 0
    return max(0, min(places, 8))


def fmt_stat(stat: tuple[float, float, int] | None, digits: int = 3, places: int | None = None) -> str:
    """``mean ± std``: with ``places`` (:func:`column_decimals`) both to that many decimals, the std left
    out for a single seed; else ``digits`` significant digits (the std two)."""
    if stat is None:
        return "-"
    mean, std, n = stat
    if places is not None:
        if math.isnan(std) or n == 1 or not math.isfinite(mean):
            return f"{mean:.{places}f}"
        return f"{mean:.{places}f} ± {std:.{places}f}"
    if math.isnan(std):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {std:.2g}"


def iterations_text(row: Row) -> str:
    """The row's training length beside the protocol's: ``3,000 / 30,000`` when shorter than the papers'
    protocol (:func:`introzoo.references.protocol_iterations`), else ``30,000``; a reference row shows
    the protocol's."""
    from ..references import protocol_iterations

    protocol = protocol_iterations(row.data)
    if row.published:
        return f"{protocol:,}" if protocol else ""
    if not row.iterations:
        return ""
    lo, hi = min(row.iterations), max(row.iterations)
    text = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
    return text + (f" / {protocol:,}" if protocol and hi < protocol else "") + (" †" if row.warmup_heavy else "")


def warmup_heavy_note(rows: list[Row]) -> str | None:
    """A line explaining ``†`` in the iterations column (:func:`introzoo.references.recorded_warmup_dominates`)."""
    n = sum(1 for r in rows if r.warmup_heavy and not r.published)
    if not n:
        return None
    return (f"†: {n} row(s) spent half their iterations or more in the objective's plain-VAE warm-up (num_vae): "
            "they describe a VAE more than the objective; train longer")


def short_of_protocol(rows: list[Row]) -> str | None:
    """A line explaining ``a / b`` in the iterations column, when some row trained less than the protocol."""
    from ..references import protocol_iterations

    short = [r for r in rows if not r.published and r.iterations and protocol_iterations(r.data)
             and max(r.iterations) < protocol_iterations(r.data)]
    if not short:
        return None
    return (f"iterations a / b: {len(short)} row(s) trained a iterations, shorter than the papers' protocol (b): "
            "their numbers are not comparable with the published ones")


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
    places = {m: column_decimals([r.stats[m] for r in rows if m in r.stats]) for m in metrics}
    header = ["rank", "data", "objective", "prior", "backbone", "n", "iterations"] + [f"{m} {'↓' if directions[m] == 'min' else '↑'}" for m in metrics] + ["diverged", "failed"]
    header += ["verdict"] if judged else []
    header += ["code"] if versions else []
    body, marks = [], []
    for r in rows:
        g = group_key(r, group_by)
        cells = ["" if r.rank is None else str(r.rank), r.data, r.label, r.prior, r.backbone,
                 "paper" if r.published else f"{r.finished}/{r.n_runs}", iterations_text(r)]
        flags = [False] * len(cells)
        for m in metrics:
            stat = r.stats.get(m)
            cells.append(fmt_stat(stat, places=places[m]))
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


def _protocol(row: Row) -> int | None:
    from ..references import protocol_iterations

    return protocol_iterations(row.data)


def to_json(rows: list[Row], directions: dict[str, str], sort: str | None,
            summary: dict[str, dict[str, Any]] | None = None) -> str:
    out = []
    for r in rows:
        row = {"rank": r.rank, "data": r.data, "objective": r.label, "prior": r.prior, "backbone": r.backbone, "published": r.published,
               "n": r.finished, "runs": r.n_runs, "diverged": r.diverged, "failed": r.failed, "unfinished": r.unfinished,
               "iterations": sorted(r.iterations), "protocol_iterations": _protocol(r), "warmup_heavy": r.warmup_heavy,
               "code": sorted(r.code), "metrics": {m: {"mean": s[0], "std": s[1], "n": s[2]} for m, s in r.stats.items()}}
        if r.published:
            row["column"] = r.column
            row["verdict"] = {m: {"verdict": v, "p": p} for m, (v, p) in r.verdicts.items()}
        out.append(row)
    body: dict[str, Any] = {"sort": sort, "directions": directions, "rows": out}
    if summary is not None:
        body["summary"] = {"test": f"Welch's t-test, two-sided, alpha {ALPHA}", **summary}
    return json.dumps(body, indent=2)


#: the widest the terminal table may be (its natural width: it never wraps in a 120-column terminal)
TABLE_WIDTH = 118
#: the narrowest a label may be cut to (its first part and a legend key) to fit TABLE_WIDTH
LABEL_WIDTH = 16
#: label columns that leave the terminal table for one line when equal in every row
_UNIFORM = ("data", "prior", "backbone")


def compact(rows: list[Row], header: list[str], body: list[list[str]],
            marks: list[list[bool]]) -> tuple[list[str], list[list[str]], list[list[bool]], list[str]]:
    """The table for a terminal and for LaTeX, within about 120 columns: the data, prior and backbone
    columns leave it when equal in every row (one line says ``every row: prior sg``), the diverged and
    failed columns when every count is 0; a label longer than :data:`LABEL_WIDTH` becomes its first part
    and a key (``soft [1]``) that a legend line under the table spells out, the longest first, until the
    table fits :data:`TABLE_WIDTH`; the verdict is one word, and ``*`` marks each metric of a reference row
    that differs from ours. Returns the table and its lines."""
    body = [list(cells) for cells in body]
    lines: list[str] = []
    if "verdict" in header:
        v = header.index("verdict")
        for row, cells in zip(rows, body):
            verdicts = row.verdicts
            differs = [m for m, (x, _) in verdicts.items() if x == "differs"]
            cells[v] = "differs" if differs else ("agrees" if any(x == "agrees" for x, _ in verdicts.values())
                                                  else ("untested" if verdicts else ""))
            for m in differs:
                i = next((i for i, h in enumerate(header) if h.rsplit(" ", 1)[0] == m), None)
                if i is not None:
                    cells[i] += "*"
        if any("*" in c for cells in body for c in cells):
            lines.append("* differs from our row above it (Welch's t-test, two-sided, p < 0.05; "
                         "p-values: --format md or json)")
    drop, same = set(), []
    for i, h in enumerate(header):
        column = {cells[i] for cells in body}
        ours = {cells[i] for row, cells in zip(rows, body) if not row.published}
        refs = {cells[i] for row, cells in zip(rows, body) if row.published}
        if h in _UNIFORM and len(body) > 1 and len(ours) <= 1 and refs <= ours | {""}:  # a reference names no prior: any
            drop.add(i)
            if ours - {""}:
                same.append(f"{h} {ours.pop()}")
        elif h in ("diverged", "failed") and column <= {"", "0"}:
            drop.add(i)
    if same:
        lines.insert(0, "every row: " + ", ".join(same))
    keep = [i for i in range(len(header)) if i not in drop]
    labels = [i for i in keep if header[i] in AXES + ("code",)]

    def width(limit: int) -> int:  # the table's natural width with labels cut at ``limit``
        return sum(max([len(header[i])] + [min(len(c[i]), limit) if i in labels else len(c[i]) for c in body])
                   for i in keep) + 2 * (len(keep) - 1)

    longest = max([len(c[i]) for c in body for i in labels] + [LABEL_WIDTH])
    limit = next((n for n in range(longest, LABEL_WIDTH - 1, -1) if width(n) <= TABLE_WIDTH), LABEL_WIDTH)
    legend: dict[str, str] = {}
    for i in labels:
        for cells in body:
            text = cells[i]
            if len(text) > limit:
                key = legend.setdefault(text, str(len(legend) + 1))
                head = text
                for sep in (",", " (", " + ", " [", ";"):
                    head = head.split(sep)[0]
                cells[i] = f"{head[:limit - len(key) - 3]} [{key}]"
    lines += [f"[{key}] {text}" for text, key in legend.items()]
    return ([header[i] for i in keep], [[cells[i] for i in keep] for cells in body],
            [[flags[i] for i in keep] for flags in marks], lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
        "±": r"$\pm$", "–": "--", "<": r"$<$", ">": r"$>$", "|": r"$|$"}
_STAT = re.compile(r"(-?[\d.]+) ± ([\d.]+)(\*?)")


def _tex(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in text)


def _tex_cell(text: str, bold: bool) -> str:
    m = _STAT.fullmatch(text)
    if m:  # mean ± std in math mode, a differing reference value starred
        value = rf"{m.group(1)} \pm {m.group(2)}"
        return (rf"$\mathbf{{{value}}}" if bold else f"${value}") + ("^*$" if m.group(3) else "$")
    if text.endswith("*"):
        return (rf"\textbf{{{_tex(text[:-1])}}}" if bold else _tex(text[:-1])) + "$^*$"
    return rf"\textbf{{{_tex(text)}}}" if bold and text else _tex(text)


def to_latex(header: list[str], body: list[list[str]], marks: list[list[bool]], groups: list[Any], title: str,
             notes: list[str] = ()) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): mean $\\pm$ std, the best value per group in bold, a
    ``\\midrule`` between groups, the notes under the table."""
    align = "".join("l" if h in AXES else "r" for h in header)
    lines = ["% introzoo leaderboard; needs \\usepackage{booktabs}", r"\begin{table}", r"\centering",
             rf"\caption{{{_tex(title)}}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    for i, (cells, flags) in enumerate(zip(body, marks)):
        if i and groups[i] != groups[i - 1]:
            lines.append(r"\midrule")
        lines.append(" & ".join(_tex_cell(c, f) for c, f in zip(cells, flags)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines.append(r"\par\smallskip{\footnotesize " + "\n".join(_tex(n) + r"\par" for n in notes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_markdown(header, body, marks) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cells, flags in zip(body, marks):
        lines.append("| " + " | ".join(f"**{c}**" if f else c for c, f in zip(cells, flags)) + " |")
    return "\n".join(lines)


def to_csv(rows: list[Row], directions: dict[str, str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    metrics = list(directions)
    w.writerow(["rank", "data", "objective", "prior", "backbone", "published", "n", "runs", "diverged", "failed", "unfinished",
                "iterations", "protocol_iterations"]
               + [f"{m}_{s}" for m in metrics for s in ("mean", "std")] + ["column", "verdict", "code"])
    for r in rows:
        vals = []
        for m in metrics:
            s = r.stats.get(m)
            vals += [s[0], s[1]] if s else ["", ""]
        w.writerow([r.rank or "", r.data, r.label, r.prior, r.backbone, r.published, r.finished, r.n_runs, r.diverged, r.failed,
                    r.unfinished, ";".join(str(i) for i in sorted(r.iterations)), _protocol(r) or ""]
                   + vals + [r.column, verdict_text(r), code_label(r)])
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
    if skipped and records:  # with no readable run, the error line below names them instead
        Console(stderr=True).print(f"warning: {len(skipped)} unreadable run(s) left out of the leaderboard: "
                                   + "; ".join(reason for _, reason in skipped), highlight=False, soft_wrap=True,
                                   markup=False)
    spec = manifest.get("spec") if isinstance(manifest.get("spec"), dict) else {}
    rows, directions = build_rows(records, written_options(spec) if spec else None)
    if not rows:
        raise UsageError(f"no runs in '{sweep_dir}' yet" + (f" ({len(skipped)} unreadable: "
                                                            + "; ".join(reason for _, reason in skipped) + ")" if skipped else ""))
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
    lines = ([f"published: {src}"] if src else []) + legend + [x for x in (settings_line(spec), short_of_protocol(rows), warmup_heavy_note(rows)) if x]
    mixed = mixed_code(rows)
    if mixed and not versions and fmt == "table":
        notes = notes + [f"note: {len(mixed)} row(s) mix runs made by different code (introzoo or plugin "
                         "versions); see them with --versions"]
    if fmt == "table":
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                      show_edge=False)
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
    text = {"md": lambda: f"**{title}**\n\n" + to_markdown(header, body, marks) + "\n" + "".join(f"\n{x}\n" for x in lines + notes),
            "csv": lambda: to_csv(rows, directions),
            "json": lambda: to_json(rows, directions, sort_metric, summary) + "\n",
            "html": lambda: to_html(header, body, marks, title, lines + notes),
            "latex": lambda: to_latex(header, body, marks, [group_key(r, group_by) for r in rows], title, lines + notes)}[fmt]()
    if out:
        out.write_text(text)
    else:
        console.file.write(text)


def no_published(spec: dict[str, Any], rows: list[Row]) -> str:
    """The line ``--published`` prints when there is nothing to put beside the sweep's rows."""
    if not reference_columns(spec):
        return ("note: no published numbers for this sweep: its sweep file has no [published] or [references.*] "
                "table (those with paper tables: benchmarks/toy2d_best.toml, benchmarks/toy2d.toml, benchmarks/dpvae.toml)")
    return ("note: no published numbers for the datasets of this sweep ("
            + ", ".join(sorted({r.data for r in rows})) + "); its sweep file has some for other datasets")
