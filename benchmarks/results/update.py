"""Bring finished runs of a sweep file into ``benchmarks/results/<name>/`` and write its leaderboards.

The results folder is a run store that ``introzoo leaderboard`` reads like any sweep directory:
``sweep.json`` (the sweep file's grid and reference columns), and per finished run
``runs/<hash>/config.json``, ``metrics.json`` and ``history.jsonl`` (no checkpoints, no pictures). Runs
are named by the hash of their configuration, so runs made on different machines and sessions merge,
and ``introzoo sweep FILE --out benchmarks/results/<name>`` skips every run already here. After the
copy, ``leaderboard.md`` and ``leaderboard.json`` are written with the reference columns and verdicts.

    python benchmarks/results/update.py benchmarks/toy2d_best.toml --from /path/to/store [--from ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.console import Console

from introzoo.sweeps.leaderboard import render_leaderboard
from introzoo.plugins import registry
from introzoo.readers import read_json
from introzoo.sweeps.grid import expand, load_sweep_file, write_manifest

FILES = ("config.json", "metrics.json", "history.jsonl")
HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_file", type=Path)
    ap.add_argument(
        "--from",
        dest="stores",
        type=Path,
        action="append",
        default=[],
        help="a sweep directory (or its runs/ folder) holding finished runs of the file's grid",
    )
    ap.add_argument("--name", help="results folder name (default: the sweep file's name)")
    ap.add_argument("--dest", type=Path, help="results folder (default: benchmarks/results/<name>)")
    args = ap.parse_args()
    spec = load_sweep_file(args.sweep_file)
    dest = args.dest or HERE / (args.name or spec.name or args.sweep_file.stem)
    tasks = expand(spec, registry(), sweep_dir=dest)
    write_manifest(dest, spec, tasks, {"stage": "grid", "results": True})
    copied = 0
    for task in tasks:
        target = dest / "runs" / task.hash
        if (target / "metrics.json").exists():
            continue
        for store in args.stores:
            src = next((d for d in (store / "runs" / task.hash, store / task.hash) if (d / "metrics.json").exists()), None)
            if src is None or read_json(src / "metrics.json", "run metrics").get("status") not in ("finished", "diverged"):
                continue
            target.mkdir(parents=True, exist_ok=True)
            for name in FILES:  # metrics.json last: a run counts as finished once it is there
                if (src / name).exists() and name != "metrics.json":
                    shutil.copy2(src / name, target / name)
            shutil.copy2(src / "metrics.json", target / "metrics.json")
            copied += 1
            break
    have = sum((dest / "runs" / t.hash / "metrics.json").exists() for t in tasks)
    print(f"{dest}: {copied} run(s) copied, {have} of {len(tasks)} in the grid finished")
    if have:
        for fmt, name in (("md", "leaderboard.md"), ("json", "leaderboard.json")):
            render_leaderboard(
                Console(), dest, fmt=fmt, sort=None, group_by="data", published=True, show_all=True, out=dest / name
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
