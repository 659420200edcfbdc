"""``collector sql-roles create | refresh | drop``: database roles for analysts' SQL tools
(PostgreSQL), with the API's rules: views without sensitive columns, only the role's
districts (``collector.read.sqlroles``)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from collector.cli.engine import store_engine
from collector.read.sqlroles import (
    SCHEMA,
    SqlRoleError,
    drop_analyst_role,
    grant_analyst_role,
    refresh_sql_access,
)

sql_roles_app = typer.Typer(
    help="PostgreSQL roles for analysts' SQL tools (Excel, Power BI, R): read-only views "
    "without sensitive columns, limited to districts.",
    no_args_is_help=True,
)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@sql_roles_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The database role, e.g. kulob_analyst.")],
    district: Annotated[
        list[str] | None, typer.Option(help="Limit the role to this district (repeatable).")
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(help="Read the role's password from this environment variable."),
    ] = None,
) -> None:
    """Create (or update) a read-only role that sees the `analyst` views of its districts."""
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            _err.print(f"[red]error:[/red] --password-env: {password_env} is not set or empty")
            raise typer.Exit(1)
    try:
        report = grant_analyst_role(
            store_engine(), name=name, districts=district, password=password
        )
    except SqlRoleError as err:
        _err.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None
    where = ", ".join(report.districts) if report.districts is not None else "all districts"
    _out.print(f"role {report.role}: read-only, {where}; views in schema {SCHEMA}:")
    for view in report.views:
        _out.print(f"  {SCHEMA}.{view}")


@sql_roles_app.command("refresh")
def refresh() -> None:
    """Re-make the views, grants and row policies (after new forms or questions)."""
    try:
        views = refresh_sql_access(store_engine())
    except SqlRoleError as err:
        _err.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None
    _out.print(f"{len(views)} views in schema {SCHEMA} up to date")


@sql_roles_app.command("drop")
def drop(name: Annotated[str, typer.Argument(help="The database role.")]) -> None:
    """Remove a role made by `sql-roles create`."""
    try:
        existed = drop_analyst_role(store_engine(), name=name)
    except SqlRoleError as err:
        _err.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None
    _out.print(f"role {name} dropped" if existed else f"no role {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(sql_roles_app, name="sql-roles")
