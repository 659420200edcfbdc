"""Batches of rows in: the one place SQLite (executemany) and PostgreSQL (binary COPY) differ.

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from datetime import date as date_
from datetime import time as time_
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from collector.store.engine import is_postgres

_PG_DIALECT = postgresql.dialect()

_CHUNK = 900  # ids per IN (...): under SQLite's host-parameter limit on any version


# --- batches in: the one place SQLite and PostgreSQL differ --------------------------------


def _insert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict], keys: Sequence[str] = ()
) -> None:
    if not rows:
        return
    cols = list(rows[0].keys())
    if is_postgres(conn):
        _copy(conn, f'"{table.name}"', cols, rows, table)
    else:
        _sqlite_executemany(conn, table, cols, rows, "")


def _sqlite_value(v: Any) -> Any:
    """A value as SQLAlchemy's SQLite types store it (so its reads and filters agree)."""
    cls = v.__class__
    if cls is datetime:
        if v.tzinfo is UTC:  # what normalize hands over: format without a conversion
            return v.isoformat(sep=" ", timespec="microseconds")[:26]
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ", timespec="microseconds")
    if cls is date_:
        return v.isoformat()
    if cls is time_:
        return v.isoformat(timespec="microseconds")
    if cls is list or cls is dict:
        return orjson.dumps(v).decode()
    return v


_CONVERTED = (sa.DateTime, sa.Date, sa.Time, sa.JSON)
_PARAM_BUILDERS: dict[tuple[str, tuple[str, ...], tuple[int, ...]], Any] = {}


def _param_builder(table: sa.Table, cols: list[str]) -> Any:
    """A function turning dict rows into SQLite parameter tuples for ``cols``.

    Generated once per table and column list: one comprehension with each column's
    lookup and conversion written out, so a row costs no per-column loop or call. A
    datetime from normalize (aware UTC) is formatted inline as SQLAlchemy's SQLite
    ``DateTime`` stores it; anything else goes through :func:`_sqlite_value`.
    """
    kinds = tuple(
        2 if isinstance(table.c[c].type, sa.DateTime)
        else 1 if isinstance(table.c[c].type, _CONVERTED)
        else 0
        for c in cols
    )  # fmt: skip
    key = (table.name, tuple(cols), kinds)
    build = _PARAM_BUILDERS.get(key)
    if build is not None:
        return build
    parts = []
    for i, (c, kind) in enumerate(zip(cols, kinds, strict=True)):
        if kind == 0:
            parts.append(f"r[{c!r}]")
            continue
        bind = f"(v{i} := r[{c!r}])"
        if kind == 2:
            parts.append(
                f"None if {bind} is None else v{i}.isoformat(' ', 'microseconds')[:26] "
                f"if v{i}.tzinfo is UTC else conv(v{i})"
            )
        else:
            parts.append(f"None if {bind} is None else conv(v{i})")
    code = f"lambda rows: [({', '.join(parts)},) for r in rows]"
    build = eval(code, {"UTC": UTC, "conv": _sqlite_value})  # noqa: S307 (names from repr)
    _PARAM_BUILDERS[key] = build
    return build


def _sqlite_executemany(
    conn: Connection, table: sa.Table, cols: list[str], rows: Sequence[dict], tail: str
) -> None:
    """One ``executemany`` through the DBAPI: SQLAlchemy's per-row parameter processing
    costs more than SQLite's insert itself at tens of thousands of rows a second."""
    params = _param_builder(table, cols)(rows)
    cursor = conn.connection.driver_connection.cursor()  # inside conn's transaction
    try:
        cursor.executemany(sqlite_insert_sql(table.name, cols, tail), params)
    finally:
        cursor.close()


def sqlite_insert_sql(table_name: str, cols: Sequence[str], tail: str = "") -> str:
    """``INSERT INTO "t" ("a", "b") VALUES (?, ?)`` and ``tail`` (an ON CONFLICT clause)."""
    collist = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    return f'INSERT INTO "{table_name}" ({collist}) VALUES ({marks}) {tail}'.rstrip()


def _upsert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict], keys: Sequence[str]
) -> None:
    """Insert ``rows``, replacing the non-key columns of rows whose ``keys`` exist."""
    if not rows:
        return
    cols = list(rows[0].keys())
    updates = [c for c in cols if c not in keys]
    if is_postgres(conn):
        stage = f"_stage_{table.name}"[:63]
        collist = ", ".join(f'"{c}"' for c in cols)
        conn.exec_driver_sql(
            f'CREATE TEMP TABLE "{stage}" ON COMMIT DROP AS '
            f'SELECT {collist} FROM "{table.name}" WITH NO DATA'
        )
        _copy(conn, f'"{stage}"', cols, rows, table)
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
        conflict = ", ".join(f'"{k}"' for k in keys)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        conn.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({collist}) SELECT {collist} FROM "{stage}" '
            f"ON CONFLICT ({conflict}) {action}"
        )
        conn.exec_driver_sql(f'DROP TABLE "{stage}"')
    else:
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in updates)
        conflict = ", ".join(f'"{k}"' for k in keys)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        _sqlite_executemany(conn, table, cols, rows, f"ON CONFLICT ({conflict}) {action}")


def _copy(
    conn: Connection, target: str, cols: list[str], rows: Iterable[dict], table: sa.Table
) -> None:
    """PostgreSQL ``COPY target (cols) FROM STDIN``, in binary where the types agree.

    Binary: the server takes each value as stored instead of parsing its text (store alone,
    20,000 visits: 1.24-1.31 s -> 1.09-1.11 s). But binary values are not converted: bytes
    meant for one type land as another (a text "12345678" sent to a ``bigint`` column was
    stored as 3544952156018063160). So the column types are read from the target itself and
    binary is used only when every one is the type this table's values are made for; a
    column an operator altered, or one typed differently in an older database, gets text
    COPY, which converts or refuses cleanly."""
    raw = conn.connection.driver_connection
    collist = ", ".join(f'"{c}"' for c in cols)
    getter = itemgetter(*cols)
    with raw.cursor() as cur:
        cur.execute(f"SELECT {collist} FROM {target} LIMIT 0")
        actual = [d.type_code for d in cur.description or ()]
        binary = actual == _model_oids(raw, table, cols)
        options = " (FORMAT BINARY)" if binary else ""
        with cur.copy(f"COPY {target} ({collist}) FROM STDIN{options}") as copy:
            if binary:
                copy.set_types(actual)
            if len(cols) == 1:
                for r in rows:
                    copy.write_row((getter(r),))
            else:
                for r in rows:
                    copy.write_row(getter(r))


def _model_oids(raw: Any, table: sa.Table, cols: list[str]) -> list[int | None]:
    """The PostgreSQL type oid each of ``cols`` has in our model (None: not a plain type;
    a JSON column's text is the text type's, which is its binary form)."""
    types = raw.adapters.types
    out: list[int | None] = []
    for c in cols:
        name = table.c[c].type.compile(dialect=_PG_DIALECT).lower()
        info = types.get("text" if name == "json" else name)
        out.append(info.oid if info is not None else None)
    return out


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
