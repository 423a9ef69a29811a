"""Packed training: M runs of one configuration family trained at once, each as if alone.

:func:`train_pack` takes runs that share objective, prior kind, backbone shape and dataset (they may
differ in seed, the objective's scalar options, ``num_vae``, ``lr`` and its schedule) and writes, for
each member, the run directory :func:`introzoo.train.train` would write: the same ``config.json``
(hash), ``history.jsonl``, a ``checkpoint.pt`` that :func:`introzoo.train.load` reads, and
``metrics.json``. Member i's losses, parameters and metrics are those of its solo run to float
tolerance (float64: 1e-10; see docs/packing.md for float32).

Per iteration, the active members are split into those in their VAE warm-up and the others; each part
runs the objective's own ``step`` on a :class:`~introzoo.packed.PackView` of its members. A member whose
losses are non-finite ends there as ``diverged`` (recorded as its solo run would record it) and leaves
the pack; the others go on.

Components pack when their factory declares ``packable = True`` (objectives, priors, regularizers and the
backbone's ``build``); anything else raises :class:`~introzoo.errors.UsageError`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from . import kernels
from . import train as solo
from .config import ResolvedRun
from .errors import UsageError
from .metrics.base import EvalContext
from .objectives.members import MemberOption
from .packed import MaskedAdam, MembersOptimizer, PackedVAE
from .packed_members import MembersAdam, MemberRegularizer
from .perf import tune_allocator
from .plots import save_image_progress
from .runs import STATUS_DIVERGED, STATUS_FINISHED, RunDir, atomic_write_json

#: options that may differ between members (the rest must be equal)
MEMBER_TRAIN_OPTIONS = ("lr", "lr_milestones", "lr_gamma")
#: the dataset kinds a pack trains on (``mlp`` on 2D sets; ``conv``/``resnet`` on images)
PACK_DATA = ("2d", "image")


def packable(component) -> bool:
    """Whether a registered component declares that it packs (``packable = True`` on its factory)."""
    return bool(getattr(component.factory, "packable", False))


def check_packable(runs: list[ResolvedRun]) -> None:
    """A :class:`UsageError` unless every component packs and the runs share what a pack shares."""
    if not runs:
        raise UsageError("a pack needs at least one run")
    r0 = runs[0]
    for r in runs:
        for kind, comp in (("objective", r.objective), ("prior", r.prior), ("backbone", r.backbone)):
            if not packable(comp.component):
                raise UsageError(f"{kind} '{comp.component.name}' does not pack; it runs unpacked "
                                 "(introzoo list shows which components pack)")
        for reg in r.regularizers:
            if not packable(reg.component):
                raise UsageError(f"regularizer '{reg.component.name}' does not pack; it runs unpacked "
                                 "(introzoo list shows which components pack)")
        if [(g.component.name, g.config) for g in r.regularizers] != [(g.component.name, g.config)
                                                                     for g in r0.regularizers]:
            raise UsageError("runs of a pack share their regularizers and their options")
        if r.train.get("precision", "fp32") != "fp32":
            raise UsageError(f"precision '{r.train['precision']}' does not pack (fp32 only); it runs unpacked")
        if r.data.component.name != r0.data.component.name:
            raise UsageError("runs of a pack share their dataset")
        for kind in ("objective", "prior", "backbone"):
            a, b = getattr(r, kind), getattr(r0, kind)
            if a.component.name != b.component.name:
                raise UsageError(f"runs of a pack share their {kind}: '{a.component.name}' != '{b.component.name}'")
        if r.backbone.config != r0.backbone.config or r.prior.config != r0.prior.config:
            raise UsageError("runs of a pack share the backbone's and the prior's options")
        for k, v in r.train.items():
            if k not in MEMBER_TRAIN_OPTIONS and v != r0.train[k]:
                raise UsageError(f"runs of a pack share the training option '{k}'")
        for k, v in r.objective.config:
            if k != "num_vae" and not isinstance(v, float) and v != getattr(r0.objective.config, k):
                raise UsageError(f"runs of a pack share the objective option '{k}'")


def _member_config(configs: list[Any], members: list[int]) -> SimpleNamespace:
    """The objective's options for ``members``: a float that members share as the Python float their
    solo runs see, one that differs as a :class:`~introzoo.objectives.members.MemberOption` (float64
    arithmetic, a ``(k, 1)`` column where it meets a tensor); the rest shared."""
    out = {}
    for k, v in configs[members[0]]:
        values = [getattr(configs[i], k) for i in members]
        out[k] = MemberOption(values) if isinstance(v, float) and len(set(values)) > 1 else v
    return SimpleNamespace(**out)


class Pack:
    """The packed model, one masked Adam per stacked parameter group, and each member's schedule.

    A member's learnable prior and its regularizers stay member i's own objects (those of its solo
    objective ``builts[i].objective``), with the solo objective's own Adam for the prior group; see
    :mod:`introzoo.packed_members`."""

    def __init__(self, runs: list[ResolvedRun], builts: list[solo.Built], generators: list[torch.Generator]) -> None:
        self.runs, self.builts = runs, builts
        self.model = PackedVAE([b.model for b in builts], generators).to(builts[0].device)
        self.groups = self.model.parameter_groups()
        self.lr = [float(r.train["lr"]) for r in runs]
        self.optimizers = {k: MaskedAdam(v, self.lr) for k, v in self.groups.items()}
        self.cls = type(builts[0].objective)
        self.configs = [b.objective.config for b in builts]
        self.num_vae = [b.objective.num_vae for b in builts]
        self.warmed = [False] * len(runs)  # whether member i's warm-up end has been called

    def _bind(self, members: list[int]) -> tuple[dict, dict]:
        """The parameter groups and optimisers an objective sees for ``members``."""
        groups = dict(self.groups)
        optimizers: dict[str, Any] = {k: MembersOptimizer(o, members) for k, o in self.optimizers.items()}
        own = [self.builts[i].objective for i in members]
        if any("prior" in o.optimizers for o in own):
            groups["prior"] = [p for o in own for p in o.groups.get("prior", [])]
            optimizers["prior"] = MembersAdam([o.optimizers["prior"] for o in own if "prior" in o.optimizers])
        return groups, optimizers

    def _end_warmup(self, i: int) -> None:
        """Member i's first adversarial iteration, as :meth:`Objective.in_warmup` alone: the prior's
        ``on_warmup_end`` (optimisers rebuilt when it replaced parameters), then the regularizers'."""
        self.warmed[i] = True
        obj, member = self.builts[i].objective, self.model.members[i]
        obj._warm = True
        with self.model.rng(i):  # the hooks draw (a MixturePrior built for vamp -> mog) from i's stream
            if member.prior.on_warmup_end():  # the prior replaced parameters: every Adam starts afresh
                obj._build_optimizers()
                for g in obj.optimizers.get("prior", SimpleNamespace(param_groups=[])).param_groups:
                    g["lr"] = self.lr[i]
                for o in self.optimizers.values():
                    o.reset(i)
            for reg in obj.regularizers:
                reg.on_warmup_end(member)

    def _objective(self, members: list[int], warm: bool):
        """The objective's own step code, bound to a view of ``members`` (all in, or all past, warm-up)."""
        view = self.model.view(members)
        regs = [MemberRegularizer(view, [self.builts[i].objective.regularizers[r] for i in members])
                for r in range(len(self.builts[members[0]].objective.regularizers))]
        groups, optimizers = self._bind(members)
        obj = self.cls.bound(_member_config(self.configs, members),
                             view, groups, optimizers, regs)

        def phase(iteration: int) -> bool:
            if not warm and not all(self.warmed[i] for i in members):
                for i in members:
                    if not self.warmed[i]:
                        self._end_warmup(i)
                obj.groups, obj.optimizers = self._bind(members)
            return warm

        obj._phase = phase
        return obj

    def step(self, xs: torch.Tensor, active: list[int], it: int) -> dict[int, dict[str, torch.Tensor]]:
        """One iteration for the ``active`` members (``xs``: every member's batch); their losses."""
        out: dict[int, dict[str, torch.Tensor]] = {}
        for warm in (True, False):
            members = [i for i in active if (it < self.num_vae[i]) == warm]
            if not members:
                continue
            x = xs if len(members) == self.model.size else xs[torch.tensor(members)]
            losses = self._objective(members, warm).train_step(x, it)
            for j, i in enumerate(members):
                out[i] = {k: v.reshape(len(members))[j] for k, v in losses.items()}
        for i in active:  # the MultiStepLR schedule, stepped once per iteration
            hits = self.runs[i].train["lr_milestones"].count(it + 1)
            if hits:
                self.lr[i] = self.lr[i] * self.runs[i].train["lr_gamma"] ** hits
                for o in self.optimizers.values():
                    o.lr[i] = self.lr[i]
                for o in self.builts[i].objective.optimizers.get("prior", SimpleNamespace(param_groups=[])).param_groups:
                    o["lr"] = self.lr[i]
        return out

    def progress_grid(self, i: int, x: torch.Tensor, path: Path, iteration: int) -> None:
        """Member i's image progress grid (:func:`introzoo.plots.save_image_progress`, as its solo run
        writes it every ``image_every`` iterations): drawn by member i's solo model, given the pack's
        current weights, in member i's random stream (the grid's prior samples advance it, as alone)."""
        built = self.builts[i]
        self.model.unstack(i, built.model)
        with self.model.rng(i):
            save_image_progress(built, x, path, self.runs[i], iteration)
        built.model.prior.attach(self.model.members[i])  # back on the pack's member model

    def export(self, i: int, done: int) -> solo.Built:
        """Member i as its solo :class:`~introzoo.train.Built`: weights, Adam states, schedules."""
        built = self.builts[i]
        self.model.unstack(i, built.model)
        obj = built.objective
        for k, opt in obj.optimizers.items():
            if k in self.optimizers:  # stacked groups; the prior's Adam is the member's own already
                for p, st in zip(opt.param_groups[0]["params"], self.optimizers[k].member_state(i)):
                    opt.state[p] = st
            for g in opt.param_groups:
                g["lr"] = self.lr[i]
        for sched in obj.schedulers.values():
            sched.last_epoch, sched._step_count = done, done + 1  # as after `done` steps alone
            sched._last_lr = [self.lr[i]]
        obj._warm = self.warmed[i]
        return built


def train_pack(runs: list[ResolvedRun], out_dirs: list[str | Path], device: torch.device | None = None
               ) -> list[dict[str, Any]]:
    """Train ``runs`` as one pack; returns each member's ``metrics.json`` content."""
    check_packable(runs)
    tune_allocator()  # as the solo trainer: freed activation buffers are reused (introzoo.perf)
    if len(out_dirs) != len(runs):
        raise UsageError("train_pack needs one output directory per run")
    builts, gens = [], []
    for r in runs:
        builts.append(solo.build(r, device))
        g = torch.Generator()
        g.set_state(torch.get_rng_state())  # the global stream the solo run draws its noise from
        gens.append(g)
    kind = builts[0].dataset.kind
    if kind not in PACK_DATA:
        raise UsageError(f"dataset '{runs[0].data.component.name}' does not pack (2D and image datasets only); "
                         "it runs unpacked")
    getattr(builts[0].dataset, "ensure_available", lambda: None)()  # a missing dataset stops before any file
    pack = Pack(runs, builts, gens)
    kernel_path = solo.choose_kernels(runs[0], builts[0])[0]  # one path for all: each member's solo choice
    dev, dtype = builts[0].device, pack.model.dtype
    iterations, batch_size = int(runs[0].train["iterations"]), int(runs[0].train["batch_size"])
    streams, rds, configs = [], [], []
    for r, b, out in zip(runs, builts, out_dirs):
        rd = RunDir(out)
        rd.create()
        rd.reset()
        rds.append(rd)
        streams.append(b.dataset.batches(batch_size, torch.Generator().manual_seed(r.seed)))
        config = {**r.record(), "device_used": str(b.device), "kernels_used": kernel_path}
        atomic_write_json(rd.config, config)
        configs.append(config)

    n = len(runs)
    sums: list[dict[str, Any]] = [{} for _ in range(n)]
    count, diverged_at = [0] * n, [None] * n
    active = list(range(n))
    t0 = time.perf_counter()
    image_every = [r.image_every or b.dataset.steps_per_epoch(batch_size) if kind == "image" else 0
                   for r, b in zip(runs, builts)]
    with kernels.use(kernel_path):
        for it in range(iterations):
            if not active:
                break
            drawn = {i: next(streams[i]) for i in active}  # an epoch's last batch may be smaller: same for all
            size = next(iter(drawn.values())).shape
            xs = torch.stack([drawn[i] if i in drawn else torch.zeros(size) for i in range(n)]).to(dev, dtype)
            losses = pack.step(xs, active, it)
            for i in list(active):
                for k, v in losses[i].items():
                    sums[i][k] = sums[i].get(k, 0.0) + v.detach()
                count[i] += 1
                bad = not all(math.isfinite(float(v)) for v in losses[i].values())
                if bad:
                    diverged_at[i] = it
                if (it + 1) % runs[i].log_every == 0 or it + 1 == iterations or bad:
                    record = {"iteration": it + 1, **{k: float(v) / count[i] for k, v in sums[i].items()},
                              "lr": pack.lr[i], "time_s": round(time.perf_counter() - t0, 3)}
                    rds[i].append_history(record)
                    sums[i], count[i] = {}, 0
                    if not bad and not all(math.isfinite(v) for v in record.values()):
                        diverged_at[i], bad = it, True
                if bad:
                    active.remove(i)
                elif image_every[i] and ((it + 1) % image_every[i] == 0 or it + 1 == iterations):
                    pack.progress_grid(i, xs[i], rds[i].path / "progress" / f"iter_{it + 1:07d}.png", it + 1)
    elapsed = time.perf_counter() - t0
    return _finish(runs, pack, rds, configs, diverged_at, iterations, elapsed)


def _finish(runs, pack: Pack, rds: list[RunDir], configs, diverged_at, iterations: int, elapsed: float):
    """Each member's checkpoint and ``metrics.json`` (written last, atomically, member by member); a
    finished member is evaluated as its solo run evaluates itself (:func:`introzoo.train.evaluate_run` on
    its own model: the same kernels, so the same values)."""
    results: list[dict[str, Any]] = []
    for i, run in enumerate(runs):
        at = diverged_at[i]
        done = at + 1 if at is not None else iterations
        result: dict[str, Any] = {"status": STATUS_DIVERGED if at is not None else STATUS_FINISHED,
                                  "iterations": done, "train_time_s": round(elapsed, 3),
                                  "it_per_s": round(done / elapsed, 2) if elapsed > 0 else None, "packed": pack.model.size}
        results.append(result)
        if at is not None:
            result.update(diverged_at=at, reason=f"non-finite loss at iteration {at}", metrics={})
            atomic_write_json(rds[i].metrics, result)
            continue
        built = pack.export(i, done)
        reports = {r.name or type(r).__name__: r.report(built.model) for r in built.objective.regularizers}
        if any(reports.values()):
            result["regularizers"] = reports
        torch.save({"model": built.model.state_dict(), "objective": built.objective.state_dict(),
                    "iterations": done, "config": configs[i]}, rds[i].checkpoint)
        ctx = EvalContext(built.model, built.dataset, built.device, run.seed)
        result.update(solo.evaluate_run(run, built, rds[i].path, ctx))
        atomic_write_json(rds[i].metrics, result)
    return results
