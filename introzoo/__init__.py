"""introzoo: the reference zoo of introspective VAEs.

Components (objectives, priors, regularizers, backbones, datasets, metrics) are registered through
pluggy hooks; built-ins use the very same hooks as third-party plugins (see :mod:`introzoo.hookspecs`).
"""

from importlib.metadata import PackageNotFoundError, version as _version

import pluggy

try:
    __version__ = _version("introzoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

#: Marker for hook implementations, e.g. ``@hookimpl def introzoo_register_priors(register): ...``
hookimpl = pluggy.HookimplMarker("introzoo")

__all__ = ["__version__", "hookimpl"]
