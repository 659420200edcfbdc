"""How the API fails: 422 naming the parameter and value, 404 naming the unknown thing,
503 when the store is unreachable, and a last-resort handler that logs without secrets.

Handlers never echo a header (the bearer token lives there) and never log a request's
headers or body.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.forminfo import InvalidValue, UnknownName, Withheld
from collector.keys import ApiKeyError, DuplicateKeyName, UnknownKey

log = logging.getLogger("api")


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 200 else text[:200] + "..."


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or where
        if where == "header" and name.lower() == "authorization":
            value: Any = "<hidden>"  # never echo a token
        else:
            value = _short(err.get("input"))
        out.append({"parameter": name, "in": where, "value": value, "message": err.get("msg")})
    return out


def _our_frames(exc: BaseException) -> str:
    """The traceback's frames in our code: file, line, function and source line, never
    the exception's message or locals (either can hold a value or a token)."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" not in f.filename
    ]
    return "".join(traceback.format_list(frames))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"parameter": "request", "value": None, "message": ""}
        message = f"invalid {first['parameter']}={first['value']!r}: {first['message']}"
        return JSONResponse(status_code=422, content={"detail": message, "errors": errors})

    @app.exception_handler(InvalidValue)
    async def _bad(request: Request, exc: InvalidValue) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "detail": str(exc),
                "errors": [
                    {"parameter": exc.parameter, "value": _short(exc.value), "message": exc.message}
                ],
            },
        )

    @app.exception_handler(UnknownName)
    async def _not_found(request: Request, exc: UnknownName) -> JSONResponse:
        return JSONResponse(
            status_code=404, content={"detail": str(exc), "kind": exc.kind, "name": exc.name}
        )

    @app.exception_handler(Withheld)
    async def _withheld(request: Request, exc: Withheld) -> JSONResponse:
        return JSONResponse(status_code=403, content={"detail": str(exc)})

    @app.exception_handler(ApiKeyError)
    async def _key(request: Request, exc: ApiKeyError) -> JSONResponse:
        status = (
            404
            if isinstance(exc, UnknownKey)
            else 409
            if isinstance(exc, DuplicateKeyName)
            else 422
        )
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refused (out of range, bad encoding) that validation let by.
        log.warning(
            "database refused a value on %s %s: %s",
            request.method,
            request.url.path,
            type(exc.orig).__name__,
        )
        return JSONResponse(
            status_code=422, content={"detail": "a parameter's value is out of range for the store"}
        )

    @app.exception_handler(OperationalError)
    async def _store_down(request: Request, exc: OperationalError) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        # The statement and the DBAPI message name tables, not secrets; the URL is not in it.
        log.error(
            "store unavailable [%s] on %s %s: %s",
            error_id,
            request.method,
            request.url.path,
            type(exc.orig).__name__,
        )
        return JSONResponse(
            status_code=503,
            headers={"Retry-After": "5"},
            content={"detail": f"the store is unavailable; retry later (error {error_id})"},
        )


class CatchAll:
    """The last line: an exception no handler took becomes a 500 that names an error id,
    logged with our frames only (Starlette's own error middleware would log the message
    and re-raise, and a message can hold a value or a token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            # PostgreSQL text cannot hold NUL; no parameter of ours needs one.
            where = "query" if b"%00" in scope.get("query_string", b"") else "path"
            response = JSONResponse(
                status_code=422,
                content={"detail": f"invalid {where}: a parameter contains a NUL character"},
            )
            await response(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "unexpected error [%s] on %s %s: %s\n%s",
                error_id,
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                _our_frames(exc),
            )
            if started:  # a stream already under way can only be cut short
                return
            response = JSONResponse(
                status_code=500,
                content={"detail": f"internal error {error_id}; it has been logged"},
            )
            await response(scope, receive, send)
