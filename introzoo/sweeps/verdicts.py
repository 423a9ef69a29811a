"""Reference columns and verdicts: the sweep file's published numbers (``[published]``, ``[references.*]``)
as rows beside ours, each judged against the row of ours it matches by Welch's t-test
(docs/reproduce.md, "Reference columns and the verdict")."""

from __future__ import annotations

import math
from typing import Any

from ..references import plain
from .rows import Row, group_key

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
                row = Row(
                    f"{column}:{data}:{obj}",
                    data,
                    label.split("+")[0].strip(),
                    f"{label} ({shown})",
                    prior,
                    published=True,
                    column=column,
                )
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


def _regularizers(label: str) -> list[str]:
    """The regularizer names of a row label (``vae + tcvae,beta=4 [lr=0.001]`` -> ``["tcvae"]``)."""
    return [part.split(",")[0].split(":")[0].strip() for part in label.split(" [")[0].split(" (")[0].split(" + ")[1:]]


def _matches(ref: Row, row: Row) -> bool:
    """Whether reference row ``ref`` is judged against our ``row``: same data, objective and (where the
    reference names them, ``"vae + tcvae @ flow"``) regularizers and prior."""
    regs = _regularizers(ref.label)
    return (
        row.data == ref.data
        and row.objective == ref.objective
        and (not ref.prior or _prior_name(row.prior) == ref.prior)
        and (not regs or _regularizers(row.label) == regs)
    )


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
    return [
        f"{s['agree']} of {s['cells']} cells agree with {name}"
        + (f" ({sources[name]})" if sources.get(name) else "")
        + f" (Welch's t-test, two-sided, {ALPHA:.0%})"
        for name, s in summary.items()
    ]


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


def no_published(spec: dict[str, Any], rows: list[Row]) -> str:
    """The line ``--published`` prints when there is nothing to put beside the sweep's rows."""
    if not reference_columns(spec):
        return (
            "note: no published numbers for this sweep: its sweep file has no [published] or [references.*] "
            "table (those with paper tables: benchmarks/toy2d_best.toml, benchmarks/toy2d.toml, benchmarks/dpvae.toml)"
        )
    return (
        "note: no published numbers for the datasets of this sweep ("
        + ", ".join(sorted({r.data for r in rows}))
        + "); its sweep file has some for other datasets"
    )
