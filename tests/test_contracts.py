"""Every built-in component through the contract checks that plugin authors use (introzoo.testing)."""

from __future__ import annotations

import pytest

from introzoo import plugins
from introzoo.testing import check_component, components_of

BUILTINS = components_of()


def test_every_builtin_component_is_checked():
    reg = plugins.build(load_entry_points=False).registry
    registered = {(kind, name) for kind in reg._components for name in reg.names(kind)}
    assert {tuple(p.values) for p in BUILTINS} == registered


@pytest.mark.parametrize("kind,name", BUILTINS)
def test_builtin_contract(kind, name):
    check_component(kind, name)
