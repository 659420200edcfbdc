"""The emulator's ASGI application: routes, Central-shaped errors, app-user keys, faults.

Every failure becomes one of Central's answers: a ``CentralError`` as Central's JSON body
(or OpenRosa XML on OpenRosa routes), an unknown route as 404.1, and anything unexpected as
500.1 with the traceback in the log (never the request body; app-user keys are redacted from
logged paths) - never a bare traceback to the client.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from emulator import errors
from emulator.common import Emulator
from emulator.db import connect, ensure_admin, now_iso
from emulator.errors import CentralError, json_error, xml_error
from emulator.faults import FaultConfig, FaultController, FaultMiddleware
from emulator.openrosa import is_openrosa_path

log = logging.getLogger("emulator")
KEY_PATH = re.compile(r"^/v1/key/([^/]+)(/.*)$")
TEST_PATH = re.compile(r"^/v1/test/([^/]+)(/.*)$")  # a draft token (draft_testing)
SESSION_PATH = re.compile(r"^/v1/sessions/(?!current(?:/|$))[^/]+")


def redact(path: str) -> str:
    """A request path fit for the log: app-user keys and session tokens are credentials."""
    path = TEST_PATH.sub(r"/v1/test/***\2", KEY_PATH.sub(r"/v1/key/***\2", path))
    return SESSION_PATH.sub("/v1/sessions/***", path)


class KeyPathMiddleware:
    """``/v1/key/{token}/...`` is the app-user route (golden 60/61): strip the key into the
    scope and route the rest as ``/v1/...``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            m = KEY_PATH.match(scope["path"])
            if m:
                scope = dict(scope)
                scope["emulator.key"] = m.group(1)
                scope["path"] = "/v1" + m.group(2)
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def _error_response(request: Request, err: CentralError) -> Response:
    if is_openrosa_path(request.url.path) and err.code != 400.39:
        # Central answers the header check and auth failures before its OpenRosa
        # preprocessor adds the OpenRosa headers (golden 25, 64), later ones with them.
        early = err.code in (400.6, 403.1) or err.status == 401
        return xml_error(err, with_openrosa_headers=not early)
    return json_error(err)


async def central_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CentralError)
    return _error_response(request, exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return _error_response(request, errors.not_found())
    if exc.status_code == 400:  # starlette's multipart parser refused the body
        return _error_response(request, errors.multipart_parsing_failed())
    return _error_response(request, CentralError(float(exc.status_code), str(exc.detail)))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, redact(request.url.path))
    return _error_response(request, errors.unknown_internal())


def build_app(
    data_dir: Path, admin_email: str, admin_password: str, faults: FaultConfig | None = None
) -> Any:
    """The ASGI app over the SQLite file in ``data_dir`` (created on first start)."""
    from emulator import (
        draft_testing,
        openrosa,
        routes_control,
        routes_core,
        routes_entities,
        routes_forms,
        routes_odata,
        routes_submissions,
    )

    conn = connect(data_dir)
    ensure_admin(conn, admin_email, admin_password)
    controller = FaultController()
    if faults is not None:
        controller.set(faults)
    state = Emulator(conn=conn, data_dir=data_dir, faults=controller)
    # the busiest routes first (Starlette tries them in order); OData before the forms'
    # "/{fid}" routes, which would otherwise take "x.svc"
    routes = [
        *routes_entities.ROUTES,  # first: it answers for list-backed form attachments
        *openrosa.ROUTES,
        *draft_testing.ROUTES,
        *routes_odata.ROUTES,
        *routes_submissions.ROUTES,
        *routes_forms.ROUTES,
        *routes_core.ROUTES,
        *routes_control.ROUTES,
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            CentralError: central_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.emulator = state

    def expire_session(scope: dict) -> None:
        """The ``expire_token`` fault: the caller's bearer session ends now."""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                token = value.decode("latin-1").partition(" ")[2].strip()
                conn.execute("UPDATE sessions SET expires_at=? WHERE token=?", (now_iso(), token))

    return FaultMiddleware(KeyPathMiddleware(_ServerErrorGuard(app)), controller, expire_session)


class _ServerErrorGuard:
    """Starlette's ServerErrorMiddleware re-raises after answering; keep the answer and
    swallow the re-raise so uvicorn does not log a second traceback."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:  # already answered 500.1 and logged by unexpected_error
            if scope["type"] != "http":
                raise
