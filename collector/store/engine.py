"""Engines and the fixed schema: SQLite (WAL) or PostgreSQL, the fixed tables, time helpers.

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import SQLModel

from collector.errors import SettingsError
from collector.private import private_dir, private_file
from collector.settings import Settings
from collector.store import models as m

log = logging.getLogger("collector.store")

# --- engines and the fixed schema ----------------------------------------------------------

WAL_AUTOCHECKPOINT_PAGES = 4096


class UnsupportedDatabase(SettingsError, ValueError):
    """The database URL names a database the store does not support."""


def engine_for(settings_or_url: Settings | str, **pool_options: Any) -> Engine:
    """An engine for the store: SQLite with WAL + foreign keys, or PostgreSQL via psycopg 3.

    ``pool_options`` (``pool_size``, ``max_overflow``, ``pool_timeout``) size the pool of
    a process that serves many clients at once (the API's, ``api.database``)."""
    url_text = (
        settings_or_url.resolved_database_url
        if isinstance(settings_or_url, Settings)
        else settings_or_url
    )
    url = sa.make_url(url_text)
    if url.get_backend_name() == "postgresql":
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        # No pre-ping: it costs a round trip per checkout (a sync checks out a dozen
        # times). A dropped connection fails one run, is discarded by the pool, and the
        # next run reconnects; recycling keeps idle connections from going stale.
        # hide_parameters: a database error's text (logged, kept in sync status) never
        # carries the submission values bound to the statement (SEC defence in depth).
        return sa.create_engine(url, pool_recycle=600, hide_parameters=True, **pool_options)
    if url.get_backend_name() != "sqlite":
        raise UnsupportedDatabase(
            f"COLLECTOR_DATABASE_URL: unsupported database {url.get_backend_name()!r}: use sqlite or postgresql"
        )
    if url.database and url.database != ":memory:":
        db = Path(url.database)
        if not db.parent.exists():
            private_dir(db.parent)
        private_file(db)  # 0600 before SQLite writes a byte; its -wal/-shm follow (SEC-4)
    engine = sa.create_engine(
        url, connect_args={"timeout": 30}, hide_parameters=True, **pool_options
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # A new file only (set before WAL; an existing one keeps its size): a visit's raw
        # JSON (~2.2 kB) took a 4 kB page to itself, 16 kB pages hold seven. First sync of
        # 20,000 visits, store alone: 1.47-1.52 -> 1.14-1.35 s CPU, a quarter less file.
        cur.execute("PRAGMA page_size=16384")
        cur.execute("PRAGMA journal_mode=WAL")  # readers (the API) never block the sync
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # With WAL: a process crash loses no commit; a power cut may roll back the last
        # ones (whole, watermark included), which the next sync reads again.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA secure_delete=ON")  # erased values zeroed in the file (SEC-6)
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: index pages of big stores stay hot
        # A sync checkpoints in a thread after each stored page (store/checkpoint.py); a
        # connection checkpoints by itself only past this many pages (64 MiB in 16 kB
        # pages, above a page of 5,000 visits), and the WAL file is cut back to 64 MiB.
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cur.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        cur.close()

    return engine


def is_postgres(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


_SCHEMA_LOCK = 0x636F6C6C  # "coll": one advisory lock id for schema changes


def libpq_conninfo(database_url: str, *, database: str | None = None) -> str:
    """The libpq conninfo (``key=value ...``) for a SQLAlchemy PostgreSQL URL, for code that
    talks to psycopg directly (the scheduler's lock, the demo's CREATE DATABASE).

    SQLAlchemy's own psycopg dialect reads the URL (several ``?host=`` for failover, a
    socket directory, query options), as the engine does; rendering the URL back instead
    wrote a space in ``?options=`` as ``+``, which libpq keeps as a plus sign."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    _, params = PGDialect_psycopg().create_connect_args(make_url(database_url))
    if database:
        params["dbname"] = database
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def lock_schema(conn: Connection) -> None:
    """On PostgreSQL, wait for the schema lock until ``conn``'s transaction ends, so that
    processes starting together (API replicas, schedulers) do not race to create the same
    table: ``CREATE ... IF NOT EXISTS`` alone can still fail on a concurrent create."""
    if is_postgres(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")


def create_schema(engine: Engine) -> None:
    """Make the fixed tables of an empty store at the migrations' head; refuse a store
    that is behind (``StoreBehind``: ``collector store upgrade`` moves it, after a backup).
    Per-form tables come with their forms.

    ``create_all`` then adds a fixed table a model has and no migration yet makes (a model
    added without its revision: tests/test_migrations.py fails on it). On PostgreSQL
    under an advisory lock, so API replicas and the scheduler starting together do not
    race to create the same table."""
    from collector.store import migrations

    with engine.begin() as conn:
        if is_postgres(engine):
            lock_schema(conn)
        if migrations.is_empty(conn):
            migrations.upgrade(conn)
        else:
            migrations.raise_if_behind(conn, engine)
        SQLModel.metadata.create_all(conn)
        if is_postgres(engine):
            _raw_compression_lz4(conn)


def _raw_compression_lz4(conn: Connection) -> None:
    """Compress ``submission.raw`` with lz4 rather than PostgreSQL's default pglz.

    A household visit's JSON (about 2.2 kB) is just over the TOAST threshold, so every
    row is compressed on the way in; pglz made a first sync of 20,000 spend most of its
    time in the server (store 3.7-4.0 s -> 2.4-2.7 s with lz4). Storage only: values
    read back the same. Altered once (the catalogue says), since ALTER locks the table;
    a server built without lz4 keeps pglz."""
    current = conn.exec_driver_sql(
        "SELECT attcompression FROM pg_attribute "
        "WHERE attrelid = 'submission'::regclass AND attname = 'raw'"
    ).scalar()
    if current in (None, "l"):
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("ALTER TABLE submission ALTER COLUMN raw SET COMPRESSION lz4")
    except sa.exc.DBAPIError as err:
        log.info("submission.raw keeps pglz compression: %s", err)


T = {name: model.__table__ for name, model in {
    "form": m.Form,
    "form_version": m.FormVersion,
    "form_field": m.FormField,
    "form_choice": m.FormChoice,
    "submission": m.Submission,
    "sync_state": m.SyncState,
    "sync_run": m.SyncRun,
    "attachment": m.Attachment,
    "data_issue": m.DataIssue,
    "api_key": m.ApiKey,
    "audit_log": m.AuditLog,
    "store_secret": m.StoreSecret,
}.items()}  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as aware UTC (SQLite hands them back naive)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
