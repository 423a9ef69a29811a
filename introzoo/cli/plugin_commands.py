"""Commands that plugins add to the command line (the ``introzoo_register_commands`` hook).

:func:`with_plugin_commands` is called by :func:`introzoo.cli.main` for every invocation. It loads the
plugins only when they can matter: not for a built-in command (``introzoo leaderboard`` stays as cheap
as before), nor under ``--no-plugins``; for anything else (a plugin's command, ``introzoo --help``) it
returns a copy of the app with each plugin's commands added, so the built-in app is never changed.
"""

from __future__ import annotations

import copy
import sys
from typing import Callable

import typer
from typer.main import get_command_name


def _names(app: typer.Typer, start: int = 0, start_groups: int = 0) -> set[str]:
    commands = {c.name or get_command_name(c.callback.__name__) for c in app.registered_commands[start:]}
    return commands | {g.name or g.typer_instance.info.name for g in app.registered_groups[start_groups:]}


def with_plugin_commands(app: typer.Typer, argv: list[str] | None, warn: Callable[[str], None]) -> typer.Typer:
    """``app``, or a copy of it with the plugins' commands. A hook that raises, or adds a command named
    like a built-in one, is reported through ``warn`` (one line) and its commands are left out."""
    from ..errors import first_line
    from ..plugins import state

    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    builtin = _names(app)
    if command in builtin or "--no-plugins" in words or "--version" in words:
        return app
    cli = copy.copy(app)
    cli.registered_commands, cli.registered_groups = list(app.registered_commands), list(app.registered_groups)
    for impl in state().manager.hook.introzoo_register_commands.get_hookimpls():
        n, g = len(cli.registered_commands), len(cli.registered_groups)
        try:
            impl.function(cli=cli)
            clash = sorted(builtin & _names(cli, n, g))
            if clash:
                raise ValueError(f"'{clash[0]}' is a built-in command")
        except Exception as exc:
            del cli.registered_commands[n:], cli.registered_groups[g:]
            warn(
                f"warning: plugin '{impl.plugin_name}': introzoo_register_commands raised {first_line(exc, with_type=True)}; "
                "its commands were left out"
            )
    return cli
