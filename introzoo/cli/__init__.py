"""The ``introzoo`` command line (Typer). It imports the rest of introzoo; nothing in introzoo imports it.

- :mod:`.commands`: the app, :func:`main`, and the ``run``, ``list``, ``plugins``, ``sample``, ``eval``,
  ``ood`` commands;
- :mod:`.sweep`: the ``sweep`` and ``leaderboard`` commands, :mod:`.sweep_run`: what ``sweep`` does;
- :mod:`.latent`: the ``traverse`` and ``interpolate`` commands;
- :mod:`.saved`: the bodies of the commands on a saved run;
- :mod:`.common`: options, consoles and helpers the command modules share;
- :mod:`.errors`: the one error path (a line on stderr and an exit code);
- :mod:`.plugin_commands`: the commands plugins add.
"""

from .commands import app, main

__all__ = ["app", "main"]
