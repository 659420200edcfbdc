"""The ``collector`` command: a thin shell over the library.

Each sub-command builds ``Settings`` once and calls one library function; the group class
(``collector.cli_errors``) turns any ``CollectorError`` into one clear line and its exit
code.
"""

from __future__ import annotations

import typer

from collector.cli_errors import OneLineErrors
from collector.settings import Settings

app = typer.Typer(
    cls=OneLineErrors,  # every CollectorError: one line and its exit code, here only
    help="collector: ODK forms to Central, submissions to tables, an API.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords and tokens
)


def settings_from_env() -> Settings:
    """Build the one Settings object at the edge."""
    return Settings()


# Sub-command groups register here, one module each.

from collector import cli_run  # noqa: E402 - registers onto app above

cli_run.register(app)

from collector.cli_forms import forms_app  # noqa: E402

app.add_typer(forms_app, name="forms")

from collector.cli_enumerators import app as enumerators_app  # noqa: E402

app.add_typer(enumerators_app, name="enumerators")

from collector import cli_keys  # noqa: E402 - `keys` and `api`

cli_keys.register(app)


from collector import cli_sync  # noqa: E402 - `sync` and `status`

cli_sync.register(app, settings_from_env)

from collector.cli_store import app as store_app  # noqa: E402

app.add_typer(store_app, name="store")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
