"""Moved to :mod:`introzoo.training.lifecycle`; this old path is an alias of it until the next release."""

import sys
import warnings
from importlib import import_module

warnings.warn(
    "introzoo.lifecycle moved to introzoo.training.lifecycle; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = import_module("introzoo.training.lifecycle")
