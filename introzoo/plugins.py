"""The plugin manager: built-in components first, then the ``introzoo`` entry-point group.

- Built-ins register through the same hooks as third-party plugins.
- A plugin is registered all or nothing. An installed plugin that fails (its import raises, a hook
  raises, it registers one name twice, a hook name is misspelled) is reported in one line with its
  name and error and skipped; the rest of introzoo keeps working.
- A plugin's component whose name is taken already (by a built-in, or by a plugin loaded before it)
  is not a failure: it is registered as ``plugin:name`` (:mod:`introzoo.registry`), the plugin's
  other components as usual, and :attr:`PluginState.clashes` holds one warning line per such plugin
  naming every clash (the command line prints it; for plugins registered by tests it is also a
  :class:`PluginClashWarning`).
- Built-ins and plugins registered by tests (``extra_plugins``) are strict: the failures above raise
  :class:`~introzoo.errors.RegistryError`, so that a plugin's own tests fail loudly; a built-in whose
  name another built-in has raises too.
- ``INTROZOO_DISABLE_PLUGINS=name1,name2`` skips those entry points; ``=all`` (or ``*``) skips every
  third-party plugin (``introzoo --no-plugins`` sets it for one command and its sweep workers).
- :class:`RunHooks` calls the run-lifecycle hooks for the trainer; a failing one is reported, never fatal.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Iterator

import pluggy

from . import __version__, hookspecs
from .errors import RegistryError, first_line, unknown
from .hookspecs import HOOKS, KINDS, RUN_HOOKS
from .registry import Component, Registry

ENTRY_POINT_GROUP = "introzoo"
BUILTIN_PLUGIN = "introzoo"
DISABLE_ENV = "INTROZOO_DISABLE_PLUGINS"

#: modules holding the built-in hook implementations
BUILTIN_MODULES = (
    "introzoo.objectives",
    "introzoo.priors",
    "introzoo.regularizers",
    "introzoo.backbones",
    "introzoo.data",
    "introzoo.metrics",
    "introzoo.extractors",
    "introzoo.sweeps.executors",
    "introzoo.loggers.tensorboard",
)


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    builtin: bool
    registers: dict[str, list[str]] = field(default_factory=dict)
    package: str | None = None  # the distribution that installed it (entry-point plugins)


@dataclass
class PluginState:
    manager: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]
    failures: list[tuple[str, str]]  # (plugin name, one-line error) for plugins that could not be loaded
    disabled: list[str] = field(default_factory=list)  # installed plugins skipped by INTROZOO_DISABLE_PLUGINS
    #: (plugin name, one warning line) for plugins with components registered as ``plugin:name``
    clashes: list[tuple[str, str]] = field(default_factory=list)


class PluginClashWarning(UserWarning):
    """A plugin registered by a test has components whose names were taken: they are ``plugin:name``."""


def clash_message(plugin: str, clashed: list[Component], registry: Registry) -> str:
    """One line naming every component of ``plugin`` registered as ``plugin:name`` because the name was
    taken, with the plugin that has it."""
    from .registry import SINGULAR

    parts = []
    for c in clashed:
        owner = registry.get(c.kind, c.base_name).plugin
        parts.append(f"{SINGULAR[c.kind]} '{c.base_name}' (taken by {owner})")
    names = ", ".join(f"{plugin}:{c.base_name}" for c in clashed)
    return (
        f"plugin '{plugin}' registers names that are taken: {', '.join(parts)}; its own are selected as "
        f"{names} (its other components load as usual)"
    )


def _disabled() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def _unknown_hooks(pm: pluggy.PluginManager) -> dict[str, str]:
    """plugin name -> error, for hook implementations that match no hook specification."""
    bad: dict[str, str] = {}
    for hook_name, caller in vars(pm.hook).items():
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not getattr(impl, "optionalhook", False):
                bad.setdefault(impl.plugin_name, unknown("hook", hook_name, HOOKS))
    return bad


def build(extra_plugins: list[tuple[str, Any]] | None = None, load_entry_points: bool = True) -> PluginState:
    """Create a plugin manager and a filled registry.

    ``extra_plugins``: ``(name, plugin_object)`` pairs registered after the built-ins and installed
    plugins (:func:`introzoo.testing.register_plugin` uses this to register a plugin for one test).
    """
    pm = pluggy.PluginManager("introzoo")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}  # in registration order
    strict: set[str] = set()
    failures: list[tuple[str, str]] = []
    skipped: list[str] = []
    clashes: list[tuple[str, str]] = []

    def fail(name: str, error: str) -> None:
        if name in strict:
            raise RegistryError(f"plugin '{name}': {error}")
        failures.append((name, error))
        infos.pop(name, None)
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)

    for modname in BUILTIN_MODULES:
        pm.register(import_module(modname), name=modname)
        infos[modname] = PluginInfo(BUILTIN_PLUGIN, __version__, modname, True)
        strict.add(modname)

    disabled = _disabled()
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if {"all", "*"} & disabled or ep.name in disabled:
                skipped.append(ep.name)
                continue
            dist = ep.dist
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin must not take introzoo down
                failures.append((ep.name, first_line(exc, with_type=True)))
                continue
            infos[ep.name] = PluginInfo(
                ep.name,
                dist.version if dist is not None else "unknown",
                ep.value,
                False,
                package=dist.metadata["Name"] if dist is not None else None,
            )

    for name, obj in extra_plugins or []:
        strict.add(name)
        try:
            pm.register(obj, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise RegistryError(f"plugin '{name}': {first_line(exc, with_type=True)}") from None
        infos[name] = PluginInfo(name, str(getattr(obj, "__version__", "0")), getattr(obj, "__name__", name), False)

    for name, error in _unknown_hooks(pm).items():
        fail(name, error)

    registry = Registry()
    for name in list(infos):
        info = infos[name]
        staged: list[Component] = []
        try:
            for kind in KINDS:
                for impl in getattr(pm.hook, f"introzoo_register_{kind}").get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=registry.register_callable(kind, info.name, info.version, staged))
            staged = registry.add_all(staged, qualify_clashes=not info.builtin)
        except RegistryError as exc:
            fail(name, str(exc))
            continue
        except Exception as exc:
            if name in strict:
                raise
            fail(name, first_line(exc, with_type=True))
            continue
        for kind in KINDS:
            names = sorted(c.name for c in staged if c.kind == kind)
            if names:
                info.registers.setdefault(kind, []).extend(names)
        clashed = [c for c in staged if c.qualified]
        if clashed:
            clashes.append((info.name, clash_message(info.name, clashed, registry)))
            if name in strict:  # a plugin's own tests: pytest shows it among the warnings
                warnings.warn(PluginClashWarning(clashes[-1][1]), stacklevel=2)

    merged: dict[str, PluginInfo] = {}
    for info in infos.values():  # built-in modules show as one plugin, "introzoo"
        m = merged.setdefault(
            info.name, PluginInfo(info.name, info.version, info.module, info.builtin, package=info.package)
        )
        for kind, names in info.registers.items():
            m.registers.setdefault(kind, []).extend(names)
        if info.builtin:
            m.module = "introzoo"
    return PluginState(pm, registry, list(merged.values()), failures, skipped, clashes)


_STATE: PluginState | None = None


def state() -> PluginState:
    """The process-wide plugin state, built on first use."""
    global _STATE
    if _STATE is None:
        _STATE = build()
    return _STATE


def registry() -> Registry:
    return state().registry


def current() -> PluginState | None:
    """The process-wide plugin state if it has been built, else ``None`` (builds nothing)."""
    return _STATE


def reset(new_state: PluginState | None = None) -> None:
    """Replace (or drop, to rebuild lazily) the process-wide plugin state."""
    global _STATE
    _STATE = new_state


@contextmanager
def using(new_state: PluginState) -> Iterator[PluginState]:
    """Make ``new_state`` the process-wide plugin state inside a ``with`` block, then restore the old."""
    global _STATE
    old = _STATE
    _STATE = new_state
    try:
        yield new_state
    finally:
        _STATE = old


class RunHooks:
    """The run-lifecycle hooks (``introzoo_run_start`` / ``_log`` / ``_end``) of every plugin, for one run.

    Implementations are called in plugin registration order with the arguments they name (copies of
    the record and the result: a hook cannot change what the run writes). One that raises is reported on one ``warning:`` line on stderr and that plugin's run hooks are skipped for the
    rest of the run: a failing logger never ends a run nor changes its results.
    """

    def __init__(self, run: Any, manager: pluggy.PluginManager | None = None) -> None:
        pm = manager or state().manager
        self.run = run
        self.failed: dict[str, str] = {}  # plugin name -> one-line error
        self._impls = {name: getattr(pm.hook, name).get_hookimpls() for name in RUN_HOOKS}

    def _call(self, hook: str, **kwargs: Any) -> None:
        for impl in self._impls[hook]:
            if impl.plugin_name in self.failed:
                continue
            try:
                impl.function(**{a: kwargs[a] for a in impl.argnames})
            except Exception as exc:
                self.failed[impl.plugin_name] = first_line(exc, with_type=True)
                print(
                    f"warning: plugin '{impl.plugin_name}': {hook} raised {first_line(exc, with_type=True)}; its run hooks are "
                    "skipped for the rest of this run",
                    file=sys.stderr,
                )

    def start(self, out_dir: Any) -> None:
        self._call("introzoo_run_start", run=self.run, out_dir=out_dir)

    def log(self, iteration: int, record: dict[str, Any]) -> None:
        self._call("introzoo_run_log", run=self.run, iteration=iteration, record=dict(record))

    def end(self, result: dict[str, Any]) -> None:
        self._call("introzoo_run_end", run=self.run, result=copy.deepcopy(result))
