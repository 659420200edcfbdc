"""Forms, their versions and fields (labels in en/tg/ru, sensitivity): any role."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import EngineDep, SettingsDep, ViewerDep, form_or_404, visible_submission_counts
from collector.read.forminfo import FieldInfo, FormInfo, all_forms, form_versions
from collector.times import UtcTime

router = APIRouter(tags=["forms"])


class FieldOut(BaseModel):
    path: str
    name: str
    type: str
    xls_type: str | None
    repeat: str | None
    columns: list[str]
    labels: dict[str, str | None]
    hints: dict[str, str | None]
    choice_list: str | None
    select_multiple: bool
    sensitive: bool


class ChoiceOut(BaseModel):
    value: str
    labels: dict[str, str | None]


class VersionOut(BaseModel):
    version: str
    first_seen_at: UtcTime | None


class FormOut(BaseModel):
    form_id: str
    title: str | None
    version: str | None
    submissions: int | None = Field(
        description="Live submissions this key may count; for viewers withheld (null) or rounded as the indicators are."
    )
    fields: int
    repeats: list[str]


class FormDetailOut(FormOut):
    versions: list[VersionOut]
    field_list: list[FieldOut]
    choices: dict[str, list[ChoiceOut]]


def field_out(f: FieldInfo) -> FieldOut:
    return FieldOut(
        path=f.path,
        name=f.name,
        type=f.type,
        xls_type=f.xls_type,
        repeat=f.repeat_path,
        columns=f.value_columns(),
        labels=f.labels,
        hints=f.hints,
        choice_list=f.choice_list,
        select_multiple=f.select_multiple,
        sensitive=f.sensitive,
    )


def _form_out(form: FormInfo, counts: dict[int, int | None]) -> FormOut:
    return FormOut(
        form_id=form.xml_form_id,
        title=form.title,
        version=form.version,
        submissions=counts.get(form.id, 0),
        fields=sum(1 for f in form.fields if f.has_values),
        repeats=[r.name for r in form.repeats()],
    )


@router.get("/forms", response_model=list[FormOut])
def list_forms(caller: ViewerDep, engine: EngineDep, settings: SettingsDep) -> list[FormOut]:
    """Every form the store knows, with the live submissions this key may count."""
    counts = visible_submission_counts(engine, caller, settings)
    return [_form_out(f, counts) for f in all_forms(engine)]


@router.get("/forms/{form_id}", response_model=FormDetailOut)
def get_form(
    form_id: str, caller: ViewerDep, engine: EngineDep, settings: SettingsDep
) -> FormDetailOut:
    """One form: versions, fields with labels and sensitivity, choice lists."""
    form = form_or_404(engine, form_id)
    counts = visible_submission_counts(engine, caller, settings)
    return FormDetailOut(
        **_form_out(form, counts).model_dump(),
        versions=[VersionOut(**v) for v in form_versions(engine, form.id)],
        field_list=[field_out(f) for f in form.fields],
        choices={
            name: [ChoiceOut(value=v, labels=labels) for v, labels in values.items()]
            for name, values in form.choices.items()
        },
    )


@router.get("/forms/{form_id}/fields", response_model=list[FieldOut])
def list_fields(form_id: str, caller: ViewerDep, engine: EngineDep) -> list[FieldOut]:
    return [field_out(f) for f in form_or_404(engine, form_id).fields]
