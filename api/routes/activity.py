"""``GET /v1/activity``: who sent what, from which tablet, and who has gone silent.

Managers and admins only: it names enumerators and their devices. A district-limited key
sees only its districts' submissions and enumerators. Silent means no submission for longer
than ``silent_hours`` (default: the ``enumerator_silent_hours`` setting).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import EngineDep, ManagerDep, SettingsDep
from collector.read.activity import enumerator_activity
from collector.times import UtcTime

router = APIRouter(tags=["activity"])


class DeviceActivityOut(BaseModel):
    """One enumerator on one device; ``device_id`` null when nothing was sent yet."""

    submitter_id: str = Field(description="Central's submitterId (the app user's id).")
    submitter_name: str | None
    device_id: str | None = Field(description="The deviceID Collect sent, if any.")
    is_enumerator: bool = Field(description="Set up by `collector enumerators add`.")
    district: str | None
    revoked: bool
    submissions_day: int = Field(description="Submitted in the last 24 hours.")
    submissions_week: int = Field(description="Submitted in the last 7 days.")
    submissions_total: int
    last_submission_at: UtcTime | None
    review_states: dict[str, int] = Field(
        description="Counts by review state; 'received' = not reviewed yet."
    )
    forms: list[str]
    silent: bool = Field(description="Nothing sent for longer than silent_hours.")
    hours_since_last: float | None = Field(
        description="Hours since the last submission (or since set-up, if none)."
    )


class ActivityOut(BaseModel):
    generated_at: UtcTime
    silent_hours: float
    silent_count: int
    rows: list[DeviceActivityOut]


@router.get("/activity", response_model=ActivityOut)
def activity(
    caller: ManagerDep,
    engine: EngineDep,
    settings: SettingsDep,
    silent_hours: float | None = Query(
        None, gt=0, le=24 * 365, description="Flag as silent after this many hours."
    ),
    silent_only: bool = Query(False, description="Only the silent rows."),
) -> ActivityOut:
    """Per enumerator and device: last day/week counts, last submission, review states."""
    hours = silent_hours or settings.enumerator_silent_hours
    now = datetime.now(UTC)
    rows = enumerator_activity(
        engine,
        silent_after_hours=hours,
        now=now,
        districts=caller.districts,
        project_id=settings.central_project_id,
    )
    out = [
        DeviceActivityOut(
            submitter_id=r.submitter_id,
            submitter_name=r.submitter_name,
            device_id=r.device_id,
            is_enumerator=r.is_enumerator,
            district=r.district,
            revoked=r.revoked,
            submissions_day=r.submissions_day,
            submissions_week=r.submissions_week,
            submissions_total=r.submissions_total,
            last_submission_at=r.last_submission_at,
            review_states=r.review_states,
            forms=list(r.forms),
            silent=r.silent,
            hours_since_last=r.hours_since_last,
        )
        for r in rows
        if r.silent or not silent_only
    ]
    return ActivityOut(
        generated_at=now,
        silent_hours=hours,
        silent_count=sum(1 for r in rows if r.silent),
        rows=out,
    )
