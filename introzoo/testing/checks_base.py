"""What the contract checks share: looking up and configuring a component, tiny models and data,
snapshots of parameters, and the registration check that every component gets (see
:mod:`introzoo.testing.checks`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
import torch
from pydantic import BaseModel
from torch import nn

from .. import plugins
from ..registry import SINGULAR, Component
from ..spec import make_config

#: data shapes tried, in order, for a backbone that declares none: the first it builds and runs for
DEFAULT_SHAPES: tuple[tuple[int, ...], ...] = ((2,), (3, 32, 32), (1, 28, 28), (1, 8, 8))
#: characters a component name must not contain (they have a meaning in spec strings and sweeps)
_SPEC_CHARS = re.compile(r"[\s,:=\[\]()|]")


def _expect(ok: Any, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _what(comp: Component) -> str:
    return f"{SINGULAR.get(comp.kind, comp.kind)} '{comp.name}' (plugin '{comp.plugin}')"


def _component(kind: str, name: str) -> Component:
    return plugins.registry().get(kind, name)


def _declared(name: str, *holders: Any) -> Any:
    """The first ``name`` attribute found on ``holders`` (a built object, a config class, a factory)."""
    for h in holders:
        value = getattr(h, name, None)
        if value is not None:
            return value
    return None


def component_config(
    comp: Component, options: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None
) -> BaseModel:
    """The component's config from its defaults < ``defaults`` < ``options``; skips the test when a
    required option is given by neither."""
    fields = comp.config.model_fields
    merged = {k: v for k, v in (defaults or {}).items() if k in fields}
    merged.update(options or {})
    missing = [f for f, info in fields.items() if info.is_required() and f not in merged]
    if missing:
        pytest.skip(f"{_what(comp)} has required options ({', '.join(missing)}): check it with options={{...}}")
    return make_config(comp, merged)


def _offline(comp: Component) -> dict[str, Any]:
    """Defaults that keep a component offline in the checks: a boolean ``download`` option is false."""
    field = comp.config.model_fields.get("download")
    return {"download": False} if field is not None and field.annotation is bool else {}


def _load_dataset(comp: Component, options: dict[str, Any] | None = None):
    """Build a dataset with downloads off and draw one sample (datasets may load lazily); the
    ``UsageError`` of data that is not available here propagates."""
    ds = comp.build(component_config(comp, options, _offline(comp)))
    ds.sample(1, torch.Generator().manual_seed(0))
    return ds


def tiny_model(prior: nn.Module, data_shape: tuple[int, ...] = (2,), zdim: int = 2, seed: int = 0):
    """A VAE with a small MLP encoder/decoder (16 units; it flattens any data shape) around ``prior``."""
    from ..backbones.mlp import MLPConfig, build
    from ..model import VAE

    torch.manual_seed(seed)
    encoder, decoder = build(MLPConfig(hidden=16, layers=1), tuple(data_shape), zdim)
    return VAE(encoder, decoder, prior, tuple(data_shape), zdim)


def _build_prior(name: str, zdim: int = 2, seed: int = 0):
    comp = _component("priors", name)
    torch.manual_seed(seed)
    return comp.build(component_config(comp), zdim=zdim)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"param {n}": p.detach().clone() for n, p in module.named_parameters()}
    state.update({f"buffer {n}": b.detach().clone() for n, b in module.named_buffers()})
    return state


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    now = _snapshot(module)
    return {k for k, v in before.items() if k in now and (now[k].shape != v.shape or not torch.equal(now[k], v))}


def _check_losses(losses: Any, where: str) -> None:
    _expect(isinstance(losses, dict) and losses, f"{where}: must return a non-empty dict of named losses, got {losses!r}")
    for key, value in losses.items():
        t = torch.as_tensor(value)
        _expect(t.numel() == 1, f"{where}: loss '{key}' is not a scalar (shape {tuple(t.shape)})")
        _expect(not t.requires_grad, f"{where}: loss '{key}' still carries a graph; return it detached")
        _expect(math.isfinite(float(t)), f"{where}: loss '{key}' is {float(t)} on tiny random data")


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


# -- every component ---------------------------------------------------------------------------------


def check_registration(comp: Component) -> None:
    """Closed config (``extra="forbid"``), a description per option, ``primary`` naming an option, a doc
    line, a name usable in spec strings and sweeps, and (when nothing is required) a default config
    that ``config.json`` recreates exactly."""
    what, cls = _what(comp), comp.config
    _expect(
        not _SPEC_CHARS.search(comp.base_name) and comp.base_name,
        f"{what}: the name must not contain spaces or any of , : = [ ] ( ) | (spec-string syntax)",
    )
    _expect(
        cls.model_config.get("extra") == "forbid",
        f"{what}: its config must refuse unknown options: model_config = ConfigDict(extra=\"forbid\")",
    )
    undocumented = [f for f, info in cls.model_fields.items() if not info.description]
    _expect(
        not undocumented, f"{what}: options without a description (Field(..., description=...)): {', '.join(undocumented)}"
    )
    primary = getattr(cls, "primary", None)
    _expect(
        primary is None or primary in cls.model_fields,
        f"{what}: primary = {primary!r} is not one of its options ({', '.join(cls.model_fields) or 'none'})",
    )
    _expect(comp.doc, f"{what}: registered without a doc line (the fourth argument of register)")
    if not any(info.is_required() for info in cls.model_fields.values()):
        cfg = cls()
        again = cls(**json.loads(json.dumps(cfg.model_dump(mode="json"))))
        _expect(
            again == cfg, f"{what}: its default config does not survive the config.json round trip ({cfg!r} -> {again!r})"
        )
