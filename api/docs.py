"""The API's reference pages, served with their assets from this server, and the security
headers every response carries.

Issue 15 (item 9): ``/docs`` loaded Swagger UI from a CDN (no integrity check, nothing to
see without internet) on the page where a manager pastes a key, and no response had
security headers. Here Swagger UI and ReDoc come from ``api/static/docs`` (vendored, see
its NOTICE.md); the pages have no inline script, so their Content-Security-Policy allows
scripts from this server only.

``/openapi.json``, ``/docs`` and ``/redoc`` need no key: they describe the routes, the
parameters and the roles, not any data (form ids are path parameters, not listed), and
Swagger UI must read the document before a key has been pasted into it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static" / "docs"
DOC_PAGES = frozenset({"/docs", "/redoc"})

# The JSON API: nothing may load, frame or submit from a response.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The reference pages: this server's scripts only. Styles inline too: Swagger UI sets style
# attributes and ReDoc injects <style> elements at run time; images as data: URIs; ReDoc
# runs its search in a worker made from a blob.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

# The data managers' page (api/ui): no script at all, its stylesheet, inline SVG, and
# forms that post to itself (sign in and out).
UI_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="static/docs/favicon.png">
<link rel="stylesheet" href="static/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="static/docs/swagger-ui-bundle.js"></script>
<script src="static/docs/swagger-init.js"></script>
</body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="static/docs/favicon.png"></head>
<body><redoc spec-url="openapi.json"></redoc>
<script src="static/docs/redoc.standalone.js"></script>
</body></html>
"""


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from local assets; the app must be made with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not there too."""
    app.mount("/static/docs", StaticFiles(directory=STATIC), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE.format(title=title))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(REDOC_PAGE.format(title=title))


class SecurityHeaders:
    """Adds the security headers to every response, errors and refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in DOC_PAGES or path.startswith("/static/docs/"):
            csp = DOCS_CSP
        elif path == "/" or path.startswith("/ui"):
            csp = UI_CSP
        else:
            csp = API_CSP
        added = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
        if path.startswith("/v1/"):
            # Rows and exports may hold sensitive values: no browser or proxy keeps them.
            added.append((b"cache-control", b"no-store"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in added if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
