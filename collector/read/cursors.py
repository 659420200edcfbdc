"""Sorting a form's submissions and the opaque cursors that page through them.

A cursor is the sort order and the last row's submission id, base64 JSON, with no sort
value in it (cursors end up in URLs and access logs; the value is re-read from the store
under the caller's scope). It is checked on the way back in, so a tampered one is a 422,
never a database error. Keyset paging: a page costs the same on page 1 and page 1,000.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from collector.read.forminfo import (
    FieldInfo,
    FormInfo,
    InvalidValue,
    Scope,
    UnknownName,
    Withheld,
    submission_t,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
META_SORT_KEYS = (
    "submitted_at",
    "updated_at",
    "review_state",
    "district",
    "submitter_id",
    "instance_id",
)

# --- sort keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    name: str  # as the caller wrote it, without the leading '-'
    descending: bool
    field: FieldInfo | None  # None for submission metadata


def parse_sort(form: FormInfo, text: str, scope: Scope) -> SortKey:
    descending = text.startswith("-")
    name = text.lstrip("-+")
    if name in META_SORT_KEYS:
        return SortKey(name, descending, None)
    f = form.field_named(name)
    if f is None or not f.has_values or f.repeat_path is not None:
        raise UnknownName("field", name, form.xml_form_id)
    if f.sensitive and not scope.sensitive:
        raise Withheld("sort", name)
    if f.is_geopoint or f.select_multiple:
        raise InvalidValue("sort", text, f"{name} ({f.type}) cannot be sorted")
    return SortKey(name, descending, f)


def sort_column(key: SortKey, wide: sa.TableClause) -> sa.ColumnElement:
    if key.field is None:
        return submission_t.c[key.name]
    return wide.c[key.field.value_columns()[0]]


CURSOR_VERSION = 2
"""Version 1 cursors carried the last row's sort value; they are refused (a 422)."""


def encode_cursor(key: SortKey, row_id: int) -> str:
    """The sort order and the last row's submission id, and nothing else.

    No sort VALUE: a cursor travels in the next page's URL, which proxies and access logs
    keep, and a list sorted by a respondent's name or phone would put that name or phone
    there. :func:`cursor_sort_value` reads the value back from the store instead.
    """
    payload = {"v": CURSOR_VERSION, "s": ("-" if key.descending else "") + key.name, "i": row_id}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(text: str, key: SortKey) -> int:
    """The submission id a cursor of this sort order points after (422 when it is not one)."""
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
            raise ValueError("unknown cursor version")
        if payload["s"] != ("-" if key.descending else "") + key.name:
            raise ValueError("the cursor belongs to another sort order")
        row_id = payload["i"]
        if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 <= row_id <= INT64_MAX:
            raise ValueError("bad cursor id")
        return row_id
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as err:
        raise InvalidValue("cursor", text, f"not a cursor this list gave out ({err})") from None


def cursor_sort_value(
    conn: sa.Connection,
    col: sa.ColumnElement,
    joined: sa.FromClause,
    scope_conditions: list[sa.ColumnElement[bool]],
    row_id: int,
    text: str,
) -> Any:
    """The sort value of the cursor's submission, read under the caller's scope (the same
    form and districts), so a forged id of a row the caller may not see is a 422, never a
    position that tells where that row's value lies."""
    row = conn.execute(
        sa.select(col).select_from(joined).where(*scope_conditions, submission_t.c.id == row_id)
    ).first()
    if row is None:
        raise InvalidValue("cursor", text, "not a cursor this list gave out (no such row)")
    return row[0]


NEVER_NULL_SORT = frozenset({"submitted_at", "instance_id"})
"""Sort keys that are never NULL (Central always sets ``submissionDate``): ordered plainly,
so that the ``(form_id, submitted_at)`` index gives the order and a page reads 101 rows
instead of sorting every match."""


def after_cursor(
    col: sa.ColumnElement, key: SortKey, value: Any, row_id: int
) -> sa.ColumnElement[bool]:
    """Rows after the cursor in the order (value NULLs last, then submission id)."""
    s_id = submission_t.c.id
    id_beyond = (s_id < row_id) if key.descending else (s_id > row_id)
    if value is None:
        # The cursor's row has no value: only rows without one, after it, are left (NULLs
        # sort last). Checked before any comparison with the value, which SQLAlchemy
        # refuses for None (issue 15, item 7: a 500 on following next_cursor).
        return sa.and_(col.is_(None), id_beyond)
    beyond = (col < value) if key.descending else (col > value)
    if key.field is None and key.name in NEVER_NULL_SORT:
        # The plain range (col <= value) is implied by the OR; stated alone it lets both
        # planners scan the (form_id, submitted_at) index from the cursor on, where the OR
        # alone made PostgreSQL filter every row before it (0.6 s a page at 100,000).
        within = (col <= value) if key.descending else (col >= value)
        return sa.and_(within, sa.or_(beyond, sa.and_(col == value, id_beyond)))
    return sa.or_(col.is_(None), beyond, sa.and_(col == value, id_beyond))


def order_by(col: sa.ColumnElement, key: SortKey) -> list[sa.ColumnElement]:
    direction = (lambda c: c.desc()) if key.descending else (lambda c: c.asc())
    if key.field is None and key.name in NEVER_NULL_SORT:
        return [direction(col), direction(submission_t.c.id)]
    nulls_last = sa.case((col.is_(None), 1), else_=0)
    return [nulls_last, direction(col), direction(submission_t.c.id)]
