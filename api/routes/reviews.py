"""A manager's review decision on a submission, written back to Central.

The store is not changed here: Central is the source of truth, and the next sync brings the
new state (Central moves ``updatedAt`` on a review), so both show the same after it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.audit import audit_reads
from api.deps import EngineDep, ManagerDep, SettingsDep, form_or_404, scope_for
from collector import central as central_mod
from collector.read.forminfo import FormInfo, UnknownName
from collector.read.queries import submission_one
from collector.settings import Settings

router = APIRouter(tags=["reviews"])


class ReviewIn(BaseModel):
    review_state: Literal["approved", "hasIssues", "rejected"]
    comment: str | None = Field(default=None, max_length=10_000)


class ReviewOut(BaseModel):
    form_id: str
    instance_id: str
    review_state: str
    central_review_state: str | None
    note: str


@router.post("/forms/{form_id}/submissions/{instance_id}/review", response_model=ReviewOut)
async def review_submission(
    form_id: str,
    instance_id: str,
    body: ReviewIn,
    caller: ManagerDep,
    engine: EngineDep,
    settings: SettingsDep,
    dry_run: Annotated[bool, Query(description="Check only; do not write to Central.")] = False,
) -> ReviewOut:
    form = form_or_404(engine, form_id)
    if submission_one(engine, form, instance_id, scope=scope_for(caller)) is None:
        raise UnknownName("submission", instance_id, form.xml_form_id)
    central_state = None
    if not dry_run:
        central_state = await run_in_threadpool(_write_review, settings, form, instance_id, body)
        audit_reads(
            engine,
            caller,
            form.xml_form_id,
            [(instance_id, [])],
            action=f"review.{body.review_state}",
        )
    return ReviewOut(
        form_id=form.xml_form_id,
        instance_id=instance_id,
        review_state=body.review_state,
        central_review_state=central_state,
        note="written to Central; the store shows it after the next sync"
        if not dry_run
        else "dry run: nothing written",
    )


def _write_review(
    settings: Settings, form: FormInfo, instance_id: str, body: ReviewIn
) -> str | None:
    # Central's refusals and failures become 404/502/503 in api/errors.py, with the rest
    with central_mod.Central(settings) as central:
        answer = central_mod.set_review_state(
            central,
            form.xml_form_id,
            instance_id,
            body.review_state,
            comment=body.comment,
            project_id=form.project_id,
        )
    return answer.get("reviewState") if isinstance(answer, dict) else None
