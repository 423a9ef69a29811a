"""introzoo: the reference zoo of introspective VAEs.

Components (objectives, priors, regularizers, backbones, datasets, metrics) are registered through
pluggy hooks; built-ins use the very same hooks as third-party plugins (see :mod:`introzoo.hookspecs`).

From Python (:mod:`introzoo.api`)::

    import introzoo

    run = introzoo.train(objective="soft", prior="sg", data="8gaussians", iterations=4000, seed=0)
    run.metrics, run.sample(1000)
    introzoo.build(prior="mog:10").model      # untrained
    introzoo.load_run("runs/...")             # a saved run

The facade is imported on first use, so ``import introzoo`` stays cheap (no torch).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _version

import pluggy

try:
    __version__ = _version("introzoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

#: Marker for hook implementations, e.g. ``@hookimpl def introzoo_register_priors(register): ...``
hookimpl = pluggy.HookimplMarker("introzoo")

__all__ = ["Run", "__version__", "build", "hookimpl", "load_run", "train"]

_FACADE = ("Run", "build", "load_run")


def __getattr__(name: str):
    if name in _FACADE:
        return getattr(import_module(".api", __name__), name)
    if name == "train":  # the loop's module, callable as introzoo.api.train
        return import_module(".train", __name__)
    raise AttributeError(f"module 'introzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
