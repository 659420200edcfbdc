"""The one place the ``collector`` command turns an error into words and an exit code.

Every command raises what the library raises; :class:`OneLineErrors`, the command group
class of ``collector`` (and so of each sub-group, which runs inside it), prints a
:class:`~collector.errors.CollectorError` as ``error: <message>`` on stderr and exits with
the class's ``exit_code``. Anything else is a bug and keeps its traceback (typer prints it
without locals, which may hold passwords).
"""

from __future__ import annotations

from typing import Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from collector.errors import CollectorError, one_line

_err = Console(stderr=True)


class OneLineErrors(TyperGroup):
    """A typer group whose commands' ``CollectorError`` becomes one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CollectorError as err:
            _err.print(
                f"[red]error:[/red] {escape(one_line(err))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(err.exit_code) from None
