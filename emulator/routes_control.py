"""The emulator's own control routes, outside Central's ``/v1`` namespace.

- ``GET /_emulator/health``: 200 when serving (tests/conftest.py polls it);
- ``GET|POST|DELETE /_emulator/faults``: read, set (JSON, see :mod:`emulator.faults`), clear;
- ``POST /_emulator/expire-tokens``: ``{"token": t}`` expires that session now (a token that
  "expires early"); with no body every web-user session; app-user keys are untouched;
- ``POST /_emulator/projects/{p}/forms/{f}/backdated-submission`` JSON
  ``{"xml": ..., "submissionDate": ISO, "submitterId"?: int}``: commit a submission now with an
  older submissionDate, the way a slow transaction lands behind the sync watermark
  (getodk/central#1615);
- ``POST /_emulator/projects/{p}/forms/{f}/backdated-submissions`` JSON
  ``{"submissions": [{"xml", "submissionDate"}, ...]}``: many at once, one transaction;
- ``GET /_emulator/truth/{p}/{f}``: every submission, deleted ones included, with its current
  XML's sha256, for store-equals-truth checks;
- ``POST /_emulator/crash``: raises, to show the catch-all answering 500.1.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import Actor
from emulator.common import FormRow, emu, find_form, int_param, json_body, ok
from emulator.db import iso, now_iso, transaction
from emulator.faults import FaultError, parse_config
from emulator.submissions import Incoming, read_incoming, store


async def health(request: Request) -> Response:
    return ok({"ok": True})


async def crash(request: Request) -> Response:
    """An unexpected exception on purpose, so tests can see the catch-all answer Central's
    500.1 body (and the server keep serving) without a bug being needed."""
    raise RuntimeError("emulator: crash requested through /_emulator/crash")


async def faults_get(request: Request) -> Response:
    return ok(emu(request).faults.describe())


async def faults_set(request: Request) -> Response:
    e = emu(request)
    body = await json_body(request)
    try:
        cfg = parse_config(body)
    except FaultError as exc:
        return ok({"message": str(exc), "code": 400.8}, 400)
    e.faults.set(cfg)
    return ok(e.faults.describe())


async def faults_clear(request: Request) -> Response:
    e = emu(request)
    e.faults.clear()
    return ok(e.faults.describe())


async def expire_tokens(request: Request) -> Response:
    """``{"token": "..."}`` expires that session now; an empty body expires every web-user
    session (other tests sharing the emulator would see 401s: prefer naming the token)."""
    e = emu(request)
    body = await json_body(request)
    token = body.get("token")
    if token is not None:
        cur = e.conn.execute(
            "UPDATE sessions SET expires_at=? WHERE token=?", (now_iso(), str(token))
        )
    else:
        cur = e.conn.execute(
            "UPDATE sessions SET expires_at=? WHERE actor_id IN "
            "(SELECT id FROM actors WHERE type='user')",
            (now_iso(),),
        )
    return ok({"expired": cur.rowcount})


def _submitter(conn: sqlite3.Connection, actor_id: object | None) -> Actor:
    """The actor a backdated submission is stored as: the one named, else the administrator."""
    row = conn.execute(
        "SELECT id, type, display_name, project_id FROM actors WHERE "
        + ("id=?" if actor_id is not None else "type='user' ORDER BY id LIMIT 1"),
        (actor_id,) if actor_id is not None else (),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return Actor(row[0], row[1], row[2], row[3], None)


def _backdated(item: dict[str, Any], form: FormRow) -> tuple[Incoming, str]:
    """One ``{"xml", "submissionDate"}`` item read and checked: the submission and its
    ``createdAt`` as Central would write it."""
    xml, when = item.get("xml"), item.get("submissionDate")
    if not isinstance(xml, str) or not isinstance(when, str):
        raise errors.missing_parameters(
            ["xml", "submissionDate"], {"xml": xml, "submissionDate": when}
        )
    try:
        created = iso(datetime.fromisoformat(when.replace("Z", "+00:00")))
    except ValueError:
        raise errors.unexpected_value("submissionDate", when, "not an ISO 8601 time") from None
    incoming = read_incoming(xml.encode())
    if incoming.form_id != form.xml_form_id:
        raise errors.unexpected_value("form id", incoming.form_id, "not the form in the URL")
    return incoming, created


async def backdated_submission(request: Request) -> Response:
    e = emu(request)
    pid = int_param(request.path_params["pid"])
    body = await json_body(request)
    form = find_form(e.conn, pid, request.path_params["fid"])
    actor = _submitter(e.conn, body.get("submitterId"))
    incoming, created = _backdated(body, form)
    stored = store(e, form, incoming, actor, None, "emulator-control", created_at=created)
    return ok(
        {"instanceId": incoming.instance_id, "created": stored.created, "submissionDate": created}
    )


async def backdated_submissions(request: Request) -> Response:
    """Many at once, in one transaction: ``{"submissions": [{"xml", "submissionDate"}, ...]}``
    (benchmarks load 100,000 this way). All or nothing."""
    e = emu(request)
    pid = int_param(request.path_params["pid"])
    body = await json_body(request)
    items = body.get("submissions")
    if not isinstance(items, list):
        raise errors.missing_parameter("submissions")
    form = find_form(e.conn, pid, request.path_params["fid"])
    actor = _submitter(e.conn, None)
    created = 0
    with transaction(e.conn):
        for item in items:
            incoming, moment = _backdated(item, form)
            created += store(
                e, form, incoming, actor, None, "emulator-control", created_at=moment
            ).created
    return ok({"created": created, "received": len(items)})


async def truth(request: Request) -> Response:
    e = emu(request)
    form = find_form(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    rows = e.conn.execute(
        "SELECT s.instance_id, v.instance_id, v.xml, s.created_at, s.updated_at, s.deleted_at, "
        "s.review_state, s.edits, s.form_version FROM submissions s "
        "JOIN submission_versions v ON v.id=s.current_version WHERE s.form_id=? "
        "ORDER BY s.created_at DESC, s.id DESC",
        (form.id,),
    ).fetchall()
    return ok(
        [
            {
                "instanceId": r[0],
                "currentVersionInstanceId": r[1],
                "xmlSha256": hashlib.sha256(bytes(r[2])).hexdigest(),
                "submissionDate": r[3],
                "updatedAt": r[4],
                "deletedAt": r[5],
                "reviewState": r[6],
                "edits": r[7],
                "formVersion": r[8],
            }
            for r in rows
        ]
    )


ROUTES = [
    Route("/_emulator/health", health, methods=["GET"]),
    Route("/_emulator/crash", crash, methods=["POST"]),
    Route("/_emulator/faults", faults_get, methods=["GET"]),
    Route("/_emulator/faults", faults_set, methods=["POST"]),
    Route("/_emulator/faults", faults_clear, methods=["DELETE"]),
    Route("/_emulator/expire-tokens", expire_tokens, methods=["POST"]),
    Route(
        "/_emulator/projects/{pid}/forms/{fid}/backdated-submission",
        backdated_submission,
        methods=["POST"],
    ),
    Route(
        "/_emulator/projects/{pid}/forms/{fid}/backdated-submissions",
        backdated_submissions,
        methods=["POST"],
    ),
    Route("/_emulator/truth/{pid}/{fid}", truth, methods=["GET"]),
]
