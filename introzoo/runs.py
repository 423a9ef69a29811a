"""Moved to :mod:`introzoo.training.run_dir`; this old path is an alias of it until the next release."""

import sys
import warnings
from importlib import import_module

warnings.warn(
    "introzoo.runs moved to introzoo.training.run_dir; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = import_module("introzoo.training.run_dir")
