"""REST submissions: list, get, XML, create (pyodk's ``submissions.create``), edit by PUT,
review (PATCH), comments, soft delete and restore, attachments.

Copied from central-backend lib/resources/submissions.js and lib/resources/comments.js;
shapes from golden 28/29/46-50/52/55. PATCH bumps ``updatedAt``; DELETE sets ``deletedAt`` and
leaves ``updatedAt`` alone; restore clears ``deletedAt`` (central-api.md).
"""

from __future__ import annotations

import sqlite3

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import Actor
from emulator.common import (
    Emulator,
    FormRow,
    is_true,
    json_body,
    ok,
    success,
    user_form,
    xml_response,
)
from emulator.db import now_iso
from emulator.submissions import (
    REVIEW_STATES,
    SUBMISSION_COLUMNS,
    Incoming,
    read_incoming,
    store,
    submission_json,
    submission_row,
)


def _submission(request: Request, deleted: bool = False) -> tuple[Emulator, Actor, int]:
    """The emulator, the web user calling and the ``{iid}`` submission's row id."""
    e, actor, form = user_form(request)
    return e, actor, submission_row(e.conn, form, request.path_params["iid"], deleted)[0]


def _current_version(conn: sqlite3.Connection, submission_id: int) -> int:
    return conn.execute(
        "SELECT current_version FROM submissions WHERE id=?", (submission_id,)
    ).fetchone()[0]


def _check_form_id(incoming: Incoming, form: FormRow) -> None:
    """The XML's form id must be the URL's (lib/resources/submissions.js)."""
    if incoming.form_id != form.xml_form_id:
        raise errors.unexpected_value(
            "form id", incoming.form_id, "did not match the form ID in the URL"
        )


async def submissions_list(request: Request) -> Response:
    e, _, form = user_form(request)
    deleted = is_true(request.query_params.get("deleted"))
    rows = e.conn.execute(
        f"SELECT {SUBMISSION_COLUMNS} FROM submissions s "
        # covering indexes: listing never reads the stored XML or OData JSON (emulator/db.py)
        "JOIN submission_versions v INDEXED BY versions_meta ON v.id = s.current_version "
        "WHERE s.form_id=? AND "
        + ("s.deleted_at IS NOT NULL" if deleted else "s.deleted_at IS NULL")
        + " ORDER BY s.created_at DESC, s.id DESC",
        (form.id,),
    ).fetchall()
    return ok([submission_json(r) for r in rows])  # golden 28


async def submission_get(request: Request) -> Response:
    e, _, form = user_form(request)
    return ok(submission_json(submission_row(e.conn, form, request.path_params["iid"])))


async def submission_xml(request: Request) -> Response:
    e, _, sid = _submission(request)
    xml = e.conn.execute(
        "SELECT v.xml FROM submission_versions v JOIN submissions s ON s.current_version=v.id "
        "WHERE s.id=?",
        (sid,),
    ).fetchone()[0]
    return xml_response(bytes(xml))


async def submission_create(request: Request) -> Response:
    """``POST .../forms/{f}/submissions`` with the XML as body (pyodk submissions.create)."""
    e, actor, form = user_form(request)
    incoming = read_incoming(await request.body())
    _check_form_id(incoming, form)
    device = request.query_params.get("deviceID")
    stored = store(
        e, form, incoming, actor, device, request.headers.get("user-agent"), allow_resubmit=False
    )
    row = e.conn.execute(
        f"SELECT {SUBMISSION_COLUMNS} FROM submissions s "
        "JOIN submission_versions v ON v.id = s.current_version WHERE s.id=?",
        (stored.submission_id,),
    ).fetchone()
    return ok(submission_json(row))


async def submission_put(request: Request) -> Response:
    """An edit: the body's meta/deprecatedID must name the current version (golden 50)."""
    e, actor, form = user_form(request)
    current = submission_row(e.conn, form, request.path_params["iid"])
    incoming = read_incoming(await request.body())
    _check_form_id(incoming, form)  # before the deprecatedID, as the real Central answers
    if not incoming.deprecated_id:
        raise errors.expected_deprecation()
    if incoming.deprecated_id != current[12]:
        raise errors.deprecating_old_submission(incoming.deprecated_id)
    store(e, form, incoming, actor, current[3], request.headers.get("user-agent"))
    return ok(submission_json(submission_row(e.conn, form, request.path_params["iid"])))


async def submission_patch(request: Request) -> Response:
    e, _, form = user_form(request)
    row = submission_row(e.conn, form, request.path_params["iid"])
    body = await json_body(request)
    if "reviewState" in body:
        state = body["reviewState"]
        if state not in REVIEW_STATES:
            # golden 47
            raise errors.unexpected_value("state", state, "not a recognized state name")
        e.conn.execute(
            "UPDATE submissions SET review_state=?, updated_at=? WHERE id=?",
            (state, now_iso(), row[0]),
        )
    row = submission_row(e.conn, form, request.path_params["iid"])
    return ok(submission_json(row, with_version=False))  # golden 46


async def submission_delete(request: Request) -> Response:
    e, _, sid = _submission(request)
    e.conn.execute("UPDATE submissions SET deleted_at=? WHERE id=?", (now_iso(), sid))
    return success()  # golden 52


async def submission_restore(request: Request) -> Response:
    e, _, sid = _submission(request, deleted=True)
    e.conn.execute("UPDATE submissions SET deleted_at=NULL WHERE id=?", (sid,))
    return success()  # golden 55


async def comments_list(request: Request) -> Response:
    e, _, sid = _submission(request)
    rows = e.conn.execute(
        "SELECT body, actor_id, created_at FROM comments WHERE submission_id=? "
        "ORDER BY created_at DESC, id DESC",
        (sid,),
    ).fetchall()
    return ok([{"body": b, "actorId": a, "createdAt": c} for b, a, c in rows])  # golden 49


async def comment_create(request: Request) -> Response:
    e, actor, sid = _submission(request)
    body = await json_body(request)
    text = body.get("body")
    if not isinstance(text, str) or not text:
        raise errors.missing_parameter("body")
    created = now_iso()
    e.conn.execute(
        "INSERT INTO comments (submission_id, body, actor_id, created_at) VALUES (?,?,?,?)",
        (sid, text, actor.id, created),
    )
    return ok({"body": text, "actorId": actor.id, "createdAt": created})  # golden 48


async def attachments_list(request: Request) -> Response:
    e, _, sid = _submission(request)
    rows = e.conn.execute(
        "SELECT a.name, a.content IS NOT NULL FROM submission_attachments a "
        "JOIN submissions s ON s.current_version=a.version_id WHERE s.id=? ORDER BY a.name",
        (sid,),
    ).fetchall()
    return ok([{"name": n, "exists": bool(x)} for n, x in rows])


async def attachment_get(request: Request) -> Response:
    e, _, sid = _submission(request)
    found = e.conn.execute(
        "SELECT a.content, a.content_type FROM submission_attachments a "
        "JOIN submissions s ON s.current_version=a.version_id WHERE s.id=? AND a.name=?",
        (sid, request.path_params["name"]),
    ).fetchone()
    if found is None or found[0] is None:
        raise errors.not_found()
    return Response(bytes(found[0]), 200, media_type=found[1] or "application/octet-stream")


async def attachment_upload(request: Request) -> Response:
    """``POST .../submissions/{iid}/attachments/{name}`` with the raw bytes (pyodk
    submission_attachments.upload); only names the current version expects (404.1 else)."""
    e, _, sid = _submission(request)
    name = request.path_params["name"]
    version_id = _current_version(e.conn, sid)
    expected = e.conn.execute(
        "SELECT 1 FROM submission_attachments WHERE version_id=? AND name=?", (version_id, name)
    ).fetchone()
    if expected is None:
        raise errors.not_found()
    content = await request.body()
    ctype = request.headers.get("content-type") or "application/octet-stream"
    e.conn.execute(
        "UPDATE submission_attachments SET content=?, content_type=? WHERE version_id=? AND name=?",
        (content, ctype, version_id, name),
    )
    e.conn.execute(
        "UPDATE submissions SET att_present=(SELECT count(*) FROM submission_attachments "
        "WHERE version_id=? AND content IS NOT NULL) WHERE id=?",
        (version_id, sid),
    )
    return success()


async def attachment_delete(request: Request) -> Response:
    e, _, sid = _submission(request)
    version_id = _current_version(e.conn, sid)
    cur = e.conn.execute(
        "UPDATE submission_attachments SET content=NULL, content_type=NULL "
        "WHERE version_id=? AND name=? AND content IS NOT NULL",
        (version_id, request.path_params["name"]),
    )
    if cur.rowcount == 0:
        raise errors.not_found()
    e.conn.execute("UPDATE submissions SET att_present=att_present-1 WHERE id=?", (sid,))
    return success()


async def versions_list(request: Request) -> Response:
    e, _, sid = _submission(request)
    rows = e.conn.execute(
        "SELECT v.id, v.submitter_id, v.created_at, v.instance_name, v.instance_id, "
        "v.device_id, v.user_agent, s.current_version FROM submission_versions v "
        "JOIN submissions s ON s.id=v.submission_id WHERE s.id=? ORDER BY v.id DESC",
        (sid,),
    ).fetchall()
    return ok(
        [
            {
                "submitterId": r[1],
                "createdAt": r[2],
                "instanceName": r[3],
                "instanceId": r[4],
                "current": r[0] == r[7],
                "deviceId": r[5],
                "userAgent": r[6],
            }
            for r in rows
        ]
    )


S = "/v1/projects/{pid}/forms/{fid}/submissions"
ROUTES = [
    Route(S, submissions_list, methods=["GET"]),
    Route(S, submission_create, methods=["POST"]),
    Route(S + "/{iid}.xml", submission_xml, methods=["GET"]),
    Route(S + "/{iid}/restore", submission_restore, methods=["POST"]),
    Route(S + "/{iid}/comments", comments_list, methods=["GET"]),
    Route(S + "/{iid}/comments", comment_create, methods=["POST"]),
    Route(S + "/{iid}/attachments", attachments_list, methods=["GET"]),
    Route(S + "/{iid}/attachments/{name}", attachment_get, methods=["GET"]),
    Route(S + "/{iid}/attachments/{name}", attachment_upload, methods=["POST"]),
    Route(S + "/{iid}/attachments/{name}", attachment_delete, methods=["DELETE"]),
    Route(S + "/{iid}/versions", versions_list, methods=["GET"]),
    Route(S + "/{iid}", submission_get, methods=["GET"]),
    Route(S + "/{iid}", submission_put, methods=["PUT"]),
    Route(S + "/{iid}", submission_patch, methods=["PATCH"]),
    Route(S + "/{iid}", submission_delete, methods=["DELETE"]),
]
