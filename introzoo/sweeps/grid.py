"""Sweeps: grid expansion, the run store and resumption.

Sweep syntax for a component axis (``--objective``, ``--prior``, ``--data``, ``--backbone``):

- a comma list of components: ``vae,soft,intro`` is three objectives;
- ``key=value`` items attach to the component before them: ``vae,soft,intro,m=2`` gives ``intro,m=2``;
- ``|`` separates alternatives of one option (or of the ``:value``), crossed with each other:
  ``soft,beta_kl=0.1|0.3,beta_neg=0.5|1`` is four configurations; ``mog:10|100`` two priors.
- brackets keep commas together: ``resnet,channels=[64,128]|[32,64]``.

In a sweep file, ``objective``, ``prior`` and ``metrics`` are a list for every dataset or a table of
dataset name -> list (``[sweep.objective]`` with ``rings = ["soft,beta_kl=0.2"]``): each dataset is
crossed with its own alternatives only. An ``objective`` table names every dataset of the sweep; a
dataset a ``prior`` table leaves out takes ``sg``, one a ``metrics`` table leaves out every metric that
applies. ``constraints`` test the objective's options and the components' names (``objective``,
``prior``, ``regularizer``, ``data``), which pair components that go together:
``"(objective == 'soft-prior') == (regularizer == 'clip-logvar')"``.

The store: every run lives in ``SWEEP_DIR/runs/<hash>/`` where the hash covers its resolved
configuration (seed included), so rerunning the same sweep finds finished runs (their ``metrics.json``)
and skips them; unfinished ones are redone from scratch. ``sweep.json`` records the grid.

Packs (``pack`` key, ``--pack``): compatible pending runs train together as one batched model
(:mod:`introzoo.sweeps.packs`, :mod:`introzoo.packing.loop`); each keeps its own run directory, so the store, the
leaderboard and resumption do not change.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ..config import RunConfig, resolve
from ..errors import UsageError, first_error
from ..training.limits import check_fits
from ..options import MAX_SEED, TrainOverrides, train_option_names
from ..readers import ReadError, read_toml
from ..training.run_dir import RunDir, atomic_write_json
from ..spec import split_top_level
from .packs import pack_key
from .run import STATUS_BUSY, _execute, _log, execute, log_event  # noqa: F401 (part of this module's API)

#: the largest pack size a sweep accepts
PACK_LIMIT = 4096

AXES = ("objective", "prior", "backbone", "data")
#: the most runs one sweep expands to (a typo such as --seeds 1000000 is refused, not expanded)
MAX_RUNS = 100_000


def _alternatives(text: str) -> list[str]:
    try:
        out = [a.strip() for a in split_top_level(text, "|")]
    except ValueError:
        raise UsageError(f"malformed alternatives '{text}': unbalanced brackets") from None
    if any(not a for a in out):
        raise UsageError(f"empty alternative in '{text}'")
    return out


def expand_axis(text: str, what: str = "component") -> list[str]:
    """Sweep syntax -> spec strings, e.g. ``"vae,soft,beta_kl=0.1|0.3"`` ->
    ``["vae", "soft,beta_kl=0.1", "soft,beta_kl=0.3"]``."""
    try:
        tokens = [t.strip() for t in split_top_level(text)]
    except ValueError:
        raise UsageError(f"malformed {what} list '{text}': unbalanced brackets") from None
    groups: list[list[str]] = []
    for tok in tokens:
        if not tok:
            raise UsageError(f"malformed {what} list '{text}': empty item")
        if "=" in tok:
            if not groups:
                raise UsageError(f"malformed {what} list '{text}': option '{tok}' before any {what} name")
            groups[-1].append(tok)
        else:
            groups.append([tok])
    specs: list[str] = []
    for head, *opts in groups:
        name, _, primary = head.partition(":")
        heads = [f"{name}:{p}" for p in _alternatives(primary)] if primary else [name]
        choices = [heads]
        for opt in opts:
            key, _, value = opt.partition("=")
            choices.append([f"{key.strip()}={v}" for v in _alternatives(value)])
        specs.extend(",".join(combo) for combo in itertools.product(*choices))
    return specs


class SweepSpec(TrainOverrides):
    """A grid: component axes (sweep syntax), seeds, shared training options (those of
    :class:`introzoo.options.TrainOptions`; each is a sweep-file key)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = "sweep"
    objective: list[str] | dict[str, list[str]] = Field(
        default_factory=lambda: ["soft"],
        description="objectives (sweep syntax) of every dataset, or dataset name -> objectives, from a "
        "[sweep.objective] table (every dataset of the sweep must be named)",
    )
    prior: list[str] | dict[str, list[str]] = Field(
        default_factory=lambda: ["sg"],
        description="priors (sweep syntax) of every dataset, or dataset name -> priors, from a [sweep.prior] "
        "table (a dataset not named: sg)",
    )
    backbone: list[str] = Field(default_factory=list, description="empty: each dataset's default backbone")
    data: list[str] = Field(default_factory=lambda: ["8gaussians"])
    regularizers: list[str] = Field(default_factory=list)
    regularizer: list[str] = Field(
        default_factory=list,
        description="regularizer alternatives, sweep syntax: each run adds one of them to regularizers ('none': no regularizer)",
    )
    seeds: int = Field(1, gt=0, le=MAX_RUNS, description="seeds 0 .. seeds-1 (from seed_start)")
    seed_start: int = Field(0, ge=0, le=MAX_SEED)
    metrics: list[str] | dict[str, list[str]] | None = Field(
        None,
        description="metric specs of every run, or dataset name -> metric specs (a dataset not named: every metric that applies)",
    )
    select: str | None = Field(
        None,
        description="metric for the papers' protocol: pick the best per (objective, data) with one seed, rerun it with all seeds",
    )
    executor: str = "local"
    device: Literal["auto", "cpu", "cuda"] = Field(
        "cpu", description="where every run trains (auto: CUDA when available); not part of a run's hash"
    )
    kernels: Literal["auto", "aten", "onednn"] = Field(
        "auto", description="CPU kernels of the Linear products (introzoo.training.kernels); not part of a run's hash"
    )
    pack: Union[int, Literal["auto"], None] = Field(
        None,
        description="train compatible runs in packs of at most this many (introzoo.packing.loop); 'auto': as many as fit "
        "in the GPU's free memory; default: auto on a GPU, 1 (no packing) on the CPU",
    )
    executor_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="executor name -> options, from the file's [executor.NAME] tables"
    )
    constraints: list[str] = Field(
        default_factory=list,
        description="conditions on objective options, e.g. 'beta_neg <= 5 * beta_kl' (skipped where an option is absent), and on the components' names (objective, prior, regularizer, data), e.g. \"objective != 'vae' or prior == 'sg'\"",
    )
    published: dict[str, Any] = Field(
        default_factory=dict,
        description="published numbers: data -> row -> metric -> [mean, std]; a row is 'objective[ + regularizer...][ @ prior]'",
    )
    published_source: str = ""
    published_n: int | None = Field(None, gt=0, description="seeds behind each published mean ± std (the verdict's n)")
    references: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="further reference columns, from [references.NAME] tables: name -> {source, n, DATA -> row -> metric -> [mean, std]}",
    )

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_size_or_auto(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if v is None or v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= PACK_LIMIT):
            return v
        raise ValueError(f"give a pack size from 1 to {PACK_LIMIT} or 'auto'")

    @field_validator("metrics", "objective", "prior", mode="before")
    @classmethod
    def _list_or_table(cls, v: Any, info: ValidationInfo) -> Any:
        def specs(x: Any) -> bool:
            return isinstance(x, list) and all(isinstance(s, str) for s in x)

        if info.field_name != "metrics" and isinstance(v, dict):  # a table's dataset may give one string
            v = {k: [x] if isinstance(x, str) else x for k, x in v.items()}
        if (
            (v is None and info.field_name == "metrics")
            or specs(v)
            or (isinstance(v, dict) and all(specs(x) for x in v.values()))
        ):
            return v
        if info.field_name == "metrics":
            raise PydanticCustomError(
                "metrics",
                "must be a list of metric specs for every run (metrics = [\"kl\", \"jsd\"]) or a "
                "table of dataset name -> list ([sweep.metrics] with 8gaussians = [\"kl\"])",
            )
        axis = info.field_name
        example = "soft,beta_kl=0.3" if axis == "objective" else "mog:64"
        raise PydanticCustomError(
            axis,
            f"must be a list of {axis} specs for every dataset ({axis} = [\"{example}\"]) or a table of "
            f"dataset name -> list ([sweep.{axis}] with 8gaussians = [\"{example}\"])",
        )

    @field_validator("seed_start")
    @classmethod
    def _seeds_below_2_32(cls, start: int, info: ValidationInfo) -> int:
        last = start + info.data.get("seeds", 1) - 1
        if last > MAX_SEED:
            raise ValueError(f"the last seed {last} is past {MAX_SEED} (seeds are below 2^32)")
        return start

    def seed_list(self) -> list[int]:
        return list(range(self.seed_start, self.seed_start + self.seeds))

    def metrics_for(self, data: str) -> list[str] | None:
        """The metric specs of a run on ``data`` (a data spec; a ``metrics`` table is keyed by name)."""
        if not isinstance(self.metrics, dict):
            return self.metrics
        return self.metrics.get(data_name(data))

    def axis_for(self, axis: str, data: str) -> list[str]:
        """The ``objective`` or ``prior`` alternatives (sweep syntax) of the runs on ``data`` (a data spec;
        a table is keyed by dataset name): the list, or the table's entry; a dataset a ``prior`` table
        does not name takes ``sg``, one an ``objective`` table does not name is an error."""
        value = getattr(self, axis)
        if not isinstance(value, dict):
            return value
        name = data_name(data)
        if name in value:
            return value[name]
        if axis == "prior":
            return ["sg"]
        raise UsageError(
            f"the sweep's [sweep.{axis}] table has no entry for dataset '{name}' (it names "
            f"{', '.join(value) or 'none'}); add one, or give --{axis}"
        )

    def check_tables(self) -> None:
        """Every per-dataset table (``objective``, ``prior``, ``metrics``) names datasets of the sweep only,
        and an ``objective`` table names each of them; :class:`UsageError` otherwise."""
        datasets = [d for text in self.data for d in expand_axis(text, "data")]
        names = list(dict.fromkeys(data_name(d) for d in datasets))
        for axis in ("objective", "prior", "metrics"):
            table = getattr(self, axis)
            if not isinstance(table, dict):
                continue
            stray = [k for k in table if k not in names]
            if stray:
                what = "metrics name" if axis == "metrics" else f"[sweep.{axis}] table names"
                raise UsageError(
                    f"the sweep's {what} dataset '{stray[0]}', which is not in its data; valid: {', '.join(sorted(names))}"
                )
        for d in datasets:
            self.axis_for("objective", d)

    def restricted_to(self, data: list[str]) -> dict[str, Any]:
        """The per-dataset tables (``objective``, ``prior``, ``metrics``) cut to the datasets of ``data``
        (a command line's ``--data`` over a sweep file): field -> table, for the tables there are."""
        names = {data_name(d) for text in data for d in expand_axis(text, "data")}
        return {
            axis: {k: v for k, v in table.items() if k in names}
            for axis in ("objective", "prior", "metrics")
            if isinstance(table := getattr(self, axis), dict)
        }


def data_name(spec: str) -> str:
    """The dataset name of a data spec: ``"fashion-mnist,subset=100"`` -> ``"fashion-mnist"``."""
    return split_top_level(spec)[0].partition(":")[0].strip()


#: the component name of any spec string: ``"mog:64,learn_weights=true"`` -> ``"mog"``
spec_name = data_name


_TOML_KINDS = {str: "string", int: "number", float: "number", bool: "boolean", list: "list"}


def load_sweep_file(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"sweep file '{path}' not found")
    raw = read_toml(path, "sweep file")
    for table in ("sweep", "published", "references"):
        if table in raw and not isinstance(raw[table], dict):
            raise ReadError(
                "sweep file",
                path,
                f"has a {_TOML_KINDS.get(type(raw[table]), 'value')} for '{table}' where a table ([{table}]) is expected",
            )
    body = dict(raw.get("sweep", raw))
    for table in ("published", "references"):
        if table in raw:
            body[table] = raw[table]
    tables = raw.get("executor")
    if isinstance(tables, dict):  # [executor.submitit] partition = "cpu", ...
        if isinstance(body.get("executor"), dict):  # a file without a [sweep] table
            del body["executor"]
        bad = [k for k, v in tables.items() if not isinstance(v, dict)]
        if bad:
            raise UsageError(
                f"sweep file '{path}': [executor] holds one table per executor, e.g. [executor.submitit]; found '{bad[0]}'"
            )
        body["executor_options"] = tables
    for axis in AXES:
        if isinstance(body.get(axis), str):
            body[axis] = [body[axis]]
    try:
        spec = SweepSpec(**body)
    except Exception as exc:  # pydantic
        raise UsageError(f"sweep file '{path}': {first_error(exc)}") from None
    try:
        spec.check_tables()
    except UsageError as exc:
        raise UsageError(f"sweep file '{path}': {exc}") from None
    return spec


def satisfies(constraints: list[str], options: dict[str, Any]) -> bool:
    """Evaluate each constraint with the objective's options as variables (arithmetic and comparisons
    only); a constraint naming an option the objective does not have does not apply. :func:`expand` adds
    the run's component names (:func:`component_names`) to the options; an objective option of the same
    name shadows one."""
    for text in constraints:
        try:
            code = compile(text, "<constraint>", "eval")
        except SyntaxError:
            raise UsageError(f"constraint '{text}' is not a valid expression") from None
        if any(name not in options for name in code.co_names):
            continue
        if not eval(code, {"__builtins__": {}}, dict(options)):
            return False
    return True


def component_names(objective: str, prior: str, regularizer: str, data: str) -> dict[str, str]:
    """The variables a constraint can test besides the objective's options: each axis's component name
    (``objective``, ``prior``, ``data``) and ``regularizer``, the name of the run's alternative of the
    ``regularizer`` axis (``"none"`` without one), e.g. ``"objective != 'vae' or prior == 'sg'"``."""
    return {
        "objective": spec_name(objective),
        "prior": spec_name(prior),
        "data": spec_name(data),
        "regularizer": spec_name(regularizer),
    }


@dataclass
class Task:
    """One run of the grid: where it lives and what it is, resolved once (in the sweep's process)."""

    run_dir: Path
    config: dict[str, Any]  # ResolvedRun.record(): what the worker trains and writes as config.json
    hash: str  # config["hash"], the run directory's name
    key: str  # configuration id without the seed
    pack_key: str | None = None  # runs with the same key can train in one pack (introzoo.sweeps.packs); None: alone
    reports: tuple[str, ...] = ()  # the metric values the run reports (its metrics' directions)


def expand(spec: SweepSpec, registry, seeds: list[int] | None = None, sweep_dir: Path | None = None) -> list[Task]:
    """All runs of the grid, validated and resolved (once per configuration; each seed is a copy), in
    a stable order."""

    def alternatives(texts: list[str], axis: str) -> list[str]:
        return [s for text in texts for s in expand_axis(text, axis)]

    datasets = alternatives(spec.data, "data")
    spec.check_tables()
    # per dataset, the objective and prior alternatives: a list crosses every dataset, a table its own
    per_data = {a: {d: alternatives(spec.axis_for(a, d), a) for d in datasets} for a in ("objective", "prior")}
    backbones = alternatives(spec.backbone, "backbone") or [None]  # None: the dataset's default
    train = {k: getattr(spec, k) for k in train_option_names()}
    regs = [s for text in spec.regularizer for s in expand_axis(text, "regularizer")] or ["none"]
    size = (len(seeds) if seeds is not None else spec.seeds) * len(backbones) * len(regs)
    size *= sum(len(per_data["objective"][d]) * len(per_data["prior"][d]) for d in datasets)
    if size > MAX_RUNS:
        raise UsageError(f"the grid has {size} runs; introzoo refuses sweeps of more than {MAX_RUNS} runs")
    tasks, seen, fits_checked = [], set(), set()
    grid = (
        (d, o, p, b, r)
        for d in datasets
        for o, p, b, r in itertools.product(per_data["objective"][d], per_data["prior"][d], backbones, regs)
    )
    for data, objective, prior, backbone, reg in grid:
        names = component_names(objective, prior, reg, data)
        if not satisfies([c for c in spec.constraints if _names_only(c, names)], names):
            continue  # e.g. a prior one objective does not take: refused before it is resolved
        cfg = RunConfig(
            objective=objective,
            prior=prior,
            backbone=backbone,
            data=data,
            metrics=spec.metrics_for(data),
            device=spec.device,
            kernels=spec.kernels,
            regularizers=list(spec.regularizers) + ([] if reg == "none" else [reg]),
            **train,
        )
        resolved = resolve(cfg, registry)
        if not satisfies(spec.constraints, {**names, **resolved.objective.config.model_dump()}):
            continue
        if resolved.dataset is not None:  # a model too large for memory is refused before anything trains
            fit = (
                json.dumps([resolved.backbone.to_json(), resolved.prior.to_json()], sort_keys=True, default=str),
                tuple(resolved.dataset.shape),
                int(resolved.train["zdim"]),
                int(resolved.train["batch_size"]),
            )
            if fit not in fits_checked:  # the same networks and batch fit once for every objective option
                check_fits(resolved, resolved.dataset.shape, int(resolved.train["zdim"]))
                fits_checked.add(fit)
        key = pack_key(resolved)
        reports = tuple(name for metric in resolved.built_metrics or () for name in metric.directions)
        for seed in seeds if seeds is not None else spec.seed_list():
            record = replace(resolved, seed=seed, dataset=None, built_metrics=None, _record=None).record()
            if record["hash"] in seen:  # e.g. an option given explicitly at its default value
                continue
            seen.add(record["hash"])
            tasks.append(
                Task(
                    (sweep_dir or Path(".")) / "runs" / record["hash"],
                    record,
                    record["hash"],
                    record["config_key"],
                    key,
                    reports,
                )
            )
    return tasks


def _names_only(constraint: str, names: dict[str, str]) -> bool:
    """Whether a constraint tests component names only (it can be decided before a run is resolved)."""
    try:
        code = compile(constraint, "<constraint>", "eval")
    except SyntaxError:
        raise UsageError(f"constraint '{constraint}' is not a valid expression") from None
    return all(name in names for name in code.co_names)


def pending(tasks: list[Task]) -> tuple[list[Task], list[Task]]:
    """(finished, to do): a run is finished when its metrics.json says finished or diverged."""
    done, todo = [], []
    for t in tasks:
        (done if RunDir(t.run_dir).status() in ("finished", "diverged") else todo).append(t)
    return done, todo


def write_manifest(sweep_dir: Path, spec: SweepSpec, tasks: list[Task], extra: dict[str, Any] | None = None) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"spec": spec.model_dump(mode="json"), "runs": [t.hash for t in tasks], **(extra or {})}
    atomic_write_json(sweep_dir / "sweep.json", manifest)
