"""``collector keys create | list | revoke`` and ``collector api``.

The key's token is printed once, on create, and never again: only its hash is stored.
``collector api`` serves :func:`api.app.create_app` with uvicorn (imported when run: the
library does not depend on the API, the command line sits above both).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from collector import store
from collector.cli.engine import store_engine
from collector.cli.settings import settings_from_env
from collector.store.keys import Role, create_key, list_keys, revoke_key

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label for the key, e.g. kulob-analyst.")],
    role: Annotated[str, typer.Option(help="viewer, analyst, manager or admin.")] = "viewer",
    district: Annotated[
        list[str] | None, typer.Option(help="Limit the key to this district (repeatable).")
    ] = None,
) -> None:
    """Create a key and print its token once (store it now; it cannot be shown again)."""
    created = create_key(store_engine(), name=name, role=Role.parse(role), districts=district)
    where = ", ".join(created.districts) if created.districts else "all districts"
    _err.print(f"key {created.id} {created.name!r}: role {created.role}, {where}")
    _err.print("the token below is shown once; only its hash is stored:")
    print(created.token)  # stdout alone, so `TOKEN=$(collector keys create ...)` works


@keys_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys (never their tokens)."""
    table = Table("id", "name", "role", "districts", "created", "revoked")
    for k in list_keys(store_engine(), include_revoked=all_):
        table.add_row(
            str(k.id),
            k.name,
            k.role,
            ", ".join(k.districts) if k.districts is not None else "all",
            k.created_at.strftime("%Y-%m-%d %H:%M") if k.created_at else "",
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
        )
    _out.print(table)


@keys_app.command("revoke")
def revoke(
    name_or_id: Annotated[
        str, typer.Argument(help="The key's id, or its name (names are never all digits).")
    ],
) -> None:
    """Revoke a key: it stops working at once."""
    info = revoke_key(store_engine(), name_or_id)
    _out.print(f"key {info.id} {info.name!r} revoked")


def serve_api(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: settings.api_host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.api_port).")] = None,
) -> None:
    """Serve the data managers' API with uvicorn (docs at /docs)."""
    import uvicorn

    from api.accesslog import log_config
    from api.app import create_app
    from api.serving import uvicorn_config

    settings = settings_from_env()
    store.create_schema(store.engine_for(settings))
    app = create_app(settings)  # the API's own bounded pool (api.database)
    config = uvicorn_config(
        app,
        settings,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=log_config(),  # access lines without query strings (SEC-1)
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # as uvicorn.run: a port in use is a failed start, not a success
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("api")(serve_api)
