"""Sync state (watermarks) and history (sync_run), and the per-form status.

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collector.store.engine import T, as_utc, now

# --- sync state and history ------------------------------------------------------------------


def sync_state(engine: Engine, form_id: int) -> dict[str, Any]:
    """The form's watermarks (aware UTC or None) and its last fields version."""
    st = T["sync_state"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(st).where(st.c.form_id == form_id)).first()
    if row is None:
        return {"watermark": None, "deleted_watermark": None, "reconciled_at": None,
                "fields_version": None}  # fmt: skip
    d = dict(row._mapping)
    for k in ("watermark", "deleted_watermark", "reconciled_at"):
        d[k] = as_utc(d[k])
    return d


def _set_sync_state(conn: Connection, form_id: int, **values: Any) -> None:
    st = T["sync_state"]
    if conn.execute(sa.select(st.c.form_id).where(st.c.form_id == form_id)).first():
        conn.execute(st.update().where(st.c.form_id == form_id).values(**values))
    else:
        conn.execute(st.insert().values(form_id=form_id, **values))


def save_sync_state(engine: Engine, form_id: int, **values: Any) -> None:
    """Move a watermark (``watermark=``, ``deleted_watermark=``, ``reconciled_at=``)."""
    with engine.begin() as conn:
        _set_sync_state(conn, form_id, **values)


def start_run(
    engine: Engine, xml_form_id: str, form_id: int | None, runner: str | None = None
) -> int:
    with engine.begin() as conn:
        return conn.execute(
            T["sync_run"]
            .insert()
            .values(
                xml_form_id=xml_form_id,
                form_id=form_id,
                started_at=now(),
                status="running",
                runner=runner,
            )
        ).inserted_primary_key[0]


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    error: str | None = None,
    status: str | None = None,
    **counts: Any,
) -> None:
    run = T["sync_run"]
    with engine.begin() as conn:
        conn.execute(
            run.update()
            .where(run.c.id == run_id)
            .values(
                finished_at=now(),
                status=status or ("failed" if error else "ok"),
                error=error,
                **counts,
            )
        )


@dataclass
class FormStatus:
    xml_form_id: str
    form_id: int | None  # None: only failed attempts so far, the form never reached the store
    watermark: datetime | None
    stored: int
    deleted: int
    issues: int
    last_run: dict[str, Any] | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def form_statuses(engine: Engine) -> list[FormStatus]:
    """Per form: watermark, counts, last run and last error (for ``collector status``)."""
    form, sub, run, issue = T["form"], T["submission"], T["sync_run"], T["data_issue"]
    out = []
    with engine.connect() as conn:
        for f in conn.execute(sa.select(form).order_by(form.c.xml_form_id)):
            counts = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(sub.c.deleted_at),
                ).where(sub.c.form_id == f.id)
            ).one()
            n_issues = conn.execute(
                sa.select(sa.func.count()).select_from(issue).where(issue.c.form_id == f.id)
            ).scalar_one()
            last = conn.execute(
                sa.select(run).where(run.c.form_id == f.id).order_by(run.c.id.desc()).limit(1)
            ).first()
            last_err = conn.execute(
                sa.select(run.c.error)
                .where(run.c.form_id == f.id, run.c.error.is_not(None))
                .order_by(run.c.id.desc())
                .limit(1)
            ).scalar()
            state = sync_state(engine, f.id)
            out.append(
                FormStatus(
                    xml_form_id=f.xml_form_id,
                    form_id=f.id,
                    watermark=state["watermark"],
                    stored=counts[0] - counts[1],
                    deleted=counts[1],
                    issues=n_issues,
                    last_run=dict(last._mapping) if last else None,
                    last_error=last_err,
                )
            )
        out += _never_stored(conn)
    return out


def _never_stored(conn: Connection) -> list[FormStatus]:
    """Forms with runs but not (yet) in the store: every attempt failed before the form
    was read (Central unreachable, login refused), which status must still show."""
    form, run = T["form"], T["sync_run"]
    last_ids = (
        sa.select(sa.func.max(run.c.id))
        .where(run.c.form_id.is_(None), run.c.xml_form_id.not_in(sa.select(form.c.xml_form_id)))
        .group_by(run.c.xml_form_id)
    )
    rows = conn.execute(sa.select(run).where(run.c.id.in_(last_ids)).order_by(run.c.xml_form_id))
    return [
        FormStatus(
            xml_form_id=r.xml_form_id,
            form_id=None,
            watermark=None,
            stored=0,
            deleted=0,
            issues=0,
            last_run=dict(r._mapping),
            last_error=r.error,
        )
        for r in rows
    ]
