"""Read-only queries over the store, for the API and the exports: filters, pages, one
submission, repeats, streamed rows, data issues, sync history.

Everything here reads; only ``collector.store`` writes. Every row query is built from a
:class:`~collector.read.forminfo.FormInfo` (column names never come from input) and applies a
:class:`~collector.read.forminfo.Scope` (sensitive values, districts), so no route can forget it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.read.cursors import (
    INT64_MAX,
    INT64_MIN,
    SortKey,
    after_cursor,
    cursor_sort_value,
    decode_cursor,
    encode_cursor,
    order_by,
    sort_column,
)
from collector.read.forminfo import (
    SYSTEM_REPEAT,
    FieldInfo,
    FormInfo,
    InvalidValue,
    Scope,
    UnknownName,
    Withheld,
    data_issue_t,
    form_info,
    form_t,
    link_table_for,
    submission_t,
    sync_run_t,
    table_for,
    unique,
)


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


# --- filters ---------------------------------------------------------------------------------

REVIEW_STATES = ("received", "hasIssues", "edited", "approved", "rejected")
"""Central's review states; ``received`` stands for Central's null (not reviewed yet)."""

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "has", "null", "notnull")


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


# Values one `in`/`has` condition may list: far above any real filter, and far below
# PostgreSQL's 65,535 bound parameters a statement, which a larger list would exceed (the
# driver's error would read as "store unavailable").
MAX_CONDITION_VALUES = 1000
# All the values one filter binds (conditions, districts, submitters), for the same reason.
MAX_FILTER_VALUES = 5000


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
        if raw:  # a value here would only sit in a URL for nothing
            raise InvalidValue("where", f"{name}:{op}:…", f"operator {op} takes no value")
        return FieldCondition(f, op, ())
    if raw is None or raw == "":
        raise InvalidValue("where", text, f"operator {op} needs a value")
    if op == "has" and not f.select_multiple:
        raise InvalidValue("where", text, "`has` is for select_multiple questions")
    if f.select_multiple and op not in ("has", "eq", "ne"):
        raise InvalidValue("where", text, "a select_multiple takes has (one choice), eq or ne")
    values = raw.split("|") if op in ("in", "has") else [raw]
    if len(values) > MAX_CONDITION_VALUES:
        raise InvalidValue(
            "where", f"{name}:{op}:…", f"at most {MAX_CONDITION_VALUES} values, got {len(values)}"
        )
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


def fields_read_by_filter(flt: SubmissionFilter, sort: SortKey | None = None) -> list[FieldInfo]:
    """The sensitive fields a filter or a sort reads for EVERY row it returns.

    ``where=visit/safety/violence_experienced:eq:yes`` with only a household id returned
    still tells, row by row, what the woman answered; ``sort=`` on a sensitive field tells
    it by the order. So these count as reads of each returned row, for the audit log.
    """
    out: list[FieldInfo] = []
    for c in flt.conditions:
        if c.field.sensitive and c.field not in out:
            out.append(c.field)
    sorted_by = sort.field if sort is not None else None
    if sorted_by is not None and sorted_by.sensitive and sorted_by not in out:
        out.append(sorted_by)
    return out


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


# Who sent a submission and from which tablet: the names of staff (a web user's name is often
# their e-mail address) and a device identifier, which point at people, not at data. For the
# manager role and up, as ``GET /v1/activity`` is (SEC-18); below it these columns read as
# null. ``submitter_id`` (Central's numeric actor id) stays, so analysts can still group and
# filter submissions by who sent them without learning who that is.
STAFF_IDENTITY_COLUMNS = frozenset({"submitter_name", "device_id"})


def _meta_select(scope: Scope) -> list[sa.ColumnElement]:
    s = submission_t
    return [
        s.c.id.label("_sid"),
        *(
            sa.null().label(c) if c in STAFF_IDENTITY_COLUMNS and not scope.sensitive else s.c[c]
            for c in META_COLUMNS
        ),
    ]


def value_key(column: str) -> str:
    """The result key of a field's column: prefixed, so that a question named like a
    metadata column (``district``, ``instance_id``) never collides with it."""
    return "v_" + column


def _value_select(fields: list[FieldInfo], table: sa.TableClause) -> list[sa.ColumnElement]:
    """The fields' value columns, each dateTime's recorded offset right after its instant
    (``offset_key``), so every output can write the time as Collect recorded it."""
    out = []
    for f in fields:
        out += [table.c[c].label(value_key(c)) for c in f.value_columns()]
        if f.offset_column():
            out.append(table.c[f.offset_column()].label(offset_key(f)))
    return out


def offset_key(f: FieldInfo) -> str:
    """The result key of a dateTime field's recorded offset (``v_<column>__tzmin``)."""
    return value_key(f.offset_column() or "")


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
    col = sort_column(sort, wide)
    joined = wide.join(s, s.c.instance_id == wide.c.instance_id)
    query = (
        sa.select(*_meta_select(scope), *_value_select(fields, wide))
        .select_from(joined)
        .where(*filter_conditions(form, flt, scope, wide))
        .order_by(*order_by(col, sort))
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        if cursor:
            row_id = decode_cursor(cursor, sort)
            # The scope (form, districts) and, like the filter, deleted rows only with
            # include_deleted (manager): a forged cursor naming a deleted submission let
            # an analyst sort around it and read its answers (issue 15, item 6). The other
            # filters are not applied: a row edited out of the filter since the last page
            # keeps its position.
            in_scope = [s.c.form_id == form.id, scope.district_condition(s.c.district)]
            if not flt.include_deleted:
                in_scope.append(s.c.deleted_at.is_(None))
            value = cursor_sort_value(conn, col, joined, in_scope, row_id, cursor)
            query = query.where(after_cursor(col, sort, value, row_id))
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(sort, rows[-1]["_sid"]) if more and rows else None
    return Page(rows, next_cursor)


def submission_one(
    engine: Engine, form: FormInfo, instance_id: str, *, scope: Scope
) -> dict[str, Any] | None:
    """One live submission the scope may see, with every visible field, or None."""
    wide = table_for(form)
    s = submission_t
    fields = form.visible_fields(None, scope)
    query = (
        sa.select(*_meta_select(scope), *_value_select(fields, wide))
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
    """Every matching row (of the wide table, or of one repeat's table), in batches.

    Each batch is read whole on a connection taken from the pool and given back before any
    of its rows is handed out, so a client that reads slowly, or stops reading, holds no
    database connection while it waits (issue 15: sixteen stalled CSV exports held every
    pooled connection and every other key got 500 for minutes). The next batch starts after
    the last one's key, ``(submitted_at, submission id)``, which never changes once stored
    (Central's ``submissionDate``), so keyset paging neither skips nor repeats a submission;
    a repeat's batch takes whole submissions (all their rows), never half of one. Memory
    stays one batch whatever the export's size. Rows are SQLAlchemy ``Row`` tuples
    (``row._fields`` names them), the cheapest thing to index; ``_sid`` and ``_sat`` are
    the keyset's columns, not the export's.
    """
    wide = table_for(form)
    s = submission_t
    joined = wide.join(s, s.c.instance_id == wide.c.instance_id)
    where = filter_conditions(form, flt, scope, wide)
    keys = sa.select(s.c.submitted_at, s.c.id).select_from(joined).where(*where)
    if repeat is None:
        cols = [*_meta_select(scope), s.c.submitted_at.label("_sat"), *_value_select(fields, wide)]
        order = [s.c.submitted_at, s.c.id]
        rows_from: sa.FromClause = joined
    else:
        rt = table_for(form, repeat.path)
        rows_from = joined.join(rt, rt.c.instance_id == wide.c.instance_id)
        cols = [
            s.c.id.label("_sid"),
            s.c.submitted_at.label("_sat"),
            *(rt.c[c] for c in SYSTEM_REPEAT),
            s.c.district,
            *_value_select(fields, rt),
        ]
        order = [s.c.submitted_at, s.c.id, rt.c.parent_row_id, rt.c.position]
    query = sa.select(*cols).select_from(rows_from).where(*where).order_by(*order)
    last: tuple[Any, int] | None = None
    while True:
        after = [] if last is None else [_after_key(*last)]
        with engine.connect() as conn:
            if repeat is None:
                rows = conn.execute(query.where(*after).limit(batch)).all()
                upto = (rows[-1]._sat, rows[-1]._sid) if rows else None
                full = len(rows) == batch
            else:
                # The batch's last submission first, then every repeat row up to it.
                heads = conn.execute(
                    keys.where(*after).order_by(s.c.submitted_at, s.c.id).limit(batch)
                ).all()
                upto = (heads[-1][0], heads[-1][1]) if heads else None
                full = len(heads) == batch
                rows = (
                    conn.execute(query.where(*after, sa.not_(_after_key(*upto)))).all()
                    if upto is not None
                    else []
                )
        yield from rows
        if upto is None or not full:
            return
        last = upto


def _after_key(submitted_at: Any, sid: int) -> sa.ColumnElement[bool]:
    """Submissions after ``(submitted_at, id)`` in the exports' order (neither is NULL)."""
    s = submission_t
    return sa.and_(
        s.c.submitted_at >= submitted_at,
        sa.or_(s.c.submitted_at > submitted_at, s.c.id > sid),
    )


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
    """``data_issue`` rows this scope may see (its districts; deleted submissions' only for
    sensitive scopes, as elsewhere); the value of a sensitive field's issue is withheld
    (None, ``withheld`` true) unless the scope sees sensitive values.

    Sensitivity is the form's :class:`FormInfo` verdict, the same the rows and exports
    obey (fail-closed rules included: undescribed questions, forms whose XLSForm was never
    recorded, staff identity metadata), not the raw ``form_field.sensitive`` column. A
    path no field of the form has is treated as sensitive."""
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
        )
        .select_from(
            d.join(form_t, form_t.c.id == d.c.form_id).outerjoin(
                s, sa.and_(s.c.form_id == d.c.form_id, s.c.instance_id == d.c.instance_id)
            )
        )
        .where(scope.district_condition(s.c.district))
        .order_by(d.c.id)
        .limit(limit)
    )
    if not scope.sensitive:
        query = query.where(s.c.deleted_at.is_(None))
    if form is not None:
        query = query.where(d.c.form_id == form.id)
    if after_id is not None:
        query = query.where(d.c.id > after_id)
    fields_by_form: dict[str, dict[str, FieldInfo]] = {}
    out = []
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        xml_form_id = row["xml_form_id"]
        if xml_form_id not in fields_by_form:
            info = form if form is not None else form_info(engine, xml_form_id)
            fields_by_form[xml_form_id] = {f.path: f for f in info.fields} if info else {}
        f = fields_by_form[xml_form_id].get(row["path"])
        sensitive = f is None or f.sensitive
        row["sensitive"] = sensitive
        row["column_name"] = f.column_name if f is not None else None
        row["withheld"] = sensitive and not scope.sensitive
        if row["withheld"]:
            row["value"] = None
        out.append(row)
    return out
