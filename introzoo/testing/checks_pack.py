"""The contract check "packed == one by one" for components that declare ``packable = True``.

:func:`compare_pack` trains runs as one pack (:func:`introzoo.packing.loop.train_pack`) and each alone
(:func:`introzoo.training.loop.train`) and raises ``AssertionError`` unless, member by member, the two run
directories agree: status and divergence iteration, ``config.json`` hash, every ``history.jsonl`` line,
the keys of ``metrics.json`` and the metrics, the run-lifecycle hook calls (events, iterations, records
and the end result's status and keys), and for finished runs every tensor of the checkpoint (model parameters, the prior's
included, and every optimiser's Adam state and learning rate, schedules, regularizer state).

:func:`check_packs` is the check itself, run by :func:`introzoo.testing.check_component` for every
component whose factory declares ``packable = True``: three members that differ in seed, learning rate,
the objective's float options and its VAE warm-up (``num_vae``, when it has one) train a few iterations
on ``8gaussians`` (an image backbone on ``digits``): in float64 with a tiny ``mlp``, where any difference
over ``tolerance`` (relative, 1e-9) is a failure saying where it is, and in float32 with the dataset's
default network and batch size, where any difference at all is.
"""

from __future__ import annotations

import json
import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import pytest
import torch

from .. import plugins
from ..config import RunConfig, resolve
from ..data.images import ImageDataset
from ..errors import UsageError
from .checks_base import _component, _expect, _what

#: the kinds :func:`check_packs` knows how to put in a pack
PACK_KINDS = ("objectives", "priors", "regularizers", "backbones")
#: the pack check's runs: tiny, a warm-up boundary inside, a history line every iteration
PACK_RUN = dict(
    data="8gaussians", backbone="mlp,hidden=8,layers=1", iterations=8, batch_size=16, log_every=1, metrics=[], device="cpu"
)
#: the float32 bar: the dataset's default network and batch (``mlp`` 3x256, batch 512 on the 2D sets)
PACK_RUN_DEFAULT = dict(data="8gaussians", iterations=6, log_every=1, metrics=[], device="cpu")


def _close(a: Any, b: Any, tol: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _same_tensors(a: Any, b: Any, tol: float, where: str) -> None:
    """Every tensor and number in two nested checkpoint structures agrees (absolute ``tol``)."""
    if isinstance(a, dict):
        _expect(
            isinstance(b, dict) and a.keys() == b.keys(),
            f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b)) if isinstance(b, dict) else b!r}",
        )
        for k in a:
            _same_tensors(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        _expect(isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ")
        for j, (x, y) in enumerate(zip(a, b)):
            _same_tensors(x, y, tol, f"{where}[{j}]")
    elif isinstance(a, torch.Tensor):
        _expect(isinstance(b, torch.Tensor) and a.shape == b.shape, f"{where}: shapes differ")
        if a.is_floating_point():
            err = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
            _expect(err <= tol, f"{where}: packed and alone differ by {err:.3g} (tolerance {tol})")
        else:
            _expect(torch.equal(a, b), f"{where}: packed {a.tolist()} != alone {b.tolist()}")
    elif isinstance(a, float) and isinstance(b, float):
        _expect(_close(a, b, tol), f"{where}: packed {a} != alone {b}")
    elif not isinstance(a, dict):
        _expect(a == b, f"{where}: packed {a!r} != alone {b!r}")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


class _HookLog:
    """Records the run-lifecycle hook calls (:class:`introzoo.plugins.RunHooks`) of every run trained
    inside :meth:`recording`, by run directory: ``(event, iteration, record or result)``."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[str, Any, Any]]] = {}

    @contextmanager
    def recording(self) -> Iterator["_HookLog"]:
        from ..plugins import RunHooks

        log = self

        class Recorded(RunHooks):
            def start(self, out_dir: Any) -> None:
                self._key = str(Path(out_dir).resolve())
                log.calls[self._key] = [("start", None, None)]
                super().start(out_dir)

            def log(self, iteration: int, record: dict[str, Any]) -> None:
                log.calls[self._key].append(("log", iteration, dict(record)))
                super().log(iteration, record)

            def end(self, result: dict[str, Any]) -> None:
                log.calls[self._key].append(("end", None, dict(result)))
                super().end(result)

        with mock.patch("introzoo.training.lifecycle.RunHooks", Recorded):
            yield self

    def of(self, path: Path) -> list[tuple[str, Any, Any]]:
        return self.calls.get(str(Path(path).resolve()), [])


def _same_hook_calls(packed: list, alone: list, tol: float, m: str) -> None:
    """A packed member's hook calls are its solo run's: the same events, iterations and records (time
    aside), and an end result with the same status and keys (a pack's ``packed`` aside)."""
    _expect(
        [(e, it) for e, it, _ in packed] == [(e, it) for e, it, _ in alone],
        f"{m}: hook calls {[(e, it) for e, it, _ in packed]} packed, {[(e, it) for e, it, _ in alone]} alone",
    )
    for (event, it, a), (_, _, b) in zip(packed, alone):
        if event == "log":
            _expect(
                a.keys() == b.keys() and all(k == "time_s" or _close(a[k], b[k], tol) for k in a),
                f"{m}: introzoo_run_log at iteration {it}: {a} packed, {b} alone",
            )
        elif event == "end":
            _expect(
                a["status"] == b["status"] and set(a) - {"packed"} == set(b),
                f"{m}: introzoo_run_end: {a['status']} with keys {sorted(a)} packed, {b['status']} with {sorted(b)} alone",
            )


def compare_pack(runs: list, out: str | Path, tol: float = 1e-10) -> list[str]:
    """Train ``runs`` packed and alone under ``out`` (``p<i>``, ``s<i>``); ``AssertionError`` at the first
    difference. Returns the members' statuses (``finished``/``diverged``)."""
    from ..packing.loop import train_pack
    from ..training.loop import train

    out = Path(out)
    hooks = _HookLog()
    with hooks.recording():
        packed = train_pack(runs, [out / f"p{i}" for i in range(len(runs))])
        refs = [train(run, out / f"s{i}") for i, run in enumerate(runs)]
    statuses = []
    for i, (run, res, ref) in enumerate(zip(runs, packed, refs)):
        statuses.append(ref["status"])
        m = f"member {i}"
        _expect(
            res["status"] == ref["status"]
            and res["iterations"] == ref["iterations"]
            and res.get("diverged_at") == ref.get("diverged_at"),
            f"{m}: packed {res['status']} after {res['iterations']} iterations, alone {ref['status']} after "
            f"{ref['iterations']}",
        )
        pc, sc = (json.loads((out / f"{d}{i}" / "config.json").read_text()) for d in "ps")
        _expect(pc["hash"] == sc["hash"] == run.hash(), f"{m}: config.json hashes differ")
        ph, sh = _lines(out / f"p{i}" / "history.jsonl"), _lines(out / f"s{i}" / "history.jsonl")
        _expect(len(ph) == len(sh), f"{m}: {len(ph)} history lines packed, {len(sh)} alone")
        for a, b in zip(ph, sh):
            _expect(a.keys() == b.keys(), f"{m}, iteration {a.get('iteration')}: history keys {sorted(a)} != {sorted(b)}")
            for k in a:
                _expect(
                    k == "time_s" or _close(a[k], b[k], tol),
                    f"{m}, iteration {a['iteration']}: '{k}' is {a[k]!r} packed and {b[k]!r} alone",
                )
        _expect(res["metrics"].keys() == ref["metrics"].keys(), f"{m}: metric names differ")
        _expect(set(res) - {"packed"} == set(ref), f"{m}: metrics.json keys {sorted(res)} packed, {sorted(ref)} alone")
        for k in ref["metrics"]:
            _expect(
                _close(res["metrics"][k], ref["metrics"][k], tol),
                f"{m}: metric '{k}' is {res['metrics'][k]} packed and {ref['metrics'][k]} alone",
            )
        _expect(
            res.get("regularizers") == ref.get("regularizers") or _reports_close(res, ref, tol),
            f"{m}: regularizer reports differ: {res.get('regularizers')} != {ref.get('regularizers')}",
        )
        if ref["status"] == "finished":
            pk, sk = (torch.load(out / f"{d}{i}" / "checkpoint.pt", weights_only=True) for d in "ps")
            _same_tensors(pk["model"], sk["model"], tol, f"{m}: model")
            _same_tensors(pk["objective"], sk["objective"], tol, f"{m}: objective")
        _same_hook_calls(hooks.of(out / f"p{i}"), hooks.of(out / f"s{i}"), tol, m)
        _expect(len(hooks.of(out / f"s{i}")) >= 3, f"{m}: the run hooks were not called")
    return statuses


def _reports_close(res: dict, ref: dict, tol: float) -> bool:
    try:
        _same_tensors(res.get("regularizers"), ref.get("regularizers"), tol, "regularizers")
    except AssertionError:
        return False
    return True


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block: the check's many small runs are many times faster so (a
    float32 pack check took 6-8 s on one thread where it took minutes with a thread per core)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def float64() -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


#: images scaled in the default dtype (float64 here; the loaders give float32)
_to_float = staticmethod(lambda x: x.to(torch.get_default_dtype()).div_(255.0))


def _member_options(comp, resolved, given: dict[str, Any], j: int) -> dict[str, Any]:
    """Member j's objective options: the resolved ones, float options not given scaled by ``1 + 0.1 j``
    where still valid, and a warm-up of ``3 j`` iterations when there is ``num_vae``."""
    out = resolved.model_dump(mode="json")
    for k, v in resolved:
        if isinstance(v, float) and k not in given and v != 0:
            try:
                comp.config(**{**out, k: v * (1 + 0.1 * j)})
                out[k] = v * (1 + 0.1 * j)
            except ValueError:
                pass
    if "num_vae" in comp.config.model_fields and "num_vae" not in given:
        out["num_vae"] = 3 * j
    return out


def _spec(name: str, options: dict[str, Any]) -> str:
    return ",".join(
        [name] + [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items() if v is not None]
    )


def _candidates(kind: str, name: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Run settings to try, in order, for a component of ``kind``: the first that builds is checked."""
    spec = _spec(name, options)
    if kind == "objectives":
        return [dict(objective=spec, prior="sg"), dict(objective=spec, prior="mog:3")]
    if kind == "priors":
        return [dict(objective="soft-prior", prior=spec), dict(objective="soft", prior=spec)]
    if kind == "regularizers":
        return [
            dict(objective="soft", prior="sg", regularizers=[spec]),
            dict(objective="soft-prior", prior="mog:3", regularizers=[spec]),
        ]
    if kind == "backbones":  # a 2D backbone, or an image one (8x8 digits)
        return [
            dict(objective="soft", prior="sg", backbone=spec),
            dict(objective="soft", prior="sg", backbone=spec, data="digits"),
        ]
    return []


def _member_runs(kind: str, name: str, options: dict[str, Any], settings: dict[str, Any], base=PACK_RUN) -> list:
    reg = plugins.registry()
    given = options if kind == "objectives" else {}
    obj_spec = _spec(name, options) if kind == "objectives" else settings["objective"]
    first = resolve(RunConfig(**{**base, **settings, "objective": obj_spec}), reg)
    runs = []
    for j, lr in enumerate((2e-3, 1e-3, 5e-3)):
        opts = _member_options(first.objective.component, first.objective.config, given, j)
        cfg = {**base, **settings, "objective": _spec(first.objective.component.name, opts), "seed": j, "lr": lr}
        runs.append(resolve(RunConfig(**cfg), reg))
    return runs


def check_packs(kind: str, name: str, options: dict[str, Any] | None = None, tolerance: float = 1e-9) -> None:
    """Packed == one by one for a component declaring ``packable = True`` (skipped otherwise): three
    members trained as one pack and each alone agree in every history line, metric and checkpoint
    tensor, twice: in float64 on a tiny network to ``tolerance``, and in float32 on the dataset's
    default network and batch size **bit for bit** (a pack computes each member with its solo kernels,
    docs/packing.md; any other arithmetic shows up here as a difference). Runs on one torch thread."""
    comp = _component(kind, name)
    if not getattr(comp.factory, "packable", False):
        pytest.skip(f"{_what(comp)} does not declare packable = True")
    options = dict(options or {})
    no_plots = lambda *args, **kwargs: []  # noqa: E731 - figures are not compared; they cost most of the time
    with tempfile.TemporaryDirectory() as tmp, mock.patch("introzoo.training.lifecycle.save_plots", no_plots), one_thread():
        for n, settings in enumerate(_candidates(kind, name, options)):
            with float64(), mock.patch.object(ImageDataset, "to_float", _to_float):
                try:
                    runs = _member_runs(kind, name, options, settings)
                    from ..training.loop import build

                    build(runs[0])  # objective, prior and regularizers accept each other
                except UsageError:
                    continue
                _compare(comp, settings, runs, Path(tmp) / f"{n}-float64", tolerance)
            _compare(
                comp,
                settings,
                _member_runs(kind, name, options, settings, PACK_RUN_DEFAULT),
                Path(tmp) / f"{n}-float32",
                0.0,
            )
            return
    pytest.skip(f"{_what(comp)}: no tiny run of the pack check accepts it")


def _compare(comp, settings: dict[str, Any], runs: list, out: Path, tolerance: float) -> None:
    what = "float64, tiny network" if tolerance else "float32, default network: bit for bit"
    try:
        compare_pack(runs, out, tolerance)
    except AssertionError as exc:
        raise AssertionError(
            f"{_what(comp)} declares packable = True but a pack differs from the runs alone ({what}; {settings}): {exc}"
        ) from None
    except UsageError as exc:
        raise AssertionError(f"{_what(comp)} declares packable = True but train_pack refuses it: {exc}") from None
