"""The component registry: kind -> name -> :class:`Component`.

Filled once from the plugin manager (:mod:`introzoo.plugins`): every hook implementation, built-in or
third-party, is called with a ``register`` callable bound to its plugin, so each component knows which
plugin (and which version of it) supplied it.

A plugin's component whose name is taken already (by a built-in, or by a plugin registered before it)
is registered under its qualified name ``plugin:name`` (``myplugin:soft-boot``); the bare name keeps
selecting the component that had it first. Any component can be looked up qualified
(``example:laplace``, ``introzoo:soft``): :meth:`Registry.find`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any, Callable, Literal, get_args, get_origin

from pydantic import BaseModel

from .errors import RegistryError, UsageError, unknown
from .hookspecs import KINDS

#: singular nouns for messages ("unknown prior 'mogg'")
SINGULAR = {
    "objectives": "objective",
    "priors": "prior",
    "regularizers": "regularizer",
    "backbones": "backbone",
    "datasets": "dataset",
    "metrics": "metric",
    "extractors": "extractor",
    "executors": "executor",
}


def _type_name(ann: Any) -> str:
    args = get_args(ann)
    if get_origin(ann) is Annotated:  # a constrained type (PositiveInt): the type it constrains
        return _type_name(args[0])
    if get_origin(ann) is Literal:
        return "|".join(str(a) for a in args)
    if args:
        name = getattr(get_origin(ann), "__name__", "")
        union = not name or name in ("Union", "UnionType")
        inner = (" | " if union else ", ").join(_type_name(a) for a in args if a is not type(None))
        return inner + (" | None" if type(None) in args else "") if union else f"{name}[{inner}]"
    return getattr(ann, "__name__", str(ann))


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    config: type[BaseModel]
    doc: str
    plugin: str
    version: str
    #: registered as ``plugin:name`` because another plugin had the name first (``name`` holds both)
    qualified: bool = False

    @property
    def base_name(self) -> str:
        """The name the plugin registered (``soft-boot`` for ``myplugin:soft-boot``)."""
        return self.name.split(":", 1)[1] if self.qualified else self.name

    def build(self, config: BaseModel, **context: Any) -> Any:
        return self.factory(config, **context)

    def describe(self) -> dict[str, Any]:
        """Options with types, defaults and docs, for ``introzoo list``."""
        options = []
        for fname, field in self.config.model_fields.items():
            tname = _type_name(field.annotation)
            options.append(
                {
                    "name": fname,
                    "type": tname,
                    "default": None if field.is_required() else field.get_default(call_default_factory=True),
                    "required": field.is_required(),
                    "doc": field.description or "",
                }
            )
        return {
            "kind": SINGULAR[self.kind],
            "name": self.name,
            "doc": self.doc,
            "plugin": self.plugin,
            "version": self.version,
            "primary": getattr(self.config, "primary", None),
            "packable": bool(getattr(self.factory, "packable", False)),  # trains in a pack (introzoo.packing.loop)
            "options": options,
        }


class Registry:
    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {k: {} for k in KINDS}

    def _check(self, component: Component, pending: dict[tuple[str, str], Component]) -> None:
        if component.kind not in self._components:
            raise RegistryError(f"unknown component kind '{component.kind}'")
        if not isinstance(component.config, type) or not issubclass(component.config, BaseModel):
            raise RegistryError(
                f"{SINGULAR[component.kind]} '{component.name}' from plugin '{component.plugin}': "
                "config must be a pydantic BaseModel subclass"
            )
        existing = pending.get((component.kind, component.name))
        if existing is not None:
            raise RegistryError(
                f"{SINGULAR[component.kind]} '{component.name}' is registered twice: by plugin "
                f"'{existing.plugin}' and by plugin '{component.plugin}'"
            )

    def add_all(self, components: list[Component], qualify_clashes: bool = False) -> list[Component]:
        """Add all of ``components`` or, if any of them is invalid or clashes, none; returns them as added.

        A name registered already clashes. With ``qualify_clashes`` (third-party plugins) such a
        component is added under ``plugin:name`` instead (``qualified``), the bare name staying with the
        component that had it; without (introzoo's built-ins), a clash raises :class:`RegistryError`.
        Two components of one kind and one name in ``components`` always raise."""
        pending: dict[tuple[str, str], Component] = {}
        added: list[Component] = []
        for c in components:
            self._check(c, pending)
            pending[(c.kind, c.name)] = c
            existing = self._components[c.kind].get(c.name)
            if existing is not None and qualify_clashes:
                c = replace(c, name=f"{c.plugin}:{c.name}", qualified=True)
                existing = self._components[c.kind].get(c.name)
            if existing is not None:
                raise RegistryError(
                    f"{SINGULAR[c.kind]} '{c.name}' is registered twice: by plugin "
                    f"'{existing.plugin}' and by plugin '{c.plugin}'"
                )
            added.append(c)
        for c in added:
            self._components[c.kind][c.name] = c
        return added

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def all(self, kind: str) -> list[Component]:
        return [self._components[kind][n] for n in self.names(kind)]

    def find(self, kind: str, name: str) -> Component | None:
        """The component ``name`` of ``kind``, or ``None``. ``name`` may be qualified by the plugin that
        registered it: ``plugin:name`` (``example:laplace``, ``introzoo:soft``, and for a component whose
        name another plugin had first the only way, ``myplugin:soft-boot``)."""
        comps = self._components[kind]
        if name in comps:
            return comps[name]
        plugin, sep, base = name.partition(":")
        c = comps.get(base) if sep else None
        return c if c is not None and c.plugin == plugin else None

    def plugins(self) -> set[str]:
        """The names of the plugins that registered at least one component."""
        return {c.plugin for comps in self._components.values() for c in comps.values()}

    def get(self, kind: str, name: str) -> Component:
        comp = self.find(kind, name)
        if comp is None:
            raise UsageError(unknown(SINGULAR[kind], name, self.names(kind)))
        return comp

    def register_callable(self, kind: str, plugin: str, version: str, into: list[Component]) -> Callable[..., None]:
        """The ``register`` argument handed to one plugin's hook implementation: the components are
        collected in ``into``, to be added all at once with :meth:`add_all`."""

        def register(name: str, factory: Callable[..., Any], config: type[BaseModel], doc: str = "") -> None:
            comp = Component(kind, name, factory, config, doc.strip().splitlines()[0] if doc else "", plugin, version)
            into.append(comp)

        return register
