"""The indicator catalogue: ``catalogue.toml`` read into frozen dataclasses, checked once.

The catalogue is data (programme staff edit it, reviewers diff it); this module only reads
it and writes each indicator's formula from it, so the API's formula is the code's. A
mistake in the file (an unknown key, a measure without its parts) fails at import with the
indicator's id, rather than as a wrong number later.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.errors import CollectorError

CATALOGUE = Path(__file__).with_name("catalogue.toml")
SUBMITTED = "submitted"  # in ``dated_by``: the date Central received the submission
START = "start"  # Collect's start of the interview (a dateTime)


class CatalogueError(CollectorError, ValueError):
    """``catalogue.toml`` says something the code cannot compute."""

    exit_code = 2  # a file to fix, as the manifest is


@dataclass(frozen=True)
class Part:
    """One column of a sum, and the breakdown values its number belongs to."""

    field: str
    values: Mapping[str, str]  # breakdown name -> value, e.g. {"sex": "female"}


@dataclass(frozen=True)
class Count:
    """How many submissions (with ``link_field``: how many values chosen in it)."""

    link_field: str | None = None  # a select_multiple: count its chosen values
    link_breakdown: str | None = None  # the breakdown those values form

    def describe(self) -> str:
        if self.link_field:
            return f"number of answers chosen in `{self.link_field}`"
        return "number of submissions"


@dataclass(frozen=True)
class Sum:
    """The sum of integer questions; ``parts`` say which breakdown each one is."""

    parts: tuple[Part, ...]

    def describe(self) -> str:
        return "sum of " + " + ".join(f"`{p.field}`" for p in self.parts)


@dataclass(frozen=True)
class Condition:
    """``field`` ``op`` ``value``; op is ``equals``, ``not_equals`` or ``has``."""

    field: str
    op: str
    value: str

    def describe(self) -> str:
        words = {"equals": "=", "not_equals": "≠", "has": "has"}[self.op]
        return f"`{self.field}` {words} '{self.value}'"


@dataclass(frozen=True)
class Indicator:
    id: str
    title: str
    form: str
    unit: str
    measure: Count | Sum
    counts_people: bool
    dated_by: tuple[str, ...] = (START, SUBMITTED)
    breakdowns: Mapping[str, str] = field(default_factory=dict)  # name -> field (select)
    conditions: tuple[Condition, ...] = ()
    note: str = ""

    @property
    def part_breakdowns(self) -> list[str]:
        if isinstance(self.measure, Sum):
            return sorted({k for p in self.measure.parts for k in p.values})
        if self.measure.link_breakdown:
            return [self.measure.link_breakdown]
        return []

    def breakdown_names(self) -> list[str]:
        return ["district", *self.breakdowns, *self.part_breakdowns]

    @property
    def formula(self) -> str:
        dates = [
            "the date Central received it"
            if d == SUBMITTED
            else ("the date of Collect's `start` (UTC)" if d == START else f"`{d}`")
            for d in self.dated_by
        ]
        when = dates[0] + "".join(f", else {d}" for d in dates[1:])
        if SUBMITTED not in self.dated_by:
            when += " (submissions without it are left out)"
        where = " where " + " and ".join(c.describe() for c in self.conditions)
        text = (
            f"{self.measure.describe()} in `{self.form}`"
            f"{where if self.conditions else ''}, deleted submissions left out; "
            f"dated by {when}"
        )
        return f"{text}. {self.note}" if self.note else text + "."


_KEYS = {
    "id",
    "title",
    "form",
    "unit",
    "counts_people",
    "measure",
    "parts",
    "chosen_field",
    "chosen_breakdown",
    "dated_by",
    "where",
    "breakdowns",
    "note",
}


def _measure(entry: Mapping[str, Any], where: str) -> Count | Sum:
    kind = entry.get("measure")
    if kind == "count":
        return Count()
    if kind == "count_chosen":
        if not entry.get("chosen_field") or not entry.get("chosen_breakdown"):
            raise CatalogueError(f"{where}: count_chosen needs chosen_field and chosen_breakdown")
        return Count(entry["chosen_field"], entry["chosen_breakdown"])
    if kind == "sum":
        parts = entry.get("parts") or []
        if not parts:
            raise CatalogueError(f"{where}: a sum needs parts")
        return Sum(
            tuple(
                Part(p["field"], {k: str(v) for k, v in p.items() if k != "field"}) for p in parts
            )
        )
    raise CatalogueError(f"{where}: measure must be count, count_chosen or sum, not {kind!r}")


def _condition(raw: Mapping[str, str], where: str) -> Condition:
    ops = [k for k in raw if k != "field"]
    if "field" not in raw or len(ops) != 1 or ops[0] not in ("equals", "not_equals", "has"):
        raise CatalogueError(f"{where}: a condition is {{field, equals|not_equals|has}}: {raw}")
    return Condition(raw["field"], ops[0], str(raw[ops[0]]))


def load_catalogue(path: Path = CATALOGUE) -> tuple[Indicator, ...]:
    """Every indicator in ``path``, in its order; :class:`CatalogueError` names a mistake."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out: list[Indicator] = []
    for n, entry in enumerate(data.get("indicator", []), 1):
        where = f"{path.name}: indicator {entry.get('id') or n}"
        unknown = set(entry) - _KEYS
        if unknown:
            raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")
        missing = {"id", "title", "form", "unit", "counts_people", "measure"} - set(entry)
        if missing:
            raise CatalogueError(f"{where}: missing {sorted(missing)}")
        dated_by = tuple(entry.get("dated_by") or (START, SUBMITTED))
        out.append(
            Indicator(
                id=entry["id"],
                title=entry["title"],
                form=entry["form"],
                unit=entry["unit"],
                measure=_measure(entry, where),
                counts_people=bool(entry["counts_people"]),
                dated_by=dated_by,
                breakdowns=dict(entry.get("breakdowns") or {}),
                conditions=tuple(_condition(c, where) for c in entry.get("where") or ()),
                note=entry.get("note", ""),
            )
        )
    ids = [i.id for i in out]
    if len(ids) != len(set(ids)):
        raise CatalogueError(f"{path.name}: an id is used twice")
    return tuple(out)
