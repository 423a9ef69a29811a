"""The plugin manager: built-in components first, then the ``introzoo`` entry-point group.

- Built-ins register through the same hooks as third-party plugins.
- A plugin that fails to import is reported (name and error) and skipped; introzoo keeps working.
- ``INTROZOO_DISABLE_PLUGINS=name1,name2`` skips those entry points; ``=all`` (or ``*``) skips every
  third-party plugin.
- A hook implementation whose name matches no hook specification (a misspelling such as
  ``introzoo_register_prior``) is an error naming the plugin (pluggy's ``check_pending``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import __version__, hookspecs
from .errors import RegistryError
from .hookspecs import KINDS
from .registry import Registry

ENTRY_POINT_GROUP = "introzoo"
BUILTIN_PLUGIN = "introzoo"

#: modules holding the built-in hook implementations
BUILTIN_MODULES = (
    "introzoo.objectives",
    "introzoo.priors",
    "introzoo.regularizers",
    "introzoo.backbones",
    "introzoo.data",
    "introzoo.metrics",
    "introzoo.extractors",
    "introzoo.executors",
)


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    builtin: bool
    registers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PluginState:
    manager: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]
    failures: list[tuple[str, str]]  # (plugin name, error) for plugins that could not be loaded


def _disabled() -> set[str]:
    raw = os.environ.get("INTROZOO_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def build(extra_plugins: list[tuple[str, Any]] | None = None, load_entry_points: bool = True) -> PluginState:
    """Create a plugin manager and a filled registry.

    ``extra_plugins``: ``(name, plugin_object)`` pairs registered after the built-ins (tests use this to
    register a plugin for the duration of a test).
    """
    pm = pluggy.PluginManager("introzoo")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    failures: list[tuple[str, str]] = []

    for modname in BUILTIN_MODULES:
        pm.register(import_module(modname), name=modname)
        infos[modname] = PluginInfo(BUILTIN_PLUGIN, __version__, modname, True)

    disabled = _disabled()
    if load_entry_points and not ({"all", "*"} & disabled):
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled:
                continue
            dist = ep.dist
            version = dist.version if dist is not None else "unknown"
            try:
                obj = ep.load()
                pm.register(obj, name=ep.name)
            except Exception as exc:  # a broken plugin must not take introzoo down
                failures.append((ep.name, f"{type(exc).__name__}: {exc}"))
                continue
            infos[ep.name] = PluginInfo(ep.name, version, ep.value, False)

    for name, obj in extra_plugins or []:
        pm.register(obj, name=name)
        infos[name] = PluginInfo(name, getattr(obj, "__version__", "0"), getattr(obj, "__name__", name), False)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise RegistryError(f"plugin '{name}': {exc} (no hook of that name; hooks: "
                            f"{', '.join('introzoo_register_' + k for k in KINDS)})") from None

    registry = Registry()
    for kind in KINDS:
        hook = getattr(pm.hook, f"introzoo_register_{kind}")
        for impl in hook.get_hookimpls():  # registration order
            info = infos[impl.plugin_name]
            before = set(registry.names(kind))
            impl.function(register=registry.register_callable(kind, info.name, info.version))
            added = sorted(set(registry.names(kind)) - before)
            if added:
                info.registers.setdefault(kind, []).extend(added)

    merged: dict[str, PluginInfo] = {}
    for info in infos.values():  # built-in modules show as one plugin, "introzoo"
        m = merged.setdefault(info.name, PluginInfo(info.name, info.version, info.module, info.builtin))
        for kind, names in info.registers.items():
            m.registers.setdefault(kind, []).extend(names)
        if info.builtin:
            m.module = "introzoo"
    return PluginState(pm, registry, list(merged.values()), failures)


_STATE: PluginState | None = None


def state() -> PluginState:
    """The process-wide plugin state, built on first use."""
    global _STATE
    if _STATE is None:
        _STATE = build()
    return _STATE


def registry() -> Registry:
    return state().registry


def reset(new_state: PluginState | None = None) -> None:
    """Replace (or drop, to rebuild lazily) the process-wide plugin state."""
    global _STATE
    _STATE = new_state
