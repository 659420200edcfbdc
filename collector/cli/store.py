"""``collector store upgrade``: bring the store's fixed tables to this release's schema."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import make_url

from collector import store
from collector.cli.settings import settings_from_env
from collector.private import private_file
from collector.store import migrations

app = typer.Typer(help="The store itself: its schema version and upgrades.", no_args_is_help=True)
_out = Console()


def _sqlite_backup(database: str, revision: str | None) -> Path:
    """A consistent copy of the SQLite file (sqlite3's online backup), 0600, beside it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(f"{database}.before-{revision or 'migrations'}-{stamp}.bak")
    private_file(target)
    with sqlite3.connect(database) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


@app.command("upgrade")
def upgrade(
    backup: bool = typer.Option(
        True, help="SQLite: copy the file beside it first. PostgreSQL: run pg_dump yourself."
    ),
) -> None:
    """Apply the schema migrations the store lacks (run once per release, before the rest)."""
    settings = settings_from_env()
    engine = store.engine_for(settings)
    try:
        url = make_url(settings.resolved_database_url)
        with engine.connect() as conn:
            before = None if migrations.is_empty(conn) else migrations.current(conn)
            behind = not migrations.is_empty(conn) and before != migrations.head()
        if behind and backup and url.get_backend_name() == "sqlite" and url.database:
            _out.print(f"backup: {_sqlite_backup(url.database, before)}", highlight=False)
        with engine.begin() as conn:
            if store.is_postgres(engine):
                store.lock_schema(conn)
            migrations.upgrade(conn)
        store.create_schema(engine)  # what the models add beyond the migrations
    finally:
        engine.dispose()
    now = migrations.head()
    if before == now:
        _out.print(f"the store is at {now}: nothing to do", highlight=False)
    else:
        _out.print(f"the store is at {now} (was {before or 'from before migrations'})")


@app.command("version")
def version() -> None:
    """The store's schema revision and the one this release needs."""
    settings = settings_from_env()
    engine = store.engine_for(settings)
    try:
        with engine.connect() as conn:
            have = None if migrations.is_empty(conn) else migrations.current(conn)
    finally:
        engine.dispose()
    _out.print(f"store: {have or '-'}   this release: {migrations.head()}", highlight=False)
