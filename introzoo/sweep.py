"""Moved to :mod:`introzoo.sweeps.grid`; this old path is an alias of it until the next release."""

import sys
import warnings
from importlib import import_module

warnings.warn(
    "introzoo.sweep moved to introzoo.sweeps.grid; the old path goes in the next release", DeprecationWarning, stacklevel=2
)
sys.modules[__name__] = import_module("introzoo.sweeps.grid")
