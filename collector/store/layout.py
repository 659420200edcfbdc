"""The per-form table layout's vocabulary, in one place. Pure: no I/O, no database.

Every part of collector that builds, writes or reads a form's tables takes from here:
which system columns a wide, repeat or link table has and their SQL types, what column
kind a Central field type becomes and its SQL type, and how a geopoint expands. Before,
the sync created ``BigInteger``/``Double`` columns while the API bound ``Integer``/
``Float`` and kept its own lists of system columns; now they cannot disagree.
:func:`collector.sync.normalize.form_shape` turns a form's fields into tables and names with
this vocabulary; ``store/tables.py`` creates them; ``forminfo``/``queries`` read them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa

TypeFactory = Callable[[], sa.types.TypeEngine]


def _aware_datetime() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


# Central's /fields type -> our column kind (central-backend lib/data/schema.js getFormFields)
KIND_OF_CENTRAL_TYPE: dict[str, str] = {
    "string": "text",
    "int": "int",
    "decimal": "decimal",
    "boolean": "bool",
    "date": "date",
    "dateTime": "datetime",
    "time": "time",
    "geopoint": "geopoint",
    "geotrace": "json",
    "geoshape": "json",
    "binary": "text",
    "barcode": "text",
}

# Column kind -> SQL type. A geopoint's four columns are each GEOPOINT_SQL_TYPE.
SQL_TYPE_OF_KIND: dict[str, TypeFactory] = {
    "text": sa.Text,
    "int": sa.BigInteger,
    "decimal": sa.Double,
    "bool": sa.Boolean,
    "date": sa.Date,
    "datetime": _aware_datetime,
    "time": sa.Time,
    "json": sa.Text,
}
GEOPOINT_PARTS = ("lat", "lon", "alt", "acc")
GEOPOINT_SQL_TYPE: TypeFactory = sa.Double

# A dateTime answer is two columns: the instant (aware, UTC; filters, sorts and indicators
# use it) and the UTC offset Collect recorded with it, in minutes (``+05:00`` -> 300), so
# every output can write the time as recorded. NULL offset: unknown (rows stored before
# the column existed and never re-read, or text without a zone); written in UTC with Z.
OFFSET_SUFFIX = "__tzmin"
OFFSET_SQL_TYPE: TypeFactory = sa.SmallInteger

# System columns of each kind of per-form table, in order, with their SQL types.
SYSTEM_MAIN: dict[str, TypeFactory] = {
    "instance_id": sa.Text,
    "form_version": sa.Text,
    "submitted_at": _aware_datetime,
    "updated_at": _aware_datetime,
    "deleted_at": _aware_datetime,
    "review_state": sa.Text,
}
SYSTEM_REPEAT: dict[str, TypeFactory] = {
    "instance_id": sa.Text,
    "row_id": sa.Text,
    "parent_row_id": sa.Text,
    "position": sa.Integer,
}
LINK: dict[str, TypeFactory] = {
    "instance_id": sa.Text,
    "row_id": sa.Text,
    "position": sa.Integer,
    "value": sa.Text,
}
SYSTEM_COLUMNS_MAIN = tuple(SYSTEM_MAIN)
SYSTEM_COLUMNS_REPEAT = tuple(SYSTEM_REPEAT)
LINK_COLUMNS = tuple(LINK)


def column_kind(central_type: str | None, *, binary: bool = False) -> str:
    """The column kind of a Central field type (a file's column holds its name: text)."""
    if binary:
        return "text"
    return KIND_OF_CENTRAL_TYPE.get(central_type or "string", "text")


def geopoint_columns(name: str) -> tuple[str, ...]:
    """The four columns a geopoint named ``name`` is stored in."""
    return tuple(f"{name}_{p}" for p in GEOPOINT_PARTS)


def offset_column(name: str) -> str:
    """The companion column holding the recorded UTC offset of the dateTime ``name``
    (a name too long for PostgreSQL's 63 characters keeps its start and a hash)."""
    out = name + OFFSET_SUFFIX
    if len(out) <= 63:
        return out
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: 63 - len(OFFSET_SUFFIX) - 9]}_{digest}{OFFSET_SUFFIX}"


def stored_columns(name: str, kind: str) -> tuple[tuple[str, TypeFactory], ...]:
    """Every column (name, SQL type) a question of this kind named ``name`` is stored in:
    a geopoint's four parts, a dateTime's instant and offset, else the one column."""
    if kind == "geopoint":
        return tuple((c, GEOPOINT_SQL_TYPE) for c in geopoint_columns(name))
    if kind == "datetime":
        return ((name, SQL_TYPE_OF_KIND[kind]), (offset_column(name), OFFSET_SQL_TYPE))
    return ((name, SQL_TYPE_OF_KIND[kind]),)


def sql_type(kind: str) -> sa.types.TypeEngine:
    """The SQL type of a (non-geopoint) column of this kind."""
    if kind == "geopoint":
        return GEOPOINT_SQL_TYPE()
    return SQL_TYPE_OF_KIND[kind]()
