"""How uvicorn serves the API: slow clients timed out, forwarded addresses trusted from
configured proxies only.

Issue 15 (item 8). uvicorn closes an idle keep-alive connection, but a client that sends
its headers a byte every few seconds (slowloris) keeps a connection, and its memory, for
as long as it likes: :class:`HeaderTimeoutProtocol` closes a connection whose request
headers are not complete within ``api_header_timeout_seconds`` of it opening (or of the
previous response ending). Bodies are timed by ``api.bodyguard``, which reads them.

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise, so anyone on
the host could pick the client address the bad-key limit counts by; here it is believed
only from ``api_trusted_proxies`` (none by default: the peer's own address counts).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collector.settings import Settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request's headers."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's headers are already here
        super().on_response_complete()
        if not pipelined:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn config ``collector api`` serves with (tests serve with the same)."""
    protocol = type(
        "HeaderTimeoutProtocol",
        (HeaderTimeoutProtocol,),
        {"header_timeout": settings.api_header_timeout_seconds},
    )
    proxies = [p.strip() for p in settings.api_trusted_proxies.split(",") if p.strip()]
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "http": protocol,
        "proxy_headers": bool(proxies),
        # An explicit list: uvicorn's default (None) reads FORWARDED_ALLOW_IPS or trusts
        # 127.0.0.1, which is what let a local client choose its own address.
        "forwarded_allow_ips": proxies,
        "timeout_keep_alive": 5,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
