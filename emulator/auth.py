"""Who is calling: bearer sessions for web users, path keys (``/v1/key/{token}``) for app users.

Central's rules copied here (central-backend lib/http/preprocessors.js, lib/resources/sessions.js):
an unknown or expired bearer token is 401.2 (golden 04); a bad app-user key is 403.1
(golden 64); tokens last 24 h (``sessionLifetime: 86400``); app-user tokens never expire
(golden 56: ``expiresAt 9999-12-31``) but are revoked by deleting their session (golden 63).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from emulator import errors
from emulator.db import iso, new_token, now_iso

SESSION_LIFETIME = timedelta(seconds=86400)
APP_USER_EXPIRY = "9999-12-31T23:59:59.000Z"


@dataclass(frozen=True)
class Actor:
    id: int
    type: str  # "user" (web user) or "field_key" (app user)
    display_name: str
    project_id: int | None
    token: str | None

    @property
    def is_user(self) -> bool:
        return self.type == "user"


def create_session(
    conn: sqlite3.Connection, actor_id: int, lifetime: timedelta | None = None
) -> tuple[str, str, str, str]:
    """A new session for ``actor_id``: (token, csrf, createdAt, expiresAt)."""
    now = datetime.now(UTC)
    token, csrf = new_token(), new_token()
    created, expires = iso(now), iso(now + (lifetime or SESSION_LIFETIME))
    conn.execute(
        "INSERT INTO sessions (token, actor_id, csrf, created_at, expires_at) VALUES (?,?,?,?,?)",
        (token, actor_id, csrf, created, expires),
    )
    return token, csrf, created, expires


def _actor_for_token(conn: sqlite3.Connection, token: str) -> Actor | None:
    row = conn.execute(
        "SELECT a.id, a.type, a.display_name, a.project_id, s.expires_at FROM sessions s "
        "JOIN actors a ON a.id = s.actor_id WHERE s.token = ? AND a.deleted_at IS NULL",
        (token,),
    ).fetchone()
    if row is None or row[4] <= now_iso():
        return None
    return Actor(row[0], row[1], row[2], row[3], token)


def current_actor(request: Request, conn: sqlite3.Connection) -> Actor | None:
    """The caller, or None when anonymous; raises Central's error for a bad credential."""
    key = request.scope.get("emulator.key")
    if key is not None:
        actor = _actor_for_token(conn, key)
        if actor is None:
            raise errors.insufficient_rights()
        return actor
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise errors.authentication_failed()
    actor = _actor_for_token(conn, value.strip())
    if actor is None:
        raise errors.authentication_failed()
    return actor


def require_actor(request: Request, conn: sqlite3.Connection) -> Actor:
    actor = current_actor(request, conn)
    if actor is None:
        # anonymous callers may do nothing but log in (lib/http/endpoint.js: 403.1).
        raise errors.insufficient_rights()
    return actor


def require_user(request: Request, conn: sqlite3.Connection) -> Actor:
    """A web user; app users may only use the OpenRosa and form-download routes."""
    actor = require_actor(request, conn)
    if not actor.is_user:
        raise errors.insufficient_rights()
    return actor
