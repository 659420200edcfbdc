"""The programme's indicators by period and district. Any role; for roles below manager,
answers are sums of protected lattice cells (one district or the key's whole scope, whole
calendar units; small cells withheld, people counts rounded consistently), so that
subtracting one answer from another cannot recover a withheld cell (see
``collector.read.indicators.disclosure``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import EngineDep, Lang, SettingsDep, ViewerDep, parse_when, scope_for, split_list
from collector.read.forminfo import FormInfo, UnknownName, form_info
from collector.read.indicators import INDICATORS, INDICATORS_BY_ID, PERIODS, Indicator, compute
from collector.store.keys import Role

router = APIRouter(tags=["indicators"])


class IndicatorOut(BaseModel):
    id: str
    title: str
    form: str
    unit: str
    formula: str
    counts_people: bool
    breakdowns: list[str]


class CellOut(BaseModel):
    keys: dict[str, str | None]
    labels: dict[str, str | None] | None = None
    value: int | float | None
    suppressed: bool


class IndicatorResultOut(IndicatorOut):
    period: str
    by: list[str]
    suppression_threshold: int | None
    rounding_base: int | None = Field(
        description="People counts are multiples of this (consistent random rounding); null: exact."
    )
    form_synced: bool
    withheld_cells: int = Field(
        0,
        description="Below manager: lattice cells withheld (small counts) inside this answer; "
        "each total is the sum of the published cells, so it leaves them out.",
    )
    cells: list[CellOut]


def indicator_out(i: Indicator) -> IndicatorOut:
    return IndicatorOut(
        id=i.id,
        title=i.title,
        form=i.form,
        unit=i.unit,
        formula=i.formula,
        counts_people=i.counts_people,
        breakdowns=i.breakdown_names(),
    )


@router.get("/indicators", response_model=list[IndicatorOut])
def list_indicators(caller: ViewerDep) -> list[IndicatorOut]:
    """Every indicator with its formula: the definitions the figures are computed from."""
    return [indicator_out(i) for i in INDICATORS]


@router.get("/indicators/{indicator_id}", response_model=IndicatorResultOut)
def get_indicator(
    indicator_id: str,
    caller: ViewerDep,
    engine: EngineDep,
    settings: SettingsDep,
    period: Annotated[str, Query(description=f"One of {', '.join(PERIODS)}.")] = "month",
    by: Annotated[
        list[str] | None, Query(description="Breakdowns (see the indicator's `breakdowns`).")
    ] = None,
    from_: Annotated[str | None, Query(alias="from", description="First day.")] = None,
    to: Annotated[str | None, Query(description="Last day.")] = None,
    district: Annotated[list[str] | None, Query(description="Only these districts.")] = None,
    lang: Annotated[Lang | None, Query(description="Add labels in this language.")] = None,
) -> IndicatorResultOut:
    indicator = INDICATORS_BY_ID.get(indicator_id)
    if indicator is None:
        raise UnknownName("indicator", indicator_id)
    start, end = parse_when("from", from_), parse_when("to", to)
    exact = caller.role >= Role.manager
    result = compute(
        engine,
        indicator,
        scope=scope_for(caller),
        period=period,
        by=split_list(by),
        date_from=start.date() if start else None,
        date_to=end.date() if end else None,
        districts=split_list(district),
        suppress_below=None if exact else settings.suppression_threshold,
        round_to=None if exact else settings.indicator_rounding_base,
    )
    form = form_info(engine, indicator.form) if lang else None
    cells = [
        CellOut(
            keys=c.keys,
            labels=_labels(form, indicator, c.keys, lang) if form and lang else None,
            value=c.value,
            suppressed=c.suppressed,
        )
        for c in result.cells
    ]
    return IndicatorResultOut(
        **indicator_out(indicator).model_dump(),
        period=result.period,
        by=result.by,
        suppression_threshold=result.threshold,
        rounding_base=result.rounding_base,
        form_synced=result.form_known,
        withheld_cells=result.withheld_cells,
        cells=cells,
    )


def _labels(
    form: FormInfo, indicator: Indicator, keys: dict[str, str | None], lang: str
) -> dict[str, str | None]:
    """Each breakdown value's choice label (values that are not choices stay as they are)."""
    out: dict[str, str | None] = {}
    for name, value in keys.items():
        field_name = "district" if name == "district" else indicator.breakdowns.get(name)
        if name == getattr(indicator.measure, "link_breakdown", None):
            field_name = getattr(indicator.measure, "link_field", None)
        f = form.field_named(field_name) if field_name else None
        out[name] = form.choice_label(f, value, lang) if f and value is not None else value
    return out
