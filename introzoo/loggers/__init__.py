"""Experiment loggers: plugins of the run-lifecycle hooks that a run switches on with ``--log NAME``.

A logger is a plugin with ``introzoo_run_start`` / ``introzoo_run_log`` / ``introzoo_run_end``
implementations (see :mod:`introzoo.hookspecs`) that act only when :func:`wanted` says the run asked
for them. ``introzoo run --log tensorboard`` (repeatable) sets :data:`LOG_ENV`, which also reaches the
processes a sweep starts (``INTROZOO_LOG=tensorboard introzoo sweep ...``). The built-in logger is
:mod:`introzoo.loggers.tensorboard`; a W&B or MLflow logger is an installed plugin of the same shape
whose entry-point name is what ``--log`` takes (docs/plugins.md).
"""

from __future__ import annotations

import os

from ..errors import UsageError, unknown

LOG_ENV = "INTROZOO_LOG"
#: the built-in loggers and the package each needs
BUILTIN = {"tensorboard": "tensorboard"}


def wanted(name: str) -> bool:
    """Whether this process's runs asked for logger ``name`` (``--log name`` or ``INTROZOO_LOG``)."""
    return name in {n.strip() for n in os.environ.get(LOG_ENV, "").split(",") if n.strip()}


def available() -> list[str]:
    """The loggers ``--log`` takes: the built-in ones and every loaded plugin with a run hook."""
    from ..hookspecs import RUN_HOOKS
    from ..plugins import state

    pm = state().manager
    plugins = {impl.plugin_name for hook in RUN_HOOKS for impl in getattr(pm.hook, hook).get_hookimpls()}
    return sorted(set(BUILTIN) | {p for p in plugins if not p.startswith("introzoo.")})


def select(names: list[str]) -> None:
    """Check ``--log`` names (unknown ones, a missing package: one line, exit code 2) and set them for
    this process and the processes it starts. Without names, the loggers :data:`LOG_ENV` asks for are
    checked the same way (the message names the variable)."""
    source = "--log"
    if not names:
        names = [n.strip() for n in os.environ.get(LOG_ENV, "").split(",") if n.strip()]
        source = LOG_ENV
        if not names:
            return
    valid = available()
    for name in names:
        if name not in valid:
            raise UsageError(("" if source == "--log" else f"{LOG_ENV}: ") + unknown("logger", name, valid))
        package = BUILTIN.get(name)
        if package is not None:
            try:
                __import__(package)
            except ImportError:
                given = f"--log {name}" if source == "--log" else f"{LOG_ENV}={name}"
                raise UsageError(f"{given} needs the {package} package: pip install 'introzoo[{name}]'") from None
    os.environ[LOG_ENV] = ",".join(dict.fromkeys(names))
