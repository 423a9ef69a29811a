"""RunConfig: what the user asked for, and :func:`resolve`, which turns it into every option spelled out.

Precedence for a component's options: its config's defaults < the dataset's paper defaults for it
(SPEC §8) < the user's spec string. For training settings: introzoo's defaults < the dataset's protocol
< explicit options. The resolved form is what ``config.json`` records and what a run's hash covers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import UsageError
from .registry import Component, Registry
from .spec import parse_spec, resolve as resolve_spec

TRAIN_DEFAULTS: dict[str, Any] = {
    "iterations": 30_000,
    "batch_size": 512,
    "lr": 2e-4,
    "lr_milestones": [],
    "lr_gamma": 0.1,
    "zdim": 2,
}


class RunConfig(BaseModel):
    """One run as the user specified it (spec strings; ``None`` = the dataset's or introzoo's default)."""

    model_config = ConfigDict(extra="forbid")

    objective: str = "soft"
    prior: str = "sg"
    regularizers: list[str] = Field(default_factory=list)
    backbone: str = "mlp"
    data: str = "8gaussians"
    iterations: int | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    lr_milestones: list[int] | None = None
    lr_gamma: float | None = Field(None, gt=0)
    zdim: int | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    metrics: list[str] | None = None
    log_every: int = Field(100, gt=0)


@dataclass
class Choice:
    """A component with its validated config."""

    component: Component
    config: BaseModel

    def to_json(self) -> dict[str, Any]:
        return {"name": self.component.name, "options": self.config.model_dump(mode="json"),
                "plugin": self.component.plugin, "version": self.component.version}


@dataclass
class ResolvedRun:
    objective: Choice
    prior: Choice
    regularizers: list[Choice]
    backbone: Choice
    data: Choice
    metrics: list[Choice]
    train: dict[str, Any]
    seed: int
    device: str
    log_every: int

    def to_json(self) -> dict[str, Any]:
        return {
            "objective": self.objective.to_json(),
            "prior": self.prior.to_json(),
            "regularizers": [r.to_json() for r in self.regularizers],
            "backbone": self.backbone.to_json(),
            "data": self.data.to_json(),
            "metrics": [m.to_json() for m in self.metrics],
            "train": self.train,
            "seed": self.seed,
            "device": self.device,
            "log_every": self.log_every,
        }

    def hash(self, with_seed: bool = True) -> str:
        """Stable id of what determines the results (not the device, logging or plugin versions).
        ``with_seed=False`` gives the configuration's id shared by all its seeds."""
        d = self.to_json()
        for key in ("device", "log_every") + (() if with_seed else ("seed",)):
            d.pop(key)
        for k, v in list(d.items()):
            if isinstance(v, dict) and "plugin" in v:
                d[k] = {"name": v["name"], "options": v["options"]}
            elif isinstance(v, list):
                d[k] = [{"name": x["name"], "options": x["options"]} for x in v]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _applies_by_default(comp: Component, dataset: Any) -> bool:
    try:
        return bool(comp.build(comp.config()).applies_to(dataset))
    except Exception:  # a metric that needs options is only run when asked for
        return False


def resolve(cfg: RunConfig, registry: Registry) -> ResolvedRun:
    data_comp, data_cfg = resolve_spec(registry, "datasets", cfg.data)
    dataset = data_comp.build(data_cfg)
    obj_spec = parse_spec(cfg.objective, "objectives")
    obj_comp, obj_cfg = resolve_spec(registry, "objectives", obj_spec,
                                     defaults=dataset.defaults_for(obj_spec.name))
    train = dict(TRAIN_DEFAULTS)
    train.update(getattr(dataset, "train_defaults", {}) or {})
    for key in TRAIN_DEFAULTS:
        value = getattr(cfg, key)
        if value is not None:
            train[key] = value
    if train["iterations"] <= 0:
        raise UsageError("--iterations must be a positive number")

    metric_names = cfg.metrics
    if metric_names is None:  # every metric that applies and can be built with its defaults
        metric_names = [c.name for c in registry.all("metrics") if _applies_by_default(c, dataset)]
    metrics = [Choice(*resolve_spec(registry, "metrics", m)) for m in metric_names]
    for m in metrics:
        if not m.component.build(m.config).applies_to(dataset):
            raise UsageError(f"metric '{m.component.name}' does not apply to dataset '{data_comp.name}' "
                             f"(a {dataset.kind} dataset)")
    return ResolvedRun(
        objective=Choice(obj_comp, obj_cfg),
        prior=Choice(*resolve_spec(registry, "priors", cfg.prior)),
        regularizers=[Choice(*resolve_spec(registry, "regularizers", r)) for r in cfg.regularizers],
        backbone=Choice(*resolve_spec(registry, "backbones", cfg.backbone)),
        data=Choice(data_comp, data_cfg),
        metrics=metrics,
        train=train,
        seed=cfg.seed,
        device=cfg.device,
        log_every=cfg.log_every,
    )
