"""The API's database access, bounded so that one client cannot take it from the others.

Issue 15 (item 4): one analyst key that held sixteen stalled exports took every pooled
connection, every other request waited 30 s for one and got 500, and one filter of 200
conditions ran for 27 s. Here:

- :func:`api_engine` gives the API a pool of its own (``api_pool_size``, no overflow) with a
  short wait for a connection (``api_pool_timeout_seconds``); a wait that runs out is
  SQLAlchemy's ``TimeoutError``, answered 503 with ``Retry-After`` (``api.errors``).
- :func:`with_statement_timeout` bounds every statement the API runs: PostgreSQL's own
  ``statement_timeout``, set with ``SET LOCAL`` as each transaction begins (so it ends
  with the transaction and a connection the scheduler shares in a test never keeps it);
  on SQLite, which has no such setting, a progress handler that interrupts the statement
  once the transaction's deadline has passed (``sqlite3_progress_handler``: a non-zero
  return aborts with SQLITE_INTERRUPT). Either way the driver raises an
  ``OperationalError``, answered 503.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collector import store
from collector.settings import Settings

# SQLite calls the progress handler every this many virtual machine instructions: about a
# millisecond of work, so the deadline is checked often and costs nothing measurable.
_PROGRESS_STEPS = 10_000


def api_engine(settings: Settings) -> Engine:
    """The store's engine with the API's own pool: a fixed size, a short wait.

    An in-memory SQLite store (tests) has one connection per thread and no pool to size."""
    url = sa.make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return store.engine_for(settings)
    return store.engine_for(
        settings,
        pool_size=settings.api_pool_size,
        max_overflow=0,
        pool_timeout=settings.api_pool_timeout_seconds,
    )


def with_statement_timeout(engine: Engine, seconds: float) -> Engine:
    """A view of ``engine`` (same pool) whose transactions' statements stop after ``seconds``.

    An ``Engine.execution_options`` copy: its event listeners apply to connections taken
    through it only, so the scheduler or a test sharing the pool is not bounded."""
    guarded = engine.execution_options()
    postgres = store.is_postgres(engine)
    millis = max(1, int(seconds * 1000))

    @sa.event.listens_for(guarded, "begin")
    def _bound(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # one-statement round trips (the rate limiter); SET LOCAL needs a block
        if postgres:
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
            return
        deadline = time.monotonic() + seconds
        dbapi: Any = conn.connection.dbapi_connection
        dbapi.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)

    if not postgres:

        @sa.event.listens_for(engine.pool, "checkin")
        def _unbound(dbapi_connection: Any, _record: Any) -> None:
            # The handler goes with the connection back to the pool: a statement run by
            # anyone else on it later must not meet an old deadline.
            if dbapi_connection is not None:
                dbapi_connection.set_progress_handler(None, 0)

    return guarded


def database_ok(engine: Engine) -> bool:
    """Whether a connection can be had and answers, for ``/health``."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (sa.exc.DBAPIError, sa.exc.TimeoutError):
        return False
    return True
