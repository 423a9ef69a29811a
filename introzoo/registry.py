"""The component registry: kind -> name -> :class:`Component`.

Filled once from the plugin manager (:mod:`introzoo.plugins`): every hook implementation, built-in or
third-party, is called with a ``register`` callable bound to its plugin, so each component knows which
plugin (and which version of it) supplied it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, get_args, get_origin

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
    if get_origin(ann) is Literal:
        return "|".join(str(a) for a in args)
    if args:
        inner = ", ".join(_type_name(a) for a in args if a is not type(None))
        name = getattr(get_origin(ann), "__name__", "")
        return f"{name}[{inner}]" if name and name not in ("Union", "UnionType") else inner + (" | None" if type(None) in args else "")
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

    def build(self, config: BaseModel, **context: Any) -> Any:
        return self.factory(config, **context)

    def describe(self) -> dict[str, Any]:
        """Options with types, defaults and docs, for ``introzoo list``."""
        options = []
        for fname, field in self.config.model_fields.items():
            tname = _type_name(field.annotation)
            options.append({
                "name": fname,
                "type": tname,
                "default": None if field.is_required() else field.get_default(call_default_factory=True),
                "required": field.is_required(),
                "doc": field.description or "",
            })
        return {
            "kind": SINGULAR[self.kind],
            "name": self.name,
            "doc": self.doc,
            "plugin": self.plugin,
            "version": self.version,
            "primary": getattr(self.config, "primary", None),
            "packable": bool(getattr(self.factory, "packable", False)),  # trains in a pack (introzoo.pack)
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
        existing = self._components[component.kind].get(component.name) or pending.get((component.kind, component.name))
        if existing is not None:
            raise RegistryError(
                f"{SINGULAR[component.kind]} '{component.name}' is registered twice: by plugin "
                f"'{existing.plugin}' and by plugin '{component.plugin}'"
            )

    def add_all(self, components: list[Component]) -> None:
        """Add all of ``components`` or, if any of them is invalid or clashes, none."""
        pending: dict[tuple[str, str], Component] = {}
        for c in components:
            self._check(c, pending)
            pending[(c.kind, c.name)] = c
        for c in components:
            self._components[c.kind][c.name] = c

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def all(self, kind: str) -> list[Component]:
        return [self._components[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._components[kind][name]
        except KeyError:
            raise UsageError(unknown(SINGULAR[kind], name, self.names(kind))) from None

    def register_callable(self, kind: str, plugin: str, version: str,
                          into: list[Component]) -> Callable[..., None]:
        """The ``register`` argument handed to one plugin's hook implementation: the components are
        collected in ``into``, to be added all at once with :meth:`add_all`."""

        def register(name: str, factory: Callable[..., Any], config: type[BaseModel], doc: str = "") -> None:
            comp = Component(kind, name, factory, config, doc.strip().splitlines()[0] if doc else "", plugin, version)
            into.append(comp)

        return register
