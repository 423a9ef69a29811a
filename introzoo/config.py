"""RunConfig: what the user asked for, and :func:`resolve`, which turns it into every option spelled out.

Precedence for a component's options: its config's defaults < the dataset's paper defaults for it
< the user's spec string. For training settings: introzoo's defaults < the dataset's protocol < its
protocol for each chosen regularizer (``regularizer_defaults``) < explicit options (docs/conventions.md,
"Where defaults come from"). The resolved form is what ``config.json`` records and what a run's hash
covers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .errors import UsageError, first_line
from .data.base import Epochs
from .objectives.defaults import objective_defaults
from .options import HASH_NEUTRAL, MAX_SEED, TRAIN_DEFAULTS, TrainOverrides, train_option_names
from .registry import Component, Registry
from .spec import parse_spec, resolve as resolve_spec

__all__ = ["TRAIN_DEFAULTS", "RunConfig", "ResolvedRun", "resolve", "from_json"]


class RunConfig(TrainOverrides):
    """One run as the user specified it (spec strings; ``None`` = the dataset's or introzoo's default).
    The training options (iterations, lr, ...) come from :class:`introzoo.options.TrainOptions`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    objective: str = "soft"
    prior: str = "sg"
    regularizers: list[str] = Field(default_factory=list)
    backbone: str | None = None
    data: str = "8gaussians"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    kernels: Literal["auto", "aten", "onednn"] = "auto"
    metrics: list[str] | None = None
    log_every: int = Field(100, gt=0)
    image_every: int | None = Field(None, gt=0)


@dataclass
class Choice:
    """A component with its validated config."""

    component: Component
    config: BaseModel

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.component.name,
            "options": self.config.model_dump(mode="json"),
            "plugin": self.component.plugin,
            "version": self.component.version,
        }


@dataclass
class ResolvedRun:
    """Every option of a run spelled out. :func:`resolve` also hands over what it built on the way (the
    dataset and the metrics, never serialised) so that training does not build them again."""

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
    image_every: int | None = None
    kernels: str = "auto"
    dataset: Any = field(default=None, repr=False, compare=False)
    built_metrics: list[Any] | None = field(default=None, repr=False, compare=False)
    _record: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def default_dir(self) -> Path:
        """``runs/<data>-<objective>-s<seed>-<hash>``: where ``introzoo run`` and ``introzoo.train`` write
        without ``--out`` / ``out``."""
        names = f"{self.data.component.name}-{self.objective.component.name}".replace(":", "_")  # plugin:name
        return Path("runs") / f"{names}-s{self.seed}-{self.record()['hash']}"

    def record(self) -> dict[str, Any]:
        """What ``config.json`` holds: the version, :meth:`hash` (which names the run directory), the
        configuration key and :meth:`to_json`. Computed once; a run rebuilt by :func:`from_json` keeps
        the record it was rebuilt from, so a worker writes what the sweep computed."""
        if self._record is None:
            self._record = {
                "introzoo": __version__,
                "hash": self.hash(),
                "config_key": self.hash(with_seed=False),
                **self.to_json(),
            }
        return self._record

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
            "kernels": self.kernels,
            "log_every": self.log_every,
            "image_every": self.image_every,
        }

    def hash(self, with_seed: bool = True) -> str:
        """Stable id of what determines the results (not the device, the kernel path, logging or plugin
        versions).
        ``with_seed=False`` gives the configuration's id shared by all its seeds."""
        d = self.to_json()
        for key in ("device", "kernels", "log_every", "image_every") + (() if with_seed else ("seed",)):
            d.pop(key, None)
        d["train"] = {k: v for k, v in d["train"].items() if k not in HASH_NEUTRAL or v != HASH_NEUTRAL[k]}
        choices = {
            "objective": self.objective,
            "prior": self.prior,
            "backbone": self.backbone,
            "data": self.data,
            "regularizers": self.regularizers,
            "metrics": self.metrics,
        }
        for k, v in list(d.items()):
            if isinstance(v, dict) and "plugin" in v:
                d[k] = {"name": v["name"], "options": _hashed_options(choices[k], v["options"])}
            elif isinstance(v, list):
                d[k] = [{"name": x["name"], "options": _hashed_options(c, x["options"])} for c, x in zip(choices[k], v)]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _hashed_options(choice: Choice, options: dict[str, Any]) -> dict[str, Any]:
    """A component's options as the hash sees them: an option added after runs were recorded, at the
    value that reproduces those runs (the config class's ``hash_neutral``), is left out, so that the
    earlier runs keep their hash."""
    neutral = getattr(type(choice.config), "hash_neutral", {})
    return {k: v for k, v in options.items() if k not in neutral or v != neutral[k]}


def _default_metric(comp: Component, dataset: Any):
    """The metric built with its defaults when it applies to the dataset, else ``None``."""
    try:
        config = comp.config()
        metric = comp.build(config)
        return (config, metric) if metric.applies_to(dataset) else None
    except Exception:  # a metric that needs options is only run when asked for
        return None


def build_metric(comp: Component, config: BaseModel, dataset: Any):
    """The metric, or a :class:`UsageError` when it does not apply to the dataset (with the metric's
    ``why_not(dataset)``)."""
    metric = comp.build(config)
    if not metric.applies_to(dataset):
        why = getattr(metric, "why_not", None)
        raise UsageError(
            f"metric '{comp.name}' does not apply to dataset '{dataset.name}'" + (f": {why(dataset)}" if why else "")
        )
    return metric


def _in_iterations(defaults: dict[str, Any], steps_per_epoch: int) -> dict[str, Any]:
    return {k: v.iterations(steps_per_epoch) if isinstance(v, Epochs) else v for k, v in defaults.items()}


def resolve_train(cfg: RunConfig, dataset: Any, registry: Registry | None = None) -> dict[str, Any]:
    """Training settings: introzoo's defaults < the dataset's protocol < the dataset's protocol for each
    chosen regularizer, in the order given (``dataset.regularizer_defaults[name]``, e.g. seed 004 §3 for
    the dpVAE regularizers) < explicit options. A dataset that trains in epochs gets
    ``iterations = epochs * ceil(n_train / batch_size)`` unless ``--iterations`` is given (or a
    regularizer's protocol sets ``epochs`` to ``None``); ``epochs`` stays in the record."""
    train = dict(TRAIN_DEFAULTS)
    train.update(getattr(dataset, "train_defaults", {}) or {})
    per_reg = getattr(dataset, "regularizer_defaults", {}) or {}
    for text in cfg.regularizers:
        train.update(per_reg.get(parse_spec(text, "regularizers", registry).name, {}))
    for key in train_option_names():
        value = getattr(cfg, key)
        if value is not None:
            train[key] = value
    steps = dataset.steps_per_epoch(int(train["batch_size"]))
    if train.get("epochs") is not None:
        if cfg.iterations is None:
            train["iterations"] = int(train["epochs"]) * steps
        else:
            train["epochs"] = round(train["iterations"] / steps, 3)
    _check_merged(train, dataset, cfg)
    from .training.progressive import check_train  # --resolution: the stages' options and iterations

    check_train(train, dataset, iterations_given=cfg.iterations is not None or cfg.epochs is not None)
    return train


def _check_merged(train: dict[str, Any], dataset: Any, cfg: RunConfig) -> None:
    """The merged training options pass :class:`~introzoo.options.TrainOptions`' checks, whichever source
    gave them (a dataset's protocol or a regularizer's, from a plugin, is checked here: the user's own
    options were checked when given). The values are left as merged, so run hashes do not change."""
    from pydantic import ValidationError

    from .options import TrainOptions

    checked = {k: (None if k == "epochs" and not isinstance(v, int) else v) for k, v in train.items()}
    try:
        TrainOptions.model_validate(checked)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if getattr(cfg, key, None) is not None and getattr(cfg, key) == train.get(key):  # the user's own value
            raise UsageError(f"--{key.replace('_', '-')}: {msg}") from None
        source = f"dataset '{getattr(dataset, 'name', cfg.data)}' protocol"
        if cfg.regularizers:
            source += " (or its protocol for the chosen regularizers)"
        raise UsageError(
            f"training option '{key}' = {train.get(key, '?')!r} from the {source}: {msg}; "
            f"the valid options: {', '.join(TrainOptions.model_fields)}"
        ) from None


def check_regularizers(choices: list[Choice], batch_size: int, per_process: str = "") -> None:
    """Refuse, before anything is trained or written, regularizers that cannot train together or on
    this batch: more than one that replaces the KL term (an objective takes one), or a batch smaller
    than one needs (:attr:`~introzoo.regularizers.base.Regularizer.min_batch`). ``per_process``: how
    the batch came about, for the message (a data-parallel run's shard)."""
    regs = []
    for c in choices:
        try:
            regs.append((c.component.name, c.component.build(c.config)))
        except UsageError:
            raise
        except Exception:  # noqa: BLE001 - not checked here: the run's own build reports
            continue
    replacing = [name for name, reg in regs if getattr(reg, "replaces_kl", False)]
    if len(replacing) > 1:
        raise UsageError(f"regularizers {', '.join(replacing)} each replace the KL term; a run takes one of them")
    for name, reg in regs:
        need = int(getattr(reg, "min_batch", 1))
        if batch_size < need:
            raise UsageError(
                f"regularizer '{name}' needs a batch of at least {need} samples (it estimates from the "
                f"batch); {per_process or 'the batch size is'} {batch_size}"
            )


def resolve(cfg: RunConfig, registry: Registry) -> ResolvedRun:
    data_comp, data_cfg = resolve_spec(registry, "datasets", cfg.data)
    dataset = data_comp.build(data_cfg)
    train = resolve_train(cfg, dataset, registry)
    steps = dataset.steps_per_epoch(int(train["batch_size"]))
    obj_spec = parse_spec(cfg.objective, "objectives", registry)
    obj_comp, obj_cfg = resolve_spec(
        registry,
        "objectives",
        obj_spec,
        defaults=_in_iterations(objective_defaults(dataset, registry, obj_spec.name), steps),
    )
    backbone_spec = parse_spec(cfg.backbone or getattr(dataset, "default_backbone", "mlp"), "backbones", registry)
    backbone = Choice(
        *resolve_spec(
            registry,
            "backbones",
            backbone_spec,
            defaults=(getattr(dataset, "backbone_defaults", {}) or {}).get(backbone_spec.name),
        )
    )

    prior_spec = parse_spec(cfg.prior, "priors", registry)
    prior = Choice(
        *resolve_spec(
            registry, "priors", prior_spec, defaults=(getattr(dataset, "prior_defaults", {}) or {}).get(prior_spec.name)
        )
    )

    if cfg.metrics is None:  # every metric that applies and can be built with its defaults
        found = [(c, d) for c in registry.all("metrics") if (d := _default_metric(c, dataset)) is not None]
        metrics = [Choice(c, config) for c, (config, _) in found]
        built_metrics = [metric for _, (_, metric) in found]
    else:
        metrics = [Choice(*resolve_spec(registry, "metrics", m)) for m in cfg.metrics]
        built_metrics = [build_metric(m.component, m.config, dataset) for m in metrics]
    regularizers = [Choice(*resolve_spec(registry, "regularizers", r)) for r in cfg.regularizers]
    check_regularizers(regularizers, int(train["batch_size"]))
    return ResolvedRun(
        objective=Choice(obj_comp, obj_cfg),
        prior=prior,
        regularizers=regularizers,
        backbone=backbone,
        data=Choice(data_comp, data_cfg),
        metrics=metrics,
        train=train,
        seed=cfg.seed,
        device=cfg.device,
        kernels=cfg.kernels,
        log_every=cfg.log_every,
        image_every=cfg.image_every,
        dataset=dataset,
        built_metrics=built_metrics,
    )


def from_json(d: dict[str, Any], registry: Registry) -> ResolvedRun:
    """Rebuild a :class:`ResolvedRun` from a run's ``config.json`` or :meth:`ResolvedRun.record` (names
    and resolved options; nothing is resolved again). A record's hash is kept, not recomputed."""

    def choice(kind: str, entry: dict[str, Any]) -> Choice:
        comp = registry.get(kind, entry["name"])
        plugin = entry.get("plugin")
        if plugin and comp.plugin != plugin:  # recorded bare by a plugin whose name another took since
            comp = registry.find(kind, f"{plugin}:{entry['name']}") or comp
        try:
            return Choice(comp, comp.config(**entry["options"]))
        except Exception as exc:  # the component changed since the run was made
            raise UsageError(
                f"{kind[:-1]} '{entry['name']}' no longer accepts the run's options: {first_line(exc)}"
            ) from None

    return ResolvedRun(
        objective=choice("objectives", d["objective"]),
        prior=choice("priors", d["prior"]),
        regularizers=[choice("regularizers", r) for r in d["regularizers"]],
        backbone=choice("backbones", d["backbone"]),
        data=choice("datasets", d["data"]),
        metrics=[choice("metrics", m) for m in d["metrics"]],
        train=dict(d["train"]),
        seed=int(d["seed"]),
        device=d.get("device", "auto"),
        kernels=d.get("kernels", "auto"),
        log_every=int(d.get("log_every", 100)),
        image_every=d.get("image_every"),
        _record=({k: v for k, v in d.items() if k not in ("device_used", "kernels_used")} if "hash" in d else None),
    )
