"""OData: service document, ``$metadata``, the Submissions table and the repeat tables.

Rules from central-api.md, central-backend lib/resources/odata.js, lib/formats/odata.js and
lib/util/odata.js, shapes from golden 30-45, 51, 53, 54, 62:

- allowed options ``$format $count $skip $top $filter $wkt $expand $select $skiptoken
  $orderby $search``; any other is 501.1 (golden 39, answered without ``OData-Version``);
  ``$expand`` other than ``*`` is 501.6, ``$select`` with ``$expand`` 501.11, ``$orderby``
  with ``$skiptoken`` 501.1;
- order ``createdAt DESC, id DESC``; no default page size; ``@odata.nextLink`` only with
  ``$top`` and more rows, carrying ``$skiptoken=01<base64 {"instanceId": last}>`` (golden 34,
  44, 45): the next page is the rows older than that row;
- deleted submissions are hidden unless ``$filter`` names ``__system/deletedAt`` (golden 53/54).

Checking the query options and the ``$skiptoken`` cursor is emulator/odata_options.py.
Rows are assembled from bytes stored with each submission; only ``__system`` is serialized per
row (``$wkt`` and ``$select`` take the slower dict path).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.common import Emulator, FormRow, base_url, user_form
from emulator.db import iso
from emulator.odata import (
    Filter,
    ODataError,
    metadata_edmx,
    parse_filter,
    parse_select,
    service_document,
    table_names,
    with_system,
    with_wkt,
    without_expand,
)
from emulator.odata_options import (
    ODATA_HEADERS,
    Options,
    decode_skiptoken,
    encode_skiptoken,
    odata_error,
)
from emulator.xform import XForm

DATA_TYPE = "application/json; charset=utf-8"
# $orderby fields -> index in COLUMNS (the filterable fields, lib/data/odata-filter.js)
SORTABLE = {
    "__id": 1,
    "__system/submissionDate": 2,
    "__system/updatedAt": 3,
    "__system/deletedAt": 4,
    "__system/reviewState": 5,
    "__system/submitterId": 6,
}

COLUMNS = (
    "s.id, s.instance_id, s.created_at, s.updated_at, s.deleted_at, s.review_state, "
    "s.submitter_id, s.device_id, s.edits, s.form_version, s.att_present, s.att_expected"
)


def _names(conn: sqlite3.Connection) -> dict[int, str]:
    return dict(conn.execute("SELECT id, display_name FROM actors"))


def system_of(row: tuple, names: dict[int, str]) -> dict[str, Any]:
    """``__system`` composed at serve time from the submission's mutable state (golden 34)."""
    return {
        "submissionDate": row[2],
        "updatedAt": row[3],
        "submitterId": str(row[6]),
        "submitterName": names.get(row[6]),
        "attachmentsPresent": row[10],
        "attachmentsExpected": row[11],
        "status": None,
        "reviewState": row[5],
        "deviceId": row[7],
        "edits": row[8],
        "formVersion": row[9],
        "deletedAt": row[4],
    }


def _context(request: Request, form: FormRow, table: str) -> str:
    return (
        f"{base_url(request)}/v1/projects/{form.project_id}/forms/"
        f"{form.xml_form_id}.svc/$metadata#{table}"
    )


def _filter(opts: Options, subtable: bool) -> Filter | None:
    if opts.filter_text is None:
        return None
    try:
        return parse_filter(opts.filter_text, subtable=subtable)
    except ODataError as exc:
        raise odata_error(exc) from None


def _form_and_xform(request: Request) -> tuple[Emulator, FormRow, XForm]:
    e, _, form = user_form(request)
    if form.current_def is None:
        raise errors.not_found()
    return e, form, e.xform(form.current_def)


async def service_doc(request: Request) -> Response:
    _, form, xform = _form_and_xform(request)
    root = f"{base_url(request)}/v1/projects/{form.project_id}/forms/{form.xml_form_id}.svc"
    return Response(
        orjson.dumps(service_document(xform, root)),
        200,
        dict(ODATA_HEADERS),
        media_type="application/json; charset=utf-8; odata.metadata=minimal",
    )  # golden 30


async def metadata(request: Request) -> Response:
    _, _, xform = _form_and_xform(request)
    return Response(
        metadata_edmx(xform).encode(),
        200,
        dict(ODATA_HEADERS),
        media_type="application/xml; charset=utf-8",
    )  # golden 31


async def table(request: Request) -> Response:
    opts = Options(request)  # 501.1 comes before anything else (golden 39)
    e, form, xform = _form_and_xform(request)
    rest = request.path_params["rest"]
    try:
        if rest == "Submissions":
            started = time.perf_counter()
            body, served = _submissions(e, request, form, xform, opts)
            pace = e.faults.config.odata_pace
            if pace is not None:  # as slow as a real Central (faults.py, odata_pace)
                wait = pace.seconds_for(served) - (time.perf_counter() - started)
                if wait > 0:
                    await asyncio.sleep(wait)
        elif rest.startswith("Submissions(") and ")" in rest:
            body = _single(e, request, form, xform, opts, rest)
        elif rest in table_names(xform):
            body = _repeat_table(e, request, form, xform, opts, rest)
        else:
            raise errors.not_found()
    except ODataError as exc:
        raise odata_error(exc) from None
    return Response(body, 200, dict(ODATA_HEADERS), media_type=DATA_TYPE)


_TIME_COLUMNS = {
    "__system/submissionDate": "s.created_at",
    "__system/updatedAt": "s.updated_at",
    "__system/deletedAt": "s.deleted_at",
}
_ATOM = re.compile(
    r"^(?:\$root/Submissions/)?(__system/(?:submissionDate|updatedAt|deletedAt))\s+(gt|ge|lt|le)\s+"
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))$"
)


def sql_prefilter(text: str | None) -> tuple[str, list[str]] | None:
    """A SQL condition every row the ``$filter`` keeps also meets, for the shape sync uses
    (``__system/<time> gt|ge|lt|le <datetime>`` joined by all-``or`` or all-``and``), or None.

    It only narrows the rows read; the exact filter (emulator.odata_filter) still decides.
    Bounds are widened to whole milliseconds (times are stored ``...T02:42:54.583Z``), so the
    string comparison can only let extra rows through, never drop one; a NULL time compares
    unknown in SQL as in Central's SQL, and the exact filter agrees."""
    if not text or "(" in text or " not " in f" {text} ":
        return None
    parts = re.split(r"\s+(or|and)\s+", text.strip())
    atoms, joins = parts[0::2], set(parts[1::2])
    if len(joins) > 1:
        return None
    sql: list[str] = []
    args: list[str] = []
    for atom in atoms:
        m = _ATOM.match(atom.strip())
        if m is None:
            return None
        field, op, literal = m.groups()
        try:
            moment = datetime.fromisoformat(literal.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        low = iso(moment.replace(microsecond=moment.microsecond // 1000 * 1000))
        column = _TIME_COLUMNS[field]
        if op in ("gt", "ge"):
            sql.append(f"{column} >= ?")
            args.append(low)
        else:
            high = iso(moment + timedelta(milliseconds=1)) if moment.microsecond % 1000 else low
            sql.append(f"{column} <= ?")
            args.append(high)
    joiner = f" {joins.pop().upper()} " if joins else ""
    return joiner.join(sql), args


def _iter_rows(
    conn: sqlite3.Connection,
    form: FormRow,
    blobs: str,
    hide_deleted: bool,
    cursor_instance: str | None,
    prefilter: tuple[str, list[str]] | None = None,
) -> Iterator[tuple]:
    where = "s.form_id=?"
    args: list[Any] = [form.id]
    if hide_deleted:
        where += " AND s.deleted_at IS NULL"
    if prefilter is not None:
        where += f" AND ({prefilter[0]})"
        args += prefilter[1]
    if cursor_instance is not None:
        anchor = conn.execute(
            "SELECT created_at, id FROM submissions WHERE form_id=? AND instance_id=?",
            (form.id, cursor_instance),
        ).fetchone()
        if anchor is None:
            return iter(())
        where += " AND (s.created_at < ? OR (s.created_at = ? AND s.id < ?))"
        args += [anchor[0], anchor[0], anchor[1]]
    return conn.execute(
        f"SELECT {COLUMNS}, {blobs} FROM submissions s WHERE {where} "
        "ORDER BY s.created_at DESC, s.id DESC",
        args,
    )


def _sort_key(spec: str) -> tuple[int, bool]:
    """(column index in COLUMNS, descending) for one ``$orderby`` term."""
    parts = spec.split()
    field = parts[0] if parts else ""
    # lib/data/odata-filter.js odataOrderBy: an unknown field or order word is
    # Problem.internal.unsupportedODataField, 501.5 (the real Central, on $orderby=name)
    bad = field if field not in SORTABLE else (parts[1] if len(parts) > 1 else None)
    if field not in SORTABLE or (len(parts) > 1 and parts[1].lower() not in ("asc", "desc")):
        raise odata_error(
            errors.CentralError(
                501.5,
                "The given OData filter expression references fields not supported by this "
                f"server: {bad}",
                {"text": bad},
            )
        )
    desc = len(parts) > 1 and parts[1].lower() == "desc"
    return SORTABLE[field], desc


def _apply_orderby(rows: list[tuple], orderby: str) -> list[tuple]:
    specs = [_sort_key(s.strip()) for s in orderby.split(",") if s.strip()]
    # Central sorts in PostgreSQL (lib/data/odata-filter.js odataOrderBy): ``ASC NULLS FIRST``,
    # ``DESC NULLS LAST``, then submissions.id in the first key's direction breaks ties;
    # stable sorts from the last key to the first.
    out = sorted(rows, key=lambda r: r[0], reverse=bool(specs) and specs[0][1])
    for idx, desc in reversed(specs):
        present = [r for r in out if r[idx] is not None]
        missing = [r for r in out if r[idx] is None]
        present.sort(key=lambda r, i=idx: r[i], reverse=desc)
        out = (present + missing) if desc else (missing + present)
    return out


def _render(
    row: tuple, names: dict[int, str], opts: Options, xform: XForm, selection: Any
) -> bytes:
    system = system_of(row, names)
    if not opts.wkt and selection is None:
        return row[12] + orjson.dumps(system) + row[13]
    data = orjson.loads(row[12])
    if not opts.expand:
        data = without_expand(data)
    data = with_system(data, system)
    if opts.wkt:
        data = with_wkt(data)
    if selection is not None:
        data = _drop_unselected_id(selection.apply(data), opts.select)
    return orjson.dumps(data)


def _submissions(
    e: Any, request: Request, form: FormRow, xform: XForm, opts: Options
) -> tuple[bytes, int]:
    """The response body, and how many rows it serves."""
    flt = _filter(opts, subtable=False)
    selection = parse_select(xform, opts.select) if opts.select else None
    slow = opts.wkt or selection is not None
    blobs = (
        "s.data, NULL"
        if slow
        else ("s.exp_head, s.exp_tail" if opts.expand else "s.nav_head, s.nav_tail")
    )
    hide_deleted = flt is None or not flt.mentions_deleted_at
    cursor_id = decode_skiptoken(opts.skiptoken) if opts.skiptoken else None
    names = _names(e.conn)
    # Two phases when rows may be passed over (filter, $orderby, $skip): choose the page from
    # the metadata columns, then read the stored JSON of those rows only.
    two_phase = flt is not None or bool(opts.orderby) or opts.skip > 0
    narrow = sql_prefilter(opts.filter_text)
    rows: Iterator[tuple] = _iter_rows(
        e.conn, form, "NULL, NULL" if two_phase else blobs, hide_deleted, cursor_id, narrow
    )
    if opts.orderby:
        rows = iter(_apply_orderby(list(rows), opts.orderby))

    page: list[tuple] = []
    matched = 0
    more = False
    top = opts.top
    for row in rows:
        if flt is not None and not flt.matches(row[1], system_of(row, names)):
            continue
        matched += 1
        if matched <= opts.skip:
            continue
        if top is not None and len(page) >= top:
            more = True
            break
        page.append(row)
    if two_phase and page:
        page = _with_blobs(e.conn, page, blobs)
    out = [_render(row, names, opts, xform, selection) for row in page]
    last_id = page[-1][1] if page else None

    parts = [b'{"value":[', b",".join(out), b'],"@odata.context":']
    parts.append(orjson.dumps(_context(request, form, "Submissions")))
    if more and last_id is not None:
        path = request.url.path
        # Central's nextLink carries a $skiptoken even under $orderby (lib/util/odata.js
        # nextUrlFor), and following it is 501.1 "$orderby and $skiptoken together": the
        # real Central cannot page an ordered feed, and neither does the emulator
        link = opts.next_link(base_url(request), path, encode_skiptoken(last_id), None)
        parts += [b',"@odata.nextLink":', orjson.dumps(link)]
    if opts.count:
        total = _count(e, form, flt, hide_deleted, names, narrow)
        parts += [b',"@odata.count":', str(total).encode()]
    parts.append(b"}")
    return b"".join(parts), len(out)


def _with_blobs(conn: sqlite3.Connection, page: list[tuple], blobs: str) -> list[tuple]:
    """The page's rows with their stored JSON columns filled in, order kept."""
    found: dict[int, tuple] = {}
    for start in range(0, len(page), 500):
        ids = [row[0] for row in page[start : start + 500]]
        marks = ",".join("?" * len(ids))
        for sid, a, b in conn.execute(
            f"SELECT s.id, {blobs} FROM submissions s WHERE s.id IN ({marks})", ids
        ):
            found[sid] = (a, b)
    return [row[:12] + found[row[0]] for row in page]


def _count(
    e: Any,
    form: FormRow,
    flt: Any,
    hide_deleted: bool,
    names: dict[int, str],
    narrow: tuple[str, list[str]] | None = None,
) -> int:
    """``@odata.count``: every row the filter keeps, ignoring paging (golden 34)."""
    if flt is None:
        return e.conn.execute(
            "SELECT count(*) FROM submissions WHERE form_id=?"
            + (" AND deleted_at IS NULL" if hide_deleted else ""),
            (form.id,),
        ).fetchone()[0]
    return sum(
        1
        for row in _iter_rows(e.conn, form, "NULL, NULL", hide_deleted, None, narrow)
        if flt.matches(row[1], system_of(row, names))
    )


def _single(
    e: Any, request: Request, form: FormRow, xform: XForm, opts: Options, rest: str
) -> bytes:
    """``Submissions('id')`` (golden 51) and ``Submissions('id')/repeat`` sub-paths."""
    close = rest.index(")")
    key = rest[len("Submissions(") : close]
    if len(key) < 2 or key[0] != "'" or key[-1] != "'":
        raise errors.not_found()
    instance_id = key[1:-1]
    sub = rest[close + 1 :].strip("/")
    row = e.conn.execute(
        f"SELECT {COLUMNS}, s.data, s.repeats FROM submissions s "
        "WHERE s.form_id=? AND s.instance_id=? AND s.deleted_at IS NULL",
        (form.id, instance_id),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    names = _names(e.conn)
    if not sub:
        selection = parse_select(xform, opts.select) if opts.select else None
        data = orjson.loads(row[12])
        if not opts.expand:
            data = without_expand(data)
        data = with_system(data, system_of(row, names))
        if opts.wkt:
            data = with_wkt(data)
        if selection is not None:
            data = _drop_unselected_id(selection.apply(data), opts.select)
        context = _context(request, form, "Submissions")
        return orjson.dumps({"value": [data], "@odata.context": context})
    table_name = "Submissions." + ".".join(p.split("(")[0] for p in sub.split("/"))
    if table_name not in table_names(xform):
        raise errors.not_found()
    rendered = [_repeat_row(r, opts) for r in orjson.loads(row[13]).get(table_name, [])]
    page = rendered[opts.skip :]
    if opts.top is not None:
        page = page[: opts.top]
    body: dict[str, Any] = {"value": page, "@odata.context": _context(request, form, table_name)}
    if opts.count:
        body["@odata.count"] = len(rendered)
    return orjson.dumps(body)


def _repeat_row(row: dict[str, Any], opts: Options) -> dict[str, Any]:
    out = row if opts.expand else without_expand(row)
    if opts.wkt:
        out = with_wkt(out)
    return out


def _repeat_table(
    e: Any, request: Request, form: FormRow, xform: XForm, opts: Options, table_name: str
) -> bytes:
    """``Submissions.<repeat>`` (golden 42): every repeat row of the visible submissions in
    the Submissions order. Paged as lib/formats/odata.js rowStreamToOData pages subtables:
    the next link carries ``$skiptoken`` with the last row's ``repeatId``; a token naming a
    row that is not there is 400.34."""
    flt = _filter(opts, subtable=True)
    selection = parse_select(xform, opts.select, table_name) if opts.select else None
    hide_deleted = flt is None or not flt.mentions_deleted_at
    after = decode_skiptoken(opts.skiptoken, "repeatId") if opts.skiptoken else None
    skip = 0 if after is not None else opts.skip
    names = _names(e.conn)
    out: list[bytes] = []
    counted = 0
    more = False
    top = opts.top
    last: str | None = None
    needle = orjson.dumps(table_name)
    for row in _iter_rows(e.conn, form, "s.repeats, NULL", hide_deleted, None):
        if flt is not None and not flt.matches(row[1], system_of(row, names)):
            continue
        blob = row[12]
        if needle not in blob:
            continue
        for rep in orjson.loads(blob).get(table_name, []):
            counted += 1
            if after is not None:
                if rep.get("__id") == after:
                    after = None
                continue
            if counted <= skip or more:
                continue
            if top is not None and len(out) >= top:
                more = True
                continue
            data = _repeat_row(rep, opts)
            if selection is not None:
                data = _drop_unselected_id(selection.apply(data), opts.select)
            out.append(orjson.dumps(data))
            last = rep.get("__id")
        if more and not opts.count:
            break
    if after is not None:
        raise odata_error(
            errors.CentralError(400.34, "Record associated with the provided $skiptoken not found.")
        )
    parts = [b'{"value":[', b",".join(out), b'],"@odata.context":']
    parts.append(orjson.dumps(_context(request, form, table_name)))
    if more and last is not None:
        link = opts.next_link(
            base_url(request), request.url.path, encode_skiptoken(last, "repeatId"), None
        )
        parts += [b',"@odata.nextLink":', orjson.dumps(link)]
    if opts.count:
        parts += [b',"@odata.count":', str(counted).encode()]
    parts.append(b"}")
    return b"".join(parts)


def _drop_unselected_id(data: dict[str, Any], select: str | None) -> dict[str, Any]:
    """lib/formats/odata.js: with ``$select``, ``__id`` stays only when it is selected."""
    if select and select.strip() != "*" and "__id" not in {p.strip() for p in select.split(",")}:
        data.pop("__id", None)
    return data


P = "/v1/projects/{pid}/forms/{fid}.svc"
ROUTES = [
    Route(P, service_doc, methods=["GET"]),
    Route(P + "/", service_doc, methods=["GET"]),
    Route(P + "/$metadata", metadata, methods=["GET"]),
    Route(P + "/{rest:path}", table, methods=["GET"]),
]
