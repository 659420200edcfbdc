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
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.central.errors import CentralError, CentralRejected, CentralUnavailable
from collector.errors import CollectorError, QueryError, StoreError, one_line
from collector.read.forminfo import InvalidValue, UnknownName, Withheld
from collector.store.keys import ApiKeyError, DuplicateKeyName, UnknownKey

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


# The status of each branch of collector's error tree (collector/errors.py); the first
# class in an error's MRO found here decides. Not listed: 400, the generic refusal.
STATUS: dict[type[BaseException], int] = {
    UnknownName: 404,
    InvalidValue: 422,
    Withheld: 403,
    QueryError: 400,
    UnknownKey: 404,
    DuplicateKeyName: 409,
    ApiKeyError: 422,
    CentralUnavailable: 503,
    CentralRejected: 502,
    CentralError: 502,
    StoreError: 503,
}


def collector_error_response(exc: CollectorError) -> JSONResponse:
    """The one place a ``CollectorError`` becomes a status and a ``{"detail": ...}`` body
    (with the parameter or name it is about, for the errors that carry one)."""
    status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)
    if isinstance(exc, CentralRejected) and exc.status == 404:
        status = 404  # what the caller named is not in Central
    content: dict[str, Any] = {"detail": one_line(exc)}
    headers = {"Retry-After": "30"} if status == 503 else None
    if isinstance(exc, InvalidValue):
        content["errors"] = [
            {"parameter": exc.parameter, "value": _short(exc.value), "message": exc.message}
        ]
    elif isinstance(exc, UnknownName):
        content |= {"kind": exc.kind, "name": exc.name}
    return JSONResponse(status_code=status, content=content, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"parameter": "request", "value": None, "message": ""}
        message = f"invalid {first['parameter']}={first['value']!r}: {first['message']}"
        return JSONResponse(status_code=422, content={"detail": message, "errors": errors})

    @app.exception_handler(CollectorError)
    async def _ours(request: Request, exc: CollectorError) -> JSONResponse:
        return collector_error_response(exc)

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

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every pooled connection is in use and none came back within the pool timeout:
        # the API is busy, not broken, and a client should come back (issue 15, item 4).
        log.warning("no database connection free on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=503,
            headers={"Retry-After": "2"},
            content={"detail": "the API is busy (every database connection in use); retry"},
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
