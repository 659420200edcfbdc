"""The register of women and households (ODK entity lists synced by
``collector entities sync``): each woman's current properties and her visits in order,
the conflicts to resolve in Central, and the indicators that need identity.

Analyst and up. Below manager a woman is a pseudonymous case id and only properties no
form saves from a sensitive question are shown; managers also get her entity id, label
and every property, and each such read is written to the audit log
(form ``entity:<list>``, instance id = entity id, fields = the sensitive ones sent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.audit import audit_reads
from api.deps import AnalystDep, EngineDep, SettingsDep, parse_when, split_list
from collector.read import register as reg
from collector.read.forminfo import UnknownName
from collector.store.keys import Caller, Role

router = APIRouter(tags=["register"])


class VisitOut(BaseModel):
    version: int
    at: datetime | None
    action: str = Field(description="registration, visit, or edit (a change made in Central)")
    form_id: str | None
    instance_id: str | None
    changed: dict[str, str]
    conflict: str | None


class CaseOut(BaseModel):
    case_id: str = Field(description="Pseudonymous, stable id of the woman in this register.")
    entity_id: str | None = Field(None, description="Central's entity id (manager and up).")
    label: str | None = Field(None, description="Her label in the list (manager and up).")
    district: str | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    deleted_at: datetime | None
    conflict: str | None
    properties: dict[str, str]
    withheld: list[str] = Field(description="Sensitive properties left out for this key.")
    visits: int
    last_contact_at: datetime | None


class CaseDetailOut(CaseOut):
    history: list[VisitOut]


class RegisterIndicatorCell(BaseModel):
    keys: dict[str, str | None]
    value: int | float | None
    suppressed: bool


class RegisterIndicatorOut(BaseModel):
    id: str
    title: str
    list: str
    suppression_threshold: int | None
    rounding_base: int | None
    cells: list[RegisterIndicatorCell]


def _known_list(engine, list_name: str) -> None:
    if list_name not in reg.list_names(engine):
        raise UnknownName("entity list", list_name)


def _case_out(case: reg.Case, caller: Caller) -> dict:
    contacts = [v.at for v in case.visits if v.at is not None and v.action != "edit"]
    return {
        "case_id": case.case_id,
        "entity_id": case.uuid if caller.sees_sensitive else None,
        "label": case.label if caller.sees_sensitive else None,
        "district": case.district,
        "version": case.version,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "deleted_at": case.deleted_at,
        "conflict": case.conflict,
        "properties": case.properties,
        "withheld": case.hidden,
        "visits": sum(1 for v in case.visits if v.action == "visit"),
        "last_contact_at": max(contacts, default=None),
    }


def _audit(engine, caller: Caller, list_name: str, found: list[reg.Case]) -> None:
    sensitive = reg.sensitive_properties(engine, None, list_name)
    audit_reads(
        engine,
        caller,
        f"entity:{list_name}",
        [(c.uuid, ["label", *sorted(k for k in c.properties if k in sensitive)]) for c in found],
    )


@router.get("/register", response_model=list[str])
def register_lists(caller: AnalystDep, engine: EngineDep) -> list[str]:
    """The entity lists in the store."""
    return reg.list_names(engine)


@router.get("/register/{list_name}", response_model=list[CaseOut])
def register_cases(
    list_name: str,
    caller: AnalystDep,
    engine: EngineDep,
    include_deleted: Annotated[bool, Query(description="Also deleted entities.")] = False,
) -> list[CaseOut]:
    """Every woman in the list with her current properties, oldest registration first."""
    _known_list(engine, list_name)
    found = reg.cases(
        engine,
        list_name,
        sees_sensitive=caller.sees_sensitive,
        districts=caller.districts,
        include_deleted=include_deleted,
        with_visits=True,
    )
    _audit(engine, caller, list_name, found)
    return [CaseOut(**_case_out(c, caller)) for c in found]


@router.get("/register/{list_name}/conflicts", response_model=list[CaseDetailOut])
def register_conflicts(
    list_name: str, caller: AnalystDep, engine: EngineDep
) -> list[CaseDetailOut]:
    """Women whose record has a conflict (two offline updates crossed) to resolve in
    Central, with the versions that crossed."""
    _known_list(engine, list_name)
    found = reg.conflicts(
        engine, list_name, sees_sensitive=caller.sees_sensitive, districts=caller.districts
    )
    _audit(engine, caller, list_name, found)
    return [
        CaseDetailOut(**_case_out(c, caller), history=[VisitOut(**v.__dict__) for v in c.visits])
        for c in found
    ]


@router.get("/register/{list_name}/indicators", response_model=dict[str, str])
def register_indicator_list(list_name: str, caller: AnalystDep) -> dict[str, str]:
    """The identity indicators and what each counts."""
    return reg.IDENTITY_INDICATORS


@router.get("/register/{list_name}/indicators/{indicator_id}", response_model=RegisterIndicatorOut)
def register_indicator(
    list_name: str,
    indicator_id: str,
    caller: AnalystDep,
    engine: EngineDep,
    settings: SettingsDep,
    from_: Annotated[str | None, Query(alias="from", description="First day.")] = None,
    to: Annotated[str | None, Query(description="Last day (also the '60 days' reference).")] = None,
    district: Annotated[list[str] | None, Query(description="Only these districts.")] = None,
) -> RegisterIndicatorOut:
    """An indicator by district, with the same small-cell protection as every indicator
    for roles below manager."""
    _known_list(engine, list_name)
    if indicator_id not in reg.IDENTITY_INDICATORS:
        raise UnknownName("indicator", indicator_id)
    start, end = parse_when("from", from_), parse_when("to", to)
    wanted = split_list(district)
    districts = caller.districts
    if wanted:
        districts = frozenset(wanted) if districts is None else districts & frozenset(wanted)
    exact = caller.role >= Role.manager
    cells = reg.identity_indicator(
        engine,
        list_name,
        indicator_id,
        date_from=start.date() if start else None,
        date_to=end.date() if end else None,
        districts=districts,
        suppress_below=None if exact else settings.suppression_threshold,
        round_to=None if exact else settings.indicator_rounding_base,
    )
    return RegisterIndicatorOut(
        id=indicator_id,
        title=reg.IDENTITY_INDICATORS[indicator_id],
        list=list_name,
        suppression_threshold=None if exact else settings.suppression_threshold,
        rounding_base=None if exact else settings.indicator_rounding_base,
        cells=[
            RegisterIndicatorCell(keys=c.keys, value=c.value, suppressed=c.suppressed)
            for c in cells
        ],
    )


@router.get("/register/{list_name}/{case}", response_model=CaseDetailOut)
def register_case(
    list_name: str, case: str, caller: AnalystDep, engine: EngineDep
) -> CaseDetailOut:
    """One woman: current properties and her registration and visits in order. ``case`` is
    her case id (managers may also give her entity id)."""
    _known_list(engine, list_name)
    found = reg.find_case(
        engine, list_name, case, sees_sensitive=caller.sees_sensitive, districts=caller.districts
    )
    if found is None:
        raise HTTPException(404, f"no case {case!r} in the register {list_name!r} for this key")
    _audit(engine, caller, list_name, [found])
    return CaseDetailOut(
        **_case_out(found, caller), history=[VisitOut(**v.__dict__) for v in found.visits]
    )
