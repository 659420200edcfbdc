"""Who sent what: per enumerator and tablet, what reached the store and when.

Data managers need to notice a silent tablet before its unsent forms are lost (a tablet
that has not sent for days may be broken, stolen, or out of credit). This reads the
synced ``submission`` rows (Central's ``submitterId``/``submitterName`` and the
``deviceID`` Collect sends) and the ``enumerator`` table written by ``collector
enumerators add``, and returns one row per (enumerator, device) plus one per enumerator
who has sent nothing yet. Read-only SQLAlchemy Core; the same SQL on SQLite and
PostgreSQL. Deleted submissions are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.store import models as m

#: What a submission's review state is called before anyone reviewed it (Central: null).
NOT_REVIEWED = "received"


@dataclass(frozen=True)
class DeviceActivity:
    """One enumerator on one device (``device_id`` None: sent nothing yet, or no id)."""

    submitter_id: str
    submitter_name: str | None
    device_id: str | None
    is_enumerator: bool  # an app user made by ``collector enumerators add``
    district: str | None
    revoked: bool
    submissions_day: int
    submissions_week: int
    submissions_total: int
    last_submission_at: datetime | None
    review_states: dict[str, int] = field(default_factory=dict)
    forms: tuple[str, ...] = ()
    silent: bool = False
    hours_since_last: float | None = None  # since the last submission (or since set-up)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite hands timestamps back naive; they are UTC


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    return m.Submission.__table__, m.Form.__table__, m.Enumerator.__table__


def enumerator_activity(
    engine: Engine,
    *,
    silent_after_hours: float,
    now: datetime | None = None,
    districts: Collection[str] | None = None,
    project_id: int | None = None,
) -> list[DeviceActivity]:
    """Activity per (submitter, device), silent ones first, then by name.

    ``districts`` limits rows to submissions from those districts and enumerators set up
    for them (a district-limited key). A row is *silent* when its last submission is older
    than ``silent_after_hours``, or, for an active enumerator who never sent anything, when
    set-up was longer ago than that. Revoked enumerators are never flagged silent.
    """
    now = now or datetime.now(UTC)
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    sub, form, enum = _tables()

    live = [sub.c.deleted_at.is_(None), sub.c.submitter_id.is_not(None)]
    if districts is not None:
        live.append(sub.c.district.in_(sorted(districts)))
    if project_id is not None:
        # a form synced before its project was recorded has project_id null: keep it
        live.append(sa.or_(form.c.project_id == project_id, form.c.project_id.is_(None)))
    joined = sub.join(form, form.c.id == sub.c.form_id)
    key = (sub.c.submitter_id, sub.c.device_id)

    totals = (
        sa.select(
            *key,
            sa.func.max(sub.c.submitter_name).label("name"),
            sa.func.count().label("total"),
            sa.func.sum(sa.case((sub.c.submitted_at >= day, 1), else_=0)).label("day"),
            sa.func.sum(sa.case((sub.c.submitted_at >= week, 1), else_=0)).label("week"),
            sa.func.max(sub.c.submitted_at).label("last"),
        )
        .select_from(joined)
        .where(*live)
        .group_by(*key)
    )
    states = (
        sa.select(*key, sub.c.review_state, sa.func.count().label("n"))
        .select_from(joined)
        .where(*live)
        .group_by(*key, sub.c.review_state)
    )
    forms = (
        sa.select(*key, form.c.xml_form_id)
        .select_from(joined)
        .where(*live)
        .group_by(*key, form.c.xml_form_id)
    )
    enumerators = sa.select(enum)
    if project_id is not None:
        enumerators = enumerators.where(enum.c.project_id == project_id)

    with engine.connect() as conn:
        total_rows = conn.execute(totals).all()
        state_rows = conn.execute(states).all()
        form_rows = conn.execute(forms).all()
        enum_rows = conn.execute(enumerators).all()

    review: dict[tuple, dict[str, int]] = defaultdict(dict)
    for r in state_rows:
        review[(r.submitter_id, r.device_id)][r.review_state or NOT_REVIEWED] = int(r.n)
    forms_of: dict[tuple, list[str]] = defaultdict(list)
    for r in form_rows:
        forms_of[(r.submitter_id, r.device_id)].append(r.xml_form_id)
    known = {str(e.app_user_id): e for e in enum_rows}
    limit = timedelta(hours=silent_after_hours)

    def hours_since(when: datetime | None) -> float | None:
        return None if when is None else round((now - when).total_seconds() / 3600, 1)

    out: list[DeviceActivity] = []
    seen: set[str] = set()
    for r in total_rows:
        e = known.get(r.submitter_id)
        last = _aware(r.last)
        revoked = e is not None and e.revoked_at is not None
        out.append(
            DeviceActivity(
                submitter_id=r.submitter_id,
                submitter_name=r.name if e is None else e.display_name,
                device_id=r.device_id,
                is_enumerator=e is not None,
                district=None if e is None else e.district,
                revoked=revoked,
                submissions_day=int(r.day or 0),
                submissions_week=int(r.week or 0),
                submissions_total=int(r.total),
                last_submission_at=last,
                review_states=dict(sorted(review[(r.submitter_id, r.device_id)].items())),
                forms=tuple(sorted(forms_of[(r.submitter_id, r.device_id)])),
                silent=not revoked and last is not None and now - last > limit,
                hours_since_last=hours_since(last),
            )
        )
        seen.add(r.submitter_id)

    for uid, e in known.items():
        if uid in seen:
            continue
        if districts is not None and e.district not in districts:
            continue
        created = _aware(e.created_at)
        revoked = e.revoked_at is not None
        out.append(
            DeviceActivity(
                submitter_id=uid,
                submitter_name=e.display_name,
                device_id=None,
                is_enumerator=True,
                district=e.district,
                revoked=revoked,
                submissions_day=0,
                submissions_week=0,
                submissions_total=0,
                last_submission_at=None,
                silent=not revoked and created is not None and now - created > limit,
                hours_since_last=hours_since(created),
            )
        )

    out.sort(key=lambda a: (not a.silent, (a.submitter_name or "").casefold(), a.device_id or ""))
    return out
