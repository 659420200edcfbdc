"""The app factory: one FastAPI app from one Settings.

Nothing is built at import time: ``create_app(settings)`` makes the engine (through
``collector.store.engine_for``), the rate limiter and the routers, so tests and replicas
each get their own. ``collector api`` serves it with uvicorn.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from api.bodyguard import BodyGuard
from api.compression import GzipUnlessZipped
from api.database import api_engine, with_statement_timeout
from api.docs import SecurityHeaders, install_docs
from api.errors import CatchAll, install_error_handlers
from api.exportslots import ExportSlots
from api.ratelimit import RateLimiter, SharedRateLimiter
from api.routes import (
    activity,
    data_issues,
    exports,
    forms,
    health,
    indicators,
    keys,
    odata,
    register,
    reviews,
    submissions,
    sync_status,
)
from api.ui import routes as ui
from collector import store
from collector.settings import Settings
from collector.store import migrations
from collector.store.keys import ActiveKeyHashes

DESCRIPTION = """\
The programme's field data for data managers: forms, submissions, exports, indicators,
reviews and sync status.

Send an API key as `Authorization: Bearer <key>` (`collector keys create NAME --role ROLE`)
to every `/v1` route; `/health`, this page, `/redoc` and `/openapi.json` need none (they
describe the API and hold no data).
Roles: **viewer** (indicators, with small cells suppressed, and form definitions),
**analyst** (rows and exports, sensitive values withheld), **manager** (everything; each read
of a sensitive value is audited; review decisions), **admin** (a manager who also manages
keys and starts syncs). A key limited to districts sees only their rows, everywhere.
"""


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    app = FastAPI(
        title="collector API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # served from local assets by install_docs, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    # The API's own pool (bounded wait, 503 past it) unless a caller hands one in (tests,
    # the demo), and a statement timeout on whichever it is (api.database).
    base = engine if engine is not None else api_engine(settings)
    # A store behind this release's schema is refused here, in one line (StoreBehind):
    # `collector store upgrade` moves it, once, before the replicas start.
    # An unreachable store is not refused: replicas start and answer 503 until it is back
    # (the scheduler, and store-init before them, check the schema again anyway).
    try:
        migrations.check_current(base)
    except OperationalError as err:
        logging.getLogger("api").warning(
            "store unreachable at start (%s): its schema version is not checked",
            type(err.orig).__name__,
        )
    app.state.engine = with_statement_timeout(base, settings.api_statement_timeout_seconds)
    app.state.export_slots = ExportSlots(settings.api_exports_per_key)
    per_minute = settings.api_rate_limit_per_minute
    app.state.rate_limiter = (
        SharedRateLimiter(app.state.engine, per_minute)
        if store.is_postgres(app.state.engine)
        else RateLimiter(per_minute)
    )
    # Requests without a valid key stay limited in-process, per client address: that
    # limit exists to spare the database a query per request in a flood (SEC-9, SEC-22).
    app.state.auth_failure_limiter = RateLimiter(settings.api_auth_failures_per_minute)
    app.state.active_key_hashes = ActiveKeyHashes(app.state.engine)
    install_error_handlers(app)
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.api_max_body_bytes,
        timeout_seconds=settings.api_body_timeout_seconds,
    )
    app.add_middleware(CatchAll)
    app.add_middleware(GzipUnlessZipped)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, 500s included
    install_docs(app)
    app.include_router(health.router)
    app.mount("/ui/static", ui.static, name="ui-static")
    app.include_router(ui.router)
    for module in (
        forms,
        submissions,
        exports,
        indicators,
        reviews,
        sync_status,
        data_issues,
        keys,
        activity,
        odata,
        register,
    ):
        app.include_router(module.router, prefix="/v1")
    return app
