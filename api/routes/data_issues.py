"""Values that did not fit their column's type (``data_issue``). Analyst and up; the value
of a sensitive question is withheld below manager, and a manager's read of one is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.audit import audit_reads
from api.deps import AnalystDep, EngineDep, SettingsDep, form_or_404, scope_for
from collector.read.cursors import INT64_MAX
from collector.read.forminfo import InvalidValue
from collector.read.queries import data_issues_page
from collector.times import UtcTime

router = APIRouter(tags=["data issues"])


class DataIssueOut(BaseModel):
    id: int
    form_id: str
    instance_id: str
    path: str
    row_key: str | None
    value: str | None
    withheld: bool
    sensitive: bool
    reason: str
    found_at: UtcTime | None


class DataIssuePageOut(BaseModel):
    items: list[DataIssueOut]
    next_after: int | None


@router.get("/data-issues", response_model=DataIssuePageOut)
def list_data_issues(
    caller: AnalystDep,
    engine: EngineDep,
    settings: SettingsDep,
    form: Annotated[str | None, Query(description="Only this form's issues.")] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    after: Annotated[
        int | None,
        Query(ge=0, le=INT64_MAX, description="`next_after` of the previous page."),
    ] = None,
) -> DataIssuePageOut:
    if limit > settings.api_max_page_size:
        raise InvalidValue("limit", limit, f"at most {settings.api_max_page_size} per page")
    info = form_or_404(engine, form) if form else None
    rows = data_issues_page(
        engine, scope=scope_for(caller), form=info, limit=limit + 1, after_id=after
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        DataIssueOut(
            id=r["id"],
            form_id=r["xml_form_id"],
            instance_id=r["instance_id"],
            path=r["path"],
            row_key=r["row_key"],
            value=r["value"],
            withheld=r["withheld"],
            sensitive=r["sensitive"],
            reason=r["reason"],
            found_at=r["found_at"],
        )
        for r in rows
    ]
    for r in rows:
        if r["sensitive"] and r["value"] is not None:
            audit_reads(
                engine,
                caller,
                r["xml_form_id"],
                [(r["instance_id"], [r["column_name"] or r["path"]])],
            )
    return DataIssuePageOut(items=items, next_after=rows[-1]["id"] if more and rows else None)
