"""What an XLSForm says about ODK Entities: the list its ``entities`` sheet writes
(``list_name``), whether it registers or follows up (``entity_id`` given: follow-up), the
entity label expression, which questions save to which property (``save_to``), which lists
it reads (``select_one_from_file {list}.csv``), and which properties are sensitive.

A property saved from a question marked sensitive is sensitive, and so is the label
(it names the person on every tablet); these are what the store and the register API use to
keep identifying values from roles below manager. The rules are checked by
``collector.forms.entitycheck``; ``forms push`` orders forms with ``push_order``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from collector.forms.manifest import FormEntry
from collector.forms.xlsform import FILE_SELECT_TYPES, XLSForm, is_true, read_xlsform, split_type

_REFERENCE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class SavedProperty:
    """One ``save_to``: the question, its sheet row and whether it is marked sensitive."""

    property: str
    question: str
    row: int
    sensitive: bool
    xls_type: str = "text"  # the question's base type (integer, decimal, date, ...)


@dataclass(frozen=True)
class EntityUse:
    """The entity side of one form."""

    form_id: str
    list_name: str | None  # the list the entities sheet writes, None without one
    registers: bool  # creates entities (no entity_id), else follow-up (updates)
    label: str  # the label expression ("" on a follow-up that leaves it)
    label_sensitive: bool  # the label names a sensitive question (or any question at all)
    saved: tuple[SavedProperty, ...] = ()
    reads: tuple[str, ...] = field(default_factory=tuple)  # lists used as {list}.csv

    def sensitive_properties(self) -> set[str]:
        return {p.property for p in self.saved if p.sensitive}


def entity_use(xlsform: XLSForm) -> EntityUse:
    """The entity side of a form (an empty one for a form without entities)."""
    form_id = xlsform.setting("form_id") or xlsform.path.stem
    survey = xlsform.sheet("survey")
    sensitive_names: set[str] = set()
    saved: list[SavedProperty] = []
    reads: list[str] = []
    if survey is not None:
        for row in survey.rows:
            name = row.get("name")
            marked = is_true(row.get("sensitive"))
            if marked and name:
                sensitive_names.add(name)
            prop = row.get("save_to") or row.get("bind::entities:saveto")
            base, listed = split_type(row.get("type"))
            if prop and name:
                saved.append(SavedProperty(prop.strip(), name, row.row, marked, base))
            if base in FILE_SELECT_TYPES and listed and listed.endswith(".csv"):
                reads.append(listed[: -len(".csv")])
    sheet = xlsform.sheet("entities")
    if sheet is None or not sheet.rows:
        return EntityUse(form_id, None, False, "", False, tuple(saved), tuple(reads))
    first = sheet.rows[0]
    label = first.get("label")
    referenced = set(_REFERENCE.findall(label))
    return EntityUse(
        form_id=form_id,
        list_name=first.get("list_name") or first.get("dataset") or None,
        registers=not first.get("entity_id"),
        label=label,
        # fail closed: a label built from any question may identify the person
        label_sensitive=bool(referenced & sensitive_names) or bool(referenced),
        saved=tuple(saved),
        reads=tuple(reads),
    )


def reads_own_entity_list(xlsform: XLSForm, file_name: str) -> bool:
    """Whether ``file_name`` is the entity list this form's entities sheet updates
    (``{list}.csv``): Central serves it from the list, so it is no media file."""
    sheet = xlsform.sheet("entities")
    if sheet is None or not sheet.rows or not file_name.endswith(".csv"):
        return False
    first = sheet.rows[0]
    list_name = first.get("list_name") or first.get("dataset")
    return bool(list_name) and file_name == f"{list_name}.csv"


def sensitive_properties(uses: Iterable[EntityUse]) -> dict[str, set[str]]:
    """Per list, the properties any form saves from a sensitive question."""
    out: dict[str, set[str]] = {}
    for use in uses:
        if use.list_name:
            out.setdefault(use.list_name, set()).update(use.sensitive_properties())
    return out


def known_properties(uses: Iterable[EntityUse]) -> dict[str, set[str]]:
    """Per list, every property some form saves to."""
    out: dict[str, set[str]] = {}
    for use in uses:
        if use.list_name:
            out.setdefault(use.list_name, set()).update(p.property for p in use.saved)
    return out


def push_order(uses: list[EntityUse]) -> list[str]:
    """Form ids in push order: a form that writes a list goes before every form that
    reads it as ``{list}.csv``, since Central links a follow-up's attachment to a list only
    if the list exists when the follow-up is pushed. Otherwise the given order is kept."""
    writers: dict[str, list[str]] = {}
    for use in uses:
        if use.list_name and use.registers:
            writers.setdefault(use.list_name, []).append(use.form_id)
    by_id = {u.form_id: u for u in uses}
    done: list[str] = []
    visiting: set[str] = set()

    def visit(form_id: str) -> None:
        if form_id in done or form_id in visiting:
            return
        visiting.add(form_id)
        for listed in by_id[form_id].reads:
            for writer in writers.get(listed, []):
                if writer != form_id:
                    visit(writer)
        visiting.discard(form_id)
        done.append(form_id)

    for use in uses:
        visit(use.form_id)
    return done


def entries_in_push_order(entries: tuple[FormEntry, ...]) -> tuple[FormEntry, ...]:
    """Manifest entries reordered by ``push_order`` (a form that cannot be read keeps its
    place; ``forms check`` reports it before anything is pushed)."""
    uses = []
    for entry in entries:
        try:
            use = entity_use(read_xlsform(entry.file))
        except Exception:  # unreadable: reported by the check
            use = EntityUse(entry.form_id, None, False, "", False)
        uses.append(replace(use, form_id=entry.form_id))
    by_id = {e.form_id: e for e in entries}
    return tuple(by_id[form_id] for form_id in push_order(uses))


@dataclass(frozen=True)
class PropertyKind:
    """How the store keeps one entity property: its column type and sensitivity."""

    column_type: str  # text | int | decimal | date
    sensitive: bool


_COLUMN_TYPES = {"integer": "int", "decimal": "decimal", "date": "date"}


def property_kinds(uses: Iterable[EntityUse]) -> dict[str, dict[str, PropertyKind]]:
    """Per list and property: the column type (text unless every form saving to it asks an
    integer, decimal or date question) and sensitivity (any sensitive source)."""
    types: dict[tuple[str, str], set[str]] = {}
    sensitive: dict[tuple[str, str], bool] = {}
    for use in uses:
        if not use.list_name:
            continue
        for saved in use.saved:
            key = (use.list_name, saved.property)
            types.setdefault(key, set()).add(_COLUMN_TYPES.get(saved.xls_type, "text"))
            sensitive[key] = sensitive.get(key, False) or saved.sensitive
    out: dict[str, dict[str, PropertyKind]] = {}
    for (list_name, prop), kinds in types.items():
        column = next(iter(kinds)) if len(kinds) == 1 else "text"
        out.setdefault(list_name, {})[prop] = PropertyKind(column, sensitive[(list_name, prop)])
    return out


def manifest_entity_uses(entries: Iterable[FormEntry]) -> list[EntityUse]:
    """The entity side of every readable form of a manifest (unreadable forms skipped:
    ``forms check`` reports them, and their submissions still sync)."""
    uses = []
    for entry in entries:
        try:
            uses.append(entity_use(read_xlsform(entry.file)))
        except Exception:  # noqa: S112 - reported by forms check
            continue
    return uses


def manifest_property_kinds(entries: Iterable[FormEntry]) -> dict[str, dict[str, PropertyKind]]:
    """``property_kinds`` over the forms of a manifest."""
    return property_kinds(manifest_entity_uses(entries))
