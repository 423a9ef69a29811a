"""A sweep's run store as the leaderboard reads it: :func:`collect` gathers the runs that have started
(their ``config.json``) with their ``metrics.json`` as :class:`Record`; a run either file of which
cannot be read is left out and named, not fatal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..readers import ReadError, read_json
from ..training.run_dir import RunDir


def strings(value: Any) -> bool:
    """Whether ``value`` is a JSON list of strings."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass
class Record:
    hash: str
    key: str
    config: dict[str, Any]
    status: str
    metrics: dict[str, float]
    directions: dict[str, str]

    @property
    def code(self) -> str:
        return code_of(self.config)


def code_of(config: dict[str, Any]) -> str:
    """Which code made a run, from its ``config.json``: ``introzoo 0.1.0`` plus ``plugin version`` for each
    third-party plugin that supplied one of its components (``introzoo 0.1.0 + example 0.1.0``)."""
    comps = [config.get(k) for k in ("objective", "prior", "backbone", "data")]
    comps += list(config.get("regularizers") or []) + list(config.get("metrics") or [])
    plugins = sorted(
        {
            f"{c['plugin']} {c.get('version', '?')}"
            for c in comps
            if isinstance(c, dict) and c.get("plugin") not in (None, "introzoo")
        }
    )
    return " + ".join([f"introzoo {config.get('introzoo', '?')}"] + plugins)


def _config_problem(config: dict[str, Any]) -> str | None:
    for part in ("objective", "prior", "data"):
        comp = config.get(part)
        if (
            not isinstance(comp, dict)
            or not isinstance(comp.get("name"), str)
            or not isinstance(comp.get("options", {}), dict)
        ):
            return f"has no '{part}' component (name and options)"
    if not isinstance(config.get("config_key", ""), str):
        return "has a 'config_key' that is not a string"
    return None


def _metrics_problem(m: dict[str, Any]) -> str | None:
    if not isinstance(m.get("status", ""), str):
        return "has a 'status' that is not a string"
    for key in ("metrics", "directions"):
        if not isinstance(m.get(key) or {}, dict):
            return f"has '{key}' that is not a JSON object"
    if any(v is not None and not isinstance(v, (int, float)) for v in (m.get("metrics") or {}).values()):
        return "has a metric value that is not a number"
    return None


def collect(
    sweep_dir: str | Path, only: list[str] | None = None, skipped: list[tuple[str, str]] | None = None
) -> list[Record]:
    """The sweep's runs that have started (a ``config.json``). A run whose ``config.json`` or
    ``metrics.json`` cannot be read is left out and, when ``skipped`` is given, appended to it as
    (run, what is wrong)."""
    root = Path(sweep_dir) / "runs"
    if not root.is_dir():
        raise UsageError(f"'{sweep_dir}' is not a sweep directory (no runs/ folder); run 'introzoo sweep' first")
    wanted = set(only) if only is not None else None
    records = []
    for d in sorted(root.iterdir()):
        if (wanted is not None and d.name not in wanted) or not d.is_dir():
            continue
        rd = RunDir(d)
        if not rd.config.exists():
            continue  # never started
        try:
            config = read_json(rd.config, "run configuration")
            problem = _config_problem(config)
            if problem:
                raise ReadError("run configuration", rd.config, problem)
            m = read_json(rd.metrics, "run result") if rd.metrics.exists() else {"status": "unfinished"}
            problem = _metrics_problem(m)
            if problem:
                raise ReadError("run result", rd.metrics, problem)
        except ReadError as exc:
            if skipped is not None:
                skipped.append((d.name, str(exc)))
            continue
        records.append(
            Record(
                d.name,
                config.get("config_key", d.name),
                config,
                m.get("status", "unfinished"),
                m.get("metrics", {}) or {},
                m.get("directions", {}) or {},
            )
        )
    return records
