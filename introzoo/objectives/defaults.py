"""Which of a dataset's objective defaults an objective takes (``defaults_from``).

A dataset's ``objective_defaults`` are keyed by objective name (docs/conventions.md, "Where defaults come
from"). An objective that is a variant of another declares whose defaults it inherits with ``defaults_from = "soft"``, on its config
class (``defaults_from: ClassVar[str] = "soft"``) or as an attribute of its factory (the objective class,
when the class itself is registered). Its defaults on a dataset are then the inherited objective's,
updated by any the dataset gives under its own name; the inherited objective may declare
``defaults_from`` in turn. Options the objective does not have are ignored, like every default.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..registry import Component, Registry

__all__ = ["declared_defaults_from", "defaults_chain", "objective_defaults"]


def declared_defaults_from(comp: Component) -> str | None:
    """The objective whose dataset defaults ``comp`` inherits, as it declares it (or ``None``)."""
    for holder in (comp.config, comp.factory):
        value = getattr(holder, "defaults_from", None)
        if value is not None:
            return value
    return None


def defaults_chain(registry: Registry, name: str) -> list[str]:
    """``name`` and the objectives it inherits defaults from, nearest first (``["soft-boot", "soft"]``).

    A name that is not a registered objective ends the chain (a dataset may still have defaults under
    it); a cycle or a ``defaults_from`` that is not a string is a :class:`UsageError`."""
    chain = [name]
    comp = registry.get("objectives", name)
    while (parent := declared_defaults_from(comp)) is not None:
        if not isinstance(parent, str) or not parent:
            raise UsageError(f"objective '{comp.name}': defaults_from must be an objective's name, got {parent!r}")
        if parent in chain:
            raise UsageError(f"objective '{name}': defaults_from forms a cycle ({' -> '.join(chain + [parent])})")
        chain.append(parent)
        if parent not in registry.names("objectives"):
            break
        comp = registry.get("objectives", parent)
    return chain


def objective_defaults(dataset: Any, registry: Registry, name: str) -> dict[str, Any]:
    """The dataset's defaults for objective ``name``: those of the objectives it inherits from, the
    farthest first, then its own (``dataset.defaults_for`` of each name)."""
    merged: dict[str, Any] = {}
    for n in reversed(defaults_chain(registry, name)):
        merged.update(dataset.defaults_for(n))
    return merged
