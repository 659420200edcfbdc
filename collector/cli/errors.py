"""The one place the ``collector`` command turns an error into words and an exit code.

Every command raises what the library raises; :class:`OneLineErrors`, the command group
class of ``collector`` (and so of each sub-group, which runs inside it), prints a
:class:`~collector.errors.CollectorError` as ``error: <message>`` on stderr and exits with
the class's ``exit_code``. Anything else is a bug and keeps its traceback (typer prints it
without locals, which may hold passwords).

A settings mistake that surfaces as another library's error (pydantic's for a value of
the wrong type, SQLAlchemy's for a database URL that is not one or a PostgreSQL that does
not answer, requests' for a Central URL without a scheme) escapes the commands; ``main``
(``collector.cli``) asks :func:`settings_problem` about it and prints one line naming the
setting, exit code 2, unless ``--debug`` asked for the traceback. Nothing here prints a
password: only the libraries' first lines (hosts, ports), never the URL's password, and
pydantic's, with the value left out for secret settings.
"""

from __future__ import annotations

from typing import Any

import click
import pydantic
import requests
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from collector.central import CentralError
from collector.errors import CollectorError, one_line
from collector.forms.manifest import ManifestError
from collector.transport import InsecureTransport

_err = Console(stderr=True)


class OneLineErrors(TyperGroup):
    """A typer group whose commands' ``CollectorError`` becomes one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CollectorError as err:
            if ctx.find_root().params.get("debug"):
                raise  # --debug: the traceback, whatever the error
            _err.print(
                f"[red]error:[/red] {escape(one_line(err))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(err.exit_code) from None


DEBUG_HINT = "(--debug shows the traceback)"
_SECRET_SETTINGS = {"central_password", "database_url"}


def settings_problem(exc: BaseException) -> str | None:
    """One line for an error caused by a setting, or None for anything else (a bug)."""
    for err in _chain(exc):
        line = _explain(err)
        if line:
            return line
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _explain(err: BaseException) -> str | None:
    if isinstance(err, pydantic.ValidationError):
        parts = []
        for e in err.errors():
            field = str(e["loc"][0]) if e["loc"] else "?"
            value = "" if field in _SECRET_SETTINGS else f" (got {e.get('input')!r})"
            parts.append(f"COLLECTOR_{field.upper()}: {e['msg']}{value}")
        return "; ".join(parts)
    if isinstance(err, sa.exc.NoSuchModuleError | sa.exc.ArgumentError) or (
        isinstance(err, ValueError) and str(err).startswith("unsupported database")
    ):
        return (
            f"COLLECTOR_DATABASE_URL is not a database URL collector can use ({_first(err)}): "
            "write postgresql+psycopg://USER:PASSWORD@HOST:5432/DB, or leave it empty for SQLite"
        )
    if isinstance(err, sa.exc.OperationalError | sa.exc.InterfaceError) and _connecting(err):
        return f"COLLECTOR_DATABASE_URL: cannot connect to the database: {_first(err.orig or err)}"
    if isinstance(err, requests.exceptions.MissingSchema | requests.exceptions.InvalidSchema):
        return (
            f"COLLECTOR_CENTRAL_URL is not a web address ({_first(err)}): "
            "write it as https://central.example.org (without /v1)"
        )
    if isinstance(err, requests.exceptions.InvalidURL):
        return f"COLLECTOR_CENTRAL_URL is not a valid address: {_first(err)}"
    if isinstance(err, InsecureTransport):
        return f"COLLECTOR_CENTRAL_URL: {_first(err)}"
    if isinstance(err, CentralError):
        return f"Central (COLLECTOR_CENTRAL_URL): {_first(err)}"
    if isinstance(err, ManifestError):
        text = _first(err)
        return text if "COLLECTOR_FORMS_DIR" in text else f"COLLECTOR_FORMS_DIR: {text}"
    return None


def _connecting(err: sa.exc.DBAPIError) -> bool:
    """A failure to open a connection (refused, unknown host, bad password, no such
    database or SQLite folder), not an error of a statement."""
    text = str(err.orig or err).lower()
    return err.statement is None or any(
        s in text
        for s in (
            "connection",
            "connect",
            "unable to open database",
            "authentication",
            "does not exist",
        )
    )


def _first(err: BaseException) -> str:
    """The message's first line: the drivers' later lines are hints and URLs to docs."""
    text = str(err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__
