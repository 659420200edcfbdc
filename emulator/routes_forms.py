"""Forms: list, create, drafts, draft attachments, publish, versions, fields, and the form
XML download.

Behaviour copied from central-backend lib/resources/forms.js and lib/model/query/forms.js,
shapes from golden 08-19 and 32/33. Turning a request body into a stored definition is
emulator/formdefs.py.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import require_actor
from emulator.common import (
    Emulator,
    FormRow,
    emu,
    form_row,
    int_param,
    is_true,
    json_body,
    may_use_form,
    ok,
    published_def,
    success,
    user_form,
    user_project,
    xml_response,
)
from emulator.db import now_iso, transaction
from emulator.draft_testing import clear_draft_submissions
from emulator.formdefs import (
    XLSX_TYPES,
    def_xml,
    definition_from_request,
    hashes,
    insert_def,
    parsed,
    set_version,
)
from emulator.schema_change import check_new_version
from emulator.submissions import rerender_submissions

# --- JSON shapes ----------------------------------------------------------------------------


_PUBLIC_KEY = re.compile(rb'base64RsaPublicKey="([^"]+)"')


def key_id(conn: sqlite3.Connection, def_id: int | None) -> int | None:
    """An encrypted version's ``keyId``: Central stores each public key once (lib/model/
    query/keys.js ensure) and the form JSON names it; here the first version carrying the
    same key stands for it. None for a plaintext version."""
    if def_id is None:
        return None
    row = conn.execute(
        "SELECT xml FROM form_defs WHERE id=? AND instr(xml, ?) > 0",
        (def_id, b"base64RsaPublicKey"),
    ).fetchone()
    m = _PUBLIC_KEY.search(bytes(row[0])) if row else None
    if m is None:
        return None
    first = conn.execute("SELECT min(id) FROM form_defs WHERE instr(xml, ?) > 0", (m.group(0),))
    return int(first.fetchone()[0])


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
        "keyId": key_id(conn, def_id),
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


def existing(def_id: int | None) -> int:
    """A draft or published version the route needs; a form without one is 404.1."""
    if def_id is None:
        raise errors.not_found()
    return def_id


def version_def(conn: sqlite3.Connection, form: FormRow, version: str) -> int:
    """The published definition of ``version`` (lib/resources/forms.js versions routes)."""
    return existing(published_def(conn, form, version))


def fields_response(request: Request, e: Emulator, def_id: int) -> Response:
    """The fields of one version; ``?odata=true`` names them as OData does (golden 15)."""
    return ok(e.xform(def_id).fields_json(is_true(request.query_params.get("odata"))))


def shown_def(form: FormRow) -> int | None:
    """The version a form's JSON describes: the published one, else the draft."""
    return form.current_def or form.draft_def


# --- routes ---------------------------------------------------------------------------------


async def forms_list(request: Request) -> Response:
    e, pid = user_project(request)
    rows = e.conn.execute(
        "SELECT id, project_id, xml_form_id, state, created_at, updated_at, current_def, "
        "draft_def FROM forms WHERE project_id=? AND deleted_at IS NULL ORDER BY xml_form_id",
        (pid,),
    ).fetchall()
    extended = is_true(request.headers.get("x-extended-metadata"))
    out = []
    for r in rows:
        form = FormRow(*r)
        item = form_json(e.conn, form, shown_def(form))
        out.append(extended_form_json(e.conn, form, item) if extended else item)
    return ok(out)  # golden 11


async def form_create(request: Request) -> Response:
    e, pid = user_project(request)
    xml, xlsx, itemsets = await definition_from_request(request)
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
        def_id = insert_def(e.conn, form_pk, xml, xlsx, form, publish, None, itemsets)
        column = "current_def" if publish else "draft_def"
        e.conn.execute(f"UPDATE forms SET {column}=? WHERE id=?", (def_id, form_pk))
    row = form_row(e.conn, pid, form.form_id)
    return ok(form_json(e.conn, row, def_id))  # golden 08


async def form_get(request: Request) -> Response:
    e, _, form = user_form(request)
    item = form_json(e.conn, form, shown_def(form))
    if is_true(request.headers.get("x-extended-metadata")):
        item = extended_form_json(e.conn, form, item)
    return ok(item)  # golden 12


async def form_patch(request: Request) -> Response:
    """Change ``state`` (open/closing/closed)."""
    e, _, form = user_form(request)
    body = await json_body(request)
    state = body.get("state", form.state)
    if state not in ("open", "closing", "closed"):
        raise errors.unexpected_value("state", state, "not a recognized state name")
    e.conn.execute("UPDATE forms SET state=?, updated_at=? WHERE id=?", (state, now_iso(), form.id))
    form = form_row(e.conn, form.project_id, form.xml_form_id)
    return ok(form_json(e.conn, form, shown_def(form)))


async def form_delete(request: Request) -> Response:
    e, _, form = user_form(request)
    e.conn.execute("UPDATE forms SET deleted_at=? WHERE id=?", (now_iso(), form.id))
    return success()


async def form_xml(request: Request) -> Response:
    """``GET .../forms/{f}.xml`` (golden 32/33); app users only for forms assigned to them."""
    e = emu(request)
    actor = require_actor(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if not may_use_form(e.conn, actor, form):
        raise errors.insufficient_rights()
    return xml_response(def_xml(e.conn, existing(form.current_def)))


async def form_xlsx(request: Request) -> Response:
    e, _, form = user_form(request)
    row = e.conn.execute("SELECT xlsx FROM form_defs WHERE id=?", (shown_def(form),)).fetchone()
    if row is None or row[0] is None:
        raise errors.not_found()
    return Response(bytes(row[0]), 200, media_type=next(iter(XLSX_TYPES)))


async def form_versions(request: Request) -> Response:
    e, _, form = user_form(request)
    ids = [
        r[0]
        for r in e.conn.execute(
            "SELECT id FROM form_defs WHERE form_id=? AND published_at IS NOT NULL "
            "ORDER BY published_at DESC, id DESC",
            (form.id,),
        )
    ]
    return ok([form_json(e.conn, form, d) for d in ids])  # golden 14


async def version_get(request: Request) -> Response:
    """``GET .../versions/{version}``: one published version (lib/resources/forms.js)."""
    e, _, form = user_form(request)
    return ok(form_json(e.conn, form, version_def(e.conn, form, request.path_params["v"])))


async def version_xml(request: Request) -> Response:
    e, _, form = user_form(request)
    return xml_response(def_xml(e.conn, version_def(e.conn, form, request.path_params["v"])))


async def version_fields(request: Request) -> Response:
    e, _, form = user_form(request)
    return fields_response(request, e, version_def(e.conn, form, request.path_params["v"]))


async def form_fields(request: Request) -> Response:
    e, _, form = user_form(request)
    return fields_response(request, e, existing(form.current_def))  # golden 15


async def draft_fields(request: Request) -> Response:
    e, _, form = user_form(request)
    return fields_response(request, e, existing(form.draft_def))


async def draft_create(request: Request) -> Response:
    e, _, form = user_form(request)
    body_present = bool(await request.body())
    previous = form.draft_def or form.current_def
    if body_present:
        xml, xlsx, itemsets = await definition_from_request(request)
    else:
        # an empty body copies the published definition (api.yaml "Creating a Draft Form")
        if form.current_def is None:
            raise errors.missing_parameter("xml")
        row = e.conn.execute(
            "SELECT xml, xlsx FROM form_defs WHERE id=?", (form.current_def,)
        ).fetchone()
        xml, xlsx, itemsets = bytes(row[0]), row[1], None
    definition = parsed(xml)
    if definition.form_id != form.xml_form_id:
        raise errors.unexpected_value(
            "xmlFormId",
            definition.form_id,
            "does not match the form you are updating",  # lib/model/query/forms.js createVersion
        )
    check_new_version(
        e, e.conn, form, definition, is_true(request.query_params.get("ignoreWarnings"))
    )
    old_draft = form.draft_def
    with transaction(e.conn):
        def_id = insert_def(e.conn, form.id, xml, xlsx, definition, False, previous, itemsets)
        e.conn.execute("UPDATE forms SET draft_def=? WHERE id=?", (def_id, form.id))
        if old_draft is not None:
            e.conn.execute("DELETE FROM form_attachments WHERE def_id=?", (old_draft,))
            e.conn.execute("DELETE FROM form_defs WHERE id=?", (old_draft,))
    if old_draft is not None:
        e.xforms.pop(old_draft, None)
    clear_draft_submissions(e.conn, form.id)  # a new draft starts with no test submissions
    return success()  # golden 16


async def draft_get(request: Request) -> Response:
    e, _, form = user_form(request)
    return ok(form_json(e.conn, form, existing(form.draft_def)))


async def draft_delete(request: Request) -> Response:
    e, _, form = user_form(request)
    draft = existing(form.draft_def)
    if form.current_def is None:
        raise errors.no_published_version()
    e.conn.execute("UPDATE forms SET draft_def=NULL WHERE id=?", (form.id,))
    e.conn.execute("DELETE FROM form_defs WHERE id=?", (draft,))
    return success()


async def draft_xml(request: Request) -> Response:
    e, _, form = user_form(request)
    return xml_response(def_xml(e.conn, existing(form.draft_def)))


async def draft_publish(request: Request) -> Response:
    e, _, form = user_form(request)
    def_id = existing(form.draft_def)
    version = request.query_params.get("version")
    current_version = e.conn.execute(
        "SELECT version FROM form_defs WHERE id=?", (def_id,)
    ).fetchone()[0]
    target = current_version if version is None else version
    if published_def(e.conn, form, target) is not None:
        raise errors.version_uniqueness(form.xml_form_id, str(target))  # golden 18
    if version is not None and version != current_version:
        xml = set_version(def_xml(e.conn, def_id), version)
        md5, sha1, sha256 = hashes(xml)
        e.conn.execute(
            "UPDATE form_defs SET xml=?, version=?, hash=?, sha=?, sha256=? WHERE id=?",
            (xml, version, md5, sha1, sha256, def_id),
        )
        e.xforms.pop(def_id, None)
    with transaction(e.conn):
        e.conn.execute(
            "UPDATE form_defs SET published_at=?, draft_token=NULL WHERE id=?",
            (now_iso(), def_id),
        )
        e.conn.execute(
            "UPDATE forms SET current_def=?, draft_def=NULL WHERE id=?", (def_id, form.id)
        )
        rerender_submissions(e, form.id, def_id)
    # outside the transaction: its schema check runs DDL, which commits (sqlite3)
    clear_draft_submissions(e.conn, form.id)  # Central: deleteDraftSubmissions on publish
    return success()  # golden 19


def attachments_response(conn: sqlite3.Connection, def_id: int) -> Response:
    """The attachments one version expects, by name (golden 17)."""
    rows = conn.execute(
        "SELECT name, type, content, updated_at FROM form_attachments WHERE def_id=? ORDER BY name",
        (def_id,),
    ).fetchall()
    return ok([attachment_json(r) for r in rows])


async def draft_attachments(request: Request) -> Response:
    e, _, form = user_form(request)
    return attachments_response(e.conn, existing(form.draft_def))  # golden 17


async def form_attachments(request: Request) -> Response:
    e, _, form = user_form(request)
    return attachments_response(e.conn, existing(form.current_def))


async def draft_attachment_upload(request: Request) -> Response:
    e, _, form = user_form(request)
    name = request.path_params["name"]
    draft = existing(form.draft_def)
    row = e.conn.execute(
        "SELECT type FROM form_attachments WHERE def_id=? AND name=?", (draft, name)
    ).fetchone()
    if row is None:
        raise errors.not_found()  # a name the form does not expect (central-api.md)
    content = await request.body()
    ctype = request.headers.get("content-type") or "application/octet-stream"
    updated = now_iso()
    e.conn.execute(
        "UPDATE form_attachments SET content=?, content_type=?, updated_at=? "
        "WHERE def_id=? AND name=?",
        (content, ctype, updated, draft, name),
    )
    # Central >= v2025.1 answers the attachment (pyodk form_draft_attachments.upload).
    return ok(attachment_json((name, row[0], content, updated)))


async def draft_attachment_delete(request: Request) -> Response:
    e, _, form = user_form(request)
    cur = e.conn.execute(
        "UPDATE form_attachments SET content=NULL, content_type=NULL, updated_at=? "
        "WHERE def_id=? AND name=? AND content IS NOT NULL",
        (now_iso(), existing(form.draft_def), request.path_params["name"]),
    )
    if cur.rowcount == 0:
        raise errors.not_found()
    return success()


async def attachment_download(request: Request, def_kind: str) -> Response:
    """One attachment's bytes: app users may fetch a published form's media (the manifest
    links here: emulator/openrosa.py, lib/formats/openrosa.js formManifest), never a
    draft's."""
    e = emu(request)
    actor = require_actor(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    if def_kind == "draft" and not actor.is_user:
        raise errors.insufficient_rights()
    if not may_use_form(e.conn, actor, form):
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
