import pytest

import introzoo_example

# the register_plugin fixture and the contract checks
pytest_plugins = ["introzoo.testing"]


@pytest.fixture(autouse=True)
def example(register_plugin):
    """Every test sees introzoo's built-ins plus this plugin, under its entry-point name, whether or not
    the package is installed."""
    return register_plugin(introzoo_example, name="example")
