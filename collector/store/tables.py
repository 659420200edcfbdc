"""Per-form tables: their SQLAlchemy shape, created and evolved (a column is never dropped).

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import logging

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.store.caches import caches_for
from collector.store.engine import T, lock_schema, now
from collector.store.layout import LINK, OFFSET_SUFFIX, SYSTEM_MAIN, SYSTEM_REPEAT, stored_columns
from collector.sync.normalize import (
    FormShape,
    TableSpec,
    rows_for_page,
)

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
        cols += [sa.Column(n, typ()) for n, typ in stored_columns(c.name, c.kind)]
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
        offsets_added: dict[str, list[str]] = {}
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
                    if col.name.endswith(OFFSET_SUFFIX):
                        offsets_added.setdefault(name, []).append(col.name)
        if offsets_added:
            _fill_offsets(conn, shape, tables, offsets_added)
            # The API's form cache (forminfo.form_info) is keyed on form.updated_at: move
            # it so readers see the new columns at once.
            form = T["form"]
            conn.execute(
                form.update().where(form.c.table_name == shape.main.name).values(updated_at=now())
            )
    known[key] = tables
    return tables


_FILL_BATCH = 500


def _fill_offsets(
    conn: sa.Connection, shape: FormShape, tables: dict[str, sa.Table], added: dict[str, list[str]]
) -> None:
    """Fill dateTime offset columns just added to existing tables from the OData rows the
    store keeps whole (``submission.raw``), so rows stored before the column existed get
    the offset Collect recorded without waiting for Central to change them (an unchanged
    row is never rewritten by a sync: store/pages.py compares raw_hash)."""
    sub, form = T["submission"], T["form"]
    query = (
        sa.select(sub.c.raw)
        .select_from(sub.join(form, form.c.id == sub.c.form_id))
        .where(form.c.table_name == shape.main.name)
    )
    keyed = {t.name: t.repeat_path is not None for t in shape.tables}
    filled = 0
    batch: list[dict] = []
    for (raw,) in conn.execute(query):
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("__id"):
            batch.append(row)
        if len(batch) >= _FILL_BATCH:
            filled += _fill_batch(conn, shape, tables, added, keyed, batch)
            batch = []
    if batch:
        filled += _fill_batch(conn, shape, tables, added, keyed, batch)
    log.info("form %s: filled %d recorded dateTime offsets", shape.xml_form_id, filled)


def _fill_batch(
    conn: sa.Connection,
    shape: FormShape,
    tables: dict[str, sa.Table],
    added: dict[str, list[str]],
    keyed: dict[str, bool],
    rows: list[dict],
) -> int:
    page = rows_for_page(shape, rows)
    n = 0
    for name, cols in added.items():
        table = tables[name]
        by_row = keyed.get(name, False)
        for col in cols:
            values = [
                {"k_iid": r["instance_id"], "k_rid": r.get("row_id"), "v": r[col]}
                for r in page.tables.get(name, ())
                if r.get(col) is not None
            ]
            if not values:
                continue
            cond = table.c.instance_id == sa.bindparam("k_iid")
            if by_row:
                cond = sa.and_(cond, table.c.row_id == sa.bindparam("k_rid"))
            conn.execute(table.update().where(cond).values({col: sa.bindparam("v")}), values)
            n += len(values)
    return n
