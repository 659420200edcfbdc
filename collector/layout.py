"""The per-form table layout's vocabulary, in one place. Pure: no I/O, no database.

Every part of collector that builds, writes or reads a form's tables takes from here:
which system columns a wide, repeat or link table has and their SQL types, what column
kind a Central field type becomes and its SQL type, and how a geopoint expands. Before,
the sync created ``BigInteger``/``Double`` columns while the API bound ``Integer``/
``Float`` and kept its own lists of system columns; now they cannot disagree.
:func:`collector.normalize.form_shape` turns a form's fields into tables and names with
this vocabulary; ``storage/tables.py`` creates them; ``forminfo``/``queries`` read them.
"""

from __future__ import annotations

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


def sql_type(kind: str) -> sa.types.TypeEngine:
    """The SQL type of a (non-geopoint) column of this kind."""
    if kind == "geopoint":
        return GEOPOINT_SQL_TYPE()
    return SQL_TYPE_OF_KIND[kind]()
