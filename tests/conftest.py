import os

import pytest
import torch

from introzoo import plugins

# One torch thread for every test, here and in the processes tests start: tests that train run beside
# each other and beside other work, and more threads than free cores make each step wait on the others
# (tests of thread options set their own).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
# The suite trains on torch's default kernels (``--kernels auto`` takes aten; tests/test_kernels.py
# checks the other path and the measured choice).
os.environ.setdefault("INTROZOO_KERNELS", "aten")

# the register_plugin fixture (the same that plugin authors use)
pytest_plugins = ["introzoo.testing"]


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help="run the slow tests too (end-to-end sweeps, golden values, installs): the selection CI runs",
    )


def pytest_collection_modifyitems(config, items):
    """Without ``--full`` (or an explicit ``-m``), tests marked ``slow`` are left out: the default run is
    the quick one for working on the code; CI runs ``--full``."""
    if config.getoption("--full") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)


@pytest.fixture(autouse=True)
def _fresh_plugin_state(monkeypatch):
    """Each test starts from a registry of the built-ins only: installed plugins are switched off (here
    and in the processes a test starts), so that results do not depend on what else is installed. Tests
    of plugin loading clear INTROZOO_DISABLE_PLUGINS themselves."""
    monkeypatch.setenv(plugins.DISABLE_ENV, "all")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def tiny_model():
    """A tiny VAE on 3-dimensional data (so s = 1/3), zdim 2, fixed weights, deterministic noise."""
    from introzoo.backbones.mlp import MLPConfig, build
    from introzoo.model import VAE
    from introzoo.priors.gaussian import StandardGaussian

    def make(seed: int = 0) -> VAE:
        torch.manual_seed(seed)
        enc, dec = build(MLPConfig(hidden=8, layers=1), (3,), 2)
        model = VAE(enc, dec, StandardGaussian(2), (3,), 2).double()
        return make_deterministic(model)

    return make


def det_eps(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """'Noise' that depends only on the values it perturbs, so that two implementations that batch
    their passes differently still draw identical eps for identical inputs."""
    return torch.sin(37.0 * mu.detach() + 11.0 * logvar.detach() + 0.3)


def make_deterministic(model):
    model.reparameterize = lambda mu, logvar: mu + det_eps(mu, logvar) * torch.exp(0.5 * logvar)
    fixed = torch.linspace(-1.5, 1.5, 2 * 64, dtype=torch.float64).reshape(64, 2).flip(0)
    model.prior.sample = lambda n, with_grad=False: fixed[:n].clone()
    return model
