"""Packs in a sweep: which pending runs train together (:func:`pack_units`), how many at most
(:func:`auto_pack_size`), and how a worker trains one pack under every member's claim
(:func:`execute_pack`).

Runs go into one pack when :func:`pack_key` gives them the same key: every component packs
(:func:`introzoo.packing.loop.check_packable`), the dataset is 2D or of images, and they share the objective (and its options
other than the floats and ``num_vae``), the prior and the backbone with their options, the dataset, the
regularizers, the device and the training options other than :data:`introzoo.packing.loop.MEMBER_TRAIN_OPTIONS`.
Every member keeps its own hash-named run directory; a pack is one unit of work of an executor (one
local worker job, one Slurm array task). A pack has no resume points: after a kill its unfinished
members train again, in a new pack, from the start, and end as they would have (members are independent).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import UsageError
from ..training.run_dir import RunDir

#: the largest pack ``auto`` picks (the stacked products gain little beyond it on one GPU)
PACK_MAX = 256
#: ``auto`` without a GPU here: CPU throughput is flat in the pack size (docs/packing.md), memory is not
PACK_CPU = 16
#: the share of the free GPU memory that ``auto`` plans for (the rest: CUDA context, allocator slack)
FREE_SHARE = 0.8


@dataclass
class PackTask:
    """Several runs of a sweep (:class:`~introzoo.sweeps.grid.Task`) trained as one pack."""

    members: list = field(default_factory=list)

    @property
    def hash(self) -> str:
        """The pack's id (from its members' hashes)."""
        return "pack-" + hashlib.sha1(" ".join(t.hash for t in self.members).encode()).hexdigest()[:10]


Unit = Union["PackTask", Any]  # a PackTask or a single Task


def pack_key(run) -> str | None:
    """What members of one pack share, as a string, for a resolved run (``None``: it does not pack)."""
    from ..packing.loop import MEMBER_TRAIN_OPTIONS, PACK_DATA, check_packable

    try:
        check_packable([run])
    except UsageError:
        return None
    if getattr(run.dataset, "kind", None) not in PACK_DATA:
        return None
    rec = run.to_json()
    shared = {k: v for k, v in rec["objective"]["options"].items() if k != "num_vae" and not isinstance(v, float)}
    body = {
        "objective": [rec["objective"]["name"], shared],
        "device": run.device,
        "train": {k: v for k, v in rec["train"].items() if k not in MEMBER_TRAIN_OPTIONS},
        **{k: rec[k] for k in ("prior", "backbone", "data", "regularizers")},
    }
    return json.dumps(body, sort_keys=True)


def pack_units(tasks: list, size: int) -> list:
    """``tasks`` as units of work: runs of one :func:`pack_key` in packs of at most ``size`` (in the
    tasks' order), every other run alone. ``size`` 1: every run alone, as without packing."""
    if size <= 1:
        return list(tasks)
    units: list = []
    open_packs: dict[str, PackTask] = {}
    for t in tasks:
        key = t.pack_key
        if key is None:
            units.append(t)
            continue
        pack = open_packs.get(key)
        if pack is None:
            pack = open_packs[key] = PackTask()
            units.append(pack)
        pack.members.append(t)
        if len(pack.members) == size:
            del open_packs[key]
    return [u.members[0] if isinstance(u, PackTask) and len(u.members) == 1 else u for u in units]


def members(unit) -> list:
    """The runs of a unit of work."""
    return list(unit.members) if isinstance(unit, PackTask) else [unit]


def unit_args(unit) -> tuple[Any, Any]:
    """(run directory, record) of a unit as a worker receives them: a run's path and record, or a
    pack's lists of them (absolute paths: a job may start elsewhere)."""
    dirs = [str(Path(t.run_dir).resolve()) for t in members(unit)]
    if isinstance(unit, PackTask):
        return dirs, [t.config for t in unit.members]
    return dirs[0], unit.config


def member_bytes(config: dict[str, Any], itemsize: int = 4) -> int:
    """Training memory of one pack member, from its record: parameters, gradients and Adam's two
    moments (4 x the parameters), and the activations kept for backward, about 16 batch-wide tensors per
    hidden layer (the introspective objectives pass the real batch, its reconstruction and the generated
    batch through both networks). An estimate: ``benchmarks/speed_pack.py`` prints the measured figure."""
    from ..backbones.mlp import widths

    opts = config["backbone"]["options"]
    hidden = widths(opts.get("hidden", 256), opts.get("layers", 3))
    zdim, batch = int(config["train"]["zdim"]), int(config["train"]["batch_size"])
    n_in = 2
    enc = list(zip([n_in] + hidden, hidden + [2 * zdim]))
    dec = list(zip([zdim] + hidden[::-1], hidden[::-1] + [n_in]))
    params = sum(a * b + b for a, b in enc + dec)
    return itemsize * (4 * params + 16 * batch * 2 * sum(hidden))


def auto_pack_size(configs: list[dict[str, Any]], device: str, workers: int = 1) -> int:
    """The pack size ``auto`` picks: on a GPU (``device`` cuda, or auto with one here), as many members
    as fit in :data:`FREE_SHARE` of the free memory (``torch.cuda.mem_get_info``) shared by ``workers``
    processes, from 1 to :data:`PACK_MAX`; elsewhere :data:`PACK_CPU`."""
    import torch

    if device == "cpu" or not torch.cuda.is_available() or not configs:
        return PACK_CPU
    free, _ = torch.cuda.mem_get_info()
    need = (
        max(member_bytes(c) for c in configs if c.get("backbone", {}).get("name") == "mlp")
        if any(c.get("backbone", {}).get("name") == "mlp" for c in configs)
        else 0
    )
    if need <= 0:
        return PACK_CPU
    return max(1, min(PACK_MAX, math.floor(FREE_SHARE * free / max(1, workers) / need)))


def _result(status: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, **extra}


def execute_pack(
    run_dirs: list[str],
    configs: list[dict[str, Any]],
    threads: int | None = None,
    sweep_dir: str | None = None,
    wait: bool = True,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Train the runs of one pack (in a worker) under every member's claim; one result per member, in
    order. Claims are taken in the order of the run directories' paths (two processes that wait for
    overlapping packs cannot deadlock). A member another process holds is reported busy (``wait``
    false) or waited for; a member that ended meanwhile is not trained again; the rest train as one
    pack (a single one alone, as :func:`introzoo.sweeps.grid.execute` would)."""
    from .run import STATUS_BUSY, _execute

    if device:
        configs = [{**c, "device": device} for c in configs]
    n = len(run_dirs)
    results: list[dict[str, Any] | None] = [None] * n
    claims = []
    try:
        for i in sorted(range(n), key=lambda j: str(Path(run_dirs[j]).resolve())):
            rd = RunDir(run_dirs[i])
            try:
                claim = rd.claim(wait=wait)
            except OSError as exc:
                results[i] = _result("failed", f"cannot claim {rd.path}: {exc.strerror or exc}")
                continue
            if claim is None:
                results[i] = _result(STATUS_BUSY, "trained by another sweep process")
                continue
            claims.append(claim)
            m = rd.read_metrics()
            if m is not None and m.get("status") in ("finished", "diverged"):
                results[i] = _result(m["status"], m.get("reason", ""), elsewhere=True)
        todo = [i for i in range(n) if results[i] is None]
        if len(todo) == 1:
            results[todo[0]] = _execute(run_dirs[todo[0]], configs[todo[0]], threads, sweep_dir)
        elif todo:
            for i, r in zip(todo, _train([run_dirs[i] for i in todo], [configs[i] for i in todo], threads, sweep_dir)):
                results[i] = r
    finally:
        for c in claims:
            c.release()
    return results  # type: ignore[return-value]


def _train(run_dirs: list[str], configs: list[dict[str, Any]], threads, sweep_dir) -> list[dict[str, Any]]:
    """:func:`introzoo.packing.loop.train_pack` on claimed runs; a failure is recorded for every member."""
    import torch

    from .. import plugins
    from ..config import from_json
    from ..packing.loop import train_pack
    from .run import _log

    if threads:
        torch.set_num_threads(threads)
    pack_id = PackTask([_Named(Path(d).name) for d in run_dirs]).hash
    for d in run_dirs:
        _log(sweep_dir, event="start", run=Path(d).name, pack=pack_id, members=len(run_dirs))
    try:
        reg = plugins.registry()
        out = train_pack([from_json(c, reg) for c in configs], run_dirs)
    except Exception as exc:  # recorded, not raised: one bad pack must not take the sweep down
        reason = f"{type(exc).__name__}: {exc}"
        out = []
        for d in run_dirs:
            try:
                out.append(RunDir(d).record_failure(reason))
            except OSError:
                out.append(_result("failed", reason))
    for d, r in zip(run_dirs, out):
        _log(sweep_dir, event="end", run=Path(d).name, status=r["status"], pack=pack_id)
    return [_result(r["status"], r.get("reason", "")) for r in out]


@dataclass
class _Named:
    hash: str
