"""Moved to :mod:`introzoo.figures.layout`; this old path is an alias of it until the next release."""

import sys
import warnings
from importlib import import_module

warnings.warn(
    "introzoo.figure moved to introzoo.figures.layout; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = import_module("introzoo.figures.layout")
