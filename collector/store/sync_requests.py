"""Syncs asked for through the API: a row the API writes and the leading scheduler takes.

The API never syncs itself: a sync in an API replica would pull beside the scheduler,
outside the leader lock that makes sure exactly one process pulls. So ``POST
/v1/sync/run`` writes a ``sync_request`` row (:func:`request_sync`); the leading scheduler
looks for rows every few seconds (:func:`take_pending`), runs them and closes them
(:func:`finish`). A row taken by a scheduler that then died stays ``running``; a new
request is still accepted (only one *pending* row at a time is kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.store import models as m
from collector.store.engine import now

_t = m.SyncRequest.__table__


@dataclass(frozen=True)
class PendingSync:
    id: int
    forms: list[str] | None  # None: every form
    requested_at: datetime


def request_sync(engine: Engine, forms: list[str] | None, requested_by: str | None) -> int | None:
    """Queue a sync; None when one is already waiting (nothing is queued twice)."""
    with engine.begin() as conn:
        waiting = conn.execute(sa.select(_t.c.id).where(_t.c.picked_at.is_(None)).limit(1)).scalar()
        if waiting is not None:
            return None
        return conn.execute(
            _t.insert()
            .values(
                forms=forms or None,
                requested_by=requested_by,
                requested_at=now(),
                status="pending",
            )
            .returning(_t.c.id)
        ).scalar_one()


def take_pending(engine: Engine, runner: str) -> list[PendingSync]:
    """The waiting requests, oldest first, marked as taken by ``runner``."""
    taken = []
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(_t.c.id, _t.c.forms, _t.c.requested_at)
            .where(_t.c.picked_at.is_(None))
            .order_by(_t.c.id)
        ).all()
        for row in rows:
            claimed = conn.execute(
                _t.update()
                .where(_t.c.id == row.id, _t.c.picked_at.is_(None))
                .values(picked_at=now(), picked_by=runner, status="running")
            ).rowcount
            if claimed == 1:
                taken.append(PendingSync(row.id, row.forms, row.requested_at))
    return taken


def finish(engine: Engine, request_id: int, *, ok: bool, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            _t.update()
            .where(_t.c.id == request_id)
            .values(done_at=now(), status="ok" if ok else "failed", error=error)
        )


def waiting_since(engine: Engine) -> datetime | None:
    """When the oldest request still waiting for a scheduler was made, or None."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.min(_t.c.requested_at)).where(_t.c.picked_at.is_(None))
        ).scalar()
