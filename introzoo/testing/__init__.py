"""Testing helpers for plugin authors, used by introzoo's own test suite as well.

- :func:`register_plugin`: a pytest fixture that registers a plugin (a module or an object with hook
  implementations) for the duration of one test, installed or not.
- :func:`components_of`: the ``(kind, name)`` of every component a plugin registers (or of every
  built-in), as pytest parameters; a component whose name is a built-in's has its qualified name
  (``myplugin:soft-boot``), which every helper here accepts.
- :func:`check_component`: the contract checks of :mod:`introzoo.testing.checks` for one registered
  component, on tiny random data; they raise ``AssertionError`` saying what is wrong. A component that
  declares ``packable = True`` also gets :func:`check_packs` ("packed == one by one",
  :mod:`introzoo.testing.checks_pack`: in float64 on a tiny network, then in float32 on the dataset's
  default network and batch size, bit for bit; it runs on one torch thread).

A plugin's tests use them like this (the template is ``plugins/introzoo-example``)::

    # tests/conftest.py
    pytest_plugins = ["introzoo.testing"]

    # tests/test_contracts.py
    import pytest
    import my_plugin
    from introzoo.testing import check_component, components_of

    @pytest.mark.parametrize("kind,name", components_of(my_plugin))
    def test_contract(kind, name, register_plugin):
        register_plugin(my_plugin)
        check_component(kind, name)

introzoo's test suite runs ``components_of()`` (every built-in) through the same checks, so a new
built-in component is checked without writing anything.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from .. import plugins
from ..plugins import PluginState
from ..registry import SINGULAR
from .checks_pack import PACK_KINDS, check_packs, compare_pack
from .checks import (
    CHECKS,
    DEFAULT_SHAPES,
    check_backbone,
    check_dataset,
    check_executor,
    check_metric,
    check_objective,
    check_prior,
    check_registration,
    check_regularizer,
    component_config,
    tiny_model,
)

__all__ = [
    "CHECKS",
    "DEFAULT_SHAPES",
    "build_state",
    "check_backbone",
    "check_component",
    "check_dataset",
    "check_executor",
    "check_metric",
    "check_objective",
    "check_prior",
    "check_registration",
    "check_packs",
    "check_regularizer",
    "compare_pack",
    "component_config",
    "components_of",
    "register_plugin",
    "registered",
    "tiny_model",
]


def _name(plugin: Any) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def build_state(*plugin_objects: Any, names: list[str] | None = None) -> PluginState:
    """A plugin state with the built-ins and ``plugin_objects`` (installed plugins left out)."""
    names = list(names) if names else [_name(p) for p in plugin_objects]
    return plugins.build(extra_plugins=list(zip(names, plugin_objects)), load_entry_points=False)


@contextmanager
def registered(*plugin_objects: Any, names: list[str] | None = None) -> Iterator[PluginState]:
    """``with registered(my_plugin): ...``: introzoo sees the built-ins and ``plugin_objects`` inside the
    block (for code outside pytest; in tests use the :func:`register_plugin` fixture)."""
    with plugins.using(build_state(*plugin_objects, names=names)) as st:
        yield st


@pytest.fixture
def register_plugin():
    """Register plugins for one test: ``register_plugin(my_plugin)`` or ``register_plugin(obj, name="x")``.

    Afterwards the process-wide registry (what ``introzoo.cli.main``, ``plugins.registry()`` and the
    contract checks use) holds the built-ins and every plugin registered so far in this test; installed
    plugins are left out, so the test sees the same components whether or not the plugin is installed.
    Returns the new :class:`~introzoo.plugins.PluginState`. The previous state is restored after the test.
    A plugin that misspells a hook or registers one name twice raises
    :class:`~introzoo.errors.RegistryError` here; one whose component has a name that is taken (a
    built-in's) gets it as ``plugin:name`` (``name`` as given here) with a
    :class:`~introzoo.plugins.PluginClashWarning` naming every clash.
    """
    added: list[tuple[str, Any]] = []
    old = plugins.current()

    def register(plugin: Any, name: str | None = None) -> PluginState:
        added.append((name or _name(plugin), plugin))
        try:
            st = plugins.build(extra_plugins=list(added), load_entry_points=False)
        except BaseException:
            added.pop()
            raise
        plugins.reset(st)
        return st

    yield register
    plugins.reset(old)


def components_of(*plugin_objects: Any, names: list[str] | None = None) -> list:
    """``pytest.param(kind, name)`` for every component ``plugin_objects`` register (ids such as
    ``prior:laplace``); with no argument, for every built-in component."""
    st = build_state(*plugin_objects, names=names)
    out = []
    for info in st.plugins:
        if info.builtin == (not plugin_objects):
            for kind, comp_names in info.registers.items():
                out += [pytest.param(kind, n, id=f"{SINGULAR.get(kind, kind)}:{n}") for n in comp_names]
    return out


def check_component(kind: str, name: str, **kwargs: Any) -> None:
    """Run every contract check that applies to the registered component ``kind``/``name``: the
    registration checks for any kind, then the kind's own (``kwargs`` go to it, e.g. ``options={...}``),
    then for a component declaring ``packable = True`` :func:`check_packs` (both its float64 and its
    float32 default-network comparison). A kind without checks of its own (a new hook) gets the
    registration checks only."""
    comp = plugins.registry().get(kind, name)
    check_registration(comp)
    check = CHECKS.get(kind)
    if check is not None:
        check(name, **kwargs)
    if getattr(comp.factory, "packable", False) and kind in PACK_KINDS:
        try:
            check_packs(kind, name, options=kwargs.get("options"))
        except pytest.skip.Exception:
            pass  # no tiny 2D run takes it (the check says why when called alone)
