"""Forms as the store describes them, what a caller may see, and the errors queries raise.

:class:`FormInfo` is a form as ``form``, ``form_field`` and ``form_choice`` describe it:
where each question's values live (table, column, link table) and whether it is sensitive.
Every query over per-form tables is built from it, so a column name never comes from input.
:class:`Scope` is what a caller may see: sensitive values or not, and which districts' rows.
Reads only; ``collector.store`` is the only writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collector.errors import QueryError
from collector.forms.spec import LANGUAGES, is_staff_identity_type
from collector.store import models
from collector.store.caches import caches_for
from collector.store.layout import (
    OFFSET_SQL_TYPE,
    SYSTEM_MAIN,
    SYSTEM_REPEAT,
    column_kind,
    offset_column,
    sql_type,
)

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
    # A dateTime whose table has its offset column (layout.offset_column): stores made
    # before it existed lack it until their next sync adds it.
    has_offset: bool = False

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

    def offset_column(self) -> str | None:
        """The column holding the UTC offset Collect recorded with this dateTime answer
        (None: not a dateTime, or a table made before offsets were kept)."""
        if not self.has_offset or not self.column_name:
            return None
        return offset_column(self.column_name)


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


def column_type(f: FieldInfo) -> sa.types.TypeEngine:
    """The SQL type of a field's column, so binds and results convert on both databases."""
    if f.select_multiple:
        return sa.Text()
    return sql_type(column_kind(f.type, binary=f.binary))  # what the sync created


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
            columns.append(sa.column(c, column_type(f)))
        if f.offset_column():
            columns.append(sa.column(f.offset_column(), OFFSET_SQL_TYPE()))
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


# Fields Central adds to every form whose value is the submission's own id (never a secret);
# the store exempts the same paths from its own fail-closed rule.
PUBLIC_UNDESCRIBED = frozenset({"/meta/instanceID", "/meta/deprecatedID"})


def _undescribed(f: FieldInfo) -> bool:
    """A value field no XLSForm described: no label in any language and no XLSForm type
    (a spec gives every row, labelled or not, e.g. a calculate or ``start``, its type)."""
    return (
        f.has_values
        and f.xls_type is None
        and not any(f.labels.get(lang) for lang in LANGUAGES)
        and f.path not in PUBLIC_UNDESCRIBED
    )


_MARKABLE_CONTAINERS = frozenset({"begin_group", "begin_repeat"})


def _inherit_group_marks(fields: tuple[FieldInfo, ...]) -> tuple[FieldInfo, ...]:
    """Everything inside a group or repeat the XLSForm marks sensitive is sensitive.

    ``forms push`` records it so (``xlsform.sensitive_rows``); this also covers stores
    recorded before it did (issue 15, item 3: a district analyst read all three answers of
    the sensitive group ``safety``). Only containers an XLSForm described count: a group
    only Central knows (``meta``) is no designer's mark."""
    marked = tuple(
        f.path + "/" for f in fields if f.sensitive and f.xls_type in _MARKABLE_CONTAINERS
    )
    if not marked:
        return fields
    return tuple(
        replace(f, sensitive=True) if not f.sensitive and f.path.startswith(marked) else f
        for f in fields
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
    else:
        # One question no XLSForm ever described (added in Central's UI, outside `forms
        # push`): sensitive until a spec says otherwise. New stores record it so (SEC-14);
        # this also covers stores made before that fix, which recorded it as not sensitive.
        fields = tuple(replace(f, sensitive=True) if _undescribed(f) else f for f in fields)
    fields = tuple(
        replace(f, sensitive=True) if is_staff_identity_type(f.xls_type) else f for f in fields
    )
    fields = _inherit_group_marks(fields)
    fields = _with_offsets(conn, fields)
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


def _with_offsets(conn: Connection, fields: tuple[FieldInfo, ...]) -> tuple[FieldInfo, ...]:
    """Mark the dateTime fields whose table has the offset column (one inspection per
    table, when the form's description is rebuilt)."""
    dated = [f for f in fields if f.type == "dateTime" and f.has_values and f.table_name]
    if not dated:
        return fields
    paths = {f.path for f in dated}
    inspector = sa.inspect(conn)
    have: dict[str, set[str]] = {}
    for name in {f.table_name for f in dated if f.table_name}:
        try:
            have[name] = {c["name"] for c in inspector.get_columns(name)}
        except sa.exc.NoSuchTableError:
            have[name] = set()
    return tuple(
        replace(f, has_offset=True)
        if f.path in paths and offset_column(f.column_name or "") in have[f.table_name or ""]
        else f
        for f in fields
    )


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
        cache = caches_for(engine).form_info
        stamp = (row.id, row.updated_at, row.version, row.title)
        hit = cache.get(xml_form_id)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        info = _form_info(conn, row)
        cache[xml_form_id] = (stamp, info)
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


def unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order without repeats (for repeated query parameters)."""
    return list(dict.fromkeys(values))


# --- errors the API turns into 404 / 422 / 403 ---------------------------------------------


class UnknownName(QueryError, LookupError):
    """An unknown form, field, repeat, submission or indicator (the API answers 404)."""

    def __init__(self, kind: str, name: str, where: str = "") -> None:
        super().__init__(f"unknown {kind} {name!r}{' in ' + where if where else ''}")
        self.kind, self.name = kind, name


class InvalidValue(QueryError, ValueError):
    """A parameter whose value makes no sense here (the API answers 422 naming both)."""

    def __init__(self, parameter: str, value: Any, message: str) -> None:
        super().__init__(f"invalid {parameter}={value!r}: {message}")
        self.parameter, self.value, self.message = parameter, value, message


class Withheld(QueryError, PermissionError):
    """A sensitive field named by a caller who may not see it (the API answers 403)."""

    def __init__(self, parameter: str, name: str) -> None:
        super().__init__(
            f"{parameter}: the field {name!r} is sensitive; this key's role may not read, "
            "filter or sort by it"
        )
        self.parameter, self.name = parameter, name
