"""Per-form tables: their SQLAlchemy shape, created and evolved (a column is never dropped).

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.layout import LINK, SYSTEM_MAIN, SYSTEM_REPEAT, sql_type
from collector.normalize import (
    FormShape,
    TableSpec,
)
from collector.storage.caches import caches_for
from collector.storage.engine import lock_schema

log = logging.getLogger("collector.store")

# --- per-form tables -------------------------------------------------------------------------


def form_tables(shape: FormShape) -> dict[str, sa.Table]:
    """SQLAlchemy ``Table`` objects for a form's wide, repeat and link tables."""
    md = sa.MetaData()
    out: dict[str, sa.Table] = {}
    for t in shape.tables:
        out[t.name] = sa.Table(t.name, md, *_columns_of(t))
    for link, _owner in shape.link_tables():
        out[link] = sa.Table(
            link,
            md,
            *(sa.Column(n, t(), nullable=False, index=n == "instance_id") for n, t in LINK.items()),
        )
    return out


def _columns_of(t: TableSpec) -> list[sa.Column]:
    if t.repeat_path is None:
        cols = [
            sa.Column(n, typ(), primary_key=n == "instance_id") for n, typ in SYSTEM_MAIN.items()
        ]
    else:
        # Child rows are replaced whole per submission inside one transaction, so they
        # need no unique key; a plain index on instance_id inserts 1.5x faster (SQLite).
        cols = [
            sa.Column(n, typ(), nullable=n == "parent_row_id", index=n == "instance_id")
            for n, typ in SYSTEM_REPEAT.items()
        ]
    for c in t.columns:
        cols += [sa.Column(n, sql_type(c.kind)) for n in c.stored_names()]
    return cols


def ensure_form_tables(engine: Engine, shape: FormShape) -> dict[str, sa.Table]:
    """Create the form's tables, or add the columns a new version brought. Never drops.

    Remembered per engine and shape (``caches_for(engine)``), so a sync with nothing new
    does not inspect the schema every time.
    """
    known = caches_for(engine).form_tables
    key = (
        tuple((t.name, tuple(t.column_names())) for t in shape.tables),
        tuple(shape.link_tables()),
    )
    if key in known:
        with engine.connect() as conn:  # one cheap query: the database may be new
            if sa.inspect(conn).has_table(shape.main.name):
                return known[key]
    tables = form_tables(shape)
    with engine.begin() as conn:
        lock_schema(conn)
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        for name, table in tables.items():
            if name not in existing:
                table.create(conn)
                continue
            have = {c["name"] for c in inspector.get_columns(name)}
            for col in table.columns:
                if col.name not in have:
                    ddl_type = col.type.compile(dialect=conn.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE "{name}" ADD COLUMN "{col.name}" {ddl_type}')
                    log.info("table %s: added column %s %s", name, col.name, ddl_type)
    known[key] = tables
    return tables
