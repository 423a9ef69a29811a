"""Leaderboard rows: a sweep's runs aggregated over seeds, one :class:`Row` per configuration.

One row per configuration (all options but the seed): mean ± std over its finished seeds (std with
ddof=0, numpy's default) and n, per metric with its direction; diverged and failed runs are counted in
their own columns, never silently dropped. Within each group (dataset by default) rows are ranked by
one metric (:func:`rank`) and the best value of every metric is known (:func:`best_values`). A row's
labels name every axis that varies among the runs shown (:func:`axis_labels`).

Each row also knows which code made its runs (``code``: introzoo's version and every third-party
plugin, with its version, that supplied a component, as ``config.json`` records them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..references import recorded_warmup_dominates
from ..spec import format_spec
from .records import Record

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
    train_vary = sorted(k for k in train_keys if len({json.dumps((o.get("train") or {}).get(k)) for o in configs}) > 1)
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
        row = rows.setdefault(
            r.key,
            Row(
                r.key,
                labels["data"],
                r.config["objective"]["name"],
                labels["objective"],
                labels["prior"],
                labels["backbone"],
            ),
        )
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


def metric_direction(name: str) -> str:
    """``min`` / ``max`` of a registered metric that reports ``name`` (``max`` when none is found)."""
    from ..plugins import registry

    try:
        comp = registry().get("metrics", name)
        return comp.build(comp.config()).directions.get(name, "max")
    except Exception:
        return "max"
