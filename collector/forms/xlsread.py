"""Read a workbook exactly as pyxform reads it, keeping where each value is.

``forms check`` must accept every workbook Central's converter accepts, so it reads with
pyxform's own pieces (``pyxform.xls2json_backends``): the same file types (``.xls`` via
xlrd, ``.xlsx``/``.xlsm`` via openpyxl's read-only reader, ``.csv``/``.md``), the same
sheets (names matched in any case; a lone sheet of another name is the survey), the same
header cleaning and end-of-data rules (a run of 20 empty columns or 60 empty rows ends a
sheet, which is also why a LibreOffice file claiming ``A1:AMJ1048576`` reads in
milliseconds), and the same cell text (numbers without ``.0``, ``TRUE``/``FALSE``, dates,
non-breaking spaces). Headers are then named the way pyxform's ``xls2json`` names them
(``parsing.sheet_headers.process_header`` with ``aliases``): ``List Name`` is
``list_name``, ``TYPE`` is ``type``, ``caption`` is ``label``, ``constraint message`` is
``constraint_message``; what a header says beyond its first token (a language) is kept
after ``::``. Only the column letters and row numbers are ours: pyxform drops them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from openpyxl.reader.excel import ExcelReader
from openpyxl.utils import get_column_letter
from pyxform import aliases, constants
from pyxform.errors import PyXFormError
from pyxform.parsing.sheet_headers import clean_text_values, process_header, to_snake_case
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.survey import Survey
from pyxform.xls2json_backends import (
    XL_DATE_AMBIGOUS_MSG,
    csv_to_dict,
    get_excel_column_headers,
    get_excel_rows,
    is_empty,
    md_to_dict,
    xls_value_to_unicode,
    xlsx_value_to_str,
)
from xlrd import open_workbook as xlrd_open
from xlrd.xldate import XLDateAmbiguous

SHEETS = frozenset(constants.SUPPORTED_SHEET_NAMES)
"""The sheets pyxform reads (survey, choices, settings, external_choices, osm, entities)."""


@dataclass(frozen=True)
class RawSheet:
    """One sheet as pyxform reads it: headers with their column letters, rows by number."""

    kind: str  # the sheet pyxform takes it for: "survey", "choices", ...
    title: str  # as written in the workbook
    headers: tuple[tuple[str, str], ...]  # (header as written, column letter)
    rows: tuple[tuple[int, dict[str, str]], ...]  # (row number, header as written -> text)


# Our names for the headers pyxform files under a nested key (``("bind", "relevant")``),
# so rules can ask for "relevant" or "constraint_message" whatever the designer wrote.
_PREFERRED = (
    "relevant", "required", "constraint", "constraint_message", "required_message",
    "calculation", "appearance", "repeat_count", "read_only", "no_app_error_string",
    "image", "big-image", "audio", "video", "autoplay", "rows", "compact_tag",
)  # fmt: skip
_NESTED_NAMES = {
    aliases.survey_header[name]: name for name in reversed(_PREFERRED)
    if isinstance(aliases.survey_header.get(name), tuple)
}  # fmt: skip
# pyxform's settings keys (``form_id`` is read as ``id_string``) in the XLSForm spelling.
_SETTINGS_NAMES = {constants.ID_STRING: "form_id", constants.TITLE: "form_title"}
_SHEET_HEADERS: dict[str, tuple[dict[str, Any], frozenset[str]]] = {
    constants.SURVEY: (aliases.survey_header, frozenset(MultipleChoiceQuestion.get_slot_names())),
    constants.CHOICES: (aliases.list_header, frozenset(Option.get_slot_names())),
    constants.EXTERNAL_CHOICES: (aliases.list_header, frozenset(Option.get_slot_names())),
    constants.OSM: (aliases.list_header, frozenset(Option.get_slot_names())),
    constants.SETTINGS: (aliases.settings_header, frozenset(Survey.get_slot_names())),
}


def canonical_headers(kind: str, headers: list[str]) -> dict[str, str]:
    """Header as written -> the name pyxform gives it, with any language after ``::``.

    pyxform splits on ``::``, or on ``:`` when no header of the sheet has ``::``.
    """
    header_aliases, columns = _SHEET_HEADERS.get(kind, ({}, frozenset()))
    double_colon = any("::" in h for h in headers)
    out: dict[str, str] = {}
    for header in headers:
        _, tokens = process_header(header, double_colon, header_aliases, columns)
        first = to_snake_case(tokens[0]) if tokens[0] == header else tokens[0]
        rest = tokens[1:]
        for nested, name in _NESTED_NAMES.items():
            if kind == constants.SURVEY and tokens[: len(nested)] == nested:
                first, rest = name, tokens[len(nested) :]
                break
        if kind == constants.SETTINGS:
            first = _SETTINGS_NAMES.get(first, first)
        elif first == constants.LIST_NAME_S:  # pyxform's own key is "list name"
            first = constants.LIST_NAME_U
        out[header] = "::".join((first, *rest))
    return out


def read_sheets(path: Path) -> list[RawSheet]:
    """The sheets pyxform would read from ``path``, chosen by its suffix as pyxform does.

    Raises ``pyxform.errors.PyXFormError`` where pyxform would (duplicate headers,
    ambiguous dates) and the reading libraries' errors for a file that is no workbook.
    """
    suffix = path.suffix.lower()
    if suffix == ".xls":
        return _pick(list(_xls_sheets(path.read_bytes())))
    if suffix in (".xlsx", ".xlsm"):
        return _pick(list(_xlsx_sheets(path.read_bytes())))
    if suffix in (".csv", ".md"):
        reader = csv_to_dict if suffix == ".csv" else md_to_dict
        return _from_dicts(reader(str(path)) if suffix == ".csv" else reader(path.read_text()))
    raise PyXFormError(f"'{path.name}' is not a workbook pyxform reads (.xls, .xlsx, .xlsm)")


def _pick(sheets: list[RawSheet]) -> list[RawSheet]:
    """pyxform's ``process_workbook``: only its sheets, or a lone sheet as the survey."""
    if len(sheets) == 1 and sheets[0].kind not in SHEETS:
        only = sheets[0]
        return [RawSheet(constants.SURVEY, only.title, only.headers, only.rows)]
    return [s for s in sheets if s.kind in SHEETS]


def _sheet(title: str, first_row: list[Any], rows: Iterator, clean: Callable) -> RawSheet:
    headers = get_excel_column_headers(first_row=first_row)
    positioned = tuple(
        (h, get_column_letter(i)) for i, h in enumerate(headers, start=1) if h is not None
    )
    data = get_excel_rows(headers=headers, rows=rows, cell_func=clean)
    numbered = tuple((n, row) for n, row in enumerate(data, start=2) if row)
    return RawSheet(title.lower(), title, positioned, numbered)


def _xlsx_sheets(content: bytes) -> Iterator[RawSheet]:
    def clean(cell: Any, row_n: int, col_key: str) -> str | None:
        value = cell.value.strip() if isinstance(cell.value, str) else cell.value
        return None if is_empty(value) else xlsx_value_to_str(value)

    reader = ExcelReader(BytesIO(content), read_only=True, data_only=True)
    reader.read()
    try:
        for title in reader.wb.sheetnames:
            if title.lower() not in SHEETS and len(reader.wb.sheetnames) > 1:
                continue
            worksheet = reader.wb[title]
            first = [c.value for c in next(worksheet.rows, [])]
            headers = get_excel_column_headers(first_row=first)
            rows = worksheet.iter_rows(min_row=2, max_col=len(headers))
            yield _sheet(title, first, rows, clean)
    finally:
        reader.wb.close()
        reader.archive.close()


def _xls_sheets(content: bytes) -> Iterator[RawSheet]:
    book = xlrd_open(file_contents=content)
    try:
        for sheet in book.sheets():
            if sheet.name.lower() not in SHEETS and book.nsheets > 1:
                continue

            def clean(cell: Any, row_n: int, col_key: str, _sheet_name: str = sheet.name) -> Any:
                value = cell.value.strip() if isinstance(cell.value, str) else cell.value
                if is_empty(value):
                    return None
                try:
                    return xls_value_to_unicode(value, cell.ctype, book.datemode)
                except XLDateAmbiguous as err:
                    raise PyXFormError(
                        XL_DATE_AMBIGOUS_MSG % (_sheet_name, col_key, row_n)
                    ) from err

            first = [c.value for c in next(sheet.get_rows(), [])]
            width = len(get_excel_column_headers(first_row=first))
            rows = (tuple(sheet.cell(r, c) for c in range(width)) for r in range(1, sheet.nrows))
            yield _sheet(sheet.name, first, rows, clean)
    finally:
        book.release_resources()


def _from_dicts(book: dict[str, Any]) -> list[RawSheet]:
    """Text formats: pyxform's dicts, columns lettered in header order."""
    out = []
    for kind in SHEETS:
        if kind not in book:
            continue
        headers = list((book.get(f"{kind}_header") or [{}])[0])
        rows = tuple((n, r) for n, r in enumerate(book[kind], start=2) if r)
        positioned = tuple((h, get_column_letter(i)) for i, h in enumerate(headers, start=1))
        out.append(RawSheet(kind, kind, positioned, rows))
    return out


def cell_value(text: str) -> str:
    """pyxform's ``clean_text_values`` without whitespace collapsing: smart quotes fixed."""
    return clean_text_values(text)
