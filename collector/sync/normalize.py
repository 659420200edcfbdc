"""Central's OData rows in, relational rows out. Pure: no I/O, no database, no clock.

Driven by a form's fields (Central's ``/fields``, merged with what the XLSForm says), it
decides the per-form tables (:func:`form_shape`) and turns a page of OData rows into rows
for them (:func:`rows_for_page`):

- one wide table per form, ``<form>``, keyed by ``instance_id``, with a typed column per
  question; a question inside groups gets the group path in its name (``place__gps``);
- one table per repeat, ``<form>__<repeat path>``, keyed by ``(instance_id, row_id)``
  (``row_id`` is Central's ``__id`` of the repeat row), with ``parent_row_id`` (the
  enclosing repeat's row, None at the first level) and ``position`` (1-based);
- one link table per select_multiple, ``<table>__<column>``: ``(instance_id, row_id,
  position, value)``, where ``row_id`` is the row holding the answer (the instance id in
  the wide table);
- a geopoint becomes ``<col>_lat``, ``<col>_lon``, ``<col>_alt``, ``<col>_acc``;
- a value that does not fit its type becomes NULL in its column and a ``data_issue`` row
  (path, value as text, why). The OData row itself is kept whole in ``submission.raw``.

Identifiers are lower case ``[a-z0-9_]``, at most 63 characters (PostgreSQL's limit); a
longer one keeps its start and ends in ``_`` + 8 hex digits of its full name's sha1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import orjson

from collector.store.layout import (
    SYSTEM_COLUMNS_MAIN,
    SYSTEM_COLUMNS_REPEAT,
    column_kind,
    geopoint_columns,
    offset_column,
    stored_columns,
)

MAX_IDENT = 63

# XLSForm type -> Central's /fields type, for forms we know only from their XLSForm.
_CENTRAL_TYPE_OF_XLS = {
    "integer": "int",
    "decimal": "decimal",
    "range": "decimal",
    "date": "date",
    "datetime": "dateTime",
    "time": "time",
    "start": "dateTime",
    "end": "dateTime",
    "today": "date",
    "geopoint": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "begin_group": "structure",
    "begin group": "structure",
    "begin_repeat": "repeat",
    "begin repeat": "repeat",
    "image": "binary",
    "audio": "binary",
    "video": "binary",
    "file": "binary",
    "background-audio": "binary",
}


def ident(name: str) -> str:
    """A safe SQL identifier for ``name``: lower case, ``[a-z0-9_]``, <= 63 characters."""
    s = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not s or s[0].isdigit():
        s = "_" + s
    if len(s) > MAX_IDENT:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
        s = s[: MAX_IDENT - 9] + "_" + digest
    return s


def table_name_for_form(xml_form_id: str) -> str:
    return ident(xml_form_id)


def _unique(name: str, taken: set[str] | frozenset[str], path: str) -> str:
    """``name``, or ``name`` with a hash of ``path`` when it is taken (deterministic: the
    same name, taken set and path give the same answer; rehashed until free)."""
    if name not in taken and not _reserved_by_database(name):
        return name
    salt = path
    while True:
        digest = hashlib.sha1(salt.encode(), usedforsecurity=False).hexdigest()[:8]
        out = ident(name[: MAX_IDENT - 9] + "_" + digest)
        if out not in taken:
            return out
        salt += "#"


unique_name = _unique  # for the store's registry (a form's wide table)


def _reserved_by_database(name: str) -> bool:
    """Names the databases keep for themselves (SQLite refuses ``sqlite_*`` tables;
    PostgreSQL's catalogues are ``pg_*``)."""
    return name.startswith(("sqlite_", "pg_"))


def _geopoint_names(name: str) -> set[str]:
    return set(geopoint_columns(name))


def _expansion(name: str, kind: str) -> set[str]:
    """Every column a question of this kind named ``name`` takes (layout.stored_columns)."""
    return (
        {n for n, _ in stored_columns(name, kind)} if kind in ("geopoint", "datetime") else {name}
    )


def _column_name(name: str, taken: set[str], path: str, kind: str) -> str:
    """A column name free in ``taken``; a geopoint's four expansions, or a dateTime's
    offset companion, must all be free too."""
    if kind not in ("geopoint", "datetime"):
        return _unique(name, taken, path)
    salt = path
    candidate = name
    while (
        candidate in taken
        or _expansion(candidate, kind) & taken
        or _reserved_by_database(candidate)
    ):
        digest = hashlib.sha1(salt.encode(), usedforsecurity=False).hexdigest()[:8]
        candidate = ident(name[: MAX_IDENT - 13] + "_" + digest)
        salt += "#"
    return candidate


# --- the shape of a form's tables ----------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One question's column(s) in one table."""

    path: str  # Central path, /group/question
    keys: tuple[str, ...]  # keys from the table's row object to the value
    name: str  # column name (a geopoint's four columns are name_lat ...)
    kind: str  # text int decimal bool date datetime time geopoint json
    link_table: str | None = None  # select_multiple: its link table

    def stored_names(self) -> tuple[str, ...]:
        """The column(s) that hold this question's answer (a geopoint has four, a dateTime
        two: the instant and the offset Collect recorded)."""
        return tuple(n for n, _ in stored_columns(self.name, self.kind))


@dataclass(frozen=True)
class TableSpec:
    name: str
    repeat_path: str | None  # None for the form's wide table
    keys: tuple[str, ...]  # keys from the parent table's row object to this repeat's list
    parent: str | None  # the parent table's name
    columns: tuple[ColumnSpec, ...]
    retired: bool = False  # a repeat the form's current version no longer has

    def column_names(self) -> list[str]:
        """Every column of this table, system columns first, in a stable order."""
        names = list(SYSTEM_COLUMNS_REPEAT if self.repeat_path else SYSTEM_COLUMNS_MAIN)
        for c in self.columns:
            names += c.stored_names()
        return names


@dataclass(frozen=True)
class FormShape:
    xml_form_id: str
    tables: tuple[TableSpec, ...]  # the wide table first, then repeats, parents first
    district_keys: tuple[str, ...] | None = None  # where the `district` question lives
    placement: Mapping[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    # placement: path -> (table_name, column_name, link_table) for every question

    @property
    def main(self) -> TableSpec:
        return self.tables[0]

    def link_tables(self) -> list[tuple[str, str]]:
        """``(link table, owning table)`` for every select_multiple."""
        return [(c.link_table, t.name) for t in self.tables for c in t.columns if c.link_table]

    def subtree(self, table_name: str) -> set[str]:
        """``table_name``, the repeat tables inside it and all their link tables."""
        names = {table_name}
        for t in self.tables:  # parents come before children
            if t.parent in names:
                names.add(t.name)
        return names | {link for link, owner in self.link_tables() if owner in names}


def central_type_for_xls(xls_type: str) -> str:
    return _CENTRAL_TYPE_OF_XLS.get(xls_type, "string")


def fields_from_spec(spec: Any) -> list[dict]:
    """Central-style field dicts from a ``FormSpec`` (when Central's ``/fields`` is absent)."""
    out = []
    for f in spec.fields:
        if f.type in ("end_group", "end_repeat", "end group", "end repeat", "note"):
            continue
        out.append(
            {
                "path": f.path,
                "name": f.name,
                "type": central_type_for_xls(f.type),
                "binary": True if central_type_for_xls(f.type) == "binary" else None,
                "selectMultiple": True if f.type == "select_multiple" else None,
                "xls_type": f.type,
            }
        )
    return out


def form_shape(
    xml_form_id: str,
    fields: Sequence[Mapping[str, Any]],
    assigned: Mapping[str, str] | None = None,
    *,
    main_name: str | None = None,
    assigned_tables: Mapping[str, str] | None = None,
    reserved: Iterable[str] = (),
) -> FormShape:
    """The tables for a form with these fields (Central's ``/fields`` dicts, depth-first).

    ``assigned`` maps a path to the column name the store already gave it, and
    ``assigned_tables`` a repeat's path (or a select_multiple's path + ``#link``) to its
    table, so names stay stable when a later version adds a name that would collide.
    ``main_name`` is the wide table's registered name (default: from the form id);
    ``reserved`` are table names a new table must not take (the store's own tables,
    other forms'). Every new name is checked against every name it could collide with,
    a geopoint's four expansions included, and made distinct deterministically.
    """
    assigned = assigned or {}
    assigned_tables = assigned_tables or {}
    main_name = main_name or table_name_for_form(xml_form_id)
    repeats = [f["path"] for f in fields if f.get("type") == "repeat"]

    def enclosing_repeat(path: str) -> str | None:
        best = None
        for r in repeats:
            if path.startswith(r + "/") and (best is None or len(r) > len(best)):
                best = r
        return best

    table_of_repeat: dict[str | None, str] = {None: main_name}
    cols: dict[str | None, list[ColumnSpec]] = {None: []}
    taken: dict[str | None, set[str]] = {None: set(SYSTEM_COLUMNS_MAIN)}
    meta: dict[str | None, tuple[tuple[str, ...], str | None]] = {None: ((), None)}
    used_tables = {main_name, *reserved, *assigned_tables.values()}
    for r in repeats:  # depth-first order: a parent repeat comes before its children
        parent = enclosing_repeat(r)
        rel = r[len(parent) :] if parent else r
        name = assigned_tables.get(r)
        if name is None:
            name = ident(f"{main_name}__{r.strip('/').replace('/', '__')}")
            name = _unique(name, used_tables, r)
        used_tables.add(name)
        table_of_repeat[r] = name
        cols[r] = []
        taken[r] = set(SYSTEM_COLUMNS_REPEAT)
        meta[r] = (tuple(rel.strip("/").split("/")), parent)
    for f in fields:  # names already given are taken before any new one is chosen
        if f["path"] in assigned and f.get("type") not in ("structure", "repeat"):
            names = taken[enclosing_repeat(f["path"])]
            names.add(assigned[f["path"]])
            if not f.get("binary"):
                names.update(_expansion(assigned[f["path"]], column_kind(f.get("type"))))

    placement: dict[str, tuple[str, str | None, str | None]] = {}
    district_keys = None
    for f in fields:
        ftype = f.get("type")
        if ftype in ("structure", "repeat"):
            continue
        path = f["path"]
        rep = enclosing_repeat(path)
        rel = path[len(rep) :] if rep else path
        keys = tuple(rel.strip("/").split("/"))
        table = table_of_repeat[rep]
        if path in placement:  # two questions with one OData path: the first one only
            continue
        kind = column_kind(ftype, binary=bool(f.get("binary")))
        name = assigned.get(path) or ident("__".join(keys))
        if path not in assigned:
            name = _column_name(name, taken[rep], path, kind)
        taken[rep].add(name)
        taken[rep].update(_expansion(name, kind))
        link = None
        if f.get("selectMultiple"):
            link = assigned_tables.get(path + "#link")
            if link is None:
                link = _unique(ident(f"{table}__{name}"), used_tables, path + "#link")
            used_tables.add(link)
        cols[rep].append(ColumnSpec(path, keys, name, kind, link))
        placement[path] = (table, name, link)
        if rep is None and f.get("name") == "district" and district_keys is None:
            district_keys = keys

    retired = {f["path"] for f in fields if f.get("type") == "repeat" and f.get("retired")}
    tables = [TableSpec(main_name, None, (), None, tuple(cols[None]))]
    for r in repeats:
        keys, parent = meta[r]
        tables.append(
            TableSpec(
                table_of_repeat[r], r, keys, table_of_repeat[parent], tuple(cols[r]), r in retired
            )
        )
    return FormShape(xml_form_id, tuple(tables), district_keys, placement)


# --- values --------------------------------------------------------------------------------


class Misfit(ValueError):
    """A value that does not fit its column's type; the message says why."""


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise Misfit("a boolean where an integer was expected")
    if isinstance(v, int):
        out = v
    elif isinstance(v, float):
        if not v.is_integer():
            raise Misfit("a fraction where an integer was expected")
        out = int(v)
    elif isinstance(v, str):
        try:
            out = int(v.strip())
        except ValueError:
            raise Misfit("not an integer") from None
    else:
        raise Misfit(f"a {type(v).__name__} where an integer was expected")
    if not -(2**63) <= out < 2**63:
        raise Misfit("an integer too large for a 64-bit column")
    return out


def _decimal(v: Any) -> float:
    if isinstance(v, bool):
        raise Misfit("a boolean where a number was expected")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise Misfit("not a number") from None
    raise Misfit(f"a {type(v).__name__} where a number was expected")


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "1", "false", "0"):
        return v.strip().lower() in ("true", "1")
    raise Misfit("not a boolean")


def _date(v: Any) -> date:
    if not isinstance(v, str):
        raise Misfit(f"a {type(v).__name__} where a date was expected")
    try:
        return date.fromisoformat(v[:10]) if len(v) > 10 and v[10] == "T" else date.fromisoformat(v)
    except ValueError:
        raise Misfit("not a date (YYYY-MM-DD)") from None


def parse_datetime(v: Any) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (naive ones are read as UTC)."""
    if not isinstance(v, str):
        raise Misfit(f"a {type(v).__name__} where a date and time was expected")
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        raise Misfit("not an ISO 8601 date and time") from None
    if d.tzinfo is None:
        return d.replace(tzinfo=UTC)
    return d if d.tzinfo is UTC else d.astimezone(UTC)  # Central's own times end in Z


def offset_minutes(v: Any) -> int | None:
    """The UTC offset, in minutes, written in a dateTime's text (``+05:00`` -> 300, ``Z``
    -> 0), or None if it has none or is not a dateTime. Called only once the text parsed."""
    if not isinstance(v, str):
        return None
    try:
        off = datetime.fromisoformat(v).utcoffset()
    except ValueError:
        return None
    return None if off is None else int(off.total_seconds() // 60)


def _time(v: Any) -> time:
    if not isinstance(v, str):
        raise Misfit(f"a {type(v).__name__} where a time was expected")
    try:
        return time.fromisoformat(v).replace(tzinfo=None)  # the enumerator's local time
    except ValueError:
        raise Misfit("not a time (HH:MM:SS)") from None


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    raise Misfit(f"a {type(v).__name__} where text was expected")


def _json(v: Any) -> str:
    return v if isinstance(v, str) else orjson.dumps(v).decode()


def geopoint(v: Any) -> tuple[float, float, float | None, float | None]:
    """``(lat, lon, alt, accuracy)`` from GeoJSON, WKT (``$wkt=true``) or ODK's text form."""
    if isinstance(v, dict):
        coords = v.get("coordinates")
        if v.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
            raise Misfit("not a GeoJSON Point")
        props = v.get("properties") or {}
        acc = props.get("accuracy") if isinstance(props, dict) else None
        lon, lat = coords[0], coords[1]
        alt = coords[2] if len(coords) > 2 else None
    elif isinstance(v, str):
        m = re.fullmatch(r"\s*POINT\s*Z?\s*\(([^)]*)\)\s*", v)
        parts = m.group(1).split() if m else v.split()
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise Misfit("not a geopoint") from None
        if len(nums) < 2:
            raise Misfit("not a geopoint")
        if m:  # WKT: lon lat alt
            lon, lat, alt, acc = nums[0], nums[1], (nums[2] if len(nums) > 2 else None), None
        else:  # ODK: lat lon alt accuracy
            lat, lon = nums[0], nums[1]
            alt = nums[2] if len(nums) > 2 else None
            acc = nums[3] if len(nums) > 3 else None
    else:
        raise Misfit(f"a {type(v).__name__} where a geopoint was expected")
    try:
        lat_f, lon_f = float(lat), float(lon)
        alt_f = None if alt is None else float(alt)
        acc_f = None if acc is None else float(acc)
    except (TypeError, ValueError):
        raise Misfit("a geopoint with non-numeric coordinates") from None
    if not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
        raise Misfit("a geopoint outside the globe")
    return lat_f, lon_f, alt_f, acc_f


_CONVERT = {
    "text": _text,
    "int": _int,
    "decimal": _decimal,
    "bool": _bool,
    "date": _date,
    "datetime": parse_datetime,
    "time": _time,
    "json": _json,
}


# --- rows -----------------------------------------------------------------------------------


@dataclass
class PageRows:
    """What one OData page becomes: rows per table, ready for the store."""

    submissions: list[dict] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    issues: list[dict] = field(default_factory=list)
    max_seen: datetime | None = None  # newest submissionDate/updatedAt in the page
    # Answers the OData row does not carry at all (its key is absent, not null): Central
    # renders every row with the current version's fields (central-backend
    # lib/data/odata.js generateDataFrame; lib/resources/odata.js reads form.def's fields),
    # so a question a later version removed is missing from old rows. Absent is not null:
    # the store keeps what it holds. instance id -> [(table, row id, column)].
    absent: dict[str, list[tuple[str, str, ColumnSpec]]] = field(default_factory=dict)
    # Retired repeats (no longer in the current version) whose key the row lacks: their
    # stored rows stay. instance id -> table names (the repeat, its children, their links).
    kept: dict[str, set[str]] = field(default_factory=dict)

    @property
    def instance_ids(self) -> list[str]:
        return [s["instance_id"] for s in self.submissions]


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
        if obj is None:
            return None
    return obj


def _ts(v: Any) -> datetime | None:
    if v is None:
        return None
    try:
        return parse_datetime(v)
    except Misfit:
        return None


def submission_row(shape: FormShape, row: Mapping[str, Any], raw: str, raw_hash: str) -> dict:
    """The ``submission`` table's row for one OData row (``form_id`` added by the store)."""
    sysf = row.get("__system") or {}
    district = _dig(row, shape.district_keys) if shape.district_keys else None
    return {
        "instance_id": row["__id"],
        "form_version": sysf.get("formVersion"),
        "submitted_at": _ts(sysf.get("submissionDate")),
        "updated_at": _ts(sysf.get("updatedAt")),
        "deleted_at": _ts(sysf.get("deletedAt")),
        "submitter_id": None if sysf.get("submitterId") is None else str(sysf["submitterId"]),
        "submitter_name": sysf.get("submitterName"),
        "device_id": sysf.get("deviceId"),
        "review_state": sysf.get("reviewState"),
        "edits": sysf.get("edits") or 0,
        "attachments_present": sysf.get("attachmentsPresent") or 0,
        "attachments_expected": sysf.get("attachmentsExpected") or 0,
        "district": None if district is None else str(district),
        "raw": raw,
        "raw_hash": raw_hash,
    }


def raw_json(row: Mapping[str, Any]) -> tuple[str, str]:
    """The row as JSON text, and its sha1: what ``submission.raw``/``raw_hash`` keep."""
    data = orjson.dumps(row)
    return data.decode(), hashlib.sha1(data, usedforsecurity=False).hexdigest()


# A value already of its column's Python type is stored as is, without a call.
_NATIVE = {"text": str, "int": int, "decimal": float, "bool": bool}

Filler = Callable[[Mapping[str, Any], dict, str, str, "PageRows", TableSpec], None]
_FILLERS: dict[TableSpec, Filler] = {}


def _filler(table: TableSpec) -> Filler:
    """``fill(obj, out, instance_id, row_id, page, table)``: ``out`` gets ``obj``'s typed
    values for ``table``'s columns; misfits go to ``page.issues``, select_multiple answers
    to their link tables. The hot loop of a sync.

    Written out once per table as straight-line Python (one block per column, in column
    order), so a row costs no loop over a column plan, no tuple unpacking and no call for
    a value already of its type. Names and paths enter the code as ``repr`` literals.
    """
    fill = _FILLERS.get(table)
    if fill is not None:
        return fill
    env: dict[str, Any] = {
        "Misfit": Misfit, "geopoint": geopoint, "issue": _issue, "missing": _missing,
        "offset_minutes": offset_minutes, "parse_datetime": parse_datetime,
    }  # fmt: skip
    code = ["def fill(obj, out, iid, rid, page, table):"]
    for i, c in enumerate(table.columns):
        env[f"col{i}"] = c
        code.append(f"    v = obj.get({c.keys[0]!r})")
        for k in c.keys[1:]:
            code.append(f"    if v is not None: v = v.get({k!r}) if v.__class__ is dict else None")
        bad = f"page.issues.append(issue(iid, {c.path!r}, rid, table, v, why))"
        # Only a null value pays for telling absent from null (one `in`, or a call).
        gone = f"{c.keys[0]!r} not in obj" if len(c.keys) == 1 else f"missing(obj, {c.keys!r})"
        note_absent = f"page.absent.setdefault(iid, []).append((table.name, rid, col{i}))"
        if c.kind == "geopoint":
            geo = ", ".join(f"out[{n!r}]" for n in c.stored_names())
            code += [
                "    if v is None:",
                f"        {geo} = None, None, None, None",
                f"        if {gone}: {note_absent}",
                "    else:",
                "        try:",
                f"            {geo} = geopoint(v)",
                "        except Misfit as why:",
                f"            {geo} = None, None, None, None",
                f"            {bad}",
            ]
            continue
        if c.kind == "datetime":  # the instant, and the offset Collect wrote with it
            tz = offset_column(c.name)
            code += [
                "    if v is None:",
                f"        out[{c.name!r}] = out[{tz!r}] = None",
                f"        if {gone}: {note_absent}",
                "    else:",
                "        try:",
                f"            out[{c.name!r}] = parse_datetime(v)",
                f"            out[{tz!r}] = offset_minutes(v)",
                "        except Misfit as why:",
                f"            out[{c.name!r}] = out[{tz!r}] = None",
                f"            {bad}",
            ]
            continue
        native = _NATIVE.get(c.kind)
        env[f"conv{i}"] = _CONVERT[c.kind]
        code += [
            "    if v is None:",
            f"        out[{c.name!r}] = None",
            f"        if {gone}: {note_absent}",
        ]
        if native is not None:  # already of its type: stored as is
            env[f"native{i}"] = native
            code += [f"    elif v.__class__ is native{i}:", f"        out[{c.name!r}] = v"]
        code += [
            "    else:",
            "        try:",
            f"            v = out[{c.name!r}] = conv{i}(v)",
            "        except Misfit as why:",
            f"            out[{c.name!r}] = None",
            f"            {bad}",
            "            v = None",
        ]
        if c.link_table is not None:
            code += [
                "    if v is not None:",
                f"        page.tables[{c.link_table!r}].extend(",
                '            {"instance_id": iid, "row_id": rid, "position": pos, "value": x}',
                "            for pos, x in enumerate(str(v).split(), start=1)",
                "        )",
            ]
    if not table.columns:
        code.append("    return None")
    exec("\n".join(code), env)  # noqa: S102 (identifiers and paths enter as repr literals)
    fill = _FILLERS[table] = env["fill"]
    return fill


def _missing(obj: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether the path ``keys`` is absent from ``obj`` (a key missing at some level),
    rather than present with null (a group's null or a non-object counts as present)."""
    for k in keys:
        if k not in obj:
            return True
        obj = obj[k]
        if obj.__class__ is not dict:
            return False
    return False


def _issue(
    instance_id: str, path: str, row_id: str, table: TableSpec, value: Any, why: Exception
) -> dict:
    return {
        "instance_id": instance_id,
        "path": path,
        "row_key": row_id if table.repeat_path else None,
        "value": value if isinstance(value, str) else orjson.dumps(value).decode(),
        "reason": str(why),
    }


def rows_for_page(shape: FormShape, rows: Iterable[Mapping[str, Any]]) -> PageRows:
    """Rows for every table of ``shape`` from OData rows (``$expand=*``, GeoJSON)."""
    rows = list(rows)
    if len({r.get("__id") for r in rows}) != len(rows):  # a row twice: the last copy wins
        rows = list({r.get("__id"): r for r in rows}.values())
    page = PageRows(tables={t.name: [] for t in shape.tables})
    for link, _owner in shape.link_tables():
        page.tables[link] = []
    children: dict[str | None, list[TableSpec]] = {}
    for t in shape.tables[1:]:
        children.setdefault(t.parent, []).append(t)
    main = shape.main
    main_rows = page.tables[main.name]
    fillers = {t.name: _filler(t) for t in shape.tables}
    fill_main = fillers[main.name]
    max_seen = None
    for row in rows:
        raw, raw_hash = raw_json(row)
        sub = submission_row(shape, row, raw, raw_hash)
        page.submissions.append(sub)
        iid = sub["instance_id"]
        for t in (sub["submitted_at"], sub["updated_at"]):
            if t is not None and (max_seen is None or t > max_seen):
                max_seen = t
        out = {
            "instance_id": iid,
            "form_version": sub["form_version"],
            "submitted_at": sub["submitted_at"],
            "updated_at": sub["updated_at"],
            "deleted_at": sub["deleted_at"],
            "review_state": sub["review_state"],
        }
        fill_main(row, out, iid, iid, page, main)
        main_rows.append(out)
        _repeats(main.name, row, iid, None, children, fillers, page)
    page.max_seen = max_seen
    return page


def _repeats(
    table_name: str,
    obj: Mapping[str, Any],
    instance_id: str,
    holder_row_id: str | None,
    children: dict[str | None, list[TableSpec]],
    fillers: dict[str, Filler],
    page: PageRows,
) -> None:
    """Rows of the repeats inside ``obj``; ``holder_row_id`` is None at the form's level."""
    for child in children.get(table_name, ()):
        items = _dig(obj, child.keys)
        if not isinstance(items, list):
            if child.retired and _missing(obj, child.keys):
                page.kept.setdefault(instance_id, set()).add(child.name)
            continue
        rows = page.tables[child.name]
        for pos, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                continue
            rid = item.get("__id")
            if rid is None:
                rid = f"{holder_row_id or instance_id}{child.repeat_path}[{pos}]"
            out = {
                "instance_id": instance_id,
                "row_id": str(rid),
                "parent_row_id": holder_row_id,
                "position": pos,
            }
            fillers[child.name](item, out, instance_id, out["row_id"], page, child)
            rows.append(out)
            _repeats(child.name, item, instance_id, out["row_id"], children, fillers, page)
