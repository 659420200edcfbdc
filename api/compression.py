"""Responses gzipped for clients that accept it (``Accept-Encoding: gzip``).

A 30 MB CSV export is about 6 MB gzipped, and field offices sit on slow links. Starlette's
``GZipMiddleware`` compresses streamed bodies chunk by chunk, so exports stay streamed (and
each chunk is still audited before it is produced). Bodies that are zips already (XLSX,
the CSV zip) are passed through: compressing them again costs CPU for nothing.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

ALREADY_COMPRESSED = (".xlsx", ".zip")


class GzipUnlessZipped:
    """GZipMiddleware for every path but those serving zip files."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1000) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(ALREADY_COMPRESSED):
            await self.app(scope, receive, send)
            return
        await self.gzip(scope, receive, send)
