"""``forms check`` reads every workbook pyxform reads, the way pyxform reads it.

Truth comes from pyxform itself, on pyxform's own test corpus (tests/fixtures/pyxform_corpus,
copied from XLSForm/pyxform with its licence): its reader (``get_xlsform``) for what a sheet
holds, its converter for whether a form is valid. On top, check may raise only the
programme's rules (``PROGRAMME_RULES``: languages, sensitivity, district, manifest).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pyxform.xls2json_backends import get_xlsform
from pyxform.xls2xform import convert
from typer.testing import CliRunner

from collector.cli import app
from collector.forms.check import PROGRAMME_RULES, check_form
from collector.forms.xlsform import read_xlsform, split_type
from collector.forms.xlsread import read_sheets

CORPUS = Path(__file__).parent / "fixtures" / "pyxform_corpus"
WORKBOOKS = sorted(p for p in CORPUS.rglob("*") if p.suffix in {".xls", ".xlsx", ".xlsm"})
IDS = [f"{p.parent.name}/{p.name}" for p in WORKBOOKS]

# Errors pyxform leaves to ODK Validate (JavaRosa), which Central's own check runs:
# bad_calc.xlsx is in pyxform's corpus precisely because its calculation is not XPath.
VALIDATE_ONLY = {"bad_calc.xlsx": {"malformed-expression"}}


def pyxform_converts(path: Path) -> bool:
    try:
        convert(xlsform=str(path))
    except Exception:
        return False
    return True


def test_corpus__is_pyxform_s_with_xls_and_its_licence() -> None:
    assert (CORPUS / "LICENSE").read_text().startswith("Copyright (c) 2015, XLSForm")
    assert len(WORKBOOKS) >= 50
    assert sum(p.suffix == ".xls" for p in WORKBOOKS) >= 25


@pytest.mark.parametrize("path", WORKBOOKS, ids=IDS)
def test_check__raises_no_error_pyxform_does_not(path: Path) -> None:
    result = check_form(path)
    ours = {f.code for f in result.errors} - PROGRAMME_RULES - VALIDATE_ONLY.get(path.name, set())
    if pyxform_converts(path):
        assert not ours, [(f.where, f.code, f.message) for f in result.errors]
    else:
        assert result.errors, "pyxform refuses this workbook; check must say so too"


@pytest.mark.parametrize("path", WORKBOOKS, ids=IDS)
def test_read__every_sheet_holds_what_pyxform_reads(path: Path) -> None:
    try:
        theirs = get_xlsform(str(path))
    except Exception:
        pytest.skip("pyxform cannot read it either")
    ours = {sheet.kind: sheet for sheet in read_sheets(path)}
    for kind in ("survey", "choices", "settings"):
        expected = [dict(row) for row in getattr(theirs, kind) or () if row]
        got = [row for _, row in ours[kind].rows] if kind in ours else []
        assert got == expected, kind
        if kind in ours:
            header = (getattr(theirs, f"{kind}_header") or [{}])[0]
            assert [h for h, _ in ours[kind].headers] == list(header), kind


def test_read__legacy_headers_types_and_any_case_as_pyxform_names_them() -> None:
    # case_insensitivity.xlsx: SURVEY/CHOICES sheets, TYPE/NAME/LABEL headers, "list name"
    form = read_xlsform(CORPUS / "example_xls" / "case_insensitivity.xlsx")
    survey, choices = form.sheet("survey"), form.sheet("choices")
    assert survey is not None and choices is not None
    assert {"type", "name"} <= set(survey.columns)
    assert "list_name" in choices.columns
    assert all(row.get("type") for row in survey.rows)
    assert split_type("select one from yes_no") == ("select_one", "yes_no")
    assert split_type("select all that apply from fruits") == ("select_multiple", "fruits")
    assert split_type("select_one colors or specify other") == ("select_one", "colors")
    assert split_type("begin loop over types") == ("begin_loop", "types")


def test_check__allow_choice_duplicates_is_honoured(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", "label"])
    survey.append(["select_one c", "q", "Q"])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    choices.append(["c", "a", "A"])
    choices.append(["c", "a", "A again"])
    settings = wb.create_sheet("settings")
    settings.append(["form_id", "allow_choice_duplicates"])
    settings.append(["dups", "yes"])
    path = tmp_path / "dups.xlsx"
    wb.save(path)
    assert pyxform_converts(path)
    assert "duplicate-choice" not in {f.code for f in check_form(path).errors}
    settings["B2"] = "no"
    wb.save(path)
    assert not pyxform_converts(path)
    assert "duplicate-choice" in {f.code for f in check_form(path).errors}


def test_check__libreoffice_workbook_reads_only_used_cells() -> None:
    """UCL_Biomass_Plot_Form.xlsx claims A1:AMJ1048576 (LibreOffice); reading every cell
    took 443 s here. A guard, not a benchmark (bench/forms_check_bench.py measures)."""
    path = CORPUS / "bug_example_xls" / "UCL_Biomass_Plot_Form.xlsx"
    results: list = []
    worker = threading.Thread(target=lambda: results.append(check_form(path)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert results, "check did not finish in 60 s: it reads the sheet's empty dimension"
    assert results[0].conversion is not None


def test_cli_check__xls_path_is_a_file_not_a_form_id(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(tmp_path))  # no manifest there
    path = CORPUS / "example_xls" / "text_and_integer.xls"
    result = CliRunner().invoke(app, ["forms", "check", str(path)])
    assert "no form" not in result.output and "manifest" not in result.output, result.output
    assert "text_and_integer.xls" in result.output
    missing = CliRunner().invoke(app, ["forms", "check", str(tmp_path / "gone.xls")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_cli_check__severity_is_followed_by_a_space() -> None:
    path = CORPUS / "example_xls" / "yes_or_no_question.xlsx"
    result = CliRunner().invoke(app, ["forms", "check", str(path)])
    lines = [line for line in result.output.splitlines() if line.startswith(("error", "warning"))]
    assert lines
    for line in lines:
        word, rest = line.split(" ", 1)
        assert word in {"error", "warning"} and rest.lstrip().startswith(path.name), line
