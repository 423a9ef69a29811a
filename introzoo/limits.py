"""Moved to :mod:`introzoo.training.limits`; this old path is an alias of it until the next release."""

import sys
import warnings
from importlib import import_module

warnings.warn(
    "introzoo.limits moved to introzoo.training.limits; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = import_module("introzoo.training.limits")
