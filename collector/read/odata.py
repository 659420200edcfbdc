"""A read-only OData v4 view of a form's tables, for Excel's and Power BI's "OData feed".

One service per form: an entity set ``Submissions`` (the main table) and one per repeat
(``Submissions_<repeat>``, each row with ``instance_id`` and ``parent_row_id``), described by
a CSDL ``$metadata`` document. Rows are read with the same :class:`~collector.read.forminfo.Scope`
as the API's lists (the fields a scope may not see are not properties at all, so an analyst's
``$metadata`` has no sensitive column; districts and deleted submissions as everywhere) and
paged by keyset (``$skiptoken``: the last submission id and repeat row id, never a value).

``$filter`` is parsed by the ``odata-query`` library into SQLAlchemy, over a fixed set of
identifiers: ``submitted_at``, ``updated_at``, ``district``, ``review_state`` and the date
questions the scope may see (top level). Anything else is refused with its name.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from xml.sax.saxutils import quoteattr

import orjson
import sqlalchemy as sa
from odata_query import ast as odata_ast
from odata_query import exceptions as odata_errors
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sqlalchemy.core import AstToSqlAlchemyCoreVisitor
from sqlalchemy.engine import Engine

from collector.read.forminfo import (
    SYSTEM_REPEAT,
    FieldInfo,
    FormInfo,
    InvalidValue,
    Scope,
    submission_t,
    table_for,
)
from collector.read.queries import (
    STAFF_IDENTITY_COLUMNS,
    SubmissionFilter,
    filter_conditions,
    offset_key,
    value_key,
)
from collector.times import RecordedTime, recorded, value_text

NAMESPACE = "collector"
MAIN_SET = "Submissions"
MAX_FILTER_LENGTH = 2000
_EDM = {
    "int": "Edm.Int64",
    "decimal": "Edm.Double",
    "boolean": "Edm.Boolean",
    "date": "Edm.Date",
    "dateTime": "Edm.DateTimeOffset",
    "time": "Edm.TimeOfDay",
}
_META_MAIN = {
    "instance_id": "Edm.String",
    "submitted_at": "Edm.DateTimeOffset",
    "updated_at": "Edm.DateTimeOffset",
    "review_state": "Edm.String",
    "district": "Edm.String",
    "submitter_id": "Edm.String",
    "submitter_name": "Edm.String",
    "form_version": "Edm.String",
}
_META_REPEAT = {
    "instance_id": "Edm.String",
    "row_id": "Edm.String",
    "parent_row_id": "Edm.String",
    "position": "Edm.Int64",
    "district": "Edm.String",
}


@dataclass(frozen=True)
class EntitySet:
    """One table of the feed: its name, its properties (name -> Edm type) and its key."""

    name: str
    repeat: FieldInfo | None
    fields: list[FieldInfo]
    properties: dict[str, str]
    sources: dict[str, str]
    """Property name -> result key (a field's column is read as ``v_<column>``)."""
    offsets: dict[str, str] = field(default_factory=dict)
    """A dateTime answer's property -> the result key of the offset Collect recorded."""

    @property
    def type_name(self) -> str:
        return self.name + "_row"

    @property
    def key(self) -> str:
        return "instance_id" if self.repeat is None else "row_id"


def _entity_set(name: str, repeat: FieldInfo | None, fields: list[FieldInfo]) -> EntitySet:
    """Metadata properties first, then each field's columns; a column named like a
    metadata property (a question ``district``) becomes ``<column>_answer``."""
    meta = _META_MAIN if repeat is None else _META_REPEAT
    properties, sources = dict(meta), {m: m for m in meta}
    offsets: dict[str, str] = {}
    for f in fields:
        if f.is_geopoint:
            edm = "Edm.Double"
        elif f.select_multiple or f.binary:
            edm = "Edm.String"
        else:
            edm = _EDM.get(f.type, "Edm.String")
        for c in f.value_columns():
            prop = c if c not in properties else f"{c}_answer"
            properties[prop] = edm
            sources[prop] = value_key(c)
            if f.offset_column():
                offsets[prop] = offset_key(f)
    return EntitySet(name, repeat, fields, properties, sources, offsets)


def entity_sets(form: FormInfo, scope: Scope) -> list[EntitySet]:
    """The main table and every repeat with a table, with the fields this scope may see."""
    sets = [_entity_set(MAIN_SET, None, form.visible_fields(None, scope))]
    for rep in form.repeats():
        if not any(f.table_name for f in form.fields if f.repeat_path == rep.path):
            continue
        sets.append(
            _entity_set(f"{MAIN_SET}_{rep.name}", rep, form.visible_fields(rep.path, scope))
        )
    return sets


def metadata_xml(form: FormInfo, sets: list[EntitySet]) -> str:
    """The CSDL (OData v4) document describing the sets, as Excel and Power BI read it."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
        "<edmx:DataServices>",
        f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{NAMESPACE}">',
    ]
    for s in sets:
        out.append(f'<EntityType Name="{s.type_name}">')
        out.append(f'<Key><PropertyRef Name="{s.key}"/></Key>')
        for name, edm in s.properties.items():
            nullable = ' Nullable="false"' if name == s.key else ""
            out.append(f'<Property Name="{name}" Type="{edm}"{nullable}/>')
        out.append("</EntityType>")
    out.append('<EntityContainer Name="container">')
    for s in sets:
        out.append(f'<EntitySet Name="{s.name}" EntityType="{NAMESPACE}.{s.type_name}"/>')
    out.append("</EntityContainer>")
    title = quoteattr(form.title or form.xml_form_id)
    out.append(
        '<Annotations Target="collector.container">'
        f'<Annotation Term="Org.OData.Core.V1.Description" String={title}/></Annotations>'
    )
    out += ["</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(out)


# --- $filter -------------------------------------------------------------------------------


class _Visitor(AstToSqlAlchemyCoreVisitor):
    """odata-query's Core visitor over a fixed map of names to columns (no other name)."""

    def __init__(self, columns: dict[str, sa.ColumnElement]) -> None:
        self.columns = columns

    def visit_Identifier(self, node: odata_ast.Identifier) -> Any:
        try:
            return self.columns[node.name]
        except KeyError:
            raise odata_errors.InvalidFieldException(node.name) from None

    def visit_Compare(self, node: odata_ast.Compare) -> Any:
        """A comparison whose literal fits its column's type (PostgreSQL refuses
        ``district = 1``; the caller gets a 422 naming it instead of a 500)."""
        left, right = self.visit(node.left), self.visit(node.right)
        for col, lit in ((left, right), (right, left)):
            if isinstance(col, sa.ColumnClause):
                for one in lit if isinstance(lit, list | tuple) else [lit]:
                    if isinstance(one, sa.BindParameter) and one.value is not None:
                        _check_literal(col, one.value)
        return self.visit(node.comparator)(left, right)


def _check_literal(col: sa.ColumnClause, value: Any) -> None:
    if isinstance(col.type, sa.DateTime):
        ok = isinstance(value, date)
    elif isinstance(col.type, sa.Date):
        ok = isinstance(value, date) and not isinstance(value, datetime)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise TypeError(f"{col.name} cannot be compared with {value!r}")


def filterable(form: FormInfo, scope: Scope, wide: sa.TableClause) -> dict[str, Any]:
    """The names ``$filter`` may use: submission dates, district, review state, and the
    top-level date questions this scope may see."""
    s = submission_t
    columns: dict[str, Any] = {
        "submitted_at": s.c.submitted_at,
        "updated_at": s.c.updated_at,
        "district": s.c.district,
        "review_state": s.c.review_state,
    }
    for f in form.visible_fields(None, scope):
        if f.type in ("date", "dateTime") and f.column_name:
            columns[f.column_name] = wide.c[f.column_name]
    return columns


def parse_filter(text: str, columns: dict[str, Any]) -> sa.ColumnElement[bool]:
    """``$filter`` as a SQLAlchemy condition, or :class:`InvalidValue` naming the problem."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidValue(
            "$filter", text[:40] + "…", f"longer than {MAX_FILTER_LENGTH} characters"
        )
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(text))
        clause = _Visitor(columns).visit(tree)
        if not isinstance(getattr(clause, "type", None), sa.Boolean):
            raise TypeError("a $filter must be a condition (true or false), e.g. district eq 'x'")
        return clause
    except odata_errors.InvalidFieldException as err:
        raise InvalidValue(
            "$filter", text, f"{err}; filter on {', '.join(sorted(columns))}"
        ) from None
    except (odata_errors.ODataException, NotImplementedError, TypeError, ValueError) as err:
        raise InvalidValue("$filter", text, str(err) or type(err).__name__) from None


# --- rows ----------------------------------------------------------------------------------


def encode_token(sid: int, row_id: str | None) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"s": sid, "r": row_id})).decode()


def decode_token(text: str) -> tuple[int, str | None]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text.encode()))
        sid, row_id = data["s"], data["r"]
        if not isinstance(sid, int) or not (row_id is None or isinstance(row_id, str)):
            raise TypeError
        return sid, row_id
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise InvalidValue("$skiptoken", text[:40], "not a token this feed wrote") from None


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_token: str | None
    count: int | None


def read_page(
    engine: Engine,
    form: FormInfo,
    es: EntitySet,
    scope: Scope,
    *,
    filter_text: str | None,
    top: int,
    skip: int,
    token: str | None,
    with_count: bool,
) -> Page:
    """One page of a set's rows (at most ``top``), in submission order, and the next token;
    ``filter_text`` is ``$filter``, checked before anything is read."""
    wide = table_for(form)
    s = submission_t
    joined = wide.join(s, s.c.instance_id == wide.c.instance_id)
    meta = [
        sa.null().label(c) if c in STAFF_IDENTITY_COLUMNS and not scope.sensitive else s.c[c]
        for c in _META_MAIN
        if c != "instance_id"
    ]
    if es.repeat is None:
        table = wide
        cols = [s.c.id.label("_sid"), s.c.instance_id, *meta]
        row_key = None
    else:
        table = table_for(form, es.repeat.path)
        joined = joined.join(table, table.c.instance_id == wide.c.instance_id)
        cols = [s.c.id.label("_sid"), *(table.c[c] for c in SYSTEM_REPEAT), s.c.district]
        row_key = table.c.row_id
    cols += [table.c[c].label(value_key(c)) for f in es.fields for c in f.value_columns()]
    cols += [
        table.c[f.offset_column()].label(offset_key(f)) for f in es.fields if f.offset_column()
    ]
    conds = filter_conditions(form, SubmissionFilter(), scope, wide)
    if filter_text:  # over this query's own table clause, or SQL would see two tables
        conds.append(parse_filter(filter_text, filterable(form, scope, wide)))
    order = [s.c.id] if row_key is None else [s.c.id, row_key]
    query = sa.select(*cols).select_from(joined).where(*conds).order_by(*order)
    count = None
    with engine.connect() as conn:
        if with_count:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(joined).where(*conds)
            ).scalar_one()
        if token:
            sid, rid = decode_token(token)
            if row_key is None:
                query = query.where(s.c.id > sid)
            else:
                query = query.where(
                    sa.or_(s.c.id > sid, sa.and_(s.c.id == sid, row_key > (rid or "")))
                )
        elif skip:
            query = query.offset(skip)
        rows = [dict(r._mapping) for r in conn.execute(query.limit(top + 1))]
    more = len(rows) > top
    rows = rows[:top]
    next_token = None
    if more and rows:
        last = rows[-1]
        next_token = encode_token(last["_sid"], last.get("row_id") if row_key is not None else None)
    return Page(rows, next_token, count)


def json_row(es: EntitySet, row: dict[str, Any]) -> dict[str, Any]:
    """A row as OData JSON: only the set's properties, each in its Edm type's form."""
    out: dict[str, Any] = {}
    for name, edm in es.properties.items():
        value = row.get(es.sources[name])
        if name in es.offsets and isinstance(value, datetime):  # as Central: the offset kept
            value = recorded(value, row.get(es.offsets[name]))
        out[name] = _edm_value(edm, value)
    return out


def _edm_value(edm: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, RecordedTime):
        return value_text(value)
    if edm == "Edm.DateTimeOffset" and isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if edm in ("Edm.Date", "Edm.TimeOfDay") and isinstance(value, date | time):
        return value.isoformat()
    if edm == "Edm.String" and not isinstance(value, str):
        return str(value)
    return value


def sensitive_reads(es: EntitySet, rows: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(instance id, sensitive columns with a value) for each row, for the audit log."""
    watched = [c for f in es.fields if f.sensitive for c in f.value_columns()]
    out = []
    for row in rows:
        read = [c for c in watched if row.get(value_key(c)) is not None]
        if read:
            out.append((row["instance_id"], read))
    return out
