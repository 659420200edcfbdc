"""OpenRosa for ODK Collect: formList, manifest, and the multipart submission endpoint.

Answers are XML (golden 20-27, 60, 61, 64) with the OpenRosa headers; errors on these routes
are ``<OpenRosaResponse>`` XML, not JSON (central-backend lib/formats/openrosa.js,
lib/resources/submissions.js). ``X-OpenRosa-Version`` is required on a submission (400.6,
golden 25). Collect sends the device id as the ``deviceID`` query parameter.
"""

from __future__ import annotations

import hashlib
import sqlite3

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import require_actor
from emulator.common import (
    base_url,
    emu,
    find_form,
    int_param,
    key_prefix,
    may_use_form,
    project_row,
)
from emulator.errors import OPENROSA_HEADERS, XML_TYPE, openrosa_message
from emulator.errors import xml_escape as escape
from emulator.multipart import multipart_boundary, split_multipart
from emulator.submissions import check_may_submit, read_incoming, store

OPENROSA_PATH_MARKERS = ("/formList", "/submission", "/manifest")


def is_openrosa_path(path: str) -> bool:
    """Routes whose errors Central answers as OpenRosa XML."""
    return path.endswith(OPENROSA_PATH_MARKERS)


def require_openrosa_version(request: Request) -> None:
    """lib/http/endpoint.js openRosaEndpoint: every OpenRosa route (formList, manifest,
    submission) refuses a request without ``X-OpenRosa-Version`` (400.6, golden 25)."""
    if request.headers.get("x-openrosa-version") is None:
        raise errors.invalid_header("X-OpenRosa-Version")


def _xml(body: str | bytes, status: int = 200) -> Response:
    data = body.encode() if isinstance(body, str) else body
    return Response(data, status, dict(OPENROSA_HEADERS), media_type=XML_TYPE)


async def form_list(request: Request) -> Response:
    """golden 27 (web user: every open published form) and 60 (app user: assigned forms)."""
    require_openrosa_version(request)
    e = emu(request)
    actor = require_actor(request, e.conn)
    pid = project_row(e.conn, int_param(request.path_params["pid"]))[0]
    if actor.is_user:
        rows = e.conn.execute(
            "SELECT f.id, f.xml_form_id, d.name, d.version, d.hash, d.id FROM forms f "
            "JOIN form_defs d ON d.id=f.current_def WHERE f.project_id=? AND f.state='open' "
            "AND f.deleted_at IS NULL ORDER BY f.xml_form_id",
            (pid,),
        ).fetchall()
    else:
        if actor.project_id != pid:
            raise errors.insufficient_rights()
        rows = e.conn.execute(
            "SELECT f.id, f.xml_form_id, d.name, d.version, d.hash, d.id FROM forms f "
            "JOIN form_defs d ON d.id=f.current_def JOIN assignments a ON a.form_id=f.id "
            "WHERE f.project_id=? AND f.state='open' AND f.deleted_at IS NULL AND a.actor_id=? "
            "ORDER BY f.xml_form_id",
            (pid, actor.id),
        ).fetchall()
    root = f"{base_url(request)}{key_prefix(request)}/projects/{pid}/forms/"
    items = []
    for _, xml_form_id, name, version, md5, def_id in rows:
        has_media = e.conn.execute(
            "SELECT 1 FROM form_attachments WHERE def_id=? LIMIT 1", (def_id,)
        ).fetchone()
        manifest = (
            f"\n      <manifestUrl>{escape(root + xml_form_id)}/manifest</manifestUrl>"
            if has_media
            else ""
        )
        items.append(
            "\n    <xform>"
            f"\n      <formID>{escape(xml_form_id)}</formID>"
            f"\n      <name>{escape(name or xml_form_id)}</name>"
            f"\n      <version>{escape(version)}</version>"
            f"\n      <hash>md5:{md5}</hash>"
            f"\n      <downloadUrl>{escape(root + xml_form_id)}.xml</downloadUrl>"
            f"{manifest}"
            "\n    </xform>"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '  <xforms xmlns="http://openrosa.org/xforms/xformsList">'
        + "".join(items)
        + "\n  </xforms>"
    )
    return _xml(body)


async def manifest(request: Request) -> Response:
    """The media list Collect downloads (lib/formats/openrosa.js formManifest)."""
    require_openrosa_version(request)
    e = emu(request)
    actor = require_actor(request, e.conn)
    pid = int_param(request.path_params["pid"])
    form = find_form(e.conn, pid, request.path_params["fid"])
    if form.current_def is None:
        raise errors.not_found()
    if not may_use_form(e.conn, actor, form):
        raise errors.insufficient_rights()
    root = f"{base_url(request)}{key_prefix(request)}/projects/{pid}/forms/{form.xml_form_id}"
    return _xml(manifest_xml(e.conn, form.current_def, root))


def manifest_xml(conn: sqlite3.Connection, def_id: int, root: str) -> str:
    """The manifest of one form definition's uploaded media, each file downloaded from
    ``{root}/attachments/{name}``: the published form's and a draft's (draft_testing) alike."""
    rows = conn.execute(
        "SELECT name, content FROM form_attachments WHERE def_id=? AND content IS NOT NULL "
        "ORDER BY name",
        (def_id,),
    ).fetchall()
    files = "".join(
        "\n    <mediaFile>"
        f"\n      <filename>{escape(name)}</filename>"
        f"\n      <hash>md5:{hashlib.md5(bytes(content)).hexdigest()}</hash>"  # noqa: S324
        f"\n      <downloadUrl>{escape(root)}/attachments/{escape(name)}</downloadUrl>"
        "\n    </mediaFile>"
        for name, content in rows
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '  <manifest xmlns="http://openrosa.org/xforms/xformsManifest">' + files + "\n  </manifest>"
    )


async def _parts(request: Request, ctype: str) -> tuple[bytes, dict[str, tuple[bytes, str]]]:
    """(the submission XML, attachments by file name) from the multipart body: the fast
    splitter for plain bodies, Starlette's parser for anything else."""
    body = await request.body()
    boundary = multipart_boundary(ctype)
    # busboy's refusals become 400.39 (lib/resources/submissions.js busboyErrors)
    if boundary is None:
        raise errors.multipart_parsing_failed("Multipart: Boundary not found")
    if b"--" + boundary + b"--" not in body:
        raise errors.multipart_parsing_failed("Unexpected end of form")
    parts = split_multipart(body, ctype)
    files: dict[str, tuple[bytes, str]] = {}
    if parts is not None:
        xml = next((p.data for p in parts if p.name == "xml_submission_file"), None)
        if xml is None:
            raise errors.missing_multipart_field("xml_submission_file")
        for p in parts:
            if p.name != "xml_submission_file" and p.filename is not None:
                files[p.filename or p.name] = (p.data, p.content_type or "application/octet-stream")
        return xml, files
    async with request.form(max_files=10_000, max_fields=10_000, max_part_size=100 * 2**20) as form:
        main = form.get("xml_submission_file")
        if main is None:
            raise errors.missing_multipart_field("xml_submission_file")
        xml = await main.read() if isinstance(main, UploadFile) else main.encode()
        for key, value in form.multi_items():
            if key == "xml_submission_file" or not isinstance(value, UploadFile):
                continue
            name = value.filename or key
            files[name] = (await value.read(), value.content_type or "application/octet-stream")
    return xml, files


async def submission(request: Request) -> Response:
    """``POST /v1/projects/{p}/submission`` (golden 20-26, 61)."""
    require_openrosa_version(request)  # golden 25
    e = emu(request)
    actor = require_actor(request, e.conn)
    pid = project_row(e.conn, int_param(request.path_params["pid"]))[0]
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/"):
        raise errors.missing_multipart_field("xml_submission_file")
    xml, files = await _parts(request, ctype)
    incoming = read_incoming(xml)
    target = find_form(e.conn, pid, incoming.form_id)
    try:
        check_may_submit(e.conn, actor, target)
    except errors.CentralError as err:
        # lib/resources/submissions.js forceAuthFailed: on an OpenRosa submission, 403.1
        # (e.g. an app user the form is not assigned to) becomes 401.2
        if err.code == 403.1:
            raise errors.authentication_failed() from None
        raise
    store(
        e,
        target,
        incoming,
        actor,
        request.query_params.get("deviceID"),
        request.headers.get("user-agent"),
        files,
    )
    return _xml(openrosa_message("full submission upload was successful!"), 201)


async def submission_head(request: Request) -> Response:
    """Collect probes the submission URL with HEAD first (OpenRosa 1.0); 204 with headers."""
    return Response(b"", 204, dict(OPENROSA_HEADERS))


P = "/v1/projects/{pid}"
ROUTES = [
    Route(P + "/formList", form_list, methods=["GET"]),
    Route(P + "/forms/{fid}/manifest", manifest, methods=["GET"]),
    Route(P + "/submission", submission, methods=["POST"]),
    Route(P + "/submission", submission_head, methods=["HEAD"]),
]
