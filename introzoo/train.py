"""``introzoo.train``: the library facade, callable: ``introzoo.train(objective="soft", ...)`` trains a run
(:func:`introzoo.api.train`).

The training loop itself is :mod:`introzoo.training.loop`; its :func:`build`, :func:`train`, :func:`train_built` and
:func:`load` are here too (``from introzoo.train import build, train, load``). Its other names still
resolve here, with a :class:`DeprecationWarning`, until the next release.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from .training import loop as _loop
from .training.loop import build, load, train, train_built

__all__ = ["build", "load", "train", "train_built"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    value = getattr(_loop, name)
    warnings.warn(
        f"introzoo.train.{name} moved to introzoo.training.loop.{name}; the old path goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return value


class _CallableModule(types.ModuleType):
    """Calling this module is the library facade :func:`introzoo.api.train`."""

    def __call__(self, **options: Any):
        from .api import train as facade

        return facade(**options)


sys.modules[__name__].__class__ = _CallableModule
