"""Check an XLSForm before it can reach a tablet: pyxform's conversion plus our rules.

A bad form on Central breaks collection in villages with little signal, where a fix is
slow; so every problem is reported where the designer can find it (file, sheet, row,
column letter), with what is wrong and how to fix it. Our rules: all three languages
for every label, hint, required and constraint message and choice; names, phones,
locations and answers about violence or trafficking marked ``sensitive``; choice lists
that exist and are used; unique names; well-formed expressions; a ``district``
question (API keys are limited by district); a form id and title. pyxform's own errors
are mapped to the same shape when their message carries a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyxform.errors import PyXFormError

from collector.forms.entitycheck import entity_findings
from collector.forms.findings import LANGUAGE_NAMES, Finding, Findings
from collector.forms.manifest import FormEntry, Manifest
from collector.forms.rules import (
    NAME_PATTERN,
    check_choices,
    check_language_columns,
    check_survey_rows,
)
from collector.forms.spec import LANGUAGES
from collector.forms.xlsform import Conversion, XLSForm, convert_xlsform, read_xlsform, split_type

PROGRAMME_RULES = frozenset(
    {
        # every text in English, Tajik and Russian, under the programme's column names
        "untranslated-column", "unknown-language", "missing-language-column",
        "language-name-mismatch", "missing-translation", "default-language",
        "missing-constraint-message",
        # sensitive answers marked, so roles below manager never see them
        "sensitive-unmarked", "invalid-sensitive", "sensitive-derived-unmarked",
        # API keys are limited by district
        "missing-district",
        # the manifest, the store's table names and push need these
        "missing-settings", "missing-form-id", "missing-form-title", "invalid-form-id",
        "form-id-mismatch", "missing-media", "media-not-in-manifest", "csv-missing-column",
        "unused-choice-list",
    }
)  # fmt: skip
"""Codes of the programme's own rules, on top of what pyxform (and so Central) requires:
a form that breaks only these converts, but must not reach the programme's tablets.
Every other error code is one pyxform or ODK Validate would also raise."""

_ROW_IN_MESSAGE = re.compile(r"\[row\s*:\s*(\d+)\]")
_SHEET_IN_MESSAGE = re.compile(r"On the '([^']+)' sheet")
_COLUMN_IN_MESSAGE = re.compile(r"the '([^']+)' value")


@dataclass(frozen=True)
class CheckResult:
    path: Path
    findings: tuple[Finding, ...]
    conversion: Conversion | None  # pyxform's XForm without a version, when it converted

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors


def check_form(
    path: Path,
    *,
    media_dir: Path | None = None,
    manifest_media: Iterable[str] | None = None,
    expected_form_id: str | None = None,
) -> CheckResult:
    """All findings for one XLSForm; ``conversion`` is pyxform's XForm when it converted.

    ``manifest_media`` is the media the manifest lists for this form (None: not checked);
    ``expected_form_id`` the id the manifest files it under.
    """
    out = Findings(path.name)
    try:
        xlsform = read_xlsform(path)
    except PyXFormError as exc:  # what pyxform itself refuses while reading
        out.add("pyxform-error", str(exc), "correct the workbook as the message says")
        return CheckResult(path, tuple(out.findings), None)
    except Exception as exc:  # xlrd, openpyxl and zipfile raise many types for non-workbooks
        out.add(
            "file-unreadable",
            f"cannot read {path.name} as a workbook: {exc}",
            "save the file from the spreadsheet program as Excel Workbook (.xlsx)",
        )
        return CheckResult(path, tuple(out.findings), None)
    media = media_dir if media_dir is not None else path.parent
    _check_sheets_and_settings(xlsform, out, expected_form_id)
    survey = xlsform.sheet("survey")
    if survey is not None:
        check_language_columns(survey, out, ("label",))
        check_survey_rows(xlsform, survey, out, media, manifest_media)
    choices = xlsform.sheet("choices")
    if choices is not None:
        check_language_columns(choices, out, ("label",))
        check_choices(xlsform, choices, out)
    conversion = _convert(xlsform, out)
    return CheckResult(path, tuple(out.findings), conversion)


def _check_sheets_and_settings(
    xlsform: XLSForm, out: Findings, expected_form_id: str | None
) -> None:
    for name in ("survey", "settings"):
        if xlsform.sheet(name) is None:
            out.add(
                "missing-sheet" if name == "survey" else "missing-settings",
                f"the workbook has no '{name}' sheet",
                f"add a sheet named '{name}' (see https://xlsform.org/en/ref-table/)",
                sheet=name,
            )
    survey = xlsform.sheet("survey")
    uses_lists = survey is not None and any(split_type(r.get("type"))[1] for r in survey.rows)
    if uses_lists and xlsform.sheet("choices") is None:
        out.add(
            "missing-sheet",
            "questions use choice lists but the workbook has no 'choices' sheet",
            "add a sheet named 'choices' with columns list_name, name and the label columns",
            sheet="choices",
        )
    settings = xlsform.sheet("settings")
    if settings is None:
        return
    at = out.on_row(settings, 2)  # the settings sheet's one row of values
    for key, what in (("form_id", "form id"), ("form_title", "form title")):
        if not xlsform.setting(key):
            at.add(
                f"missing-{key.replace('_', '-')}",
                f"the settings sheet has no {what}",
                f"write the {what} under a '{key}' header on the settings sheet",
                key,
            )
    form_id = xlsform.setting("form_id")
    if form_id and not NAME_PATTERN.match(form_id):
        at.add(
            "invalid-form-id",
            f"form id '{form_id}' is not a valid XML name",
            "use letters, digits and underscores, starting with a letter",
            "form_id",
        )
    if form_id and expected_form_id and form_id != expected_form_id:
        at.add(
            "form-id-mismatch",
            f"form id '{form_id}' differs from '{expected_form_id}' in forms/manifest.toml",
            "make the settings sheet's form_id and the manifest entry the same",
            "form_id",
        )
    wanted = LANGUAGE_NAMES[LANGUAGES[0]]
    if xlsform.setting("default_language") != wanted:
        at.add(
            "default-language",
            f"default_language is '{xlsform.setting('default_language')}', not '{wanted}'",
            f"write '{wanted}' under a 'default_language' header on the settings sheet",
            "default_language",
        )


def _convert(xlsform: XLSForm, out: Findings) -> Conversion | None:
    """pyxform's conversion; its error becomes a finding unless ours already cover its row."""
    try:
        conversion = convert_xlsform(xlsform.path)
    except PyXFormError as exc:
        _pyxform_finding(xlsform, out, exc)
        return None
    except Exception as exc:  # pyxform sometimes fails with plain errors on odd input
        out.add(
            "pyxform-error",
            f"pyxform could not convert the form: {exc!r}",
            "check the rows changed last; the message above names the problem",
        )
        return None
    for warning in conversion.warnings:
        sheet, row, column = _position(xlsform, str(warning), {})
        out.add(
            "pyxform-warning",
            str(warning),
            "see the message; Central shows it too",
            sheet=sheet,
            row=row,
            column=column,
            severity="warning",
        )
    return conversion


def _position(
    xlsform: XLSForm, message: str, context: dict
) -> tuple[str | None, int | None, str | None]:
    row_match = _ROW_IN_MESSAGE.search(message)
    row = context.get("row") or (int(row_match[1]) if row_match else None)
    sheet_name = context.get("sheet") or (
        m[1] if (m := _SHEET_IN_MESSAGE.search(message)) else ("survey" if row else None)
    )
    header = context.get("column") or (m[1] if (m := _COLUMN_IN_MESSAGE.search(message)) else None)
    sheet = xlsform.sheet(str(sheet_name).lower()) if sheet_name else None
    column = sheet.columns.get(header) if sheet and header else None
    return (sheet.name if sheet else sheet_name), (int(row) if row else None), column


def _pyxform_finding(xlsform: XLSForm, out: Findings, exc: PyXFormError) -> None:
    message = str(exc)
    sheet, row, column = _position(xlsform, message, getattr(exc, "context", {}) or {})
    covered = any(
        f.severity == "error" and ((f.row == row and f.sheet == sheet) or row is None)
        for f in out.findings
    )
    if covered:
        return  # our finding at that place says the same with a fix
    out.add(
        "pyxform-error",
        message,
        "correct the cell named in the message",
        sheet=sheet,
        row=row,
        column=column,
    )


def check_manifest_forms(manifest: Manifest, entries: Iterable[FormEntry]) -> list[CheckResult]:
    """Check each manifest entry's form with its media, plus the media the manifest lists."""
    results = []
    entries = list(entries)
    by_entities = entity_findings(e.file for e in entries)  # rules across the forms
    for entry in entries:
        result = check_form(
            entry.file,
            media_dir=manifest.path.parent,
            manifest_media=[m.name for m in entry.media],
            expected_form_id=entry.form_id,
        )
        extra = [
            Finding(
                manifest.path.name,
                None,
                None,
                None,
                "missing-media",
                f"forms.{entry.form_id} lists media '{m.name}', which is not in {m.parent}",
                f"add {m.name} to the forms folder or remove it from the manifest",
            )
            for m in entry.media
            if not m.is_file()
        ]
        extra += by_entities.get(entry.file, [])
        results.append(CheckResult(result.path, (*result.findings, *extra), result.conversion))
    return results
