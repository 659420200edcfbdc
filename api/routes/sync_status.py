"""Sync status per form (any role) and a sync trigger (admin)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import (
    AdminDep,
    EngineDep,
    SettingsDep,
    ViewerDep,
    split_list,
    visible_submission_counts,
)
from collector import store
from collector.read.forminfo import UnknownName, all_forms
from collector.read.queries import last_ok_runs
from collector.store import sync_requests
from collector.store.keys import Caller, Role
from collector.times import UtcTime

router = APIRouter(tags=["sync"])
log = logging.getLogger(__name__)


class RunOut(BaseModel):
    started_at: UtcTime | None
    finished_at: UtcTime | None
    status: str | None
    fetched: int | None
    written: int | None
    deleted: int | None
    error: str | None


class FormSyncOut(BaseModel):
    form_id: str
    watermark: UtcTime | None
    submissions: int | None  # viewers: withheld (null) or rounded, as the indicators
    issues: int
    last_run: RunOut | None
    last_ok_at: UtcTime | None
    lag_seconds: float | None
    last_error: str | None


class SyncStartedOut(BaseModel):
    forms: list[str]
    request_id: int
    note: str


def _utc(value: datetime | None) -> datetime | None:
    return store.as_utc(value)


def error_for(caller: Caller, error: str | None) -> str | None:
    """A run's error as this caller may read it: whole for managers and up; below, only
    its first clause (``database error CheckViolation (...)``, ``CentralUnavailable``).

    Errors are now recorded without the values a database quotes (``collector.sync.failures``),
    but runs recorded before that may hold a refused row's answers after the first line
    or colon, and a store keeps its runs."""
    if error is None or caller.sees_sensitive:
        return error
    head = error.splitlines()[0] if error.strip() else ""
    return head.split(":", 1)[0].split(";", 1)[0].strip()[:200] or "failed"


@router.get("/sync/status", response_model=list[FormSyncOut])
def sync_status(caller: ViewerDep, engine: EngineDep, settings: SettingsDep) -> list[FormSyncOut]:
    """Per form: watermark, last run, when it last synced without error (``lag_seconds``
    is the time since that run started: the store is at most that far behind), last error."""
    counts = visible_submission_counts(engine, caller, settings)
    ok = last_ok_runs(engine)
    now = datetime.now(UTC)
    forms = {f.xml_form_id: f.id for f in all_forms(engine)}
    # A run's fetched/written/deleted count every district's submissions: a key limited to
    # districts would learn how many the others sent per run (SEC-8), so it gets None.
    # A run's counts are exact: below analyst (who read the rows anyway) they are withheld.
    all_districts = caller.districts is None and caller.role >= Role.analyst
    out = []
    for st in store.form_statuses(engine):
        run = st.last_run or {}
        last_ok = _utc(ok.get(st.xml_form_id))
        out.append(
            FormSyncOut(
                form_id=st.xml_form_id,
                watermark=_utc(st.watermark),
                submissions=counts.get(forms.get(st.xml_form_id, -1), 0),
                issues=st.issues if all_districts else 0,
                last_run=RunOut(
                    started_at=_utc(run.get("started_at")),
                    finished_at=_utc(run.get("finished_at")),
                    status=run.get("status"),
                    fetched=run.get("fetched") if all_districts else None,
                    written=run.get("written") if all_districts else None,
                    deleted=run.get("deleted") if all_districts else None,
                    error=error_for(caller, run.get("error")),
                )
                if run
                else None,
                last_ok_at=last_ok,
                lag_seconds=(now - last_ok).total_seconds() if last_ok else None,
                last_error=error_for(caller, st.last_error),
            )
        )
    return out


@router.post("/sync/run", response_model=SyncStartedOut, status_code=202)
def start_sync(
    caller: AdminDep,
    engine: EngineDep,
    form: Annotated[list[str] | None, Query(description="Forms to sync; all by default.")] = None,
) -> SyncStartedOut:
    """Ask the leading scheduler to sync now; its progress shows in ``/v1/sync/status``.

    The API never syncs itself: it writes a request row that the scheduler holding the
    leader lock picks up within ``COLLECTOR_SCHEDULER_REQUEST_POLL_SECONDS`` (only one
    process pulls at a time). 409 while an earlier request still waits for a scheduler."""
    names = split_list(form)
    known = {f.xml_form_id for f in all_forms(engine)}
    for n in names:
        if known and n not in known:
            raise UnknownName("form", n)
    request_id = sync_requests.request_sync(engine, names or None, caller.name)
    if request_id is None:
        since = _utc(sync_requests.waiting_since(engine))
        raise HTTPException(
            409,
            f"a sync asked for at {since:%Y-%m-%d %H:%M:%S}Z still waits for the scheduler "
            "(is `collector scheduler` running?)"
            if since
            else "a sync asked for earlier still waits for the scheduler",
        )
    return SyncStartedOut(
        forms=names or sorted(known),
        request_id=request_id,
        note="queued for the leading scheduler; see /v1/sync/status",
    )
