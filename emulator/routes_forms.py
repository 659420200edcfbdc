"""Forms: create (XForm XML or XLSForm through pyxform), drafts, draft attachments, publish,
versions, fields, and the form XML download.

Behaviour copied from central-backend lib/resources/forms.js and lib/model/query/forms.js,
shapes from golden 08-19 and 32/33. XLSForms are converted the way Central's pyxform-http
service does it (getodk/pyxform-http app/main.py): the file is named after
``X-XlsForm-FormId-Fallback`` so pyxform takes the form id and title from it when the
settings sheet gives none; warnings refuse the form (400.16) unless ``ignoreWarnings``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import Actor, require_actor, require_user
from emulator.common import FormRow, emu, form_row, int_param, is_true, ok, project_row, success
from emulator.db import new_token, now_iso, transaction
from emulator.xform import XForm, XFormError, parse_xform

XLSX_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls",
}


# --- turning a request body into XForm XML --------------------------------------------------


def xlsform_to_xform(body: bytes, suffix: str, fallback_id: str, ignore_warnings: bool) -> bytes:
    """pyxform, as Central runs it; errors become 400.15 (golden 10), warnings 400.16."""
    from pyxform.errors import PyXFormError  # imported on first use: it is slow to import
    from pyxform.xls2xform import convert

    warnings: list[str] = []
    name = re.sub(r"[^\w.-]", "_", fallback_id) or "form"
    try:
        with tempfile.TemporaryDirectory(prefix="emulator-xls-") as tmp:
            path = Path(tmp) / f"{name}{suffix}"
            path.write_bytes(body)
            try:
                result = convert(xlsform=path, warnings=warnings, validate=False)
            except PyXFormError as exc:
                if "not recognized as a supported type" in str(exc) or not body:
                    # golden 10: the message pyxform gives for bytes it cannot read at all.
                    raise errors.xlsform_invalid(
                        "Argument 'definition' was not recognized as a supported type. Must be "
                        "one of: .xlsx, .xlsm, .xls, .md, .csv",
                        None,
                    ) from None
                raise
    except PyXFormError as exc:
        raise errors.xlsform_invalid(str(exc), warnings or None) from None
    except errors.CentralError:
        raise
    except Exception as exc:  # openpyxl/xlrd raise many kinds for a corrupt workbook
        raise errors.xlsform_invalid(
            f"Argument 'definition' was not recognized as a supported type. ({type(exc).__name__}: {exc})",
            warnings or None,
        ) from None
    if warnings and not ignore_warnings:
        raise errors.form_warnings(warnings)
    return result.xform.encode()


async def definition_from_request(request: Request) -> tuple[bytes, bytes | None]:
    """(XForm XML, original XLSX or None) from a form/draft POST body."""
    body = await request.body()
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    suffix = XLSX_TYPES.get(ctype)
    if suffix is not None:
        fallback = unquote(request.headers.get("x-xlsform-formid-fallback") or "") or "form"
        ignore = is_true(request.query_params.get("ignoreWarnings"))
        return xlsform_to_xform(body, suffix, fallback, ignore), body
    if not body:
        raise errors.unparseable("xforms xml", 0)
    return body, None


def parsed(xml: bytes) -> XForm:
    try:
        return parse_xform(xml)
    except XFormError as exc:
        raise errors.CentralError(exc.code, exc.message) from None


def set_version(xml: bytes, version: str) -> bytes:
    """Rewrite the primary instance's ``version`` attribute (lib/data/schema.js setVersion)."""
    m = re.search(rb"<instance(?:\s[^>]*)?>\s*<([A-Za-z_][\w.:-]*)([^>]*?)(/?)>", xml)
    if m is None:
        raise errors.unparseable("xforms xml", len(xml))
    attrs = m.group(2)
    quoted = version.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").encode()
    if re.search(rb'\sversion="[^"]*"', attrs):
        attrs = re.sub(rb'\sversion="[^"]*"', b' version="' + quoted + b'"', attrs, count=1)
    else:
        attrs = attrs + b' version="' + quoted + b'"'
    return xml[: m.start(2)] + attrs + xml[m.end(2) :]


def hashes(xml: bytes) -> tuple[str, str, str]:
    return (
        hashlib.md5(xml).hexdigest(),  # noqa: S324 - Central's form hash is MD5 (formList md5:)
        hashlib.sha1(xml).hexdigest(),  # noqa: S324 - Central's "sha" field
        hashlib.sha256(xml).hexdigest(),
    )


def insert_def(
    conn: sqlite3.Connection,
    form_id: int,
    xml: bytes,
    xlsx: bytes | None,
    form: XForm,
    published: bool,
    carry_from: int | None,
) -> int:
    """Store one form version and its expected attachments (contents carried over by name
    and type from ``carry_from``, as Central copies them into a new draft)."""
    md5, sha1, sha256 = hashes(xml)
    now = now_iso()
    cur = conn.execute(
        "INSERT INTO form_defs (form_id, version, name, xml, hash, sha, sha256, created_at, "
        "published_at, draft_token, xlsx) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            form_id,
            form.version,
            form.title,
            xml,
            md5,
            sha1,
            sha256,
            now,
            now if published else None,
            None if published else new_token(),
            xlsx,
        ),
    )
    def_id = int(cur.lastrowid or 0)
    old: dict[tuple[str, str], tuple] = {}
    if carry_from is not None:
        for name, kind, content, ctype, updated in conn.execute(
            "SELECT name, type, content, content_type, updated_at FROM form_attachments "
            "WHERE def_id=?",
            (carry_from,),
        ):
            old[(name, kind)] = (content, ctype, updated)
    for name, kind in form.attachments:
        content, ctype, updated = old.get((name, kind), (None, None, None))
        conn.execute(
            "INSERT OR REPLACE INTO form_attachments (def_id, name, type, content, content_type, "
            "updated_at) VALUES (?,?,?,?,?,?)",
            (def_id, name, kind, content, ctype, updated),
        )
    return def_id


# --- JSON shapes ----------------------------------------------------------------------------


def form_json(conn: sqlite3.Connection, form: FormRow, def_id: int | None) -> dict:
    """golden 08/11/12/14 key order; ``def_id`` picks the version shown."""
    d = conn.execute(
        "SELECT version, name, hash, sha, sha256, published_at, draft_token FROM form_defs "
        "WHERE id=?",
        (def_id,),
    ).fetchone()
    version, name, md5, sha1, sha256, published_at, draft_token = d or (None,) * 7
    return {
        "projectId": form.project_id,
        "xmlFormId": form.xml_form_id,
        "state": form.state,
        "enketoId": None,
        "enketoOnceId": None,
        "createdAt": form.created_at,
        "updatedAt": form.updated_at,
        "webformsEnabled": True,
        "keyId": None,
        "version": version,
        "hash": md5,
        "sha": sha1,
        "sha256": sha256,
        "draftToken": draft_token,
        "publishedAt": published_at,
        "name": name,
    }


def extended_form_json(conn: sqlite3.Connection, form: FormRow, base: dict) -> dict:
    """X-Extended-Metadata: true adds counts (lib/model/query/forms.js getByProjectId)."""
    count, last = conn.execute(
        "SELECT count(*), max(created_at) FROM submissions WHERE form_id=? AND deleted_at IS NULL",
        (form.id,),
    ).fetchone()
    states = dict.fromkeys(("received", "hasIssues", "edited"), 0)
    for state, n in conn.execute(
        "SELECT coalesce(review_state, 'received'), count(*) FROM submissions "
        "WHERE form_id=? AND deleted_at IS NULL GROUP BY 1",
        (form.id,),
    ):
        if state in states:
            states[state] = n
    out = dict(base)
    out.update(
        {
            "submissions": count,
            "reviewStates": states,
            "lastSubmission": last,
            "excelContentType": None,
            "entityRelated": False,
            "publicLinks": 0,
        }
    )
    return out


def attachment_json(row: tuple) -> dict:
    """Central >= v2025.1 attachment shape (pyodk FormAttachment needs ``hash``)."""
    name, kind, content, updated = row
    has_content = content is not None
    return {
        "name": name,
        "type": kind,
        "hash": hashlib.md5(bytes(content)).hexdigest() if has_content else None,  # noqa: S324
        "exists": bool(has_content),
        "blobExists": bool(has_content),
        "datasetExists": False,
        "updatedAt": updated,
    }


def can_read_form(conn: sqlite3.Connection, actor: Actor, form: FormRow) -> bool:
    if actor.is_user:
        return True
    return (
        actor.project_id == form.project_id
        and conn.execute(
            "SELECT 1 FROM assignments WHERE form_id=? AND actor_id=?", (form.id, actor.id)
        ).fetchone()
        is not None
    )


# --- routes ---------------------------------------------------------------------------------


async def forms_list(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    pid = project_row(e.conn, int_param(request.path_params["pid"]))[0]
    rows = e.conn.execute(
        "SELECT id, project_id, xml_form_id, state, created_at, updated_at, current_def, "
        "draft_def FROM forms WHERE project_id=? AND deleted_at IS NULL ORDER BY xml_form_id",
        (pid,),
    ).fetchall()
    extended = is_true(request.headers.get("x-extended-metadata"))
    out = []
    for r in rows:
        form = FormRow(*r)
        item = form_json(e.conn, form, form.current_def or form.draft_def)
        out.append(extended_form_json(e.conn, form, item) if extended else item)
    return ok(out)


async def form_create(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    pid = project_row(e.conn, int_param(request.path_params["pid"]))[0]
    xml, xlsx = await definition_from_request(request)
    form = parsed(xml)
    publish = is_true(request.query_params.get("publish"))
    exists = e.conn.execute(
        "SELECT 1 FROM forms WHERE project_id=? AND xml_form_id=? AND deleted_at IS NULL",
        (pid, form.form_id),
    ).fetchone()
    if exists:
        # golden 09
        raise errors.uniqueness(["projectId", "xmlFormId"], [str(pid), form.form_id], "forms")
    with transaction(e.conn):
        cur = e.conn.execute(
            "INSERT INTO forms (project_id, xml_form_id, state, created_at) VALUES (?,?,?,?)",
            (pid, form.form_id, "open", now_iso()),
        )
        form_pk = int(cur.lastrowid or 0)
        def_id = insert_def(e.conn, form_pk, xml, xlsx, form, publish, None)
        column = "current_def" if publish else "draft_def"
        e.conn.execute(f"UPDATE forms SET {column}=? WHERE id=?", (def_id, form_pk))
    row = form_row(e.conn, pid, form.form_id)
    return ok(form_json(e.conn, row, def_id))


async def form_get(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    item = form_json(e.conn, form, form.current_def or form.draft_def)
    if is_true(request.headers.get("x-extended-metadata")):
        item = extended_form_json(e.conn, form, item)
    return ok(item)


async def form_patch(request: Request) -> Response:
    """Change ``state`` (open/closing/closed)."""
    from emulator.common import json_body

    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    body = await json_body(request)
    state = body.get("state", form.state)
    if state not in ("open", "closing", "closed"):
        raise errors.unexpected_value("state", state, "not a recognized state name")
    e.conn.execute("UPDATE forms SET state=?, updated_at=? WHERE id=?", (state, now_iso(), form.id))
    form = form_row(e.conn, form.project_id, form.xml_form_id)
    return ok(form_json(e.conn, form, form.current_def or form.draft_def))


async def form_delete(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    e.conn.execute("UPDATE forms SET deleted_at=? WHERE id=?", (now_iso(), form.id))
    return success()


async def form_xml(request: Request) -> Response:
    """``GET .../forms/{f}.xml`` (golden 32/33); app users only for forms assigned to them."""
    e = emu(request)
    actor = require_actor(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if not can_read_form(e.conn, actor, form):
        raise errors.insufficient_rights()
    def_id = form.current_def
    if def_id is None:
        raise errors.not_found()
    xml = e.conn.execute("SELECT xml FROM form_defs WHERE id=?", (def_id,)).fetchone()[0]
    return Response(bytes(xml), 200, media_type="application/xml; charset=utf-8")


async def form_xlsx(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    row = e.conn.execute(
        "SELECT xlsx FROM form_defs WHERE id=?", (form.current_def or form.draft_def,)
    ).fetchone()
    if row is None or row[0] is None:
        raise errors.not_found()
    return Response(bytes(row[0]), 200, media_type=next(iter(XLSX_TYPES)))


async def form_versions(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    ids = [
        r[0]
        for r in e.conn.execute(
            "SELECT id FROM form_defs WHERE form_id=? AND published_at IS NOT NULL "
            "ORDER BY published_at DESC, id DESC",
            (form.id,),
        )
    ]
    return ok([form_json(e.conn, form, d) for d in ids])  # golden 14


def _published_def(conn: sqlite3.Connection, form: FormRow, version: str) -> int:
    row = conn.execute(
        "SELECT id FROM form_defs WHERE form_id=? AND version=? AND published_at IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        (form.id, version),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return row[0]


async def version_get(request: Request) -> Response:
    """``GET .../versions/{version}``: one published version (lib/resources/forms.js)."""
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    return ok(form_json(e.conn, form, _published_def(e.conn, form, request.path_params["v"])))


async def version_xml(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    def_id = _published_def(e.conn, form, request.path_params["v"])
    xml = e.conn.execute("SELECT xml FROM form_defs WHERE id=?", (def_id,)).fetchone()[0]
    return Response(bytes(xml), 200, media_type="application/xml; charset=utf-8")


async def version_fields(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    def_id = _published_def(e.conn, form, request.path_params["v"])
    odata = is_true(request.query_params.get("odata"))
    return ok(e.xform(def_id).fields_json(odata))


async def form_fields(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    def_id = form.current_def
    if def_id is None:
        raise errors.not_found()
    odata = is_true(request.query_params.get("odata"))
    return ok(e.xform(def_id).fields_json(odata))  # golden 15


async def draft_fields(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    odata = is_true(request.query_params.get("odata"))
    return ok(e.xform(form.draft_def).fields_json(odata))


async def draft_create(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    body_present = bool(await request.body())
    previous = form.draft_def or form.current_def
    if body_present:
        xml, xlsx = await definition_from_request(request)
    else:
        # an empty body copies the published definition (api.yaml "Creating a Draft Form")
        if form.current_def is None:
            raise errors.missing_parameter("xml")
        row = e.conn.execute(
            "SELECT xml, xlsx FROM form_defs WHERE id=?", (form.current_def,)
        ).fetchone()
        xml, xlsx = bytes(row[0]), row[1]
    definition = parsed(xml)
    if definition.form_id != form.xml_form_id:
        raise errors.unexpected_value(
            "xmlFormId",
            definition.form_id,
            "The XForm you have uploaded does not match the form you are updating.",
        )
    old_draft = form.draft_def
    with transaction(e.conn):
        def_id = insert_def(e.conn, form.id, xml, xlsx, definition, False, previous)
        e.conn.execute("UPDATE forms SET draft_def=? WHERE id=?", (def_id, form.id))
        if old_draft is not None:
            e.conn.execute("DELETE FROM form_attachments WHERE def_id=?", (old_draft,))
            e.conn.execute("DELETE FROM form_defs WHERE id=?", (old_draft,))
    if old_draft is not None:
        e.xforms.pop(old_draft, None)
    return success()  # golden 16


async def draft_get(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    return ok(form_json(e.conn, form, form.draft_def))


async def draft_delete(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    if form.current_def is None:
        raise errors.no_published_version()
    e.conn.execute("UPDATE forms SET draft_def=NULL WHERE id=?", (form.id,))
    e.conn.execute("DELETE FROM form_defs WHERE id=?", (form.draft_def,))
    return success()


async def draft_xml(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    xml = e.conn.execute("SELECT xml FROM form_defs WHERE id=?", (form.draft_def,)).fetchone()[0]
    return Response(bytes(xml), 200, media_type="application/xml; charset=utf-8")


async def draft_publish(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    version = request.query_params.get("version")
    def_id = form.draft_def
    current_version = e.conn.execute(
        "SELECT version FROM form_defs WHERE id=?", (def_id,)
    ).fetchone()[0]
    target = current_version if version is None else version
    clash = e.conn.execute(
        "SELECT 1 FROM form_defs WHERE form_id=? AND version=? AND published_at IS NOT NULL",
        (form.id, target),
    ).fetchone()
    if clash:
        raise errors.version_uniqueness(form.xml_form_id, str(target))  # golden 18
    if version is not None and version != current_version:
        xml = bytes(e.conn.execute("SELECT xml FROM form_defs WHERE id=?", (def_id,)).fetchone()[0])
        xml = set_version(xml, version)
        md5, sha1, sha256 = hashes(xml)
        e.conn.execute(
            "UPDATE form_defs SET xml=?, version=?, hash=?, sha=?, sha256=? WHERE id=?",
            (xml, version, md5, sha1, sha256, def_id),
        )
        e.xforms.pop(def_id, None)
    e.conn.execute(
        "UPDATE form_defs SET published_at=?, draft_token=NULL WHERE id=?", (now_iso(), def_id)
    )
    e.conn.execute("UPDATE forms SET current_def=?, draft_def=NULL WHERE id=?", (def_id, form.id))
    return success()  # golden 19


def _attachments_of(conn: sqlite3.Connection, def_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT name, type, content, updated_at FROM form_attachments WHERE def_id=? ORDER BY name",
        (def_id,),
    ).fetchall()
    return [attachment_json(r) for r in rows]


async def draft_attachments(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    return ok(_attachments_of(e.conn, form.draft_def))  # golden 17


async def form_attachments(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.current_def is None:
        raise errors.not_found()
    return ok(_attachments_of(e.conn, form.current_def))


async def draft_attachment_upload(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    name = request.path_params["name"]
    if form.draft_def is None:
        raise errors.not_found()
    row = e.conn.execute(
        "SELECT type FROM form_attachments WHERE def_id=? AND name=?", (form.draft_def, name)
    ).fetchone()
    if row is None:
        raise errors.not_found()  # a name the form does not expect (central-api.md)
    content = await request.body()
    ctype = request.headers.get("content-type") or "application/octet-stream"
    updated = now_iso()
    e.conn.execute(
        "UPDATE form_attachments SET content=?, content_type=?, updated_at=? "
        "WHERE def_id=? AND name=?",
        (content, ctype, updated, form.draft_def, name),
    )
    # Central >= v2025.1 answers the attachment (pyodk form_draft_attachments.upload).
    return ok(attachment_json((name, row[0], content, updated)))


async def draft_attachment_delete(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    cur = e.conn.execute(
        "UPDATE form_attachments SET content=NULL, content_type=NULL, updated_at=? "
        "WHERE def_id=? AND name=? AND content IS NOT NULL",
        (now_iso(), form.draft_def, request.path_params["name"]),
    )
    if cur.rowcount == 0:
        raise errors.not_found()
    return success()


async def attachment_download(request: Request, def_kind: str) -> Response:
    e = emu(request)
    actor = require_actor(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if def_kind == "draft" and not actor.is_user:
        raise errors.insufficient_rights()
    if not can_read_form(e.conn, actor, form):
        raise errors.insufficient_rights()
    def_id = form.draft_def if def_kind == "draft" else form.current_def
    row = e.conn.execute(
        "SELECT content, content_type FROM form_attachments WHERE def_id=? AND name=?",
        (def_id, request.path_params["name"]),
    ).fetchone()
    if row is None or row[0] is None:
        raise errors.not_found()
    return Response(bytes(row[0]), 200, media_type=row[1] or "application/octet-stream")


async def published_attachment(request: Request) -> Response:
    return await attachment_download(request, "current")


async def draft_attachment(request: Request) -> Response:
    return await attachment_download(request, "draft")


P = "/v1/projects/{pid}/forms"
ROUTES = [
    Route(P, forms_list, methods=["GET"]),
    Route(P, form_create, methods=["POST"]),
    Route(P + "/{fid}.xml", form_xml, methods=["GET"]),
    Route(P + "/{fid}.xlsx", form_xlsx, methods=["GET"]),
    Route(P + "/{fid}/versions", form_versions, methods=["GET"]),
    Route(P + "/{fid}/versions/{v}.xml", version_xml, methods=["GET"]),
    Route(P + "/{fid}/versions/{v}/fields", version_fields, methods=["GET"]),
    Route(P + "/{fid}/versions/{v}", version_get, methods=["GET"]),
    Route(P + "/{fid}/fields", form_fields, methods=["GET"]),
    Route(P + "/{fid}/attachments", form_attachments, methods=["GET"]),
    Route(P + "/{fid}/attachments/{name}", published_attachment, methods=["GET"]),
    Route(P + "/{fid}/draft", draft_create, methods=["POST"]),
    Route(P + "/{fid}/draft", draft_get, methods=["GET"]),
    Route(P + "/{fid}/draft", draft_delete, methods=["DELETE"]),
    Route(P + "/{fid}/draft.xml", draft_xml, methods=["GET"]),
    Route(P + "/{fid}/draft/fields", draft_fields, methods=["GET"]),
    Route(P + "/{fid}/draft/publish", draft_publish, methods=["POST"]),
    Route(P + "/{fid}/draft/attachments", draft_attachments, methods=["GET"]),
    Route(P + "/{fid}/draft/attachments/{name}", draft_attachment, methods=["GET"]),
    Route(P + "/{fid}/draft/attachments/{name}", draft_attachment_upload, methods=["POST"]),
    Route(P + "/{fid}/draft/attachments/{name}", draft_attachment_delete, methods=["DELETE"]),
    Route(P + "/{fid}", form_get, methods=["GET"]),
    Route(P + "/{fid}", form_patch, methods=["PATCH"]),
    Route(P + "/{fid}", form_delete, methods=["DELETE"]),
]
