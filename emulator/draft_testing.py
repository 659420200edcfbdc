"""Draft testing, as Central does it: a draft's own OpenRosa routes under its draft token.

central-backend lib/resources/forms.js (``/test/:key/projects/:projectId/forms/:xmlFormId/
draft/formList``, ``/draft/manifest``, ``/draft.xml``, ``/draft/attachments/:name``) and
lib/resources/submissions.js (``/test/:key/.../draft/submission``; the REST list
``/projects/:projectId/forms/:xmlFormId/draft/submissions``). Anyone holding the token may
use them (``anonymousEndpoint``); a wrong token, or a form without a draft, is 404. Test
submissions live with the draft only (Central's ``submissions.draft = true``): never in
the published form's REST or OData lists, and gone when the draft is published or
replaced (lib/model/query/submissions.js ``deleteDraftSubmissions``), so they never reach
a sync. Here they are their own table, ``draft_submissions``.
"""

from __future__ import annotations

import sqlite3

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import require_actor
from emulator.common import FormRow, base_url, emu, find_form, int_param, ok, project_row
from emulator.db import apply_schema, now_iso
from emulator.errors import OPENROSA_HEADERS, XML_TYPE, openrosa_message
from emulator.errors import xml_escape as escape
from emulator.openrosa import _parts, manifest_xml, require_openrosa_version
from emulator.submissions import read_incoming

SCHEMA = """
CREATE TABLE IF NOT EXISTS draft_submissions (
  id INTEGER PRIMARY KEY, form_id INTEGER NOT NULL, def_id INTEGER NOT NULL,
  instance_id TEXT NOT NULL, xml BLOB NOT NULL, device_id TEXT, created_at TEXT NOT NULL,
  UNIQUE (def_id, instance_id)
);
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    apply_schema(conn, SCHEMA)


def clear_draft_submissions(conn: sqlite3.Connection, form_id: int) -> None:
    """A draft published or replaced: its test submissions go (deleteDraftSubmissions)."""
    ensure_schema(conn)
    conn.execute("DELETE FROM draft_submissions WHERE form_id=?", (form_id,))


def _xml(body: str | bytes, status: int = 200) -> Response:
    data = body.encode() if isinstance(body, str) else body
    return Response(data, status, dict(OPENROSA_HEADERS), media_type=XML_TYPE)


def _draft(request: Request) -> tuple[sqlite3.Connection, FormRow, int, str]:
    """(conn, form, draft def id, draft root URL) for a valid token; else 404 (checkFormToken)."""
    e = emu(request)
    ensure_schema(e.conn)
    pid = project_row(e.conn, int_param(request.path_params["pid"]))[0]
    form = find_form(e.conn, pid, request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    token = e.conn.execute(
        "SELECT draft_token FROM form_defs WHERE id=?", (form.draft_def,)
    ).fetchone()[0]
    if not token or token != request.path_params["key"]:
        raise errors.not_found()
    root = f"{base_url(request)}/v1/test/{token}/projects/{pid}/forms/{form.xml_form_id}/draft"
    return e.conn, form, form.draft_def, root


async def form_list(request: Request) -> Response:
    require_openrosa_version(request)
    conn, form, def_id, root = _draft(request)
    name, version, md5 = conn.execute(
        "SELECT name, version, hash FROM form_defs WHERE id=?", (def_id,)
    ).fetchone()
    has_media = conn.execute(
        "SELECT 1 FROM form_attachments WHERE def_id=? LIMIT 1", (def_id,)
    ).fetchone()
    manifest = f"\n      <manifestUrl>{escape(root)}/manifest</manifestUrl>" if has_media else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '  <xforms xmlns="http://openrosa.org/xforms/xformsList">'
        "\n    <xform>"
        f"\n      <formID>{escape(form.xml_form_id)}</formID>"
        f"\n      <name>{escape(name or form.xml_form_id)}</name>"
        f"\n      <version>{escape(version)}</version>"
        f"\n      <hash>md5:{md5}</hash>"
        f"\n      <downloadUrl>{escape(root)}.xml</downloadUrl>"
        f"{manifest}"
        "\n    </xform>"
        "\n  </xforms>"
    )
    return _xml(body)


async def manifest(request: Request) -> Response:
    require_openrosa_version(request)
    conn, _, def_id, root = _draft(request)
    return _xml(manifest_xml(conn, def_id, root))


async def form_xml(request: Request) -> Response:
    conn, _, def_id, _ = _draft(request)
    (xml,) = conn.execute("SELECT xml FROM form_defs WHERE id=?", (def_id,)).fetchone()
    return Response(bytes(xml), 200, media_type="text/xml")


async def attachment(request: Request) -> Response:
    conn, _, def_id, _ = _draft(request)
    row = conn.execute(
        "SELECT content, content_type FROM form_attachments WHERE def_id=? AND name=? "
        "AND content IS NOT NULL",
        (def_id, request.path_params["name"]),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return Response(bytes(row[0]), 200, media_type=row[1] or "application/octet-stream")


async def submission(request: Request) -> Response:
    """A test submission: kept with the draft, never with the form's submissions."""
    require_openrosa_version(request)
    conn, form, def_id, _ = _draft(request)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/"):
        raise errors.missing_multipart_field("xml_submission_file")
    xml, _ = await _parts(request, ctype)
    incoming = read_incoming(xml)
    if incoming.form_id != form.xml_form_id:
        raise errors.not_found()
    conn.execute(
        "INSERT OR IGNORE INTO draft_submissions (form_id, def_id, instance_id, xml, device_id, "
        "created_at) VALUES (?,?,?,?,?,?)",
        (
            form.id,
            def_id,
            incoming.instance_id,
            xml,
            request.query_params.get("deviceID"),
            now_iso(),
        ),
    )
    return _xml(openrosa_message("full submission upload was successful!"), 201)


async def submission_head(request: Request) -> Response:
    return Response(b"", 204, dict(OPENROSA_HEADERS))


async def draft_submissions(request: Request) -> Response:
    """``GET /v1/projects/{p}/forms/{f}/draft/submissions``: the draft's test submissions."""
    e = emu(request)
    actor = require_actor(request, e.conn)
    if not actor.is_user:
        raise errors.insufficient_rights()
    ensure_schema(e.conn)
    pid = project_row(e.conn, int_param(request.path_params["pid"]))[0]
    form = find_form(e.conn, pid, request.path_params["fid"])
    if form.draft_def is None:
        raise errors.not_found()
    rows = e.conn.execute(
        "SELECT instance_id, device_id, created_at FROM draft_submissions WHERE def_id=? "
        "ORDER BY id DESC",
        (form.draft_def,),
    ).fetchall()
    return ok(
        [
            {"instanceId": iid, "deviceId": device, "createdAt": created, "submitterId": None}
            for iid, device, created in rows
        ]
    )


T = "/v1/test/{key}/projects/{pid}/forms/{fid}/draft"
ROUTES = [
    Route(T + "/formList", form_list, methods=["GET"]),
    Route(T + "/manifest", manifest, methods=["GET"]),
    Route("/v1/test/{key}/projects/{pid}/forms/{fid}/draft.xml", form_xml, methods=["GET"]),
    Route(T + "/attachments/{name}", attachment, methods=["GET"]),
    Route(T + "/submission", submission, methods=["POST"]),
    Route(T + "/submission", submission_head, methods=["HEAD"]),
    Route("/v1/projects/{pid}/forms/{fid}/draft/submissions", draft_submissions, methods=["GET"]),
]
