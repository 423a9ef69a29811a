"""Contract checks of the components around the model: backbones, datasets, metrics and executors
(see :mod:`introzoo.testing.checks` for what each checks)."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from .. import plugins
from ..errors import UsageError
from ..registry import Component
from .checks_base import (
    DEFAULT_SHAPES,
    _build_prior,
    _component,
    _declared,
    _expect,
    _finite,
    _load_dataset,
    _offline,
    _what,
    component_config,
    tiny_model,
)


# -- backbones ---------------------------------------------------------------------------------------


def _backbone_shapes(comp: Component) -> list[tuple[int, ...]] | None:
    shapes = _declared("data_shapes", comp.config, comp.factory)
    if shapes is None:
        one = _declared("data_shape", comp.config, comp.factory)
        shapes = [one] if one is not None else None
    return [tuple(s) for s in shapes] if shapes is not None else None


def _run_backbone(comp: Component, cfg: BaseModel, shape: tuple[int, ...], zdim: int, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    encoder, decoder = comp.build(cfg, data_shape=shape, zdim=zdim)
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0))
    z = torch.randn(batch, zdim, generator=torch.Generator().manual_seed(1))
    return encoder, decoder, x, z, encoder(x), decoder(z)


def _run_stages(encoder: nn.Module, decoder: nn.Module, shape: tuple[int, ...], zdim: int, batch: int, where: str) -> None:
    """A progressively grown backbone (``set_stage(level, alpha)`` and ``levels`` on both networks, as
    ``style``): at every level, blending in (``alpha`` 0.5) and blended, the encoder takes and the decoder
    produces ``2^(level+2)`` pixels; the gradients of every stage are accumulated (a parameter must take
    part in some stage); the networks are left at the full resolution."""
    if not all(hasattr(m, "set_stage") and hasattr(m, "levels") for m in (encoder, decoder)):
        return
    z = torch.randn(batch, zdim, generator=torch.Generator().manual_seed(2))
    for level in range(encoder.levels):
        for alpha in (0.5, 1.0) if level else (1.0,):
            side = 2 ** (level + 2)
            encoder.set_stage(level, alpha)
            decoder.set_stage(level, alpha)
            h = encoder(torch.rand(batch, shape[0], side, side, generator=torch.Generator().manual_seed(3)))
            y = decoder(z)
            _expect(
                tuple(h.shape) == (batch, 2 * zdim) and tuple(y.shape) == (batch, shape[0], side, side),
                f"{where}: at stage (level {level}, alpha {alpha}) the encoder gives {tuple(h.shape)} and the "
                f"decoder {tuple(y.shape)}, expected ({batch}, {2 * zdim}) and {(batch, shape[0], side, side)}",
            )
            (h.square().mean() + y.square().mean()).backward()
    encoder.set_stage(encoder.levels - 1)
    decoder.set_stage(decoder.levels - 1)


def check_backbone(name: str, options: dict[str, Any] | None = None, zdim: int = 3, batch: int = 4) -> None:
    """For each data shape the backbone declares (``data_shapes = ((C, H, W), ...)`` or ``data_shape`` on
    its config class or factory), else for the first of :data:`DEFAULT_SHAPES` it builds and runs for:
    encoder output ``(batch, 2*zdim)``, decoder output ``(batch, *data_shape)``, both finite; every
    parameter receives a gradient (a progressively grown backbone: at some stage, every stage's shapes
    checked); a state_dict loaded into a fresh build gives the same outputs."""
    comp = _component("backbones", name)
    cfg = component_config(comp, options)
    what = _what(comp)
    shapes = _backbone_shapes(comp)
    if shapes is None:
        errors = []
        for shape in DEFAULT_SHAPES:
            try:
                _run_backbone(comp, cfg, shape, zdim, batch)
            except Exception as exc:  # not a shape it is for: try the next
                errors.append(f"{shape}: {type(exc).__name__}: {exc}")
                continue
            shapes = [shape]
            break
        _expect(
            shapes,
            f"{what}: builds and runs for none of the data shapes {DEFAULT_SHAPES} "
            f"({'; '.join(errors)}); declare the shapes it is for with data_shapes on its config class",
        )
    for shape in shapes:
        where = f"{what} for data shape {shape}, zdim {zdim}"
        encoder, decoder, x, z, h, y = _run_backbone(comp, cfg, shape, zdim, batch)
        _expect(
            isinstance(encoder, nn.Module) and isinstance(decoder, nn.Module),
            f"{where}: the factory must return (encoder, decoder) torch.nn.Modules",
        )
        _expect(
            tuple(h.shape) == (batch, 2 * zdim),
            f"{where}: encoder output has shape {tuple(h.shape)}, expected ({batch}, {2 * zdim}) (mu, then logvar)",
        )
        _expect(
            tuple(y.shape) == (batch, *shape),
            f"{where}: decoder output has shape {tuple(y.shape)}, expected {(batch, *shape)}",
        )
        _expect(_finite(h) and _finite(y), f"{where}: outputs are not finite")
        (h.square().mean() + y.square().mean()).backward()
        _run_stages(encoder, decoder, shape, zdim, batch, where)
        unused = [
            f"{part}.{n}"
            for part, mod in (("encoder", encoder), ("decoder", decoder))
            for n, p in mod.named_parameters()
            if p.requires_grad and p.grad is None
        ]
        _expect(not unused, f"{where}: parameters that receive no gradient: {', '.join(unused)}")
        encoder.eval()
        decoder.eval()
        e2, d2, *_ = _run_backbone(comp, cfg, shape, zdim, batch, seed=1)
        e2.load_state_dict(encoder.state_dict())
        d2.load_state_dict(decoder.state_dict())
        e2.eval()
        d2.eval()
        with torch.no_grad():
            same = torch.allclose(encoder(x), e2(x)) and torch.allclose(decoder(z), d2(z))
        _expect(same, f"{where}: after loading the state_dict into a fresh build the outputs differ")


# -- datasets ----------------------------------------------------------------------------------------


def check_dataset(name: str, options: dict[str, Any] | None = None) -> None:
    """Built with downloads off (a boolean ``download`` option is set to false) and skipped, with the
    reason, when building it or drawing from it raises ``UsageError`` (data not available here).
    Otherwise: ``shape`` and ``kind`` declared; ``sample(n, generator)`` gives ``(n, *shape)`` finite
    floats, the same for the same generator seed and different for another; ``batches`` yields
    batches of that shape; the paper defaults for each registered objective name only options it has,
    with valid values; ``train_defaults`` only known training settings."""
    from ..config import TRAIN_DEFAULTS, RunConfig

    comp = _component("datasets", name)
    what = _what(comp)
    try:
        ds = _load_dataset(comp, options)
    except UsageError as exc:
        pytest.skip(f"dataset '{name}' is not available here: {exc}")
    shape = tuple(getattr(ds, "shape", ()))
    _expect(
        shape and all(isinstance(s, int) and s > 0 for s in shape),
        f"{what}: shape must be a tuple of positive ints, got {shape!r}",
    )
    _expect(isinstance(getattr(ds, "kind", None), str) and ds.kind, f"{what}: must declare its kind ('2d', 'image', ...)")
    mr = getattr(ds, "metric_range", None)
    _expect(mr is None or mr > 0, f"{what}: metric_range must be None or positive, got {mr!r}")

    def draw(seed: int, n: int = 16) -> torch.Tensor:
        return ds.sample(n, torch.Generator().manual_seed(seed))

    a = draw(0)
    _expect(
        isinstance(a, torch.Tensor) and tuple(a.shape) == (16, *shape),
        f"{what}: sample(16, generator) must be a tensor of shape {(16, *shape)}, got {getattr(a, 'shape', type(a))}",
    )
    _expect(a.is_floating_point() and _finite(a), f"{what}: samples must be finite floats")
    _expect(
        torch.equal(a, draw(0)),
        f"{what}: the same generator seed gives different samples (draw from the generator passed in)",
    )
    _expect(not torch.equal(a, draw(1)), f"{what}: different generator seeds give the same samples")
    b = next(iter(ds.batches(8, torch.Generator().manual_seed(0))))
    _expect(
        tuple(b.shape) == (8, *shape), f"{what}: batches(8, generator) yields shape {tuple(b.shape)}, expected {(8, *shape)}"
    )

    reg = plugins.registry()
    for obj in reg.names("objectives"):
        defaults = ds.defaults_for(obj)
        fields = reg.get("objectives", obj).config.model_fields
        stray = sorted(set(defaults) - set(fields))
        _expect(
            not stray,
            f"{what}: its defaults for objective '{obj}' name options it does not have: "
            f"{', '.join(stray)} (they would be ignored); options: {', '.join(fields)}",
        )
        plain = {k: v for k, v in defaults.items() if v is None or isinstance(v, (bool, int, float, str, list, tuple))}
        try:  # values resolved later (e.g. a count of epochs) are left out
            reg.get("objectives", obj).config.model_validate(plain)
        except ValidationError as exc:
            errs = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors() if e["type"] != "missing"]
            _expect(not errs, f"{what}: invalid defaults for objective '{obj}': {'; '.join(errs)}")
    train = dict(getattr(ds, "train_defaults", {}) or {})
    known = set(TRAIN_DEFAULTS) | set(RunConfig.model_fields)
    stray = sorted(set(train) - known)
    _expect(not stray, f"{what}: train_defaults has unknown settings {', '.join(stray)}; known: {', '.join(sorted(known))}")
    for key in ("iterations", "batch_size", "zdim"):
        if key in train:
            _expect(
                isinstance(train[key], int) and train[key] > 0, f"{what}: train_defaults['{key}'] must be a positive int"
            )


# -- metrics -----------------------------------------------------------------------------------------

#: the training of the model a metric is checked on after the untrained one: iterations of ``vae``,
#: batch size and learning rate
METRIC_TRAINING = {"iterations": 30, "batch": 64, "lr": 1e-2}


def check_metric(
    name: str, options: dict[str, Any] | None = None, data: str | None = None, prior: str | None = None
) -> None:
    """``directions`` maps names to ``min``/``max``; ``applies_to`` answers. Unless the metric declares
    ``heavy = True`` (on the metric, its config class or its factory): computed twice with the same seed
    on an untrained tiny model, on ``data`` or the first registered dataset available here (downloads
    off) that it applies to, with ``prior`` (default ``sg``, or the first registered prior for which it reports
    something), torch's global RNG in a different state each time: finite numbers, each with a
    direction, identical both times. Then the same on that model trained a few iterations
    (:data:`METRIC_TRAINING`, objective ``vae``): a metric whose values are reproducible only while the
    model has learnt nothing (all samples in one place, every count zero) fails here."""
    from ..metrics.base import EvalContext
    from ..objectives.base import TrainSettings

    comp = _component("metrics", name)
    cfg = component_config(comp, options)
    what = _what(comp)
    metric = comp.build(cfg)
    dirs = getattr(metric, "directions", None)
    _expect(
        isinstance(dirs, dict) and dirs and all(v in ("min", "max") for v in dirs.values()),
        f"{what}: directions must map each reported name to 'min' or 'max', got {dirs!r}",
    )
    for attr in ("applies_to", "compute"):
        _expect(callable(getattr(metric, attr, None)), f"{what}: has no method {attr}")
    if any(_declared("heavy", h) for h in (metric, comp.config, comp.factory)):
        pytest.skip(f"metric '{name}' declares heavy = True: compute is not run by the contract checks")

    reg = plugins.registry()
    candidates = [data] if data else reg.names("datasets")
    ds, unavailable = None, []
    for dname in candidates:
        dcomp = reg.get("datasets", dname)
        try:
            d = dcomp.build(component_config(dcomp, None, _offline(dcomp)))
            applies = metric.applies_to(d)
            _expect(isinstance(applies, bool), f"{what}: applies_to(dataset) must return a bool, got {applies!r}")
            if applies:
                d.sample(1, torch.Generator().manual_seed(0))  # loads it, if it is available
        except (UsageError, pytest.skip.Exception) as exc:
            unavailable.append(f"{dname}: {exc}")
            continue
        if applies:
            ds = d
            break
    if ds is None:
        pytest.skip(
            f"metric '{name}' applies to no dataset available here" + (f" ({'; '.join(unavailable)})" if unavailable else "")
        )

    calls = iter(range(10**6))

    def compute(prior_name: str) -> dict[str, Any]:
        model = tiny_model(_build_prior(prior_name), data_shape=tuple(ds.shape)).eval()
        torch.manual_seed(1_000 + next(calls))  # a new caller's RNG state each time: the metric seeds its own draws
        return comp.build(cfg).compute(EvalContext(model, ds, torch.device("cpu"), seed=0))

    priors = [prior] if prior else ["sg"] + [p for p in reg.names("priors") if p != "sg"]
    for prior_name in priors:
        try:
            values = compute(prior_name)
        except pytest.skip.Exception:
            continue
        if values:
            break
    where = f"{what} on dataset '{ds.name or data}' with prior '{prior_name}'"
    _expect(isinstance(values, dict), f"{where}: compute(ctx) must return a dict of name -> number")
    for key, value in values.items():
        _expect(key in dirs, f"{where}: reports '{key}' but directions has no entry for it ({', '.join(dirs)})")
        _expect(
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
            f"{where}: '{key}' = {value!r} is not a finite number",
        )
    hint = "draw random data from ctx.generator(name) and the model's draws inside with ctx.seeded(name)"
    again = compute(prior_name)
    _expect(again == values, f"{where}: the same seed gives different values ({values} vs {again}); {hint}")

    obj_comp = reg.get("objectives", "vae")
    model = tiny_model(_build_prior(prior_name), data_shape=tuple(ds.shape))
    t = METRIC_TRAINING
    obj = obj_comp.build(component_config(obj_comp), model=model, regularizers=[], train=TrainSettings(lr=t["lr"]))
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for it in range(t["iterations"]):
        obj.train_step(ds.sample(t["batch"], g).to(torch.get_default_dtype()), it)
    model.eval()

    def compute_trained() -> dict[str, Any]:
        torch.manual_seed(2_000 + next(calls))
        return comp.build(cfg).compute(EvalContext(copy.deepcopy(model), ds, torch.device("cpu"), seed=0))

    where = f"{where}, the model trained {t['iterations']} iterations ({obj_comp.name})"
    values = compute_trained()
    _expect(isinstance(values, dict), f"{where}: compute(ctx) must return a dict of name -> number")
    for key, value in values.items():
        _expect(key in dirs, f"{where}: reports '{key}' but directions has no entry for it ({', '.join(dirs)})")
        _expect(
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
            f"{where}: '{key}' = {value!r} is not a finite number",
        )
    again = compute_trained()
    _expect(again == values, f"{where}: the same seed gives different values ({values} vs {again}); {hint}")


# -- executors ---------------------------------------------------------------------------------------


def check_executor(name: str, options: dict[str, Any] | None = None) -> None:
    """Builds from its default options and has ``run(tasks, sweep_dir, on_done)``. (Running a sweep takes
    worker processes: introzoo's own sweep tests do that for the built-in executors.)"""
    comp = _component("executors", name)
    what = _what(comp)
    ex = comp.build(component_config(comp, options))
    run = getattr(ex, "run", None)
    _expect(callable(run), f"{what}: has no method run(tasks, sweep_dir, on_done)")
    try:
        inspect.signature(run).bind(None, None, None)
    except TypeError:
        raise AssertionError(f"{what}: run must accept (tasks, sweep_dir, on_done)") from None
