"""A ``sensitive`` mark on a group or repeat covers everything inside it (issue 15, item 3).

The finding: a group ``safety`` marked sensitive, with three unmarked questions inside
("did anyone hit her?", "her contact number", "forced marriage"); ``forms check`` said
nothing and a district analyst read all three answers. Here the same group is added to a
copy of the programme's household visit (openpyxl, as a designer would), and the truth is
taken from the workbook itself: which rows sit between the group's begin and end.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
import requests

from api.app import create_app
from bench.api_bench import odata_row
from collector import store
from collector.forms.check import check_form
from collector.forms.xlsform import form_spec, read_xlsform
from collector.read.forminfo import Scope, form_info
from collector.settings import Settings
from collector.store.keys import create_key
from collector.sync import normalize
from tests.api_fixtures import serving

REPO = Path(__file__).resolve().parent.parent
FORMS = REPO / "forms"
EN, TG, RU = "English (en)", "Tajik (tg)", "Russian (ru)"

# Three questions whose names say nothing; their labels say what they ask.
QUESTIONS = (
    ("q_a", "Did anyone hit her?", "Касе ӯро зад?", "Её кто-нибудь бил?"),
    ("q_b", "Her contact number", "Рақами тамоси ӯ", "Её контактный номер"),
    ("q_c", "Was it a forced marriage?", "Издивоҷи маҷбурӣ буд?", "Это был принудительный брак?"),
)
# The same questions with one language at a time telling: the keyword check reads each.
ONE_LANGUAGE = (
    ("q_en", "Did anyone hit her?", "Саволи якум", "Первый вопрос"),
    ("q_tg", "Question two", "Рақами тамоси ӯ", "Второй вопрос"),
    ("q_ru", "Question three", "Саволи сеюм", "Это был принудительный брак?"),
)


def _header_columns(ws) -> dict[str, int]:
    return {cell.value: cell.column for cell in ws[1] if cell.value}


def _append(ws, values: dict[str, str]) -> int:
    columns = _header_columns(ws)
    row = ws.max_row + 1
    for header, value in values.items():
        ws.cell(row=row, column=columns[header], value=value)
    return row


def _question(name: str, en: str, tg: str, ru: str) -> dict[str, str]:
    return {
        "type": "select_one yes_no" if name != "q_b" else "text",
        "name": name,
        f"label::{EN}": en,
        f"label::{TG}": tg,
        f"label::{RU}": ru,
    }


def _workbook_with(tmp_path: Path, *, group_marked: bool, questions=QUESTIONS) -> Path:
    path = tmp_path / "household_visit.xlsx"
    shutil.copy(FORMS / "household_visit.xlsx", path)
    wb = openpyxl.load_workbook(path)
    ws = wb["survey"]
    choice_lists = {r[0] for r in wb["choices"].iter_rows(min_row=2, values_only=True)}
    assert "yes_no" in choice_lists, choice_lists
    group = {
        "type": "begin_group",
        "name": "protection",
        f"label::{EN}": "Protection",
        f"label::{TG}": "Ҳифз",
        f"label::{RU}": "Защита",
    }
    if group_marked:
        group["sensitive"] = "yes"
        _append(ws, group)
    for q in questions:
        _append(ws, _question(*q))
    if group_marked:
        _append(ws, {"type": "end_group"})
    wb.save(path)
    return path


def test_forms_check__a_marked_group_covers_its_questions(tmp_path: Path) -> None:
    path = _workbook_with(tmp_path, group_marked=True)
    result = check_form(path, media_dir=FORMS)
    assert [f for f in result.findings if "sensitive" in f.code] == []
    spec = form_spec(read_xlsform(path), media_dir=FORMS)
    inside = [f for f in spec.fields if f.path.startswith("/protection/")]
    assert [f.name for f in inside] == [q[0] for q in QUESTIONS]
    assert all(f.sensitive for f in inside)


@pytest.mark.parametrize("questions", [QUESTIONS, ONE_LANGUAGE], ids=["all", "one-language"])
def test_forms_check__the_phrases_unmarked_outside_a_group_are_found(
    tmp_path: Path, questions
) -> None:
    path = _workbook_with(tmp_path, group_marked=False, questions=questions)
    result = check_form(path, media_dir=FORMS)
    flagged = {f.message.split("'")[1] for f in result.findings if f.code == "sensitive-unmarked"}
    assert flagged == {q[0] for q in questions}


def _store_with(engine, spec, rows: int = 30) -> None:
    """Submissions shaped like Central's OData rows, through normalize and the store."""
    store.create_schema(engine)
    form_id = store.save_form_spec(engine, spec)
    shape = store.stored_form_shape(engine, form_id)
    tables = store.form_tables(shape)
    rng = random.Random(15)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    page = [odata_row(spec, rng, start + timedelta(hours=i)) for i in range(rows)]
    for row in page:
        row["protection"] = {"q_a": "yes", "q_b": "+992 900 11 22 33", "q_c": "yes"}
    store.store_page(engine, form_id, shape, normalize.rows_for_page(shape, page), tables)


def test_store_and_api__group_marked_answers_are_withheld_below_manager(
    database_url: str, tmp_path: Path
) -> None:
    spec = form_spec(read_xlsform(_workbook_with(tmp_path, group_marked=True)), media_dir=FORMS)
    engine = store.engine_for(database_url)
    try:
        _store_with(engine, spec)
        analyst = create_key(engine, name="analyst", role="analyst").token
        manager = create_key(engine, name="manager", role="manager").token
        settings = Settings(database_url=database_url, data_dir=tmp_path, _env_file=None)
        with serving(create_app(settings, engine=engine)) as url:

            def get(path: str, token: str) -> requests.Response:
                r = requests.get(
                    url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60
                )
                assert r.status_code == 200, r.text
                return r

            fields = get("/v1/forms/household_visit/fields", analyst).json()
            listed = fields["fields"] if isinstance(fields, dict) else fields
            marks = {f["path"]: f["sensitive"] for f in listed}
            assert all(marks[f"/protection/{q[0]}"] for q in QUESTIONS), marks
            for token, sees in ((analyst, False), (manager, True)):
                page = get("/v1/forms/household_visit/submissions?limit=5", token).json()
                text = str(page)
                assert ("+992 900 11 22 33" in text) is sees, text[:300]
                csv = get("/v1/forms/household_visit/export.csv", token).text
                assert ("+992 900 11 22 33" in csv) is sees
                assert ("protection" in csv.splitlines()[0]) is sees
    finally:
        engine.dispose()


def test_form_info__a_store_recorded_before_inheritance_still_withholds(
    database_url: str, tmp_path: Path
) -> None:
    """A spec recorded with the mark on the group row only (as ``forms push`` did)."""
    spec = form_spec(read_xlsform(_workbook_with(tmp_path, group_marked=True)), media_dir=FORMS)
    old_style = dataclasses.replace(
        spec,
        fields=tuple(
            dataclasses.replace(f, sensitive=False) if f.path.startswith("/protection/") else f
            for f in spec.fields
        ),
    )
    engine = store.engine_for(database_url)
    try:
        store.create_schema(engine)
        store.save_form_spec(engine, old_style)
        info = form_info(engine, "household_visit")
        assert info is not None
        inside = [f for f in info.fields if f.path.startswith("/protection/")]
        assert len(inside) == 3 and all(f.sensitive for f in inside)
        visible = {
            f.path for f in info.visible_fields(None, Scope(sensitive=False, districts=None))
        }
        assert not visible & {f.path for f in inside}
        # The repeat case: a mark on the repeat covers its questions.
        marked_repeat = dataclasses.replace(
            old_style,
            fields=tuple(
                dataclasses.replace(f, sensitive=True) if f.path == "/visit/children" else f
                for f in old_style.fields
            ),
        )
        store.save_form_spec(engine, marked_repeat)
        info = form_info(engine, "household_visit")
        children = [f for f in info.fields if f.path.startswith("/visit/children/")]
        assert children and all(f.sensitive for f in children)
    finally:
        engine.dispose()
