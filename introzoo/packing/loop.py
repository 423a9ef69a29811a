"""Packed training: M runs of one configuration family trained at once, each as if alone.

:func:`train_pack` takes runs that share objective, prior kind, backbone shape and dataset (they may
differ in seed, the objective's scalar options, ``num_vae``, ``lr`` and its schedule) and writes, for
each member, the run directory :func:`introzoo.training.loop.train` would write: the same ``config.json``
(hash), ``history.jsonl``, a ``checkpoint.pt`` that :func:`introzoo.training.loop.load` reads, and
``metrics.json``. Member i's losses, parameters and metrics are those of its solo run to float
tolerance (float64: 1e-10; see docs/packing.md for float32).

Per iteration, the active members are split into those in their VAE warm-up and the others; each part
runs the objective's own ``step`` on a :class:`~introzoo.packing.model.PackView` of its members. A member whose
losses are non-finite ends there as ``diverged`` (recorded as its solo run would record it) and leaves
the pack; the others go on.

Components pack when their factory declares ``packable = True`` (objectives, priors, regularizers and the
backbone's ``build``); anything else raises :class:`~introzoo.errors.UsageError`.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..training import kernels
from ..training import loop as solo
from ..config import ResolvedRun
from ..errors import UsageError
from ..objectives.members import MemberOption
from .model import MaskedAdam, MembersOptimizer, PackedVAE
from .members import MembersAdam, MemberRegularizer
from ..training.lifecycle import RunRecorder
from ..training.perf import tune_allocator
from ..figures.pictures import save_image_progress

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
                raise UsageError(
                    f"{kind} '{comp.component.name}' does not pack; it runs unpacked "
                    "(introzoo list shows which components pack)"
                )
        for reg in r.regularizers:
            if not packable(reg.component):
                raise UsageError(
                    f"regularizer '{reg.component.name}' does not pack; it runs unpacked "
                    "(introzoo list shows which components pack)"
                )
        if [(g.component.name, g.config) for g in r.regularizers] != [(g.component.name, g.config) for g in r0.regularizers]:
            raise UsageError("runs of a pack share their regularizers and their options")
        if r.train.get("resolution") is not None:
            raise UsageError("progressive growing (--resolution) does not pack; it runs unpacked")
        if r.train.get("precision", "fp32") != "fp32":
            raise UsageError(f"precision '{r.train['precision']}' does not pack (fp32 only); it runs unpacked")
        if r.train.get("conditional"):
            raise UsageError("--conditional does not pack; it runs unpacked")
        if r.train.get("rec_loss", "mse") != "mse":
            raise UsageError("--rec-loss perceptual does not pack; it runs unpacked")
        if r.data.component.name != r0.data.component.name or r.data.config != r0.data.config:
            raise UsageError("runs of a pack share their dataset and its options")
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
    :mod:`introzoo.packing.members`."""

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
        self._bound: dict[bool, tuple[tuple, Any]] = {}  # phase -> (members, bound objective)

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
        """The objective's own step code, bound to a view of ``members`` (all in, or all past, warm-up):
        built once per set of members and phase, and reused while that set trains."""
        key = (tuple(members), warm)
        cached = self._bound.get(warm)
        if cached is not None and cached[0] == key:
            return cached[1]
        obj = self._bind_objective(members, warm)
        self._bound[warm] = (key, obj)
        return obj

    def _bind_objective(self, members: list[int], warm: bool):
        view = self.model.view(members)
        regs = [
            MemberRegularizer(view, [self.builts[i].objective.regularizers[r] for i in members])
            for r in range(len(self.builts[members[0]].objective.regularizers))
        ]
        groups, optimizers = self._bind(members)
        obj = self.cls.bound(_member_config(self.configs, members), view, groups, optimizers, regs)

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
                out[i] = {k: v.detach().reshape(len(members))[j] for k, v in losses.items()}
        for i in active:  # the MultiStepLR schedule, stepped once per iteration
            hits = self.runs[i].train["lr_milestones"].count(it + 1)
            if hits:
                self.lr[i] = self.lr[i] * self.runs[i].train["lr_gamma"] ** hits
                for o in self.optimizers.values():
                    o.lr[i] = self.lr[i]
                for o in self.builts[i].objective.optimizers.get("prior", SimpleNamespace(param_groups=[])).param_groups:
                    o["lr"] = self.lr[i]
        return out

    def progress_grid(self, i: int, x: torch.Tensor, path: Path, iteration: int, keep_rng: bool = False) -> None:
        """Member i's image progress grid (:func:`introzoo.figures.pictures.save_image_progress`, as its solo run
        writes it): drawn by member i's solo model, given the pack's current weights, in member i's
        random stream (the grid's prior samples advance it, as alone; ``keep_rng``: they do not)."""
        built = self.builts[i]
        self.model.unstack(i, built.model)
        kept = self.model.generators[i].get_state() if keep_rng else None
        with self.model.rng(i):
            save_image_progress(built, x, path, self.runs[i], iteration)
        if kept is not None:
            self.model.generators[i].set_state(kept)
        built.model.prior.attach(self.model.members[i])  # back on the pack's member model

    def export(self, i: int, done: int) -> solo.Built:
        """Member i as its solo :class:`~introzoo.training.loop.Built`: weights, Adam states, schedules."""
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


def train_pack(
    runs: list[ResolvedRun], out_dirs: list[str | Path], device: torch.device | None = None
) -> list[dict[str, Any]]:
    """Train ``runs`` as one pack; returns each member's ``metrics.json`` content. The members share one
    dataset object (one image split in memory); each member's run directory, history, divergence check,
    hooks, progress grids and final record are those of its solo run: one
    :class:`~introzoo.training.lifecycle.RunRecorder` per member, as :func:`introzoo.training.loop.train` uses one."""
    check_packable(runs)
    tune_allocator()  # as the solo trainer: freed activation buffers are reused (introzoo.training.perf)
    if len(out_dirs) != len(runs):
        raise UsageError("train_pack needs one output directory per run")
    shared = runs[0].dataset if runs[0].dataset is not None else runs[0].data.component.build(runs[0].data.config)
    builts, gens = [], []
    for r in runs:  # one dataset per pack: the members share its configuration (check_packable)
        builts.append(solo.build(r, device, dataset=shared))
        g = torch.Generator()
        g.set_state(torch.get_rng_state())  # the global stream the solo run draws its noise from
        gens.append(g)
    if shared.kind not in PACK_DATA:
        raise UsageError(
            f"dataset '{runs[0].data.component.name}' does not pack (2D and image datasets only); it runs unpacked"
        )
    shared.ensure_available()  # a missing dataset stops before any file
    pack = Pack(runs, builts, gens)
    kernel_path = solo.choose_kernels(runs[0], builts[0])[0]  # one path for all: each member's solo choice
    dev, dtype = builts[0].device, pack.model.dtype
    recs, streams = [], []
    for i, (r, b, out) in enumerate(zip(runs, builts, out_dirs)):
        config = {**r.record(), "device_used": str(b.device), "kernels_used": kernel_path}
        rec = RunRecorder(
            r,
            b,
            out,
            config,
            lr=lambda i=i: pack.lr[i],
            grid=lambda x, path, it, keep, i=i: pack.progress_grid(i, x, path, it, keep),
        )
        streams.append(rec.begin(torch.Generator().manual_seed(r.seed)))
        recs.append(rec)

    n = len(runs)
    active = list(range(n))
    t0 = time.perf_counter()
    with kernels.use(kernel_path):
        for it in range(recs[0].iterations):
            if not active:
                break
            drawn = {i: next(streams[i]) for i in active}  # an epoch's last batch may be smaller: same for all
            size = next(iter(drawn.values())).shape
            xs = torch.stack([drawn[i] if i in drawn else torch.zeros(size) for i in range(n)]).to(dev, dtype)
            losses = pack.step(xs, active, it)
            for i in list(active):
                if recs[i].after_step(it, losses[i], xs[i]):
                    active.remove(i)
    elapsed = time.perf_counter() - t0
    # each member's checkpoint, evaluation (on its own solo model: the same kernels, so the same values)
    # and metrics.json, written last, member by member
    return [rec.finish(elapsed, None if rec.stopped else pack.export(i, rec.done), packed=n) for i, rec in enumerate(recs)]
