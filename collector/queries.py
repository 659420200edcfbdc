"""Read-only queries over the store, for the API and the exports.

Everything here reads; only ``collector.store`` writes. Two ideas run through it:

- :class:`FormInfo` is a form as the store describes it (``form``, ``form_field``,
  ``form_choice``): where each question's values live and whether it is sensitive. Every
  query over per-form tables is built from it, so a column name never comes from input.
- :class:`Scope` is what the caller may see: whether sensitive values are withheld, and
  which districts' rows. Every row query applies it, so no route can forget it.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collector import models
from collector.formspec import LANGUAGES

form_t = models.Form.__table__
field_t = models.FormField.__table__
choice_t = models.FormChoice.__table__
version_t = models.FormVersion.__table__
submission_t = models.Submission.__table__
sync_state_t = models.SyncState.__table__
sync_run_t = models.SyncRun.__table__
data_issue_t = models.DataIssue.__table__

# Central field types whose values we can filter and sort as numbers, dates or text.
NUMERIC_TYPES = frozenset({"int", "decimal"})
DATE_TYPES = frozenset({"date", "dateTime"})
CONTAINER_TYPES = frozenset({"structure", "repeat"})


@dataclass(frozen=True)
class Scope:
    """What a caller may see: built by the API from the verified key."""

    sensitive: bool  # may read sensitive values
    districts: frozenset[str] | None  # None: every district

    def district_condition(self, column: sa.ColumnElement) -> sa.ColumnElement[bool]:
        """True for rows this scope may see (a NULL district is outside every limited scope)."""
        if self.districts is None:
            return sa.true()
        if not self.districts:
            return sa.false()
        return column.in_(sorted(self.districts))


@dataclass(frozen=True)
class FieldInfo:
    path: str
    name: str
    type: str
    xls_type: str | None
    repeat_path: str | None
    table_name: str | None
    column_name: str | None
    link_table: str | None
    labels: dict[str, str | None]
    hints: dict[str, str | None]
    choice_list: str | None
    sensitive: bool
    select_multiple: bool
    binary: bool
    position: int

    @property
    def is_container(self) -> bool:
        return self.type in CONTAINER_TYPES

    @property
    def is_geopoint(self) -> bool:
        return self.type == "geopoint"

    @property
    def has_values(self) -> bool:
        return not self.is_container and bool(self.column_name)

    def value_columns(self) -> list[str]:
        """The per-form table columns holding this field's value."""
        if not self.has_values:
            return []
        assert self.column_name
        if self.is_geopoint:
            return [f"{self.column_name}_{p}" for p in ("lat", "lon", "alt", "acc")]
        return [self.column_name]


@dataclass(frozen=True)
class FormInfo:
    id: int
    xml_form_id: str
    title: str | None
    version: str | None
    table_name: str
    default_language: str
    project_id: int | None
    fields: tuple[FieldInfo, ...]
    choices: dict[str, dict[str, dict[str, str | None]]] = field(default_factory=dict)

    def field_named(self, key: str) -> FieldInfo | None:
        """A field by its path (``/g/q``), its column (``g__q``) or, when unambiguous, its name."""
        for f in self.fields:
            if (
                f.path == key
                or f.path == "/" + key.strip("/")
                or (f.column_name and f.column_name == key)
            ):
                return f
        named = [f for f in self.fields if f.name == key]
        return named[0] if len(named) == 1 else None

    def repeats(self) -> list[FieldInfo]:
        return [f for f in self.fields if f.type == "repeat"]

    def repeat_named(self, key: str) -> FieldInfo | None:
        f = self.field_named(key)
        return f if f is not None and f.type == "repeat" else None

    def fields_of(self, repeat_path: str | None) -> list[FieldInfo]:
        """Value-holding fields directly in the main table (None) or in one repeat's table."""
        return [f for f in self.fields if f.repeat_path == repeat_path and f.has_values]

    def visible_fields(self, repeat_path: str | None, scope: Scope) -> list[FieldInfo]:
        return [f for f in self.fields_of(repeat_path) if scope.sensitive or not f.sensitive]

    def choice_label(self, f: FieldInfo, value: str, lang: str) -> str:
        labels = self.choices.get(f.choice_list or "", {}).get(value)
        if not labels:
            return value
        return labels.get(lang) or labels.get(self.default_language) or value


_SQL_TYPE = {
    "int": sa.Integer,
    "decimal": sa.Float,
    "boolean": sa.Boolean,
    "date": sa.Date,
    "dateTime": lambda: sa.DateTime(timezone=True),
    "time": sa.Time,
}


def column_type(f: FieldInfo) -> sa.types.TypeEngine:
    """The SQL type of a field's column, so binds and results convert on both databases."""
    if f.is_geopoint:
        return sa.Float()
    if f.binary or f.select_multiple:
        return sa.Text()
    return _SQL_TYPE.get(f.type, sa.Text)()


SYSTEM_MAIN = {
    "instance_id": sa.Text,
    "form_version": sa.Text,
    "submitted_at": lambda: sa.DateTime(timezone=True),
    "updated_at": lambda: sa.DateTime(timezone=True),
    "deleted_at": lambda: sa.DateTime(timezone=True),
    "review_state": sa.Text,
}
SYSTEM_REPEAT = {
    "instance_id": sa.Text,
    "row_id": sa.Text,
    "parent_row_id": sa.Text,
    "position": sa.Integer,
}


def table_for(form: FormInfo, repeat_path: str | None = None) -> sa.TableClause:
    """The per-form table (or one repeat's table) as a typed SQLAlchemy table clause.

    Built from ``form_field`` (names the store chose), never from a request.
    """
    fields = form.fields_of(repeat_path)
    if repeat_path is None:
        name = form.table_name
        system = SYSTEM_MAIN
    else:
        rep = form.field_named(repeat_path)
        child = next(
            (f for f in form.fields if f.repeat_path == repeat_path and f.table_name), None
        )
        if rep is None or child is None or child.table_name is None:
            raise LookupError(f"repeat {repeat_path!r} of {form.xml_form_id!r} has no table yet")
        name = child.table_name
        system = SYSTEM_REPEAT
    columns = [sa.column(n, t()) for n, t in system.items()]
    for f in fields:
        for c in f.value_columns():
            columns.append(sa.column(c, column_type(f) if not f.is_geopoint else sa.Float()))
    return sa.table(name, *columns)


def link_table_for(f: FieldInfo) -> sa.TableClause:
    assert f.link_table
    return sa.table(
        f.link_table,
        sa.column("instance_id", sa.Text),
        sa.column("row_id", sa.Text),
        sa.column("position", sa.Integer),
        sa.column("value", sa.Text),
    )


def _field(row: sa.Row) -> FieldInfo:
    return FieldInfo(
        path=row.path,
        name=row.name,
        type=row.type,
        xls_type=row.xls_type,
        repeat_path=row.repeat_path,
        table_name=row.table_name,
        column_name=row.column_name,
        link_table=row.link_table,
        labels={lang: getattr(row, f"label_{lang}") for lang in LANGUAGES},
        hints={lang: getattr(row, f"hint_{lang}") for lang in LANGUAGES},
        choice_list=row.choice_list,
        sensitive=bool(row.sensitive),
        select_multiple=bool(row.select_multiple),
        binary=bool(row.binary),
        position=row.position,
    )


def _form_info(conn: Connection, row: sa.Row) -> FormInfo:
    fields = tuple(
        _field(r)
        for r in conn.execute(
            sa.select(field_t)
            .where(field_t.c.form_id == row.id)
            .order_by(field_t.c.position, field_t.c.id)
        )
    )
    if not any(f.labels.get("en") or f.labels.get("tg") or f.labels.get("ru") for f in fields):
        # The XLSForm was never recorded (only Central's /fields are known), so nobody has
        # said which questions are sensitive: treat them all as sensitive (fail closed).
        fields = tuple(replace(f, sensitive=True) if f.has_values else f for f in fields)
    choices: dict[str, dict[str, dict[str, str | None]]] = {}
    for c in conn.execute(
        sa.select(choice_t)
        .where(choice_t.c.form_id == row.id)
        .order_by(choice_t.c.list_name, choice_t.c.position, choice_t.c.id)
    ):
        choices.setdefault(c.list_name, {})[c.value] = {
            lang: getattr(c, f"label_{lang}") for lang in LANGUAGES
        }
    return FormInfo(
        id=row.id,
        xml_form_id=row.xml_form_id,
        title=row.title,
        version=row.version,
        table_name=row.table_name,
        default_language=row.default_language or "en",
        project_id=row.project_id,
        fields=fields,
        choices=choices,
    )


_FORM_CACHE: dict[tuple[str, int, str], tuple[tuple[Any, ...], FormInfo]] = {}


def form_info(engine: Engine, xml_form_id: str) -> FormInfo | None:
    """The form with its fields and choices, or None if the store does not know it.

    Building it reads every field and choice; it is kept per engine and rebuilt when the
    ``form`` row's ``updated_at`` moves (the store bumps it whenever it records the form's
    fields), so a request pays one small query for it.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.select(form_t).where(form_t.c.xml_form_id == xml_form_id)).first()
        if row is None:
            return None
        key = (str(engine.url), id(engine), xml_form_id)
        stamp = (row.id, row.updated_at, row.version, row.title)
        hit = _FORM_CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        info = _form_info(conn, row)
        _FORM_CACHE[key] = (stamp, info)
        return info


def all_forms(engine: Engine) -> list[FormInfo]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(form_t).order_by(form_t.c.xml_form_id)).all()
        return [_form_info(conn, r) for r in rows]


def form_versions(engine: Engine, form_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(version_t.c.version, version_t.c.first_seen_at)
            .where(version_t.c.form_id == form_id)
            .order_by(version_t.c.first_seen_at, version_t.c.id)
        )
        return [{"version": r.version, "first_seen_at": r.first_seen_at} for r in rows]


def submission_counts(engine: Engine, scope: Scope) -> dict[int, int]:
    """Live (not deleted) submissions per form id, in the caller's districts."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(submission_t.c.form_id, sa.func.count())
            .where(
                submission_t.c.deleted_at.is_(None),
                scope.district_condition(submission_t.c.district),
            )
            .group_by(submission_t.c.form_id)
        )
        return {r[0]: r[1] for r in rows}


def unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order without repeats (for repeated query parameters)."""
    return list(dict.fromkeys(values))


# --- errors the API turns into 404 / 422 / 403 ---------------------------------------------


class UnknownName(LookupError):
    """An unknown form, field, repeat, submission or indicator (the API answers 404)."""

    def __init__(self, kind: str, name: str, where: str = "") -> None:
        super().__init__(f"unknown {kind} {name!r}{' in ' + where if where else ''}")
        self.kind, self.name = kind, name


class InvalidValue(ValueError):
    """A parameter whose value makes no sense here (the API answers 422 naming both)."""

    def __init__(self, parameter: str, value: Any, message: str) -> None:
        super().__init__(f"invalid {parameter}={value!r}: {message}")
        self.parameter, self.value, self.message = parameter, value, message


class Withheld(PermissionError):
    """A sensitive field named by a caller who may not see it (the API answers 403)."""

    def __init__(self, parameter: str, name: str) -> None:
        super().__init__(
            f"{parameter}: the field {name!r} is sensitive; this key's role may not read, "
            "filter or sort by it"
        )
        self.parameter, self.name = parameter, name


# --- filters ---------------------------------------------------------------------------------

REVIEW_STATES = ("received", "hasIssues", "edited", "approved", "rejected")
"""Central's review states; ``received`` stands for Central's null (not reviewed yet)."""

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "has", "null", "notnull")
META_SORT_KEYS = (
    "submitted_at",
    "updated_at",
    "review_state",
    "district",
    "submitter_id",
    "instance_id",
)


@dataclass(frozen=True)
class FieldCondition:
    field: FieldInfo
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class SubmissionFilter:
    date_from: datetime | None = None
    date_to: datetime | None = None
    districts: tuple[str, ...] = ()
    review_states: tuple[str, ...] = ()
    submitters: tuple[str, ...] = ()
    conditions: tuple[FieldCondition, ...] = ()
    include_deleted: bool = False


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_value(f: FieldInfo, text: str, parameter: str) -> Any:
    """A filter value typed like the field's column; a clear 422 when it does not parse."""
    try:
        if f.type == "int":
            number = int(text)
            if not INT64_MIN <= number <= INT64_MAX:
                raise ValueError("out of the 64-bit integer range")
            return number
        if f.type == "decimal":
            real = float(text)
            if not math.isfinite(real):
                raise ValueError("not a finite number")
            return real
        if f.type == "time":
            return time.fromisoformat(text)
        if f.type == "date":
            return date.fromisoformat(text)
        if f.type == "dateTime":
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if f.type == "boolean":
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError("expected true or false")
    except ValueError as err:
        raise InvalidValue(parameter, text, f"{f.name} is {f.type}: {err}") from None
    return text


def parse_condition(form: FormInfo, text: str, scope: Scope) -> FieldCondition:
    """``field:op:value`` (``in`` takes ``a|b|c``; ``null``/``notnull`` take no value)."""
    parts = text.split(":", 2)
    if len(parts) < 2:
        raise InvalidValue("where", text, "expected field:op:value, e.g. respondent_age:gte:30")
    name, op = parts[0], parts[1]
    raw = parts[2] if len(parts) == 3 else None
    f = form.field_named(name)
    if f is None or not f.has_values:
        raise UnknownName("field", name, form.xml_form_id)
    if f.sensitive and not scope.sensitive:
        raise Withheld("where", name)
    if f.repeat_path is not None:
        raise InvalidValue(
            "where",
            text,
            f"{name} is inside the repeat {f.repeat_path}; filter on top-level fields",
        )
    if op not in OPERATORS:
        raise InvalidValue(
            "where", text, f"unknown operator {op!r}; expected one of {', '.join(OPERATORS)}"
        )
    if f.is_geopoint and op not in ("null", "notnull"):
        raise InvalidValue("where", text, "a geopoint can be filtered with null/notnull only")
    if op in ("null", "notnull"):
        return FieldCondition(f, op, ())
    if raw is None or raw == "":
        raise InvalidValue("where", text, f"operator {op} needs a value")
    if op == "has" and not f.select_multiple:
        raise InvalidValue("where", text, "`has` is for select_multiple questions")
    if f.select_multiple and op not in ("has", "eq", "ne"):
        raise InvalidValue("where", text, "a select_multiple takes has (one choice), eq or ne")
    values = raw.split("|") if op in ("in", "has") else [raw]
    return FieldCondition(f, op, tuple(parse_value(f, v, "where") for v in values))


def _condition_sql(c: FieldCondition, wide: sa.TableClause) -> sa.ColumnElement[bool]:
    f = c.field
    if c.op in ("null", "notnull"):
        col = wide.c[f.value_columns()[0]]
        return col.is_(None) if c.op == "null" else col.is_not(None)
    if c.op == "has":
        link = link_table_for(f)
        return sa.exists().where(
            link.c.instance_id == wide.c.instance_id,
            link.c.row_id == wide.c.instance_id,
            link.c.value.in_(list(c.values)),
        )
    col = wide.c[f.value_columns()[0]]
    v = c.values[0]
    return {
        "eq": lambda: col == v,
        "ne": lambda: sa.or_(col != v, col.is_(None)),
        "in": lambda: col.in_(list(c.values)),
        "gt": lambda: col > v,
        "gte": lambda: col >= v,
        "lt": lambda: col < v,
        "lte": lambda: col <= v,
    }[c.op]()


def filter_conditions(
    form: FormInfo, flt: SubmissionFilter, scope: Scope, wide: sa.TableClause
) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses over ``submission`` joined to the wide table, the scope always first."""
    s = submission_t
    conds: list[sa.ColumnElement[bool]] = [
        s.c.form_id == form.id,
        scope.district_condition(s.c.district),
    ]
    if not flt.include_deleted:
        conds.append(s.c.deleted_at.is_(None))
    if flt.date_from:
        conds.append(s.c.submitted_at >= flt.date_from)
    if flt.date_to:
        conds.append(s.c.submitted_at <= flt.date_to)
    if flt.districts:
        conds.append(s.c.district.in_(list(flt.districts)))
    if flt.review_states:
        states = [r for r in flt.review_states if r != "received"]
        either = [s.c.review_state.in_(states)] if states else []
        if "received" in flt.review_states:
            either.append(s.c.review_state.is_(None))
        conds.append(sa.or_(*either))
    if flt.submitters:
        conds.append(s.c.submitter_id.in_(list(flt.submitters)))
    conds.extend(_condition_sql(c, wide) for c in flt.conditions)
    return conds


# --- sorting and cursors ---------------------------------------------------------------------


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


def _sort_column(key: SortKey, wide: sa.TableClause) -> sa.ColumnElement:
    if key.field is None:
        return submission_t.c[key.name]
    return wide.c[key.field.value_columns()[0]]


def _cursor_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, time):
        return {"t": value.isoformat()}
    return value


def _from_cursor_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "dt" in value:
            return datetime.fromisoformat(value["dt"])
        if "d" in value:
            return date.fromisoformat(value["d"])
        if "t" in value:
            return time.fromisoformat(value["t"])
        raise ValueError("unknown cursor value")
    return value


def encode_cursor(key: SortKey, value: Any, row_id: int) -> str:
    payload = {
        "s": ("-" if key.descending else "") + key.name,
        "v": _cursor_value(value),
        "i": row_id,
    }
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _cursor_value_fits(key: SortKey, value: Any) -> bool:
    """A tampered cursor must get a 422, not reach the database with the wrong type."""
    if value is None:
        return not (key.field is None and key.name in NEVER_NULL_SORT)
    if key.field is None:
        wanted: tuple[type, ...] = (
            (datetime,) if key.name in ("submitted_at", "updated_at") else (str,)
        )
    else:
        wanted = {
            "int": (int,),
            "decimal": (int, float),
            "date": (date,),
            "dateTime": (datetime,),
            "time": (time,),
            "boolean": (bool,),
        }.get(key.field.type, (str,))
    if isinstance(value, bool) and bool not in wanted:
        return False
    if isinstance(value, datetime) and datetime not in wanted:
        return False  # a datetime is also a date
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT64_MIN <= value <= INT64_MAX
    ):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, wanted)


def decode_cursor(text: str, key: SortKey) -> tuple[Any, int]:
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if payload["s"] != ("-" if key.descending else "") + key.name:
            raise ValueError("the cursor belongs to another sort order")
        row_id = payload["i"]
        if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 <= row_id <= INT64_MAX:
            raise ValueError("bad cursor id")
        value = _from_cursor_value(payload["v"])
        if not _cursor_value_fits(key, value):
            raise ValueError("the cursor's value does not fit the sort key")
        return value, row_id
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as err:
        raise InvalidValue("cursor", text, f"not a cursor this list gave out ({err})") from None


NEVER_NULL_SORT = frozenset({"submitted_at", "instance_id"})
"""Sort keys that are never NULL (Central always sets ``submissionDate``): ordered plainly,
so that the ``(form_id, submitted_at)`` index gives the order and a page reads 101 rows
instead of sorting every match."""


def _after_cursor(
    col: sa.ColumnElement, key: SortKey, value: Any, row_id: int
) -> sa.ColumnElement[bool]:
    """Rows after the cursor in the order (value NULLs last, then submission id)."""
    s_id = submission_t.c.id
    beyond = (col < value) if key.descending else (col > value)
    id_beyond = (s_id < row_id) if key.descending else (s_id > row_id)
    if key.field is None and key.name in NEVER_NULL_SORT:
        return sa.or_(beyond, sa.and_(col == value, id_beyond))
    if value is None:
        return sa.and_(col.is_(None), id_beyond)
    return sa.or_(col.is_(None), beyond, sa.and_(col == value, id_beyond))


def _order_by(col: sa.ColumnElement, key: SortKey) -> list[sa.ColumnElement]:
    direction = (lambda c: c.desc()) if key.descending else (lambda c: c.asc())
    if key.field is None and key.name in NEVER_NULL_SORT:
        return [direction(col), direction(submission_t.c.id)]
    nulls_last = sa.case((col.is_(None), 1), else_=0)
    return [nulls_last, direction(col), direction(submission_t.c.id)]


# --- rows ------------------------------------------------------------------------------------

META_COLUMNS = (
    "instance_id",
    "form_version",
    "submitted_at",
    "updated_at",
    "deleted_at",
    "review_state",
    "district",
    "submitter_id",
    "submitter_name",
    "device_id",
)


def select_fields(
    form: FormInfo, names: Iterable[str], scope: Scope, repeat_path: str | None = None
) -> list[FieldInfo]:
    """The fields a caller asked for (all visible ones when none), each checked."""
    wanted = [n for n in names if n]
    if not wanted:
        return form.visible_fields(repeat_path, scope)
    out = []
    for n in unique(wanted):
        f = form.field_named(n)
        if f is None or not f.has_values or f.repeat_path != repeat_path:
            raise UnknownName(
                "field",
                n,
                form.xml_form_id if repeat_path is None else f"{form.xml_form_id}{repeat_path}",
            )
        if f.sensitive and not scope.sensitive:
            raise Withheld("fields", n)
        out.append(f)
    return out


def _meta_select() -> list[sa.ColumnElement]:
    s = submission_t
    return [s.c.id.label("_sid"), *(s.c[c] for c in META_COLUMNS)]


def value_key(column: str) -> str:
    """The result key of a field's column: prefixed, so that a question named like a
    metadata column (``district``, ``instance_id``) never collides with it."""
    return "v_" + column


def _value_select(fields: list[FieldInfo], table: sa.TableClause) -> list[sa.ColumnElement]:
    return [table.c[c].label(value_key(c)) for f in fields for c in f.value_columns()]


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def submissions_page(
    engine: Engine,
    form: FormInfo,
    *,
    flt: SubmissionFilter,
    scope: Scope,
    fields: list[FieldInfo],
    sort: SortKey,
    limit: int,
    cursor: str | None = None,
) -> Page:
    """One page of a form's submissions (metadata plus the chosen fields' columns)."""
    wide = table_for(form)
    s = submission_t
    col = _sort_column(sort, wide)
    query = (
        sa.select(*_meta_select(), col.label("_sort"), *_value_select(fields, wide))
        .select_from(wide.join(s, s.c.instance_id == wide.c.instance_id))
        .where(*filter_conditions(form, flt, scope, wide))
        .order_by(*_order_by(col, sort))
        .limit(limit + 1)
    )
    if cursor:
        value, row_id = decode_cursor(cursor, sort)
        query = query.where(_after_cursor(col, sort, value, row_id))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(sort, rows[-1]["_sort"], rows[-1]["_sid"]) if more and rows else None
    )
    return Page(rows, next_cursor)


def submission_one(
    engine: Engine, form: FormInfo, instance_id: str, *, scope: Scope
) -> dict[str, Any] | None:
    """One live submission the scope may see, with every visible field, or None."""
    wide = table_for(form)
    s = submission_t
    fields = form.visible_fields(None, scope)
    query = (
        sa.select(*_meta_select(), *_value_select(fields, wide))
        .select_from(wide.join(s, s.c.instance_id == wide.c.instance_id))
        .where(
            *filter_conditions(form, SubmissionFilter(), scope, wide),
            s.c.instance_id == instance_id,
        )
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def repeat_rows(
    engine: Engine, form: FormInfo, repeat: FieldInfo, instance_ids: list[str], *, scope: Scope
) -> list[dict[str, Any]]:
    """The repeat's rows for these submissions (callers pass ids they were allowed to see)."""
    table = table_for(form, repeat.path)
    fields = form.visible_fields(repeat.path, scope)
    query = (
        sa.select(*(table.c[c] for c in SYSTEM_REPEAT), *_value_select(fields, table))
        .where(table.c.instance_id.in_(instance_ids))
        .order_by(table.c.instance_id, table.c.parent_row_id, table.c.position)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def stream_rows(
    engine: Engine,
    form: FormInfo,
    *,
    flt: SubmissionFilter,
    scope: Scope,
    fields: list[FieldInfo],
    repeat: FieldInfo | None = None,
    batch: int = 1000,
) -> Iterator[sa.Row]:
    """Every matching row (of the wide table, or of one repeat's table), streamed.

    The database cursor is server-side on PostgreSQL (``stream_results``) and SQLite steps
    through its result as it goes, so memory stays flat whatever the size. Rows are
    SQLAlchemy ``Row`` tuples (``row._fields`` names them), the cheapest thing to index.
    """
    wide = table_for(form)
    s = submission_t
    joined = wide.join(s, s.c.instance_id == wide.c.instance_id)
    if repeat is None:
        cols = [*_meta_select(), *_value_select(fields, wide)]
        order = [s.c.submitted_at, s.c.id]
    else:
        rt = table_for(form, repeat.path)
        joined = joined.join(rt, rt.c.instance_id == wide.c.instance_id)
        cols = [
            s.c.id.label("_sid"),
            *(rt.c[c] for c in SYSTEM_REPEAT),
            s.c.district,
            *_value_select(fields, rt),
        ]
        order = [s.c.submitted_at, s.c.id, rt.c.parent_row_id, rt.c.position]
    query = (
        sa.select(*cols)
        .select_from(joined)
        .where(*filter_conditions(form, flt, scope, wide))
        .order_by(*order)
    )
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        yield from result


# --- sync history and data issues ------------------------------------------------------------


def last_ok_runs(engine: Engine) -> dict[str, datetime]:
    """Per form, when its last successful sync started."""
    r = sync_run_t
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.xml_form_id, sa.func.max(r.c.started_at))
            .where(r.c.status == "ok")
            .group_by(r.c.xml_form_id)
        )
        return {x: t for x, t in rows if t is not None}


def data_issues_page(
    engine: Engine,
    *,
    scope: Scope,
    form: FormInfo | None,
    limit: int,
    after_id: int | None,
) -> list[dict[str, Any]]:
    """``data_issue`` rows this scope may see (its districts); the value of a sensitive
    field's issue is withheld (None, ``withheld`` true) unless the scope sees sensitive values."""
    d, s = data_issue_t, submission_t
    query = (
        sa.select(
            d.c.id,
            form_t.c.xml_form_id,
            d.c.instance_id,
            d.c.path,
            d.c.row_key,
            d.c.value,
            d.c.reason,
            d.c.found_at,
            field_t.c.sensitive,
            field_t.c.column_name,
        )
        .select_from(
            d.join(form_t, form_t.c.id == d.c.form_id)
            .outerjoin(s, sa.and_(s.c.form_id == d.c.form_id, s.c.instance_id == d.c.instance_id))
            .outerjoin(
                field_t, sa.and_(field_t.c.form_id == d.c.form_id, field_t.c.path == d.c.path)
            )
        )
        .where(scope.district_condition(s.c.district))
        .order_by(d.c.id)
        .limit(limit)
    )
    if form is not None:
        query = query.where(d.c.form_id == form.id)
    if after_id is not None:
        query = query.where(d.c.id > after_id)
    out = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            row = dict(r._mapping)
            # A field the store does not describe is treated as sensitive: fail closed.
            sensitive = row.pop("sensitive") is not False
            row["sensitive"] = sensitive
            row["withheld"] = sensitive and not scope.sensitive
            if row["withheld"]:
                row["value"] = None
            out.append(row)
    return out
