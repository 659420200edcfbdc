"""The columns of an export table: their headers (names or labels), kinds and values.

One :class:`Column` per output column, planned once per table from the fields a caller may
see (the scope decided them in :func:`collector.read.queries.select_fields`; nothing here adds a
field). Each writer (CSV, XLSX, GeoJSON) asks a column for the typed value of a result row
and writes it its own way: XLSX as a date, time or number cell, CSV as text.

- ``header="name"``: the technical column names (``visit__respondent_age``), stable for
  scripts; ``header="label"``: the question's label in ``lang`` (else the form's default
  language), made unique, for people opening the file.
- ``choice_columns``: a select_multiple also gets one 0/1 column per choice, as ODK
  Central's CSV export does ("split select multiples"); the space-separated column stays.
- Geotrace and geoshape answers (stored as ODK's ``lat lon alt acc;...`` text) are written as
  GeoJSON geometries in JSON and as that text in CSV and XLSX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal

import orjson

from collector.read.forminfo import FieldInfo, FormInfo
from collector.read.queries import offset_key, value_key
from collector.times import joined_labels, recorded

Kind = Literal["text", "number", "bool", "date", "datetime", "time", "flag"]
Header = Literal["name", "label"]

META_MAIN = (
    "instance_id",
    "submitted_at",
    "updated_at",
    "review_state",
    "district",
    "submitter_id",
    "submitter_name",
    "form_version",
)
META_REPEAT = ("instance_id", "row_id", "parent_row_id", "position", "district")
_META_KIND: dict[str, Kind] = {
    "submitted_at": "datetime",
    "updated_at": "datetime",
    "deleted_at": "datetime",
    "position": "number",
    "submitter_id": "text",
}
_FIELD_KIND: dict[str, Kind] = {
    "int": "number",
    "decimal": "number",
    "boolean": "bool",
    "date": "date",
    "dateTime": "datetime",
    "time": "time",
}
_GEO_PARTS = ("lat", "lon", "alt", "acc")


@dataclass(frozen=True)
class Column:
    name: str
    """The technical header: a metadata name or a table column (``g__q``, ``g__q/choice``)."""
    label: str
    """The header people read, in the chosen language."""
    key: str
    """The result key the value is read from."""
    kind: Kind
    field: FieldInfo | None = None
    choice: str | None = None
    """For a 0/1 column: the choice value it flags."""
    labels: dict[str, str] | None = None
    """Choice value -> label, when choice values are written as labels."""
    offset_key: str | None = None
    """A dateTime answer: the result key of the UTC offset Collect recorded with it."""

    def value(self, raw: Any, offset: int | None = None) -> Any:
        """The typed value of this column for a raw result value (None stays None); a
        dateTime answer at its recorded ``offset`` (collector.times.recorded)."""
        if raw is None:
            return None
        if self.offset_key is not None and isinstance(raw, datetime):
            # unknown offset: UTC, written Z (in XLSX too, where a plain time shows none)
            return recorded(raw, 0 if offset is None else offset)
        if self.kind == "flag":
            return 1 if self.choice in str(raw).split() else 0
        if self.labels is not None:
            if self.field is not None and self.field.select_multiple:
                return joined_labels([self.labels.get(x, x) for x in str(raw).split()])
            return self.labels.get(str(raw), str(raw))
        if self.kind in ("number", "bool", "date", "datetime", "time"):
            return raw
        return raw if isinstance(raw, str) else str(raw)


def header_of(columns: list[Column], header: Header) -> list[str]:
    """The header row: names, or labels made unique (a repeated label gets its name)."""
    if header == "name":
        return [c.name for c in columns]
    seen: dict[str, int] = {}
    for c in columns:
        seen[c.label] = seen.get(c.label, 0) + 1
    return [c.label if seen[c.label] == 1 else f"{c.label} [{c.name}]" for c in columns]


def _label(f: FieldInfo, form: FormInfo, lang: str | None) -> str:
    text = f.labels.get(lang or form.default_language) or f.labels.get(form.default_language)
    return (text or f.column_name or f.name).strip()


def _choice_label(form: FormInfo, f: FieldInfo, value: str, lang: str | None) -> str:
    return form.choice_label(f, value, lang or form.default_language)


def plan_columns(
    form: FormInfo,
    fields: list[FieldInfo],
    *,
    repeat: bool,
    lang: str | None,
    choice_columns: bool = False,
) -> list[Column]:
    """The output columns of one table, in order: metadata, then each field's columns."""
    meta = META_REPEAT if repeat else META_MAIN
    out = [Column(m, m, m, _META_KIND.get(m, "text")) for m in meta]
    for f in fields:
        label = _label(f, form, lang)
        labels = None
        if lang and f.choice_list:
            labels = {
                v: _choice_label(form, f, v, lang) for v in form.choices.get(f.choice_list, {})
            }
        if f.is_geopoint:
            for part, col in zip(_GEO_PARTS, f.value_columns(), strict=True):
                out.append(Column(col, f"{label} ({part})", value_key(col), "number", f))
            continue
        (col,) = f.value_columns()
        kind = "text" if f.choice_list else _FIELD_KIND.get(f.type, "text")
        tz = offset_key(f) if f.offset_column() and kind == "datetime" else None
        out.append(Column(col, label, value_key(col), kind, f, labels=labels, offset_key=tz))
        if choice_columns and f.select_multiple:
            for v in form.choices.get(f.choice_list or "", {}):
                out.append(
                    Column(
                        f"{col}/{v}",
                        f"{label} / {_choice_label(form, f, v, lang)}",
                        value_key(col),
                        "flag",
                        f,
                        choice=v,
                    )
                )
    return out


Reader = Callable[[Any], Any]


def positions(columns: list[Column], fields: tuple[str, ...]) -> list[int]:
    """Each column's position in a result row (``row._fields``), looked up once a table."""
    where = {name: i for i, name in enumerate(fields)}
    return [where[c.key] for c in columns]


def offset_positions(columns: list[Column], fields: tuple[str, ...]) -> list[int | None]:
    """Each column's recorded-offset position in a result row (None: not a dateTime)."""
    where = {name: i for i, name in enumerate(fields)}
    return [None if c.offset_key is None else where[c.offset_key] for c in columns]


def naive_utc(value: datetime) -> datetime:
    """A timestamp as spreadsheets hold them (no offset): in UTC, said in the fields sheet."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date | time) else value


# --- geotrace and geoshape -------------------------------------------------------------------


def odk_geometry(f: FieldInfo, text: Any) -> dict[str, Any] | None:
    """An ODK geotrace (``lat lon alt acc;...``) as a GeoJSON LineString, a geoshape as a
    Polygon (RFC 7946: longitude first; a ring closed if ODK left it open), None when the
    text is not one; the same reading as Central's ``odk2geojson`` functions
    (lib/model/migrations/20250927-01-geoextracts-02.up.sql).

    Central's OData feed already sends these answers as GeoJSON (with an ``accuracies``
    member), which the store keeps as JSON text: that is read as it is, keeping only the
    geometry's ``type`` and ``coordinates``."""
    if isinstance(text, str) and text.lstrip().startswith("{"):
        try:
            text = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    if isinstance(text, dict):
        kind, coords = text.get("type"), text.get("coordinates")
        if kind == "LineString" and isinstance(coords, list) and len(coords) >= 2:
            return {"type": kind, "coordinates": coords}
        if kind == "Polygon" and isinstance(coords, list) and coords and coords[0]:
            ring = list(coords[0])
            if ring[0][:2] != ring[-1][:2]:
                ring.append(ring[0])  # RFC 7946 3.1.6: a ring is closed
            return {"type": kind, "coordinates": [ring, *coords[1:]]}
        return None
    if not isinstance(text, str) or not text.strip():
        return None
    points: list[list[float]] = []
    for part in text.strip().strip(";").split(";"):
        nums = part.split()
        if len(nums) < 2:
            return None
        try:
            lat, lon = float(nums[0]), float(nums[1])
            alt = float(nums[2]) if len(nums) > 2 else None
        except ValueError:
            return None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return None
        points.append([lon, lat] if alt is None else [lon, lat, alt])
    if f.xls_type == "geoshape" or f.type == "geoshape":
        if len(points) < 3:
            return None
        if points[0][:2] != points[-1][:2]:
            points.append(points[0])
        if len(points) < 4:
            return None
        return {"type": "Polygon", "coordinates": [points]}
    if len(points) < 2:
        return None
    return {"type": "LineString", "coordinates": points}


def is_geoline(f: FieldInfo) -> bool:
    """A geotrace or geoshape question (Central types them so; XLSForm says it too)."""
    return f.type in ("geotrace", "geoshape") or f.xls_type in ("geotrace", "geoshape")
