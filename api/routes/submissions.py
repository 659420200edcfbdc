"""A form's submissions: filtered, sorted, cursor-paged, one with its repeats. Analyst and up;
sensitive values only for managers (and each such read is audited)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from api.audit import audit_reads
from api.deps import (
    AnalystDep,
    EngineDep,
    Lang,
    SettingsDep,
    SubmissionFilterBody,
    SubmissionParams,
    SubmissionParamsDep,
    form_or_404,
    scope_for,
    split_list,
)
from collector.read.cursors import parse_sort
from collector.read.exportcols import is_geoline, odk_geometry
from collector.read.forminfo import FieldInfo, FormInfo, InvalidValue, UnknownName
from collector.read.queries import (
    META_COLUMNS,
    fields_read_by_filter,
    offset_key,
    repeat_rows,
    select_fields,
    submission_one,
    submissions_page,
    value_key,
)
from collector.settings import Settings
from collector.store.keys import Caller
from collector.times import UtcTime, recorded, value_text

router = APIRouter(tags=["submissions"])

# The page wanted, said once for the GET list's query and the POST query's body.
PAGE_DOCS = {
    "sort": "`submitted_at`, `updated_at`, ... or a field; `-` for descending.",
    "fields": "Fields to return (names or paths); all by default.",
    "lang": "Add choice labels in this language.",
    "limit": "Page size (capped by the server).",
    "cursor": "`next_cursor` of the previous page.",
}


class RepeatRowOut(BaseModel):
    row_id: str
    parent_row_id: str | None
    position: int
    values: dict[str, Any]
    labels: dict[str, Any] | None = None


class SubmissionOut(BaseModel):
    instance_id: str
    form_version: str | None
    submitted_at: UtcTime | None
    updated_at: UtcTime | None
    deleted_at: UtcTime | None
    review_state: str | None
    district: str | None
    submitter_id: str | None = Field(description="Central's submitterId: who sent it, as a number.")
    submitter_name: str | None = Field(
        description="The sender's name in Central (staff: often an e-mail). Manager and up; "
        "null below (SEC-18)."
    )
    device_id: str | None = Field(
        description="The deviceID Collect sent. Manager and up; null below (SEC-18)."
    )
    values: dict[str, Any]
    labels: dict[str, Any] | None = None
    repeats: dict[str, list[RepeatRowOut]] | None = None


class SubmissionPageOut(BaseModel):
    form_id: str
    limit: int
    items: list[SubmissionOut]
    next_cursor: str | None


def values_out(
    form: FormInfo, fields: list[FieldInfo], row: dict[str, Any], lang: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Values keyed by column name (geopoints as one object, geotraces and geoshapes as
    GeoJSON LineStrings and Polygons, select_multiple as a list),
    and, given a language, the choice labels."""
    values: dict[str, Any] = {}
    labels: dict[str, Any] | None = {} if lang else None
    for f in fields:
        if f.is_geopoint:
            lat, lon, alt, acc = (row.get(value_key(c)) for c in f.value_columns())
            values[f.column_name or f.name] = (
                None
                if lat is None and lon is None
                else {"lat": lat, "lon": lon, "alt": alt, "acc": acc}
            )
            continue
        value = row.get(value_key(f.column_name or ""))
        if is_geoline(f) and value is not None:
            value = odk_geometry(f, value) or value  # GeoJSON; text ODK wrote, if not one
        if isinstance(value, datetime) and f.offset_column():
            value = recorded(value, row.get(offset_key(f)))  # at the offset Collect recorded
        if isinstance(value, datetime | date | time):
            value = value_text(value)  # dateTime with its zone, the same on both databases
        if f.select_multiple:
            value = None if value is None else str(value).split()
        values[f.column_name or f.name] = value
        if labels is not None and f.choice_list and value is not None:
            if isinstance(value, list):
                labels[f.column_name or f.name] = [
                    form.choice_label(f, v, lang or "en") for v in value
                ]
            else:
                labels[f.column_name or f.name] = form.choice_label(f, str(value), lang or "en")
    return values, labels


def sensitive_read(fields: list[FieldInfo], row: dict[str, Any]) -> list[str]:
    return [
        c
        for f in fields
        if f.sensitive
        for c in f.value_columns()
        if row.get(value_key(c)) is not None
    ]


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in META_COLUMNS}


@router.get("/forms/{form_id}/submissions", response_model=SubmissionPageOut)
def list_submissions(
    form_id: str,
    caller: AnalystDep,
    engine: EngineDep,
    settings: SettingsDep,
    params: SubmissionParamsDep,
    sort: Annotated[str, Query(description=PAGE_DOCS["sort"])] = "-submitted_at",
    fields: Annotated[list[str] | None, Query(description=PAGE_DOCS["fields"])] = None,
    lang: Annotated[Lang | None, Query(description=PAGE_DOCS["lang"])] = None,
    limit: Annotated[int, Query(ge=1, description=PAGE_DOCS["limit"])] = 50,
    cursor: Annotated[str | None, Query(description=PAGE_DOCS["cursor"])] = None,
) -> SubmissionPageOut:
    """One page of a form's submissions; follow `next_cursor` for the next.

    A condition that carries a sensitive field's value is refused here (400): send it to
    `POST .../submissions/query`, which takes the same filters in its body."""
    return _page(
        form_id, caller, engine, settings, params, sort, split_list(fields), lang, limit, cursor
    )


class SubmissionQueryBody(SubmissionFilterBody):
    """``POST .../submissions/query``: the filters, and the page wanted."""

    sort: str = Field(
        "-submitted_at",
        max_length=200,
        description=PAGE_DOCS["sort"],
    )
    fields: list[Annotated[str, Field(max_length=200)]] = Field(
        [], max_length=2000, description=PAGE_DOCS["fields"]
    )
    lang: Lang | None = Field(None, description=PAGE_DOCS["lang"])
    limit: int = Field(50, ge=1, description=PAGE_DOCS["limit"])
    cursor: str | None = Field(None, max_length=1000, description=PAGE_DOCS["cursor"])


@router.post("/forms/{form_id}/submissions/query", response_model=SubmissionPageOut)
def query_submissions(
    form_id: str,
    body: SubmissionQueryBody,
    caller: AnalystDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> SubmissionPageOut:
    """The submissions list with its filters in the body, so that no value of a sensitive
    question sits in a URL (proxies and logs keep URLs, not bodies). Same answer as GET."""
    return _page(
        form_id,
        caller,
        engine,
        settings,
        body.params(),
        body.sort,
        split_list(body.fields),
        body.lang,
        body.limit,
        body.cursor,
    )


def _page(
    form_id: str,
    caller: Caller,
    engine: Engine,
    settings: Settings,
    params: SubmissionParams,
    sort: str,
    fields: list[str],
    lang: str | None,
    limit: int,
    cursor: str | None,
) -> SubmissionPageOut:
    if limit > settings.api_max_page_size:
        raise InvalidValue("limit", limit, f"at most {settings.api_max_page_size} per page")
    form = form_or_404(engine, form_id)
    scope = scope_for(caller)
    chosen = select_fields(form, fields, scope)
    flt = params.filter_for(form, scope, max_conditions=settings.api_max_filter_conditions)
    sort_key = parse_sort(form, sort, scope)
    page = submissions_page(
        engine,
        form,
        flt=flt,
        scope=scope,
        fields=chosen,
        sort=sort_key,
        limit=limit,
        cursor=cursor or None,
    )
    items = []
    for row in page.rows:
        values, labels = values_out(form, chosen, row, lang)
        items.append(SubmissionOut(**_meta(row), values=values, labels=labels))
    # A sensitive field in where= or sort= is read for every row returned (SEC-15).
    through_filter = [c for f in fields_read_by_filter(flt, sort_key) for c in f.value_columns()]
    audit_reads(
        engine,
        caller,
        form.xml_form_id,
        [
            (r["instance_id"], read)
            for r in page.rows
            if (read := list(dict.fromkeys([*sensitive_read(chosen, r), *through_filter])))
        ],
    )
    return SubmissionPageOut(
        form_id=form.xml_form_id, limit=limit, items=items, next_cursor=page.next_cursor
    )


@router.get("/forms/{form_id}/submissions/{instance_id}", response_model=SubmissionOut)
def get_submission(
    form_id: str,
    instance_id: str,
    caller: AnalystDep,
    engine: EngineDep,
    lang: Annotated[Lang | None, Query(description=PAGE_DOCS["lang"])] = None,
) -> SubmissionOut:
    """One submission with every field this key may see, and its repeats' rows."""
    form = form_or_404(engine, form_id)
    scope = scope_for(caller)
    row = submission_one(engine, form, instance_id, scope=scope)
    if row is None:
        raise UnknownName("submission", instance_id, form.xml_form_id)
    fields = form.visible_fields(None, scope)
    values, labels = values_out(form, fields, row, lang)
    reads = sensitive_read(fields, row)
    repeats: dict[str, list[RepeatRowOut]] = {}
    for rep in form.repeats():
        rep_fields = form.visible_fields(rep.path, scope)
        out = []
        for r in repeat_rows(engine, form, rep, [instance_id], scope=scope):
            v, lab = values_out(form, rep_fields, r, lang)
            reads += sensitive_read(rep_fields, r)
            out.append(
                RepeatRowOut(
                    row_id=r["row_id"],
                    parent_row_id=r["parent_row_id"],
                    position=r["position"],
                    values=v,
                    labels=lab,
                )
            )
        repeats[rep.name] = out
    if reads:
        audit_reads(engine, caller, form.xml_form_id, [(instance_id, sorted(set(reads)))])
    return SubmissionOut(**_meta(row), values=values, labels=labels, repeats=repeats)
