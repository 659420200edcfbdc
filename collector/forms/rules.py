"""The programme's rules for the survey and choices sheets of an XLSForm.

Each rule adds findings that point at a cell: missing translations, unmarked sensitive
questions, choice lists that do not exist or are unused, duplicate or invalid names,
unbalanced groups, a missing ``district`` question, media files and their CSV columns.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from openpyxl.utils import get_column_letter
from pyxform.aliases import select as SELECT_ALIASES
from pyxform.parsing.expression import parse_expression
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

from collector.forms.entities import reads_own_entity_list
from collector.forms.expr import check_derived_sensitive, check_expressions
from collector.forms.findings import LANGUAGE_NAMES, Findings, RowFindings
from collector.forms.spec import LANGUAGES
from collector.forms.xlsform import (
    FILE_SELECT_TYPES,
    GROUP_BEGIN,
    GROUP_END,
    METADATA_TYPES,
    TRANSLATABLE,
    Sheet,
    SheetRow,
    XLSForm,
    is_true,
    language_of,
    sensitive_rows,
    split_type,
    texts,
)

SENSITIVE_VALUES = {"", "yes", "no", "true", "false"}
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

# What makes an answer sensitive, read from the question's name and English label.
_SENSITIVE_NAME_TOKENS = {
    "name",
    "surname",
    "fio",
    "phone",
    "tel",
    "telephone",
    "mobile",
    "whatsapp",
    "telegram",
    "address",
    "gps",
    "village",
    "location",
    "passport",
    "violence",
    "abuse",
    "trafficking",
    "contact",
    "hit",
    "beaten",
    "forced",
}
# The label, in each of the programme's languages (a form may be written in Tajik or
# Russian first): names, phones, places, violence, forced marriage, trafficking. The
# Tajik and Russian stems are the forms these words take in questions ("ӯро заданд?",
# "вас били?", "рақами тамос", "контактный номер", "издивоҷи маҷбурӣ", "принудительный
# брак", "выдали замуж против воли").
_SENSITIVE_LABEL = re.compile(
    r"\bnames?\b|phone|address|gps|location|violen|abus|traffick|rape|beat(en|ing)?\b"
    r"|\bhit\b|\bslap|\bkick|contact (number|details)|forced(ly)? (to )?marr|marr\w* "
    r"against"
    # Russian
    r"|\bимя\b|\bимени\b|фамили|телефон|контактн\w* номер|номер для связи|адрес|насили"
    r"|\bбил[аи]?\b|\bбьёт|\bбьет|удар|избива|избил|принудительн\w* (брак|замуж)"
    r"|выдали замуж|против (её|ее) воли|торговл\w* людьми"
    # Tajik
    r"|\bном\b|насаб|телефон|рақами (тамос|телефон)|суроға|зӯровар|хушунат|\bзад(анд|ааст|)\b"
    r"|лату ?кӯб|издивоҷи маҷбурӣ|никоҳи маҷбурӣ|маҷбуран.{0,20}(шавҳар|никоҳ)"
    r"|савдои одам|хариду фурӯши одам",
    re.IGNORECASE,
)
_LOCATION_TYPES = {"geopoint", "geotrace", "geoshape", "start-geopoint", "background-geopoint"}
_IDENTITY_TYPES = {"phonenumber", "username", "email"}
_NO_LABEL_TYPES = METADATA_TYPES | {"end_group", "end_repeat"}


def _language_headers(sheet: Sheet) -> dict[tuple[str, str], str]:
    """(column key, language code) -> header, for every translated column of a sheet."""
    found: dict[tuple[str, str], str] = {}
    for header in sheet.columns:
        parsed = language_of(header)
        if parsed and parsed[0] in TRANSLATABLE:
            found[parsed] = header
    return found


def check_language_columns(sheet: Sheet, out: Findings, always: tuple[str, ...]) -> None:
    """Every translatable column in use exists in each language, and only those."""
    headers = _language_headers(sheet)
    for header in sheet.columns:
        if header.strip().lower() in TRANSLATABLE:
            out.on_row(sheet, 1).add(
                "untranslated-column",
                f"column '{header}' has no language",
                f"rename it '{header.strip()}::English (en)' and add the Tajik and Russian columns",
                header,
            )
    for (key, code), header in headers.items():
        if code not in LANGUAGES:
            out.on_row(sheet, 1).add(
                "unknown-language",
                f"column '{header}' is not one of the programme's languages",
                "use " + ", ".join(f"'{key}::{LANGUAGE_NAMES[c]}'" for c in LANGUAGES),
                header,
            )
        elif (written := header.split(":")[-1].strip()) != LANGUAGE_NAMES[code]:
            # pyxform (and Collect) take the text after '::' as the language's name, so
            # 'Tajik(tg)' beside 'Tajik (tg)' is a fourth language with half the texts
            out.on_row(sheet, 1).add(
                "language-name-mismatch",
                f"column '{header}' names the language '{written}', which is not how the "
                f"form writes it ('{LANGUAGE_NAMES[code]}'): Collect would show it as "
                "another language",
                f"rename the column '{key}::{LANGUAGE_NAMES[code]}'",
                header,
            )
    used = set(always) | {key for key, _ in headers}
    for key in sorted(used):
        for code in LANGUAGES:
            if (key, code) not in headers:
                out.on_row(sheet, 1).add(
                    "missing-language-column",
                    f"the {sheet.name} sheet has no '{key}::{LANGUAGE_NAMES[code]}' column",
                    f"add a column headed '{key}::{LANGUAGE_NAMES[code]}' and fill it in",
                    f"{key}::{LANGUAGE_NAMES[code]}",
                )


def _check_translations(row: SheetRow, sheet: Sheet, out: Findings, need_label: bool) -> None:
    headers = _language_headers(sheet)
    for key in TRANSLATABLE:
        present = {code for (k, code), h in headers.items() if k == key and row.get(h)}
        if not present and not (key == "label" and need_label):
            continue
        for code in LANGUAGES:
            header = headers.get((key, code))
            if header is None or code in present:
                continue  # a missing column is reported once, on row 1
            out.on_row(sheet, row.row).add(
                "missing-translation",
                f"'{row.get('name') or row.get('list_name')}' has no {key} in {LANGUAGE_NAMES[code]}",
                f"write the {LANGUAGE_NAMES[code].split(' (')[0]} {key.replace('_', ' ')} in this cell",
                header,
            )


def _known_type(base: str, choice_list: str | None, type_text: str) -> bool:
    if base in GROUP_BEGIN or base in GROUP_END:
        return True
    if choice_list is not None:
        return True
    return type_text.strip().lower() in QUESTION_TYPE_DICT or base in QUESTION_TYPE_DICT


def check_survey_rows(
    xlsform: XLSForm,
    survey: Sheet,
    out: Findings,
    media_dir: Path,
    manifest_media: Iterable[str] | None,
) -> None:
    names: dict[str, int] = {}
    for row in survey.rows:
        if row.get("name"):
            names.setdefault(row.get("name"), row.row)
    choice_lists = _choice_lists(xlsform)
    stack: list[tuple[str, SheetRow]] = []
    seen: dict[str, int] = {}
    has_district = False
    listed_media = set(manifest_media) if manifest_media is not None else None
    marked = sensitive_rows(survey)  # own marks and enclosing groups' (issue 15, item 3)
    for row in survey.rows:
        at = out.on_row(survey, row.row)
        type_text, name = row.get("type"), row.get("name")
        base, choice_list = split_type(type_text)
        if not type_text:
            if not name and not texts(row, "label"):
                continue  # pyxform skips such a row as a comment (with a warning)
            at.add(
                "missing-type",
                f"row with name '{name}' has no type",
                "write the question type, e.g. text, integer, select_one <list>",
                "type",
            )
            continue
        if not _known_type(base, choice_list, type_text):
            at.add(
                "unknown-type",
                f"'{type_text}' is not an XLSForm question type",
                "use a type from https://xlsform.org/en/#question-types (check the spelling)",
                "type",
            )
        if base in GROUP_END:
            kind = GROUP_END[base]
            if not stack or stack[-1][0] != kind:
                at.add(
                    "unbalanced-group",
                    f"'{type_text}' has no matching 'begin_{kind}'",
                    f"remove this row or add a 'begin_{kind}' above it",
                    "type",
                )
            else:
                stack.pop()
            continue
        if name or base != "note":  # pyxform names a nameless note itself
            _check_name(at, type_text, name, seen)
        if base in GROUP_BEGIN:
            stack.append((GROUP_BEGIN[base], row))
        if name == "district" and base == "select_one":
            has_district = True
        _check_translations(row, survey, out, need_label=base not in _NO_LABEL_TYPES)
        if row.get("constraint") and not any(
            h for h in row.cells if h.lower().startswith("constraint_message")
        ):
            at.add(
                "missing-constraint-message",
                f"'{name}' has a constraint but no message",
                "write what the enumerator should enter, in all three languages",
                f"constraint_message::{LANGUAGE_NAMES['en']}",
            )
        _check_sensitive(row, survey, out, base, inherited=row.row in marked)
        _check_choice_reference(row, survey, out, base, choice_list, choice_lists)
        if (
            base in FILE_SELECT_TYPES
            and choice_list
            and not reads_own_entity_list(xlsform, choice_list)
        ):
            _check_media(row, survey, out, choice_list, media_dir, listed_media)
        check_expressions(row, survey, out, names)
    check_derived_sensitive(survey, out)
    for kind, row in stack:
        out.on_row(survey, row.row).add(
            "unbalanced-group",
            f"'begin_{kind}' '{row.get('name')}' is never closed",
            f"add an 'end_{kind}' row where the {kind} ends",
            "type",
        )
    if not has_district:
        out.add(
            "missing-district",
            "the form has no select_one question named 'district'",
            "add 'select_one district' named district: the API limits keys by district",
            sheet=survey.name,
        )


def _check_name(at: RowFindings, type_text: str, name: str, seen: dict[str, int]) -> None:
    """A question's name becomes an XML element and an export column: it must be there,
    be a valid XML name, and be unique (``seen``: name -> first row, updated here)."""
    if not name:
        at.add(
            "missing-name",
            f"the '{type_text}' row has no name",
            "give it a unique name of letters, digits and underscores",
            "name",
        )
    elif not NAME_PATTERN.match(name):
        at.add(
            "invalid-name",
            f"'{name}' is not a valid name",
            "start with a letter; use only letters, digits, '_', '-' and '.'",
            "name",
        )
    elif name in seen:
        at.add(
            "duplicate-name",
            f"'{name}' is already used on row {seen[name]}",
            "rename one of them: names are column names in exports and must be unique",
            "name",
        )
    if name:
        seen.setdefault(name, at.row)


def _check_sensitive(
    row: SheetRow, survey: Sheet, out: Findings, base: str, *, inherited: bool
) -> None:
    value = row.get("sensitive").strip().lower()
    at = out.on_row(survey, row.row)
    if value not in SENSITIVE_VALUES:
        at.add(
            "invalid-sensitive",
            f"sensitive is '{row.get('sensitive')}', not yes or no",
            "write yes (or leave the cell empty for no)",
            "sensitive",
        )
        return
    if is_true(value) or inherited or base in {"note", "calculate", "hidden"} | set(GROUP_BEGIN):
        return  # marked, or inside a group or repeat marked sensitive
    name = row.get("name")
    labels = [row.get(f"label::{LANGUAGE_NAMES[lang]}") for lang in LANGUAGES]
    tokens = set(re.split(r"[_.\-]", name.lower())) if name else set()
    why = None
    if base in _LOCATION_TYPES:
        why = "it records a location"
    elif base in _IDENTITY_TYPES:
        why = "it records who the person is"
    elif tokens & _SENSITIVE_NAME_TOKENS or any(
        label and _SENSITIVE_LABEL.search(label) for label in labels
    ):
        why = "it asks for a name, phone, place or about violence or trafficking"
    if why:
        at.add(
            "sensitive-unmarked",
            f"'{name}' is not marked sensitive, but {why}",
            "write yes in the 'sensitive' column of this row",
            "sensitive",
        )


def _choice_lists(xlsform: XLSForm) -> dict[str, int]:
    """list_name -> the choices-sheet row where it starts."""
    choices = xlsform.sheet("choices")
    lists: dict[str, int] = {}
    for row in choices.rows if choices else ():
        if row.get("list_name"):
            lists.setdefault(row.get("list_name"), row.row)
    return lists


def _check_choice_reference(
    row: SheetRow,
    survey: Sheet,
    out: Findings,
    base: str,
    choice_list: str | None,
    lists: dict[str, int],
) -> None:
    if base in FILE_SELECT_TYPES or not choice_list:
        if base in {*SELECT_ALIASES, *FILE_SELECT_TYPES} and not choice_list:
            out.on_row(survey, row.row).add(
                "missing-choice-list",
                f"'{row.get('type')}' names no choice list",
                f"write the list name after the type, e.g. '{base} district'",
                "type",
            )
        return
    if choice_list not in lists:
        out.on_row(survey, row.row).add(
            "unknown-choice-list",
            f"choice list '{choice_list}' is not on the choices sheet",
            "fix the list name here or add the list's choices on the choices sheet",
            "type",
        )


def _check_media(
    row: SheetRow,
    survey: Sheet,
    out: Findings,
    file_name: str,
    media_dir: Path,
    listed: set[str] | None,
) -> None:
    at = out.on_row(survey, row.row)
    path = media_dir / file_name
    if not path.is_file():
        at.add(
            "missing-media",
            f"'{file_name}' is not in {media_dir}",
            f"put {file_name} in the forms folder beside the form",
            "type",
        )
        return
    if listed is not None and file_name not in listed:
        at.add(
            "media-not-in-manifest",
            f"'{file_name}' is not listed as media of this form",
            f'add "{file_name}" to this form\'s media in forms/manifest.toml',
            "type",
        )
    _check_csv(path, out, row.get("choice_filter"))


def _check_csv(path: Path, out: Findings, choice_filter: str) -> None:
    """A choice CSV: name and label columns, all three languages, filter columns present."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        needed = ["name", "label", *(f"label::{LANGUAGE_NAMES[c]}" for c in LANGUAGES)]
        if choice_filter:
            for token in parse_expression(choice_filter):
                if token.type == "NAME" and token.value not in {"and", "or", "not", "div", "mod"}:
                    needed.append(token.value)
        for column in needed:
            if column not in header:
                out.add(
                    "csv-missing-column",
                    f"{path.name} has no '{column}' column",
                    f"add a '{column}' column to {path.name}",
                    sheet=path.name,
                    row=1,
                    column=_letter(len(header)),
                )
        label_columns = {h: i for i, h in enumerate(header) if h.startswith("label::")}
        for line, record in enumerate(reader, start=2):
            for col_name, index in label_columns.items():
                if index >= len(record) or not record[index].strip():
                    out.add(
                        "missing-translation",
                        f"{path.name} row {line} has no '{col_name}'",
                        "fill in the label in this language",
                        sheet=path.name,
                        row=line,
                        column=_letter(index),
                    )


def _letter(index: int) -> str:
    return get_column_letter(index + 1)


def check_choices(xlsform: XLSForm, choices: Sheet, out: Findings) -> None:
    """Choice rows: in a list, named, unique in their list (unless the settings sheet's
    ``allow_choice_duplicates`` says yes, which pyxform honours), and every list used."""
    duplicates_allowed = is_true(xlsform.setting("allow_choice_duplicates"))
    survey = xlsform.sheet("survey")
    referenced = {
        split_type(r.get("type"))[1] for r in (survey.rows if survey else ()) if r.get("type")
    }
    seen: dict[tuple[str, str], int] = {}
    first_row: dict[str, int] = {}
    for row in choices.rows:
        at = out.on_row(choices, row.row)
        list_name, name = row.get("list_name"), row.get("name")
        if not list_name:
            at.add(
                "missing-list-name",
                f"choice '{name}' has no list_name",
                "write the list this choice belongs to",
                "list_name",
            )
            continue
        first_row.setdefault(list_name, row.row)
        if not name:
            at.add(
                "missing-choice-name",
                f"a choice of '{list_name}' has no name",
                "write the value stored for this choice",
                "name",
            )
        elif " " in name:
            at.add(
                "invalid-choice-name",
                f"choice name '{name}' of '{list_name}' has a space",
                "use underscores: select_multiple answers are stored space-separated",
                "name",
            )
        elif (list_name, name) in seen and not duplicates_allowed:
            at.add(
                "duplicate-choice",
                f"'{name}' is already in '{list_name}' on row {seen[(list_name, name)]}",
                "give each choice of a list its own name",
                "name",
            )
        else:
            seen[(list_name, name)] = row.row
        _check_translations(row, choices, out, need_label=True)
    for list_name, row_number in first_row.items():
        if list_name not in referenced:
            out.on_row(choices, row_number).add(
                "unused-choice-list",
                f"choice list '{list_name}' is used by no question",
                "delete the list or use it in a select question",
                "list_name",
            )
