"""Exports of a form (or one repeat) as CSV, a zip of CSVs, XLSX or GeoJSON, streamed, with
the same filters as the submissions list. Analyst and up; sensitive columns only for managers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import Field
from sqlalchemy.engine import Engine
from starlette.types import Receive, Scope, Send

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
from api.exportslots import BoundedStreamingResponse, ExportSlots
from collector.read.exportcols import Header, is_geoline
from collector.read.exports import (
    ExportSpec,
    Separator,
    csv_chunks,
    csv_zip_chunks,
    file_chunks,
    geojson_chunks,
    xlsx_file,
)
from collector.read.forminfo import InvalidValue, UnknownName, Withheld
from collector.read.queries import fields_read_by_filter, select_fields
from collector.settings import Settings
from collector.store.keys import Caller

router = APIRouter(tags=["exports"])

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "geojson": "application/geo+json",
    "csv.zip": "application/zip",
}


Format = Literal["csv", "csv.zip", "xlsx", "geojson"]
# What to export, said once for the GET route's query and the POST route's body.
EXPORT_DOCS = {
    "repeat": "Export this repeat's rows instead of the submissions.",
    "fields": "Columns to include.",
    "lang": "Write choice labels in this language.",
    "geofield": "GeoJSON: the geopoint, geotrace or geoshape question (the first geopoint "
    "by default).",
    "header": "Column headers: technical names (`name`) or question labels in `lang` (`label`).",
    "choice_columns": "Also one 0/1 column per choice of each select_multiple question.",
    "sep": "CSV: the separator; `;` also writes decimal commas, for Excel with a Russian or "
    "Tajik locale.",
}
_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {m: {} for m in MEDIA.values()}}
}


@router.get(
    "/forms/{form_id}/export.{fmt}",
    response_class=StreamingResponse,
    responses=_EXPORT_RESPONSES,
)
async def export(
    request: Request,
    form_id: str,
    fmt: Format,
    caller: AnalystDep,
    engine: EngineDep,
    settings: SettingsDep,
    params: SubmissionParamsDep,
    repeat: Annotated[str | None, Query(description=EXPORT_DOCS["repeat"])] = None,
    fields: Annotated[list[str] | None, Query(description=EXPORT_DOCS["fields"])] = None,
    lang: Annotated[Lang | None, Query(description=EXPORT_DOCS["lang"])] = None,
    geofield: Annotated[str | None, Query(description=EXPORT_DOCS["geofield"])] = None,
    header: Annotated[Header, Query(description=EXPORT_DOCS["header"])] = "name",
    choice_columns: Annotated[bool, Query(description=EXPORT_DOCS["choice_columns"])] = False,
    sep: Annotated[Separator, Query(description=EXPORT_DOCS["sep"])] = ",",
) -> StreamingResponse:
    """A form's submissions (or one repeat's rows) as a file, streamed: ``xlsx`` and
    ``csv.zip`` also hold every repeat's rows (with their keys) unless ``repeat`` names one.
    A condition that carries a sensitive field's value is refused here (400): POST the same
    filters."""
    job = ExportJob(
        form_id=form_id,
        fmt=fmt,
        params=params,
        repeat=repeat,
        fields=split_list(fields),
        lang=lang,
        geofield=geofield,
        shape=Shape(header=header, choice_columns=choice_columns, sep=sep),
    )
    return await _export(request.app.state.export_slots, job, caller, engine, settings)


@dataclass(frozen=True)
class Shape:
    """How the table is laid out, whichever route asked."""

    header: Header = "name"
    choice_columns: bool = False
    sep: Separator = ","


@dataclass(frozen=True)
class ExportJob:
    """One export asked for, said once for every route that asks (GET, POST, the UI)."""

    form_id: str
    fmt: Format
    params: SubmissionParams
    repeat: str | None
    fields: list[str]
    lang: str | None
    geofield: str | None
    shape: Shape


class ExportBody(SubmissionFilterBody):
    """``POST .../export.{fmt}``: the filters, and what to export."""

    repeat: str | None = Field(None, max_length=200, description=EXPORT_DOCS["repeat"])
    fields: list[Annotated[str, Field(max_length=200)]] = Field(
        [], max_length=2000, description=EXPORT_DOCS["fields"]
    )
    lang: Lang | None = Field(None, description=EXPORT_DOCS["lang"])
    geofield: str | None = Field(None, max_length=200, description=EXPORT_DOCS["geofield"])
    header: Header = Field("name", description=EXPORT_DOCS["header"])
    choice_columns: bool = Field(False, description=EXPORT_DOCS["choice_columns"])
    sep: Separator = Field(",", description=EXPORT_DOCS["sep"])


@router.post(
    "/forms/{form_id}/export.{fmt}",
    response_class=StreamingResponse,
    responses=_EXPORT_RESPONSES,
)
async def export_by_body(
    request: Request,
    form_id: str,
    fmt: Format,
    body: ExportBody,
    caller: AnalystDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """The export with its filters in the body, so that no value of a sensitive question
    sits in a URL (proxies and logs keep URLs, not bodies). Same file as GET."""
    job = ExportJob(
        form_id=form_id,
        fmt=fmt,
        params=body.params(),
        repeat=body.repeat,
        fields=split_list(body.fields),
        lang=body.lang,
        geofield=body.geofield,
        shape=Shape(header=body.header, choice_columns=body.choice_columns, sep=body.sep),
    )
    return await _export(request.app.state.export_slots, job, caller, engine, settings)


async def _export(
    slots: ExportSlots, job: ExportJob, caller: Caller, engine: Engine, settings: Settings
) -> StreamingResponse:
    release = slots.take(caller.key_id)  # 429 when this key already runs its share
    try:
        response = await _bounded_export(job, caller, engine, settings)
    except BaseException:
        release()
        raise
    response.bind(release, settings.api_export_stall_seconds)
    return response


async def _bounded_export(
    job: ExportJob, caller: Caller, engine: Engine, settings: Settings
) -> BoundedStreamingResponse:
    fmt, repeat, geofield, shape = job.fmt, job.repeat, job.geofield, job.shape
    form = form_or_404(engine, job.form_id)
    scope = scope_for(caller)
    rep = None
    if repeat:
        rep = form.repeat_named(repeat)
        if rep is None:
            raise UnknownName("repeat", repeat, form.xml_form_id)
    chosen = select_fields(form, job.fields, scope, rep.path if rep else None)
    flt = job.params.filter_for(form, scope, max_conditions=settings.api_max_filter_conditions)
    spec = ExportSpec(
        form=form,
        flt=flt,
        scope=scope,
        fields=chosen,
        repeat=rep,
        lang=job.lang,
        read_by_filter=tuple(fields_read_by_filter(flt)),
        header_style=shape.header,
        choice_columns=shape.choice_columns,
        sep=shape.sep,
    )

    def audit(reads: list[tuple[str, list[str]]]) -> None:
        audit_reads(engine, caller, form.xml_form_id, reads, action=f"export.{fmt}")

    name = form.xml_form_id if rep is None else f"{form.xml_form_id}-{rep.name}"
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "csv":
        return BoundedStreamingResponse(
            csv_chunks(engine, spec, on_sensitive=audit), media_type=MEDIA[fmt], headers=headers
        )
    if fmt == "csv.zip":
        return BoundedStreamingResponse(
            csv_zip_chunks(engine, spec, on_sensitive=audit),
            media_type=MEDIA[fmt],
            headers=headers,
        )
    if fmt == "geojson":
        geo = _geopoint(form, spec, geofield, scope.sensitive)
        return BoundedStreamingResponse(
            geojson_chunks(engine, spec, geo, on_sensitive=audit),
            media_type=MEDIA[fmt],
            headers=headers,
        )
    directory = str(settings.data_dir) if settings.data_dir.is_dir() else None
    fh = await run_in_threadpool(xlsx_file, engine, spec, on_sensitive=audit, directory=directory)
    return FileStreamingResponse(fh, media_type=MEDIA[fmt], headers=headers)


class FileStreamingResponse(BoundedStreamingResponse):
    """Streams an open (anonymous) file and closes it once the response is over, also when
    the client went away before the first byte, so it never waits for the garbage collector."""

    def __init__(self, fh: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file_chunks(fh), **kwargs)
        self._fh = fh

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._fh.close()


def _geopoint(form, spec: ExportSpec, geofield: str | None, sensitive: bool):
    repeat_path = spec.repeat.path if spec.repeat else None
    if geofield:
        f = form.field_named(geofield)
        if f is None or f.repeat_path != repeat_path:
            raise UnknownName("field", geofield, form.xml_form_id)
        if f.sensitive and not sensitive:
            raise Withheld("geofield", geofield)
        if not (f.is_geopoint or is_geoline(f)):
            raise InvalidValue(
                "geofield",
                geofield,
                f"{geofield} is {f.type}, not a geopoint, geotrace or geoshape",
            )
        if f not in spec.fields:
            raise InvalidValue("geofield", geofield, "include it in `fields`")
        return f
    for want in (lambda f: f.is_geopoint, is_geoline):
        for f in spec.fields:
            if want(f):
                return f
    hidden = [
        f for f in form.fields_of(repeat_path) if (f.is_geopoint or is_geoline(f)) and f.sensitive
    ]
    if hidden and not sensitive:
        raise Withheld("geofield", hidden[0].name)
    raise InvalidValue("fmt", "geojson", "this table has no geopoint question to map")
