"""Request bodies: refused unread without a key, bounded in size and in time.

Issue 15 (item 8): a 50 MiB body without a key was read and parsed before the 401 (122 MiB
of memory for nothing), and a body sent a byte at a time held its request open for ever.
:class:`BodyGuard`, an ASGI middleware, sees a request before any route does:

1. A body whose ``Content-Length`` is above ``api_max_body_bytes`` gets 413 at once.
2. A body without a valid key (a hash among the active keys', ``collector.store.keys``
   ``ActiveKeyHashes``: no query per request) gets 401 before a byte of it is read, and
   counts against the client address's bad-key budget like any other (``api.deps``).
3. Otherwise the body is read here, whole, within ``api_body_timeout_seconds`` (408 past
   it) and ``api_max_body_bytes`` (413 past it, also for chunked bodies, which name no
   length), then handed to the app; bodies are filters, a few kilobytes.

Each refusal closes the connection (``Connection: close``): the unread rest of the body
must not be taken for the next request.
"""

from __future__ import annotations

import asyncio
import time

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.ratelimit import RateLimiter, retry_after_header


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class BodyGuard:
    def __init__(
        self, app: ASGIApp, *, max_bytes: int, timeout_seconds: float, guarded_prefix: str = "/v1"
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout_seconds
        self.prefix = guarded_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length_text = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding") is not None
        try:
            length = int(length_text) if length_text is not None else 0
        except ValueError:
            await _refuse(scope, receive, send, 400, "Content-Length is not a number")
            return
        if length <= 0 and not chunked:
            await self.app(scope, receive, send)
            return
        if length > self.max_bytes:
            await _refuse(
                scope, receive, send, 413, f"the body is larger than {self.max_bytes} bytes"
            )
            return
        if scope.get("path", "").startswith(self.prefix) and not await self._keyed(scope, send):
            return
        body = await self._read(scope, receive, send)
        if body is None:
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _keyed(self, scope: Scope, send: Send) -> bool:
        """Whether the request carries an active key; if not, it has been answered."""
        app = scope["app"]
        token = _bearer(scope)
        if token is not None and await run_in_threadpool(
            app.state.active_key_hashes.__contains__, token
        ):
            return True
        failures: RateLimiter = app.state.auth_failure_limiter
        client = scope["client"][0] if scope.get("client") else ""
        wait = failures.acquire(client)
        if wait > 0:
            headers = {"Retry-After": retry_after_header(wait), "Connection": "close"}
            await JSONResponse(
                status_code=429,
                headers=headers,
                content={"detail": "too many requests without a valid API key"},
            )(scope, _nothing, send)
            return False
        detail = (
            "send an API key as 'Authorization: Bearer <key>'"
            if token is None
            else "unknown or revoked API key"
        )
        await JSONResponse(
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", "Connection": "close"},
            content={"detail": detail},
        )(scope, _nothing, send)
        return False

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once the request has been answered 408/413."""
        parts: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await _refuse(
                    scope, _nothing, send, 408, f"the body did not arrive within {self.timeout:g} s"
                )
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(
                    scope, _nothing, send, 413, f"the body is larger than {self.max_bytes} bytes"
                )
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse(
        status_code=status, headers={"Connection": "close"}, content={"detail": detail}
    )(scope, receive, send)
