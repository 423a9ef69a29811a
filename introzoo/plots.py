"""Moved to :mod:`introzoo.figures.pictures`; this old path is an alias of it until the next release."""

import sys
import warnings
from importlib import import_module

warnings.warn(
    "introzoo.plots moved to introzoo.figures.pictures; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = import_module("introzoo.figures.pictures")
