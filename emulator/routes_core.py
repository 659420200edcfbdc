"""Sessions, the current user, projects, app users and form assignments.

Shapes and key order follow golden 03/05/06/07/56/57/58/59/63/65; behaviour follows
central-backend lib/resources/{sessions,users,projects,field-keys,assignments}.js.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors
from emulator.auth import APP_USER_EXPIRY, create_session, require_actor, require_user
from emulator.common import (
    emu,
    int_param,
    is_true,
    json_body,
    ok,
    project_row,
    success,
    user_form,
    user_project,
)
from emulator.db import new_token, now_iso, password_matches

# Every verb an administrator holds on a project (golden 06).
ADMIN_VERBS = [
    "actor_property.list", "actor_property.update", "analytics.read", "assignment.create",
    "assignment.delete", "assignment.list", "audit.read", "backup.run", "config.read",
    "config.set", "dataset.create", "dataset.delete", "dataset.list", "dataset.read",
    "dataset.update", "entity.create", "entity.delete", "entity.list", "entity.read",
    "entity.restore", "entity.update", "field_key.create", "field_key.delete",
    "field_key.list", "field_key.update", "form.create", "form.delete", "form.list",
    "form.read", "form.restore", "form.update", "project.create", "project.delete",
    "project.read", "project.update", "public_link.create", "public_link.delete",
    "public_link.list", "public_link.read", "public_link.update", "role.create",
    "role.delete", "role.update", "session.end", "submission.create", "submission.delete",
    "submission.list", "submission.read", "submission.restore", "submission.update",
    "user.create", "user.delete", "user.list", "user.password.invalidate", "user.read",
    "user.update",
]  # fmt: skip

# Central's system roles (GET /v1/roles); pyodk assumes "App User" is 2
# (pyodk/_endpoints/projects.py create_app_users).
ROLES = {"admin": 1, "app-user": 2, "manager": 3, "viewer": 4, "formfill": 5}


# --- sessions ------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    e = emu(request)
    # Central parses a body as JSON only when it says application/json (express.json with
    # type 'application/json', lib/http/service.js); any other body, or JSON that is not an
    # object, leaves email and password undefined: 400.3, not 400.1.
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    body = await json_body(request, any_json=True) if ctype == "application/json" else {}
    email, password = body.get("email"), body.get("password")
    if not email or not password:
        # golden 02
        raise errors.missing_parameters(
            ["email", "password"], {"email": email, "password": password}
        )
    row = e.conn.execute(
        "SELECT id, password_hash FROM actors WHERE type='user' AND email=? AND deleted_at IS NULL",
        (email,),
    ).fetchone()
    if row is None or not password_matches(str(password), row[1]):
        raise errors.authentication_failed()  # golden 01
    ttl = e.faults.config.session_ttl_seconds
    lifetime = timedelta(seconds=ttl) if ttl is not None else None
    token, csrf, created, expires = create_session(e.conn, row[0], lifetime)
    # golden 03 key order
    return ok({"token": token, "csrf": csrf, "expiresAt": expires, "createdAt": created})


async def logout_or_revoke(request: Request) -> Response:
    """``DELETE /v1/sessions/current`` logs out (golden 65); ``DELETE /v1/sessions/{token}``
    ends that session, which is how Central revokes an app user (golden 63)."""
    e = emu(request)
    actor = require_actor(request, e.conn)
    which = request.path_params["token"]
    if which == "current":
        e.conn.execute("DELETE FROM sessions WHERE token=?", (actor.token,))
        return success()
    row = e.conn.execute("SELECT actor_id FROM sessions WHERE token=?", (which,)).fetchone()
    if row is None:
        raise errors.not_found()
    if not actor.is_user and row[0] != actor.id:
        raise errors.insufficient_rights()
    e.conn.execute("DELETE FROM sessions WHERE token=?", (which,))
    return success()


async def session_get(request: Request) -> Response:
    e = emu(request)
    actor = require_actor(request, e.conn)
    if request.path_params["token"] not in ("restore", "current", actor.token):
        raise errors.not_found()
    row = e.conn.execute(
        "SELECT created_at, expires_at FROM sessions WHERE token=?", (actor.token,)
    ).fetchone()
    return ok({"createdAt": row[0], "expiresAt": row[1]})


async def users_current(request: Request) -> Response:
    """What pyodk calls to check a cached token (pyodk/_endpoints/auth.py verify_token)."""
    e = emu(request)
    actor = require_user(request, e.conn)
    row = e.conn.execute(
        "SELECT id, display_name, email, created_at, updated_at, deleted_at FROM actors WHERE id=?",
        (actor.id,),
    ).fetchone()
    return ok(
        {
            "id": row[0],
            "type": "user",
            "displayName": row[1],
            "createdAt": row[3],
            "email": row[2],
            "updatedAt": row[4],
            "deletedAt": row[5],
        }
    )


# --- projects -------------------------------------------------------------------------------


def _project_json(row: tuple) -> dict:
    # golden 07 key order
    return {
        "id": row[0],
        "name": row[1],
        "description": row[2],
        "archived": None,
        "keyId": None,
        "createdAt": row[4],
        "updatedAt": row[5],
        "deletedAt": row[6],
    }


async def projects_list(request: Request) -> Response:
    e = emu(request)
    actor = require_actor(request, e.conn)
    if not actor.is_user:
        raise errors.insufficient_rights()
    rows = e.conn.execute(
        "SELECT id, name, description, actee_id, created_at, updated_at, deleted_at "
        "FROM projects WHERE deleted_at IS NULL ORDER BY name, id"
    ).fetchall()
    extended = is_true(request.headers.get("x-extended-metadata"))
    out = []
    for row in rows:
        item = _project_json(row)
        if extended:
            item["forms"] = e.conn.execute(
                "SELECT count(*) FROM forms WHERE project_id=? AND deleted_at IS NULL", (row[0],)
            ).fetchone()[0]
            item["appUsers"] = e.conn.execute(
                "SELECT count(*) FROM actors WHERE project_id=? AND deleted_at IS NULL", (row[0],)
            ).fetchone()[0]
            item["lastSubmission"] = e.conn.execute(
                "SELECT max(s.created_at) FROM submissions s JOIN forms f ON f.id=s.form_id "
                "WHERE f.project_id=?",
                (row[0],),
            ).fetchone()[0]
            item["datasets"] = 0
        item["verbs"] = ADMIN_VERBS  # golden 06: the admin's verbs on each project
        out.append(item)
    return ok(out)


async def project_create(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.missing_parameter("name")
    description = body.get("description")
    actee, created = str(uuid.uuid4()), now_iso()
    cur = e.conn.execute(
        "INSERT INTO projects (name, description, actee_id, created_at) VALUES (?,?,?,?)",
        (name, description, actee, created),
    )
    # golden 05 key order
    return ok(
        {
            "id": cur.lastrowid,
            "name": name,
            "acteeId": actee,
            "createdAt": created,
            "updatedAt": None,
            "deletedAt": None,
            "archived": None,
            "keyId": None,
            "description": description,
        }
    )


async def project_get(request: Request) -> Response:
    e = emu(request)
    require_user(request, e.conn)
    return ok(_project_json(project_row(e.conn, int_param(request.path_params["pid"]))))


# --- app users ------------------------------------------------------------------------------


def _app_user_token(conn: sqlite3.Connection, actor_id: int) -> str | None:
    row = conn.execute(
        "SELECT token FROM sessions WHERE actor_id=? ORDER BY created_at DESC LIMIT 1",
        (actor_id,),
    ).fetchone()
    return row[0] if row else None


async def app_user_create(request: Request) -> Response:
    e, pid = user_project(request)
    body = await json_body(request)
    name = body.get("displayName")
    if not isinstance(name, str) or not name:
        raise errors.missing_parameter("displayName")
    created = now_iso()
    cur = e.conn.execute(
        "INSERT INTO actors (type, display_name, project_id, created_at) "
        "VALUES ('field_key', ?, ?, ?)",
        (name, pid, created),
    )
    actor_id = int(cur.lastrowid or 0)
    token, csrf = new_token(), new_token()
    e.conn.execute(
        "INSERT INTO sessions (token, actor_id, csrf, created_at, expires_at) VALUES (?,?,?,?,?)",
        (token, actor_id, csrf, created, APP_USER_EXPIRY),
    )
    # golden 56 key order
    return ok(
        {
            "projectId": pid,
            "id": actor_id,
            "type": "field_key",
            "displayName": name,
            "createdAt": created,
            "updatedAt": None,
            "deletedAt": None,
            "token": token,
            "csrf": csrf,
            "expiresAt": APP_USER_EXPIRY,
        }
    )


async def app_users_list(request: Request) -> Response:
    e, pid = user_project(request)
    rows = e.conn.execute(
        "SELECT id, display_name, created_at, updated_at, deleted_at FROM actors "
        "WHERE project_id=? AND type='field_key' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC",
        (pid,),
    ).fetchall()
    # golden 57; a revoked app user stays listed with "token": null (central-frontend shows
    # "Access revoked" from that).
    return ok(
        [
            {
                "projectId": pid,
                "id": r[0],
                "type": "field_key",
                "displayName": r[1],
                "createdAt": r[2],
                "updatedAt": r[3],
                "deletedAt": r[4],
                "token": _app_user_token(e.conn, r[0]),
            }
            for r in rows
        ]
    )


async def app_user_delete(request: Request) -> Response:
    e, pid = user_project(request)
    actor_id = int_param(request.path_params["actor_id"])
    row = e.conn.execute(
        "SELECT id FROM actors WHERE id=? AND project_id=? AND type='field_key' "
        "AND deleted_at IS NULL",
        (actor_id, pid),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    e.conn.execute("UPDATE actors SET deleted_at=? WHERE id=?", (now_iso(), actor_id))
    e.conn.execute("DELETE FROM sessions WHERE actor_id=?", (actor_id,))
    e.conn.execute("DELETE FROM assignments WHERE actor_id=?", (actor_id,))
    return success()


# --- form assignments -----------------------------------------------------------------------


def _role_id(text: str) -> int:
    if text in ROLES:
        return ROLES[text]
    try:
        role = int(text)
    except ValueError:
        raise errors.not_found() from None
    if role not in ROLES.values():
        raise errors.not_found()
    return role


async def assignment_create(request: Request) -> Response:
    e, _, form = user_form(request)
    role = _role_id(request.path_params["role"])
    actor_id = int_param(request.path_params["actor_id"])
    if (
        e.conn.execute(
            "SELECT 1 FROM actors WHERE id=? AND deleted_at IS NULL", (actor_id,)
        ).fetchone()
        is None
    ):
        raise errors.not_found()
    exists = e.conn.execute(
        "SELECT 1 FROM assignments WHERE form_id=? AND actor_id=? AND role_id=?",
        (form.id, actor_id, role),
    ).fetchone()
    if exists:
        # lib/model/query/assignments.js grant: a second insert violates the primary key.
        raise errors.uniqueness(
            ["actorId", "roleId", "acteeId"],
            [str(actor_id), str(role), str(form.id)],
            "assignments",
        )
    e.conn.execute(
        "INSERT INTO assignments (form_id, actor_id, role_id) VALUES (?,?,?)",
        (form.id, actor_id, role),
    )
    return success()  # golden 58


async def assignment_delete(request: Request) -> Response:
    e, _, form = user_form(request)
    role = _role_id(request.path_params["role"])
    actor_id = int_param(request.path_params["actor_id"])
    cur = e.conn.execute(
        "DELETE FROM assignments WHERE form_id=? AND actor_id=? AND role_id=?",
        (form.id, actor_id, role),
    )
    if cur.rowcount == 0:
        raise errors.not_found()
    return success()


async def assignments_list(request: Request) -> Response:
    e, _, form = user_form(request)
    role_text = request.path_params.get("role")
    if role_text is None:
        rows = e.conn.execute(
            "SELECT actor_id, role_id FROM assignments WHERE form_id=? ORDER BY actor_id",
            (form.id,),
        ).fetchall()
        return ok([{"actorId": a, "roleId": r} for a, r in rows])
    role = _role_id(role_text)
    rows = e.conn.execute(
        "SELECT a.id, a.type, a.display_name, a.created_at, a.updated_at, a.deleted_at "
        "FROM assignments s JOIN actors a ON a.id=s.actor_id "
        "WHERE s.form_id=? AND s.role_id=? AND a.deleted_at IS NULL ORDER BY a.id",
        (form.id, role),
    ).fetchall()
    # golden 59 key order
    return ok(
        [
            {
                "id": r[0],
                "type": r[1],
                "displayName": r[2],
                "createdAt": r[3],
                "updatedAt": r[4],
                "deletedAt": r[5],
            }
            for r in rows
        ]
    )


async def roles_list(request: Request) -> Response:
    e = emu(request)
    require_actor(request, e.conn)
    # the system roles' display names (central-backend lib/model/migrations, GET /v1/roles)
    names = {
        "admin": "Administrator",
        "app-user": "App User",
        "manager": "Project Manager",
        "viewer": "Project Viewer",
        "formfill": "Data Collector",
    }
    return ok(
        [
            {
                "id": rid,
                "name": names[system],
                "system": system,
                "createdAt": None,
                "updatedAt": None,
            }
            for system, rid in ROLES.items()
        ]
    )


ROUTES = [
    Route("/v1/sessions", login, methods=["POST"]),
    Route("/v1/sessions/{token}", logout_or_revoke, methods=["DELETE"]),
    Route("/v1/sessions/{token}", session_get, methods=["GET"]),
    Route("/v1/users/current", users_current, methods=["GET"]),
    Route("/v1/roles", roles_list, methods=["GET"]),
    Route("/v1/projects", projects_list, methods=["GET"]),
    Route("/v1/projects", project_create, methods=["POST"]),
    Route("/v1/projects/{pid}", project_get, methods=["GET"]),
    Route("/v1/projects/{pid}/app-users", app_users_list, methods=["GET"]),
    Route("/v1/projects/{pid}/app-users", app_user_create, methods=["POST"]),
    Route("/v1/projects/{pid}/app-users/{actor_id}", app_user_delete, methods=["DELETE"]),
    Route("/v1/projects/{pid}/forms/{fid}/assignments", assignments_list, methods=["GET"]),
    Route("/v1/projects/{pid}/forms/{fid}/assignments/{role}", assignments_list, methods=["GET"]),
    Route(
        "/v1/projects/{pid}/forms/{fid}/assignments/{role}/{actor_id}",
        assignment_create,
        methods=["POST"],
    ),
    Route(
        "/v1/projects/{pid}/forms/{fid}/assignments/{role}/{actor_id}",
        assignment_delete,
        methods=["DELETE"],
    ),
]
