"""``forms check``: the programme's four forms pass; a corpus of broken copies fails exactly.

Each broken form is made here by changing one thing in a copy of a good form with
openpyxl, the way a designer's slip would; the test then demands a finding with the right
code at the sheet, row and column that was changed. Nothing here talks to Central: a form
that fails check never gets that far (``test_forms_push`` shows push refuses it).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import get_column_letter
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from typer.testing import CliRunner

from collector.cli import app
from collector.forms.check import check_form, check_manifest_forms
from collector.forms.expr import malformed_expression
from collector.forms.manifest import ManifestError, load_manifest
from collector.forms.spec import LANGUAGES
from collector.forms.xlsform import convert_xlsform, form_spec, read_xlsform

REPO = Path(__file__).resolve().parent.parent
FORMS = REPO / "forms"
FORM_IDS = (
    "household_visit",
    "roundtable",
    "info_centre_consultation",
    "awareness_event",
    "woman_registration",
)


# --- the good forms -----------------------------------------------------------------------


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_check__programme_form_passes_with_no_findings(form_id: str) -> None:
    result = check_form(FORMS / f"{form_id}.xlsx")
    assert result.findings == ()
    assert result.conversion is not None
    assert f'id="{form_id}"' in result.conversion.xform


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_form_spec__every_label_in_three_languages_and_a_district(form_id: str) -> None:
    spec = form_spec(read_xlsform(FORMS / f"{form_id}.xlsx"), FORMS)
    assert spec.form_id == form_id and spec.title and spec.version is None
    assert spec.default_language == "en"
    labelled = [f for f in spec.fields if f.labels]
    assert len(labelled) >= 10
    for field in labelled:
        assert set(field.labels) == set(LANGUAGES), field.path
    for choice in spec.choices:
        assert set(choice.labels) >= set(LANGUAGES), choice
    district = [f for f in spec.fields if f.name == "district"]
    assert len(district) == 1 and district[0].type == "select_one"
    assert {c.value for c in spec.choices if c.list_name == "district"} >= {"dushanbe", "kulob"}


def test_form_spec__household_visit_marks_names_phones_places_and_violence_sensitive() -> None:
    spec = form_spec(read_xlsform(FORMS / "household_visit.xlsx"), FORMS)
    by_name = {f.name: f for f in spec.fields}
    for name in ("respondent_name", "respondent_phone", "gps", "village", "violence_experienced"):
        assert by_name[name].sensitive, name
    for name in ("district", "respondent_age", "children_count"):
        assert not by_name[name].sensitive, name
    types = {f.type for f in spec.fields}
    assert {"integer", "decimal", "date", "select_one", "select_multiple", "text"} <= types
    assert {"geopoint", "begin_repeat", "select_one_from_file"} <= types
    assert by_name["child_age"].repeat_path == "/visit/children"
    assert by_name["gps"].path == "/visit/gps"
    jamoats = [c for c in spec.choices if c.list_name == "jamoats.csv"]
    assert jamoats and all(set(c.labels) >= set(LANGUAGES) for c in jamoats)


def test_convert__sensitive_column_stays_out_of_the_xform_and_version_goes_in() -> None:
    plain = convert_xlsform(FORMS / "household_visit.xlsx")
    versioned = convert_xlsform(FORMS / "household_visit.xlsx", version="20260101-abcdef12")
    assert plain.warnings == ()
    assert "sensitive" not in plain.xform
    assert 'version="20260101-abcdef12"' in versioned.xform
    assert convert_xlsform(FORMS / "household_visit.xlsx").xform == plain.xform  # stable


def test_manifest__names_every_form_its_project_media_and_schedule() -> None:
    manifest = load_manifest(FORMS)
    assert {e.form_id for e in manifest.forms} == set(FORM_IDS)
    visit = manifest.form("household_visit")
    assert [m.name for m in visit.media] == ["jamoats.csv"]
    assert visit.sync.interval_minutes == 15 and visit.sync.cron is None
    assert manifest.form("awareness_event").sync.cron == "0 */6 * * *"
    assert all(e.project for e in manifest.forms)
    assert all(r.ok for r in check_manifest_forms(manifest, manifest.forms))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[forms.a]\nfile='a.xlsx'\n", "project"),
        ("[defaults]\nproject='P'\n[forms.a]\nsync={interval_minutes=0}\n", "interval_minutes"),
        ("[defaults]\nproject='P'\n[forms.a]\nsync={cron='61 * * * *'}\n", "cron"),
        ("[defaults]\nproject='P'\n[forms.a]\nsync={every=5}\n", "sync"),
        ("[defaults]\nproject='P'\n[forms.a]\nsync={interval_minutes=5}\nmedia='x.csv'\n", "media"),
        (
            "[defaults]\nproject='P'\n[forms.a]\nfile='../a.xlsx'\nsync={cron='* * * * *'}\n",
            "file name",
        ),
        ("[forms.a\n", "TOML"),
        ("[defaults]\nproject='P'\n", "no [forms"),
    ],
)
def test_manifest__mistakes_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "manifest.toml").write_text(text)
    with pytest.raises(ManifestError, match=None) as info:
        load_manifest(tmp_path)
    assert needle in str(info.value)


# --- the broken corpus --------------------------------------------------------------------


def header_letter(ws: Worksheet, header: str) -> str:
    for cell in ws[1]:
        if cell.value == header:
            return cell.column_letter
    raise KeyError(header)


def row_named(ws: Worksheet, name: str, column: str = "B") -> int:
    for row in range(2, ws.max_row + 1):
        if ws[f"{column}{row}"].value == name:
            return row
    raise KeyError(name)


def set_cell(ws: Worksheet, row: int, header: str, value: object) -> str:
    letter = header_letter(ws, header)
    ws[f"{letter}{row}"] = value
    return letter


EN, TG, RU = "English (en)", "Tajik (tg)", "Russian (ru)"
Where = tuple[str, int | None, str | None]  # sheet, row, column letter


@dataclass(frozen=True)
class Broken:
    form: str
    code: str
    change: Callable[[Workbook, Path], Where]  # edits the copy, returns where the finding must be


def blank(sheet: str, name: str, header: str, form_col: str = "B") -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        ws = wb[sheet]
        row = row_named(ws, name, form_col)
        return sheet, row, set_cell(ws, row, header, None)

    return change


def put(sheet: str, name: str, header: str, value: str, form_col: str = "B") -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        ws = wb[sheet]
        row = row_named(ws, name, form_col)
        return sheet, row, set_cell(ws, row, header, value)

    return change


def add_question(values: dict[str, str]) -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        ws = wb["survey"]
        row = ws.max_row + 1
        for header, value in values.items():
            set_cell(ws, row, header, value)
        return "survey", row, header_letter(ws, "sensitive")

    return change


def remove_sheet(name: str) -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        wb.remove(wb[name])
        return name, None, None

    return change


def rename_header(sheet: str, header: str, new: str) -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        ws = wb[sheet]
        letter = header_letter(ws, header)
        ws[f"{letter}1"] = new
        return sheet, 1, letter

    return change


def delete_column(sheet: str, header: str) -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        ws = wb[sheet]
        letter = header_letter(ws, header)
        ws.delete_cols(ws[f"{letter}1"].column)
        last = get_column_letter(sum(1 for c in ws[1] if c.value) + 1)
        return sheet, 1, last  # where the missing column should be added

    return change


def add_unused_list(wb: Workbook, _: Path) -> Where:
    ws = wb["choices"]
    row = ws.max_row + 1
    for header, value in (("list_name", "orphan"), ("name", "x")):
        set_cell(ws, row, header, value)
    for lang in (EN, TG, RU):
        set_cell(ws, row, f"label::{lang}", "X")
    return "choices", row, "A"


def duplicate_choice(wb: Workbook, _: Path) -> Where:
    ws = wb["choices"]
    row = row_named(ws, "hisor")  # in the district list, below its "dushanbe"
    ws[f"B{row}"] = "dushanbe"
    return "choices", row, "B"


def drop_row_of(name: str) -> Callable:
    """Delete the end_group/end_repeat closing ``name``: its begin row is then unclosed."""

    def change(wb: Workbook, _: Path) -> Where:
        ws = wb["survey"]
        begin = row_named(ws, name)
        depth = 0
        for row in range(begin, ws.max_row + 1):
            kind = str(ws[f"A{row}"].value or "")
            depth += kind.startswith("begin_") - kind.startswith("end_")
            if depth == 0:
                ws.delete_rows(row)
                return "survey", begin, "A"
        raise AssertionError("no end row")

    return change


def stray_end(wb: Workbook, _: Path) -> Where:
    ws = wb["survey"]
    row = row_named(ws, "venue")
    ws.insert_rows(row)
    ws[f"A{row}"] = "end_repeat"
    return "survey", row, "A"


def settings_blank(header: str) -> Callable:
    def change(wb: Workbook, _: Path) -> Where:
        ws = wb["settings"]
        return "settings", 2, set_cell(ws, 2, header, None)

    return change


def csv_without_tajik(wb: Workbook, media: Path) -> Where:
    path = media / "jamoats.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[3].split(",")
    cells[3] = ""
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "jamoats.csv", 4, "D"


def missing_media(wb: Workbook, media: Path) -> Where:
    (media / "jamoats.csv").unlink()
    ws = wb["survey"]
    return "survey", row_named(ws, "jamoat"), "A"


def rename_district(wb: Workbook, _: Path) -> Where:
    ws = wb["survey"]
    ws[f"B{row_named(ws, 'district')}"] = "region"
    return "survey", None, None


def no_constraint_message(wb: Workbook, _: Path) -> Where:
    ws = wb["survey"]
    row = row_named(ws, "booklets_given")
    for lang in (EN, TG, RU):
        set_cell(ws, row, f"constraint_message::{lang}", None)
    return "survey", row, header_letter(ws, f"constraint_message::{EN}")


CORPUS: dict[str, Broken] = {
    "label-missing-tajik": Broken("household_visit", "missing-translation",
                                  blank("survey", "respondent_name", f"label::{TG}")),
    "label-missing-russian": Broken("roundtable", "missing-translation",
                                    blank("survey", "venue", f"label::{RU}")),
    "hint-missing-russian": Broken("household_visit", "missing-translation",
                                   blank("survey", "household_id", f"hint::{RU}")),
    "constraint-message-missing-tajik": Broken(
        "household_visit", "missing-translation",
        blank("survey", "respondent_age", f"constraint_message::{TG}")),
    "required-message-missing-english": Broken(
        "info_centre_consultation", "missing-translation",
        blank("survey", "visitor_kind", f"required_message::{EN}")),
    "choice-label-missing-russian": Broken("awareness_event", "missing-translation",
                                           blank("choices", "posters", f"label::{RU}")),
    "phone-not-sensitive": Broken("household_visit", "sensitive-unmarked",
                                  blank("survey", "respondent_phone", "sensitive")),
    "gps-not-sensitive": Broken("awareness_event", "sensitive-unmarked",
                                blank("survey", "gps", "sensitive")),
    "violence-not-sensitive": Broken("household_visit", "sensitive-unmarked",
                                     blank("survey", "violence_experienced", "sensitive")),
    "trafficking-not-sensitive": Broken("awareness_event", "sensitive-unmarked",
                                        blank("survey", "trafficking_cases_referred", "sensitive")),
    "new-name-question-unmarked": Broken("info_centre_consultation", "sensitive-unmarked", add_question(
        {"type": "text", "name": "visitor_name", f"label::{EN}": "Visitor's name",
         f"label::{TG}": "Номи меҳмон", f"label::{RU}": "Имя посетителя"})),
    "new-mobile-question-unmarked": Broken("roundtable", "sensitive-unmarked", add_question(
        {"type": "text", "name": "organiser_contact", f"label::{EN}": "Organiser's phone",
         f"label::{TG}": "Телефони ташкилкунанда", f"label::{RU}": "Телефон организатора"})),
    "sensitive-maybe": Broken("household_visit", "invalid-sensitive",
                              put("survey", "village", "sensitive", "maybe")),
    "unknown-choice-list": Broken("household_visit", "unknown-choice-list",
                                  put("survey", "education", "type", "select_one educaton")),
    "select-without-list": Broken("roundtable", "missing-choice-list",
                                  put("survey", "speaker_sex", "type", "select_one")),
    "unused-choice-list": Broken("roundtable", "unused-choice-list", add_unused_list),
    "duplicate-name": Broken("household_visit", "duplicate-name",
                             put("survey", "child_sex", "name", "child_age")),
    "duplicate-choice": Broken("info_centre_consultation", "duplicate-choice", duplicate_choice),
    "choice-name-with-space": Broken("awareness_event", "invalid-choice-name",
                                     put("choices", "posters", "name", "big posters")),
    "invalid-name": Broken("awareness_event", "invalid-name",
                           put("survey", "venue", "name", "1st venue")),
    "missing-name": Broken("info_centre_consultation", "missing-name",
                           blank("survey", "booklets_given", "name")),
    "unknown-type": Broken("roundtable", "unknown-type",
                           put("survey", "duration_hours", "type", "decimel")),
    "constraint-dangling-and": Broken("household_visit", "malformed-expression",
                                      put("survey", "respondent_age", "constraint", ". >= 14 and")),
    "relevant-unclosed-bracket": Broken("info_centre_consultation", "malformed-expression",
                                        put("survey", "destination", "relevant",
                                            "(${plans_to_migrate} = 'yes'")),
    "calculation-unclosed-quote": Broken("roundtable", "malformed-expression",
                                         put("survey", "participants_total", "calculation",
                                             "concat('a, ${participants_men})")),
    "repeat-count-unclosed-ref": Broken("household_visit", "malformed-expression",
                                        put("survey", "children", "repeat_count", "${children_count")),
    "relevant-unknown-question": Broken("household_visit", "unknown-reference",
                                        put("survey", "husband_country", "relevant",
                                            "${husband_situaton} != 'widowed'")),
    "missing-survey-sheet": Broken("roundtable", "missing-sheet", remove_sheet("survey")),
    "missing-settings-sheet": Broken("awareness_event", "missing-settings", remove_sheet("settings")),
    "missing-choices-sheet": Broken("info_centre_consultation", "missing-sheet", remove_sheet("choices")),
    "missing-form-id": Broken("roundtable", "missing-form-id", settings_blank("form_id")),
    "missing-form-title": Broken("awareness_event", "missing-form-title", settings_blank("form_title")),
    "default-language-russian": Broken("info_centre_consultation", "default-language",
                                       put("settings", "info_centre_consultation",
                                           "default_language", RU, form_col="A")),
    "no-russian-choice-column": Broken("roundtable", "missing-language-column",
                                       delete_column("choices", f"label::{RU}")),
    "label-without-language": Broken("awareness_event", "untranslated-column",
                                     rename_header("survey", f"label::{EN}", "label")),
    "label-language-misspelt": Broken("household_visit", "language-name-mismatch",
                                      rename_header("survey", f"label::{TG}", "label::Tajik(tg)")),
    "label-in-french": Broken("roundtable", "unknown-language",
                              rename_header("survey", f"hint::{RU}", "hint::French (fr)")),
    "group-never-closed": Broken("household_visit", "unbalanced-group", drop_row_of("visit")),
    "end-without-begin": Broken("roundtable", "unbalanced-group", stray_end),
    "no-district-question": Broken("awareness_event", "missing-district", rename_district),
    "constraint-without-message": Broken("info_centre_consultation", "missing-constraint-message",
                                         no_constraint_message),
    "jamoat-csv-missing-tajik": Broken("household_visit", "missing-translation", csv_without_tajik),
    "jamoat-csv-missing": Broken("household_visit", "missing-media", missing_media),
    "geopoint-bad-parameter": Broken("awareness_event", "pyxform-error",
                                     put("survey", "gps", "parameters", "capture-accuracy=abc")),
}  # fmt: skip


def broken_copy(tmp_path: Path, case: Broken) -> tuple[Path, Path, Where]:
    media = tmp_path / "forms"
    media.mkdir()
    shutil.copy(FORMS / "jamoats.csv", media / "jamoats.csv")
    path = media / f"{case.form}.xlsx"
    wb = openpyxl.load_workbook(FORMS / f"{case.form}.xlsx")
    where = case.change(wb, media)
    wb.save(path)
    return path, media, where


def test_corpus__has_at_least_25_distinct_broken_forms() -> None:
    assert len(CORPUS) >= 25
    assert len({c.code for c in CORPUS.values()}) >= 20


@pytest.mark.parametrize("case_id", sorted(CORPUS))
def test_check__broken_form_fails_at_the_changed_cell(tmp_path: Path, case_id: str) -> None:
    case = CORPUS[case_id]
    path, media, (sheet, row, column) = broken_copy(tmp_path, case)
    result = check_form(path, media_dir=media)
    assert not result.ok
    matching = [f for f in result.errors if f.code == case.code]
    assert matching, [(f.code, f.sheet, f.row, f.column, f.message) for f in result.findings]
    places = {(f.sheet, f.row, f.column) for f in matching}
    assert (sheet, row, column) in places, (places, [f.message for f in matching])
    for finding in matching:
        assert finding.file == path.name and finding.message and finding.fix


def test_check__a_file_that_is_not_a_workbook_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.xlsx"
    path.write_text("not a spreadsheet")
    result = check_form(path)
    assert [f.code for f in result.findings] == ["file-unreadable"]


def test_check__form_id_differing_from_the_manifest(tmp_path: Path) -> None:
    result = check_form(FORMS / "roundtable.xlsx", expected_form_id="round_table")
    assert [(f.code, f.sheet, f.row, f.column) for f in result.errors] == [
        ("form-id-mismatch", "settings", 2, "A")
    ]


@pytest.mark.parametrize(
    "text",
    ["(. > 1", ". > 1 and", ". >= >= 1", "count(.) > 1)", "'abc", "${a", ". = "],
)
def test_malformed_expression__finds_the_slip(text: str) -> None:
    assert malformed_expression(text)


@pytest.mark.parametrize(
    "text",
    [
        ". >= 14 and . <= 100",
        "${a} != 'x'",
        "not(selected(., 'none') and count-selected(.) > 1)",
        "regex(., '^[A-Z]{2}-[0-9]{4,6}$')",
        "instance('x')/root/item[name = ${a}]",
        "-1 < .",
    ],
)
def test_malformed_expression__accepts_good_xpath(text: str) -> None:
    assert malformed_expression(text) is None


# --- the command --------------------------------------------------------------------------


def test_cli_check__programme_forms_exit_0(monkeypatch) -> None:
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(FORMS))
    result = CliRunner().invoke(app, ["forms", "check"])
    assert result.exit_code == 0, result.output
    assert "5 form(s), 0 error(s)" in result.output


def test_cli_check__broken_form_exits_1_with_json_findings(tmp_path: Path, monkeypatch) -> None:
    path, _, (sheet, row, column) = broken_copy(tmp_path, CORPUS["phone-not-sensitive"])
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(FORMS))
    result = CliRunner().invoke(app, ["forms", "check", str(path), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["ok"] is False
    findings = payload["forms"][0]["findings"]
    assert {
        "file": path.name,
        "sheet": sheet,
        "row": row,
        "column": column,
        "code": "sensitive-unmarked",
    }.items() <= findings[0].items()
    assert findings[0]["fix"]


def test_cli_check__text_output_names_cell_and_fix(tmp_path: Path, monkeypatch) -> None:
    path, _, (_, row, column) = broken_copy(tmp_path, CORPUS["label-missing-tajik"])
    result = CliRunner().invoke(app, ["forms", "check", str(path)])
    assert result.exit_code == 1
    assert f"[survey row {row} column {column}] missing-translation" in result.output
    assert "fix:" in result.output


def test_cli_check__unknown_form_name_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(FORMS))
    result = CliRunner().invoke(app, ["forms", "check", "no_such_form"])
    assert result.exit_code == 2
    assert "no form 'no_such_form'" in result.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="ODK Validate needs java")
@pytest.mark.parametrize("form_id", FORM_IDS)
def test_programme_form__passes_odk_validate(form_id: str) -> None:
    """JavaRosa (ODK Validate, shipped with pyxform) opens the XForm as Collect would."""
    from pyxform.xls2xform import convert

    warnings: list[str] = []
    convert(str(FORMS / f"{form_id}.xlsx"), warnings=warnings, validate=True)
    assert warnings == []
