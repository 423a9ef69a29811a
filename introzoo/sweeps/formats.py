"""Rendering a leaderboard: the cells (decimals per column, iterations beside the protocol's, notes),
the terminal table's compaction, and the Markdown, CSV, JSON, HTML and LaTeX outputs."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from typing import Any

from .rows import AXES, Row, best_values, group_key
from .verdicts import ALPHA, verdict_text


def column_decimals(stats: list[tuple[float, float, int]]) -> int:
    """Decimal places of one metric column, the same for every row: down to the first significant digit of
    the column's smallest std (two digits when it starts with 1: ``1.25 ± 0.11``); without stds (single
    seeds), two significant digits of the spread of the means, or three of a lone value."""
    stds = [sd for _, sd, n in stats if n != 1 and math.isfinite(sd) and sd > 0]
    means = [m for m, _, _ in stats if math.isfinite(m)]
    if stds:
        sd = min(stds)
        exp = math.floor(math.log10(sd))
        places = -exp + (1 if int(round(sd / 10**exp, 6)) == 1 else 0)
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
    return (
        f"†: {n} row(s) spent half their iterations or more in the objective's plain-VAE warm-up (num_vae): "
        "they describe a VAE more than the objective; train longer"
    )


def short_of_protocol(rows: list[Row]) -> str | None:
    """A line explaining ``a / b`` in the iterations column, when some row trained less than the protocol."""
    from ..references import protocol_iterations

    short = [
        r
        for r in rows
        if not r.published
        and r.iterations
        and protocol_iterations(r.data)
        and max(r.iterations) < protocol_iterations(r.data)
    ]
    if not short:
        return None
    return (
        f"iterations a / b: {len(short)} row(s) trained a iterations, shorter than the papers' protocol (b): "
        "their numbers are not comparable with the published ones"
    )


def code_label(row: Row) -> str:
    return "; ".join(sorted(row.code))


def mixed_code(rows: list[Row]) -> list[Row]:
    """Rows whose runs were made by different code (a plugin or introzoo upgraded between seeds)."""
    return [r for r in rows if len(r.code) > 1]


def table_data(
    rows: list[Row], directions: dict[str, str], group_by: str, versions: bool = False
) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    metrics = list(directions)
    best = best_values(rows, directions, group_by)
    judged = any(r.verdicts for r in rows)
    places = {m: column_decimals([r.stats[m] for r in rows if m in r.stats]) for m in metrics}
    header = (
        ["rank", "data", "objective", "prior", "backbone", "n", "iterations"]
        + [f"{m} {'↓' if directions[m] == 'min' else '↑'}" for m in metrics]
        + ["diverged", "failed"]
    )
    header += ["verdict"] if judged else []
    header += ["code"] if versions else []
    body, marks = [], []
    for r in rows:
        g = group_key(r, group_by)
        cells = [
            "" if r.rank is None else str(r.rank),
            r.data,
            r.label,
            r.prior,
            r.backbone,
            "paper" if r.published else f"{r.finished}/{r.n_runs}",
            iterations_text(r),
        ]
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


def to_json(
    rows: list[Row], directions: dict[str, str], sort: str | None, summary: dict[str, dict[str, Any]] | None = None
) -> str:
    out = []
    for r in rows:
        row = {
            "rank": r.rank,
            "data": r.data,
            "objective": r.label,
            "prior": r.prior,
            "backbone": r.backbone,
            "published": r.published,
            "n": r.finished,
            "runs": r.n_runs,
            "diverged": r.diverged,
            "failed": r.failed,
            "unfinished": r.unfinished,
            "iterations": sorted(r.iterations),
            "protocol_iterations": _protocol(r),
            "warmup_heavy": r.warmup_heavy,
            "code": sorted(r.code),
            "metrics": {m: {"mean": s[0], "std": s[1], "n": s[2]} for m, s in r.stats.items()},
        }
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


def compact(
    rows: list[Row], header: list[str], body: list[list[str]], marks: list[list[bool]]
) -> tuple[list[str], list[list[str]], list[list[bool]], list[str]]:
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
            cells[v] = (
                "differs"
                if differs
                else ("agrees" if any(x == "agrees" for x, _ in verdicts.values()) else ("untested" if verdicts else ""))
            )
            for m in differs:
                i = next((i for i, h in enumerate(header) if h.rsplit(" ", 1)[0] == m), None)
                if i is not None:
                    cells[i] += "*"
        if any("*" in c for cells in body for c in cells):
            lines.append(
                "* differs from our row above it (Welch's t-test, two-sided, p < 0.05; p-values: --format md or json)"
            )
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
        return sum(
            max([len(header[i])] + [min(len(c[i]), limit) if i in labels else len(c[i]) for c in body]) for i in keep
        ) + 2 * (len(keep) - 1)

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
                cells[i] = f"{head[: limit - len(key) - 3]} [{key}]"
    lines += [f"[{key}] {text}" for text, key in legend.items()]
    return (
        [header[i] for i in keep],
        [[cells[i] for i in keep] for cells in body],
        [[flags[i] for i in keep] for flags in marks],
        lines,
    )


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "±": r"$\pm$",
    "–": "--",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"$|$",
}


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


def to_latex(
    header: list[str], body: list[list[str]], marks: list[list[bool]], groups: list[Any], title: str, notes: list[str] = ()
) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): mean $\\pm$ std, the best value per group in bold, a
    ``\\midrule`` between groups, the notes under the table."""
    align = "".join("l" if h in AXES else "r" for h in header)
    lines = [
        "% introzoo leaderboard; needs \\usepackage{booktabs}",
        r"\begin{table}",
        r"\centering",
        rf"\caption{{{_tex(title)}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\midrule",
    ]
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
    w.writerow(
        [
            "rank",
            "data",
            "objective",
            "prior",
            "backbone",
            "published",
            "n",
            "runs",
            "diverged",
            "failed",
            "unfinished",
            "iterations",
            "protocol_iterations",
        ]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
        + ["column", "verdict", "code"]
    )
    for r in rows:
        vals = []
        for m in metrics:
            s = r.stats.get(m)
            vals += [s[0], s[1]] if s else ["", ""]
        w.writerow(
            [
                r.rank or "",
                r.data,
                r.label,
                r.prior,
                r.backbone,
                r.published,
                r.finished,
                r.n_runs,
                r.diverged,
                r.failed,
                r.unfinished,
                ";".join(str(i) for i in sorted(r.iterations)),
                _protocol(r) or "",
            ]
            + vals
            + [r.column, verdict_text(r), code_label(r)]
        )
    return buf.getvalue()


def to_html(header, body, marks, title: str, notes: list[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = []
    for cells, flags in zip(body, marks):
        tds = "".join(
            f"<td><b>{html.escape(c)}</b></td>" if f else f"<td>{html.escape(c)}</td>" for c, f in zip(cells, flags)
        )
        trs.append(f"<tr>{tds}</tr>")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}td:nth-child(-n+5){text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
        "<p>mean ± std over seeds; best per group in bold.</p>"
        + "".join(f"<p>{html.escape(x)}</p>" for x in notes)
        + "</body></html>\n"
    )
