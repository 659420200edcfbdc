"""How a failure is written down where other people read it: values left out."""

from __future__ import annotations

import sqlite3

import psycopg
import sqlalchemy as sa


def failure_text(err: BaseException) -> str:
    """What an unexpected failure is recorded (and logged) as, without the values it may
    quote.

    ``sync_run.error`` is shown to every role by ``/v1/sync/status``, and logs go to ops
    staff. A database's message can quote a row: PostgreSQL's ``DETAIL: Failing row
    contains (...)`` holds a whole submission's answers, and ``invalid input syntax for
    type integer: "..."`` one of them (bound parameters are already hidden, see
    ``store.engine``). So for a database error only its class, SQLSTATE and constraint
    are kept; the traceback's frames, logged beside it, say where it happened.
    """
    orig = _database_error(err)
    if orig is not None:
        diag = getattr(orig, "diag", None)
        state = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
        constraint = getattr(diag, "constraint_name", None) if diag is not None else None
        parts = [
            f"SQLSTATE {state}" if state else None,
            f"constraint {constraint}" if constraint else None,
        ]
        where = ", ".join(p for p in parts if p)
        return (
            f"database error {type(orig).__name__}{f' ({where})' if where else ''}; "
            "its message is not recorded, as it can quote a submission's values"
        )
    return f"{type(err).__name__}: {err}"


def _database_error(err: BaseException) -> BaseException | None:
    """The driver's error behind ``err``, if it is one: wrapped by SQLAlchemy, or raised by
    the driver itself (PostgreSQL's COPY and SQLite's executemany run on the raw
    connection, so their errors arrive unwrapped)."""
    if isinstance(err, sa.exc.DBAPIError):
        return err.orig
    if isinstance(err, psycopg.Error | sqlite3.Error):
        return err
    return None
