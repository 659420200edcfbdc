"""Entity lists in the store: the register's tables and their writes.

Fixed tables (their own metadata; the migrations make them, revision 0005):
- ``entity_list``: one row per Central entity list, with the sync's watermark;
- ``entity_property``: each property's column type and sensitivity (from the forms;
  a property no form describes is sensitive, failing closed);
- ``entity``: one row per entity, its current label, version, conflict, times and the
  properties as Central sent them (JSON text, kept whole so nothing is lost to a type);
- ``entity_version``: every version, with the submission that made it;
- ``entity_submission``: which submission created or updated which entity.

And one typed table per list, ``entities_<list>``: the current values with a column per
property (integer, decimal, date or text), for analysts' SQL tools. A value that does not
fit its type is NULL there and stays whole in ``entity.data``.

Part of the store; the facade ``collector.store`` re-exports the names others use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collector.store.engine import as_utc, is_postgres, lock_schema

md = sa.MetaData()
_TS = sa.DateTime(timezone=True)

entity_list = sa.Table(
    "entity_list",
    md,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("watermark", _TS),
    sa.Column("synced_at", _TS),
)
entity_property = sa.Table(
    "entity_property",
    md,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("list_name", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("column_type", sa.Text, nullable=False),
    sa.Column("sensitive", sa.Boolean, nullable=False),
)
entity = sa.Table(
    "entity",
    md,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("list_name", sa.Text, primary_key=True),
    sa.Column("uuid", sa.Text, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("creator_id", sa.Text),
    sa.Column("created_at", _TS),
    sa.Column("updated_at", _TS),
    sa.Column("deleted_at", _TS),
    sa.Column("conflict", sa.Text),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("synced_at", _TS, nullable=False),
)
entity_version = sa.Table(
    "entity_version",
    md,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("list_name", sa.Text, primary_key=True),
    sa.Column("uuid", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("data_received", sa.Text, nullable=False),
    sa.Column("base_version", sa.Integer),
    sa.Column("conflict", sa.Text),
    sa.Column("conflicting_properties", sa.Text),
    sa.Column("created_at", _TS),
    sa.Column("form_id", sa.Text),
    sa.Column("instance_id", sa.Text, index=True),
)
entity_submission = sa.Table(
    "entity_submission",
    md,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("instance_id", sa.Text, primary_key=True),
    sa.Column("list_name", sa.Text, primary_key=True),
    sa.Column("uuid", sa.Text, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("form_id", sa.Text),
    sa.Column("action", sa.Text, nullable=False),  # create | update
)

_SQL_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "int": sa.BigInteger,
    "decimal": sa.Double,
    "date": sa.Date,
}
_SAFE = re.compile(r"[^a-z0-9_]")


def typed_table_name(list_name: str) -> str:
    return "entities_" + _SAFE.sub("_", list_name.lower())[:50]


def column_name(prop: str) -> str:
    """A property's column in the typed table (``p_`` keeps it clear of the fixed ones)."""
    return "p_" + _SAFE.sub("_", prop.lower())[:60]


def _typed_table(list_name: str, kinds: dict[str, str]) -> sa.Table:
    cols = [
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("uuid", sa.Text, primary_key=True),
        sa.Column("label", sa.Text),
        sa.Column("version", sa.Integer),
        sa.Column("created_at", _TS),
        sa.Column("updated_at", _TS),
        sa.Column("deleted_at", _TS),
        sa.Column("conflict", sa.Text),
    ]
    cols += [sa.Column(column_name(p), _SQL_TYPES[t]()) for p, t in sorted(kinds.items())]
    return sa.Table(typed_table_name(list_name), sa.MetaData(), *cols)


def ensure_typed_table(conn: Connection, list_name: str, kinds: dict[str, str]) -> sa.Table:
    """The list's typed table, created or given a column for each new property (a column
    is never dropped or retyped)."""
    lock_schema(conn)
    table = _typed_table(list_name, kinds)
    inspector = sa.inspect(conn)
    if not inspector.has_table(table.name):
        table.create(conn)
        return table
    have = {c["name"] for c in inspector.get_columns(table.name)}
    for col in table.columns:
        if col.name not in have:
            ddl = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {ddl}')
    return table


def typed_value(value: Any, column_type: str) -> Any:
    """A property's string as its column type; None when it does not fit (kept in JSON)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if column_type == "int":
            return int(text)
        if column_type == "decimal":
            return float(text)
        if column_type == "date":
            return date.fromisoformat(text[:10])
    except ValueError:
        return None
    return str(value)


def _upsert(conn: Connection, table: sa.Table, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update)
    conn.execute(stmt, rows)


def save_properties(
    conn: Connection, project_id: int, list_name: str, kinds: dict[str, tuple[str, bool]]
) -> None:
    """Each property's (column type, sensitive); a property keeps the type it was given
    first (its column exists), while sensitivity follows the forms (it can only tighten
    or loosen with a form change, never by accident: unknown is sensitive)."""
    existing = {
        r.name: r.column_type
        for r in conn.execute(
            sa.select(entity_property.c.name, entity_property.c.column_type).where(
                entity_property.c.project_id == project_id,
                entity_property.c.list_name == list_name,
            )
        )
    }
    rows = [
        {
            "project_id": project_id,
            "list_name": list_name,
            "name": name,
            "column_type": existing.get(name, kind),
            "sensitive": sensitive,
        }
        for name, (kind, sensitive) in kinds.items()
    ]
    _upsert(conn, entity_property, rows, ["project_id", "list_name", "name"])


def property_types(conn: Connection, project_id: int, list_name: str) -> dict[str, str]:
    return {
        r.name: r.column_type
        for r in conn.execute(
            sa.select(entity_property.c.name, entity_property.c.column_type).where(
                entity_property.c.project_id == project_id,
                entity_property.c.list_name == list_name,
            )
        )
    }


def stored_versions(conn: Connection, project_id: int, list_name: str) -> dict[str, int]:
    """uuid -> the newest version whose history is stored (``entity_version``), so an
    entity whose versions a cut-short run did not read is read again next time."""
    v = entity_version
    return {
        uuid: version
        for uuid, version in conn.execute(
            sa.select(v.c.uuid, sa.func.max(v.c.version))
            .where(v.c.project_id == project_id, v.c.list_name == list_name)
            .group_by(v.c.uuid)
        )
    }


def stored_uuids(conn: Connection, project_id: int, list_name: str) -> set[str]:
    return set(
        conn.execute(
            sa.select(entity.c.uuid).where(
                entity.c.project_id == project_id, entity.c.list_name == list_name
            )
        ).scalars()
    )


def store_entities(
    conn: Connection,
    project_id: int,
    list_name: str,
    rows: Iterable[dict],
    typed: sa.Table,
    types: dict[str, str],
    synced_at: datetime,
) -> None:
    """Upsert entities (``rows``: uuid, label, version, creator_id, created_at, updated_at,
    deleted_at, conflict, data dict) into ``entity`` and the typed table."""
    rows = list(rows)
    _upsert(
        conn,
        entity,
        [
            {
                "project_id": project_id,
                "list_name": list_name,
                **{k: r[k] for k in r if k != "data"},
                "data": json.dumps(r["data"], ensure_ascii=False, sort_keys=True),
                "synced_at": synced_at,
            }
            for r in rows
        ],
        ["project_id", "list_name", "uuid"],
    )
    typed_rows = []
    for r in rows:
        row = {
            "project_id": project_id,
            "uuid": r["uuid"],
            "label": r["label"],
            "version": r["version"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
            "deleted_at": r["deleted_at"],
            "conflict": r["conflict"],
        }
        for prop, kind in types.items():
            row[column_name(prop)] = typed_value(r["data"].get(prop), kind)
        typed_rows.append(row)
    _upsert(conn, typed, typed_rows, ["project_id", "uuid"])


def refresh_deleted(
    conn: Connection, project_id: int, list_name: str, rows: list[dict], typed: sa.Table
) -> None:
    """A deleted entity's label, version, times and conflict as Central's list of deleted
    entities gives them (it may have changed before it was deleted; its properties are
    hidden once deleted, so the stored ones stay)."""
    for r in rows:
        values = {k: r[k] for k in ("label", "version", "updated_at", "conflict")}
        conn.execute(
            sa.update(entity)
            .where(
                entity.c.project_id == project_id,
                entity.c.list_name == list_name,
                entity.c.uuid == r["uuid"],
            )
            .values(**values)
        )
        conn.execute(
            sa.update(typed)
            .where(typed.c.project_id == project_id, typed.c.uuid == r["uuid"])
            .values(**values)
        )


def mark_deleted(
    conn: Connection, project_id: int, list_name: str, deleted: dict[str, datetime], typed: sa.Table
) -> int:
    """Set ``deleted_at`` for entities Central lists as deleted; returns how many changed."""
    changed = 0
    for uuid, at in deleted.items():
        for table in (entity, typed):
            cond = [table.c.project_id == project_id, table.c.uuid == uuid]
            if table is entity:
                cond.append(entity.c.list_name == list_name)
            res = conn.execute(
                sa.update(table).where(*cond, table.c.deleted_at.is_(None)).values(deleted_at=at)
            )
            if table is entity:
                changed += res.rowcount or 0
    return changed


def store_versions(
    conn: Connection, project_id: int, list_name: str, uuid: str, versions: list[dict]
) -> None:
    """Every version of one entity, and the submissions behind them."""
    _upsert(
        conn,
        entity_version,
        [{"project_id": project_id, "list_name": list_name, "uuid": uuid, **v} for v in versions],
        ["project_id", "list_name", "uuid", "version"],
    )
    links = [
        {
            "project_id": project_id,
            "instance_id": v["instance_id"],
            "list_name": list_name,
            "uuid": uuid,
            "version": v["version"],
            "form_id": v["form_id"],
            "action": "create" if v["version"] == 1 else "update",
        }
        for v in versions
        if v.get("instance_id")
    ]
    _upsert(conn, entity_submission, links, ["project_id", "instance_id", "list_name"])


def list_watermark(conn: Connection, project_id: int, list_name: str) -> datetime | None:
    """The list's watermark, aware UTC (SQLite hands timestamps back naive)."""
    return as_utc(
        conn.execute(
            sa.select(entity_list.c.watermark).where(
                entity_list.c.project_id == project_id, entity_list.c.name == list_name
            )
        ).scalar()
    )


def save_list_watermark(
    conn: Connection, project_id: int, list_name: str, watermark: datetime | None, at: datetime
) -> None:
    _upsert(
        conn,
        entity_list,
        [{"project_id": project_id, "name": list_name, "watermark": watermark, "synced_at": at}],
        ["project_id", "name"],
    )
