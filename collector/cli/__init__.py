"""The ``collector`` command: a thin shell over the library.

Each sub-command builds ``Settings`` once and calls one library function; the group class
(``collector.cli.errors``) turns any ``CollectorError`` into one clear line and its exit
code.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import typer

from collector.cli.errors import OneLineErrors

app = typer.Typer(
    cls=OneLineErrors,  # every CollectorError: one line and its exit code, here only
    help="collector: ODK forms to Central, submissions to tables, an API.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords and tokens
)


_debug = False  # set by --debug: let an error's traceback through (see main)


def collector_version() -> str:
    try:
        return version("collector")
    except PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"collector {collector_version()}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an error (settings mistakes included)."
    ),
    show_version: bool = typer.Option(
        False,
        "--version",
        help="Print collector's version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """collector: ODK forms to Central, submissions to tables, an API."""
    global _debug
    _debug = debug


# Sub-command groups register here, one module each.

from collector.cli import run as cli_run  # noqa: E402 - registers onto app above

cli_run.register(app)

from collector.cli.forms import forms_app  # noqa: E402

app.add_typer(forms_app, name="forms")

from collector.cli.enumerators import app as enumerators_app  # noqa: E402

app.add_typer(enumerators_app, name="enumerators")

from collector.cli import keys as cli_keys  # noqa: E402 - `keys` and `api`

cli_keys.register(app)


from collector.cli import sync as cli_sync  # noqa: E402 - `sync` and `status`

cli_sync.register(app)

from collector.cli.store import app as store_app  # noqa: E402

app.add_typer(store_app, name="store")

from collector.cli import entities as cli_entities  # noqa: E402 - `entities sync`

cli_entities.register(app)


def main() -> None:
    """The ``collector`` command. A mistake in a setting (database URL, Central URL, forms
    folder, any COLLECTOR_* value) is one line naming the setting, exit code 2; other
    errors, and every error under ``--debug``, keep their traceback."""
    from collector.cli.errors import DEBUG_HINT, settings_problem

    try:
        app()
    except Exception as exc:
        line = None if _debug or "--debug" in sys.argv[1:] else settings_problem(exc)
        if line is None:
            raise
        print(f"error: {line} {DEBUG_HINT}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

from collector.cli import sqlroles as cli_sqlroles  # noqa: E402 - `sql-roles`

cli_sqlroles.register(app)
