"""Read an XLSForm as the designer wrote it, and convert it to an XForm with pyxform.

Form designers work in a spreadsheet, so every problem we report must point at a cell
they can find: sheet, row and column letter. ``read_xlsform`` reads the workbook the way
pyxform reads it (``collector.forms.xlsread``: same file types, sheets, headers and cell text,
headers under pyxform's names) and keeps that position for every value; ``split_type``
reads a type as pyxform's ``xls2json`` does (legacy spellings included); ``form_spec`` turns the sheets
into the ``FormSpec`` the store and API share; ``convert_xlsform`` runs pyxform, the same
converter Central runs, optionally setting the form version in the settings sheet first,
because Central refuses to publish a new definition under an already published version
(409.6; central-backend ``lib/model/query/forms.js`` ``publish``).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from openpyxl.utils import get_column_letter
from pyxform import aliases
from pyxform.xls2json import RE_BEGIN_CONTROL, RE_END_CONTROL, RE_OSM, RE_SELECT
from pyxform.xls2json_backends import get_xlsform
from pyxform.xls2xform import convert

from collector.forms.spec import LANGUAGES, ChoiceSpec, FieldSpec, FormSpec
from collector.forms.xlsread import canonical_headers, cell_value, read_sheets

TRANSLATABLE = ("label", "hint", "required_message", "constraint_message")
"""Columns that carry text a person reads, and so need every language."""

_LANG_COLUMN = re.compile(r"^(?P<key>[a-z_]+)\s*::?\s*(?P<lang>.+)$", re.IGNORECASE)
_LANG_CODE = re.compile(r"\((?P<code>[A-Za-z-]+)\)\s*$")
_TRUE = {"yes", "true", "true()", "1"}

# Types that group other rows, and types that are metadata without a label.
GROUP_BEGIN = {"begin_group": "group", "begin_repeat": "repeat", "begin_loop": "loop"}
GROUP_END = {"end_group": "group", "end_repeat": "repeat", "end_loop": "loop"}
METADATA_TYPES = frozenset(
    {"start", "end", "today", "deviceid", "phonenumber", "username", "email", "audit",
     "simserial", "subscriberid", "start-geopoint", "background-audio", "calculate", "hidden"}
)  # fmt: skip
SELECT_TYPES = frozenset({"select_one", "select_multiple", "rank", "select_one_external"})
FILE_SELECT_TYPES = frozenset({"select_one_from_file", "select_multiple_from_file"})


@dataclass(frozen=True)
class Cell:
    """One non-empty value and where it is, in the terms a spreadsheet user sees."""

    sheet: str
    row: int  # 1-based, the header is row 1
    column: str  # letter, e.g. "C"
    header: str  # the column's header as written
    value: str


@dataclass(frozen=True)
class SheetRow:
    sheet: str
    row: int
    cells: dict[str, Cell]  # header -> cell, only non-empty cells

    def get(self, header: str) -> str:
        cell = self.cells.get(header)
        return cell.value if cell else ""


@dataclass(frozen=True)
class Sheet:
    name: str  # as written in the workbook
    columns: dict[str, str]  # header (pyxform's name for it) -> column letter, in sheet order
    rows: tuple[SheetRow, ...]  # non-empty data rows only
    kind: str = ""  # the sheet pyxform takes it for ("survey", "choices", ...)

    def column_of(self, header: str) -> str:
        """The letter of a header, or the first free column (where it should be added)."""
        return self.columns.get(header) or get_column_letter(len(self.columns) + 1)


@dataclass(frozen=True)
class XLSForm:
    path: Path
    sheets: dict[str, Sheet]  # by sheet name as written

    def sheet(self, name: str) -> Sheet | None:
        """pyxform matches sheet names case-insensitively (a lone sheet is the survey)."""
        for sheet in self.sheets.values():
            if (sheet.kind or sheet.name.strip().lower()) == name:
                return sheet
        return None

    def setting(self, key: str) -> str:
        settings = self.sheet("settings")
        if settings is None or not settings.rows:
            return ""
        return settings.rows[0].get(key)


@dataclass(frozen=True)
class Conversion:
    xform: str
    warnings: tuple[str, ...]


def _stamp(path: Path) -> tuple[str, int, int]:
    """What identifies a file's content cheaply: path, modification time (ns), size."""
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def read_xlsform(path: Path) -> XLSForm:
    """Every sheet of an .xlsx, keeping the position of each value.

    Raises ``PyXFormError`` where pyxform would, or the reading library's error for a
    file that is not a workbook; ``forms.check`` turns either into a finding. Parsing a workbook is most of a check's time, and check, plan,
    push and the store each read the same file, so results are cached per file version.
    """
    return _read_xlsform(*_stamp(path))


@functools.lru_cache(maxsize=32)
def _read_xlsform(path_text: str, mtime_ns: int, size: int) -> XLSForm:
    path = Path(path_text)
    sheets: dict[str, Sheet] = {}
    for raw in read_sheets(path):
        names = canonical_headers(raw.kind, [h for h, _ in raw.headers])
        columns: dict[str, str] = {}
        for header, letter in raw.headers:
            columns.setdefault(names[header], letter)
        letters = dict(raw.headers)
        data_rows = []
        for row_number, values in raw.rows:
            cells = {}
            for header, value in values.items():
                text = cell_value(str(value))
                if text:
                    cells[names[header]] = Cell(
                        raw.title, row_number, letters[header], names[header], text
                    )
            if cells:
                data_rows.append(SheetRow(raw.title, row_number, cells))
        sheets[raw.title] = Sheet(raw.title, columns, tuple(data_rows), raw.kind)
    return XLSForm(path, sheets)


def language_of(header: str) -> tuple[str, str] | None:
    """``label::Tajik (tg)`` -> ``("label", "tg")``; None for a column without a language."""
    match = _LANG_COLUMN.match(header.strip())
    if not match:
        return None
    code = _LANG_CODE.search(match["lang"])
    return match["key"].lower(), (code["code"].lower() if code else match["lang"].strip())


def texts(row: SheetRow, key: str, default_language: str = "en") -> dict[str, str]:
    """The text of one translatable column in each language: ``{"en": ..., "tg": ...}``."""
    out: dict[str, str] = {}
    for header, cell in row.cells.items():
        if header.strip().lower() == key:
            out.setdefault(default_language, cell.value)
            continue
        parsed = language_of(header)
        if parsed and parsed[0] == key:
            out[parsed[1]] = cell.value
    return out


_SELECT_BASES = {
    "select one": "select_one",
    "select all that apply": "select_multiple",
    "rank": "rank",
    "select one external": "select_one_external",
}
_FILE_BASES = {
    "select one": "select_one_from_file",
    "select all that apply": "select_multiple_from_file",
}


def split_type(type_text: str) -> tuple[str, str | None]:
    """``select_one district`` -> ``("select_one", "district")``, read as pyxform's
    ``xls2json`` reads it (its ``RE_SELECT``/``RE_BEGIN_CONTROL``/``RE_END_CONTROL`` and
    ``aliases``): ``select one from X``, ``select all that apply from X``, ``... or specify
    other`` (dropped), ``begin loop over X`` (``("begin_loop", "X")``), ``imei``
    (``deviceid``). Other types come back lower-cased with no list."""
    text = " ".join(type_text.split())
    if not text:
        return "", None
    lowered = text.lower()
    if match := RE_BEGIN_CONTROL.match(lowered):
        kind = aliases.control[match["type"]]
        list_name = text.split()[-1] if kind == "loop" and match["list_name"] else None
        return f"begin_{kind}", list_name
    if match := RE_END_CONTROL.match(lowered):
        return f"end_{aliases.control[match['type']]}", None
    if match := RE_SELECT.match(text):
        command = match["select_command"]
        kind = aliases.select[command]
        base = (
            _FILE_BASES[kind]
            if command in aliases.select_from_file
            else _SELECT_BASES.get(kind, kind.replace(" ", "_"))
        )
        return base, match["list_name"]
    if RE_OSM.match(text):
        return "osm", None
    if text in aliases._type_alias_map:
        return aliases._type_alias_map[text], None
    parts = lowered.split()
    if len(parts) > 1 and parts[0] in SELECT_TYPES | FILE_SELECT_TYPES:
        return parts[0], text.split()[1]
    return parts[0], None


def is_true(text: str) -> bool:
    return text.strip().lower() in _TRUE


def default_language_code(xlsform: XLSForm) -> str:
    setting = xlsform.setting("default_language")
    if not setting:
        return LANGUAGES[0]
    code = _LANG_CODE.search(setting)
    return code["code"].lower() if code else setting


def sensitive_rows(survey: Sheet | None) -> set[int]:
    """Survey rows that are sensitive by their own mark or an enclosing group's or repeat's.

    A designer who marks the group ``safety`` sensitive means every question in it, nested
    groups and repeats included (issue 15, item 3): the store, the API, the exports and
    ``forms check`` all take their marks from here, so none of them reads the group's mark
    as meaning the group row alone."""
    out: set[int] = set()
    stack: list[bool] = []  # per open group or repeat: is it (or an outer one) marked?
    for row in survey.rows if survey else ():
        base, _ = split_type(row.get("type"))
        if base in GROUP_END:
            if stack:
                stack.pop()
            continue
        marked = is_true(row.get("sensitive")) or (bool(stack) and stack[-1])
        if marked:
            out.add(row.row)
        if base in GROUP_BEGIN:
            stack.append(marked)
    return out


def form_spec(xlsform: XLSForm, media_dir: Path | None = None) -> FormSpec:
    """The form's questions, labels, choices and sensitivity, keyed by Central's paths.

    Assumes the form passed ``forms.check`` (balanced groups); CSV choice lists found in
    ``media_dir`` are included so their values can be labelled too.
    """
    lang = default_language_code(xlsform)
    survey = xlsform.sheet("survey")
    fields: list[FieldSpec] = []
    stack: list[tuple[str, str]] = []  # (name, "group" | "repeat")
    sensitive = sensitive_rows(survey)
    for row in survey.rows if survey else ():
        base, choice_list = split_type(row.get("type"))
        if base in GROUP_END:
            if stack:
                stack.pop()
            continue
        name = row.get("name")
        if not name:
            continue
        parent = "/".join(n for n, _ in stack)
        path = f"/{parent}/{name}" if parent else f"/{name}"
        repeats = [i for i, (_, kind) in enumerate(stack) if kind == "repeat"]
        repeat_path = "/" + "/".join(n for n, _ in stack[: repeats[-1] + 1]) if repeats else None
        fields.append(
            FieldSpec(
                name=name,
                path=path,
                type=base,
                labels=texts(row, "label", lang),
                hints=texts(row, "hint", lang),
                choice_list=choice_list,
                sensitive=row.row in sensitive,
                required=is_true(row.get("required")),
                repeat_path=repeat_path,
            )
        )
        if base in GROUP_BEGIN:
            stack.append((name, GROUP_BEGIN[base]))
    choices: list[ChoiceSpec] = []
    choice_sheet = xlsform.sheet("choices")
    for row in choice_sheet.rows if choice_sheet else ():
        if row.get("list_name") and row.get("name"):
            choices.append(
                ChoiceSpec(row.get("list_name"), row.get("name"), texts(row, "label", lang))
            )
    if media_dir is not None:
        for f in fields:
            if f.type in FILE_SELECT_TYPES and f.choice_list and f.choice_list.endswith(".csv"):
                choices.extend(csv_choices(media_dir / f.choice_list, lang))
    return FormSpec(
        form_id=xlsform.setting("form_id") or xlsform.path.stem,
        title=xlsform.setting("form_title") or xlsform.setting("form_id") or xlsform.path.stem,
        version=xlsform.setting("version") or None,
        fields=tuple(fields),
        choices=tuple(choices),
        default_language=lang,
    )


def csv_choices(path: Path, default_language: str = "en") -> list[ChoiceSpec]:
    """Choices of a ``select_one_from_file`` CSV; the list is named after the file."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        out = []
        for record in csv.DictReader(fh):
            labels: dict[str, str] = {}
            for header, value in record.items():
                if header is None or not value:
                    continue
                if header.strip().lower() == "label":
                    labels.setdefault(default_language, value.strip())
                elif (parsed := language_of(header)) and parsed[0] == "label":
                    labels[parsed[1]] = value.strip()
            if record.get("name"):
                out.append(ChoiceSpec(path.name, record["name"].strip(), labels))
        return out


def convert_xlsform(path: Path, version: str | None = None) -> Conversion:
    """pyxform's XForm for the file, with ``version`` written into its settings if given.

    Raises ``pyxform.errors.PyXFormError`` (and occasionally other errors on odd input);
    ``forms.check`` maps those to sheet, row and column. Cached per file version.
    """
    return _convert_xlsform(*_stamp(path), version)


@functools.lru_cache(maxsize=64)
def _convert_xlsform(path_text: str, mtime_ns: int, size: int, version: str | None) -> Conversion:
    definition = get_xlsform(path_text)
    if version is not None:
        settings = [dict(row) for row in (definition.settings or [{}])] or [{}]
        settings[0]["version"] = version
        definition.settings = settings
        # pyxform reads only columns its header row names (``sheet_headers.process_row``)
        header = [dict(row) for row in (definition.settings_header or [{}])] or [{}]
        header[0]["version"] = None
        definition.settings_header = header
    warnings: list[str] = []
    result = convert(dataclasses.asdict(definition), warnings=warnings)
    return Conversion(result.xform, tuple(warnings))
