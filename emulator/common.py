"""What every route module shares: the emulator's state, JSON answers, and lookups that turn
path segments into rows or Central's 404.1."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from emulator import errors
from emulator.auth import Actor, require_user
from emulator.errors import JSON_TYPE
from emulator.faults import FaultController
from emulator.xform import XForm, parse_xform


@dataclass
class Emulator:
    """Everything a request handler needs; one per server process."""

    conn: sqlite3.Connection
    data_dir: Path
    faults: FaultController
    session_ttl: timedelta | None = None  # a shorter token lifetime, set through faults
    xforms: dict[int, XForm] = field(default_factory=dict)

    def xform(self, def_id: int) -> XForm:
        """The parsed definition of one form version (parsed once, then cached)."""
        parsed = self.xforms.get(def_id)
        if parsed is None:
            row = self.conn.execute("SELECT xml FROM form_defs WHERE id=?", (def_id,)).fetchone()
            if row is None:
                raise errors.not_found()
            parsed = parse_xform(bytes(row[0]))
            self.xforms[def_id] = parsed
        return parsed


def emu(request: Request) -> Emulator:
    return request.app.state.emulator


def ok(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type=JSON_TYPE)


def xml_response(xml: bytes) -> Response:
    """A form definition or submission download (golden 32)."""
    return Response(xml, 200, media_type="application/xml; charset=utf-8")


SUCCESS = b'{"success":true}'


def success() -> Response:
    return Response(SUCCESS, 200, media_type=JSON_TYPE)


def base_url(request: Request) -> str:
    """Scheme and host the caller used, for the absolute links Central writes."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def key_prefix(request: Request) -> str:
    """``/v1/key/{token}`` when the caller came in by an app-user key, else ``/v1``."""
    key = request.scope.get("emulator.key")
    return f"/v1/key/{key}" if key else "/v1"


def is_true(value: str | None) -> bool:
    # lib/util/http.js isTrue: case-insensitive "true" (pyodk sends True/False).
    return value is not None and value.lower() == "true"


async def json_body(request: Request, *, any_json: bool = False) -> dict[str, Any]:
    """The JSON object a route reads; ``any_json``: JSON that is no object reads as ``{}``
    (its fields undefined), as in Central's handlers that read ``body.field``."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.unparseable("json", len(raw)) from None
    if not isinstance(data, dict):
        if any_json:
            return {}
        raise errors.unparseable("json", len(raw))
    return data


def project_row(conn: sqlite3.Connection, project_id: int) -> tuple:
    row = conn.execute(
        "SELECT id, name, description, actee_id, created_at, updated_at, deleted_at "
        "FROM projects WHERE id=? AND deleted_at IS NULL",
        (project_id,),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return row


@dataclass(frozen=True)
class FormRow:
    id: int
    project_id: int
    xml_form_id: str
    state: str
    created_at: str
    updated_at: str | None
    current_def: int | None
    draft_def: int | None


def find_form(conn: sqlite3.Connection, project_id: int, xml_form_id: str) -> FormRow:
    """A live form by its ids, without checking the project (the caller has done so)."""
    row = conn.execute(
        "SELECT id, project_id, xml_form_id, state, created_at, updated_at, current_def, "
        "draft_def FROM forms WHERE project_id=? AND xml_form_id=? AND deleted_at IS NULL",
        (project_id, xml_form_id),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return FormRow(*row)


def form_row(conn: sqlite3.Connection, project_id: int, xml_form_id: str) -> FormRow:
    """A live form of a live project; a deleted project hides its forms (404.1)."""
    project_row(conn, project_id)
    return find_form(conn, project_id, xml_form_id)


def may_use_form(conn: sqlite3.Connection, actor: Actor, form: FormRow) -> bool:
    """Whether ``actor`` may download and submit to ``form``: every web user here is an
    administrator; an app user only a form assigned to it in its own project (the App User
    role, golden 58/60/61; central-backend lib/model/query/assignments.js)."""
    if actor.is_user:
        return True
    return (
        actor.project_id == form.project_id
        and conn.execute(
            "SELECT 1 FROM assignments WHERE form_id=? AND actor_id=?", (form.id, actor.id)
        ).fetchone()
        is not None
    )


def published_def(conn: sqlite3.Connection, form: FormRow, version: str) -> int | None:
    """The newest published definition carrying ``version``; callers pick the error, since
    Central answers 404.1 on the REST routes and 404.6 on a submission (golden 26)."""
    row = conn.execute(
        "SELECT id FROM form_defs WHERE form_id=? AND version=? AND published_at IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        (form.id, version),
    ).fetchone()
    return None if row is None else row[0]


def user_project(request: Request) -> tuple[Emulator, int]:
    """The emulator and the ``{pid}`` project's id, for a route only web users may call."""
    e = emu(request)
    require_user(request, e.conn)
    return e, project_row(e.conn, int_param(request.path_params["pid"]))[0]


def user_form(request: Request) -> tuple[Emulator, Actor, FormRow]:
    """The emulator, the web user calling and the ``{pid}``/``{fid}`` form."""
    e = emu(request)
    actor = require_user(request, e.conn)
    form = form_row(e.conn, int_param(request.path_params["pid"]), request.path_params["fid"])
    return e, actor, form


_PG_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def int_param(value: str) -> int:
    """A numeric path segment, read as Central's PostgreSQL reads it into an ``integer``
    column: text that is no integer is 400.11 (22P02), one beyond 32 bits 400.22 (22003);
    central-backend lib/util/db.js maps those PostgreSQL errors to these problems."""
    if not _PG_INTEGER.fullmatch(value):
        raise errors.invalid_data_type(value, "type integer")
    number = int(value)
    if not -(2**31) <= number < 2**31:
        raise errors.out_of_range(value, "integer")
    return number
