"""Submissions as Central's OData serves them: rows, repeat tables, EDMX, $select, $wkt.

The row shapes copy central-backend ``lib/data/odata.js`` (``submissionToOData``: a data
frame of every non-repeat field set to null, then ``__id`` and ``__system``, then one
``<repeat>@odata.navigationLink`` per repeat met in the XML, followed by the inline rows
under ``$expand=*``), the repeat row ids copy its ``hashId`` (sha1 of
``Submissions#<instanceId>%%<field>#<iteration>...``). ``$filter``
(:mod:`emulator.odata_filter`), ``$select`` (:mod:`emulator.odata_select`) and the service
document and EDMX (:mod:`emulator.odata_edmx`) live beside it and are re-exported here;
answer text becomes OData values in :mod:`emulator.odata_values`.

An :class:`ODataEntity` is built once per submission version and served many times; its
``row_json`` caches the JSON around ``__system`` so a page of rows costs one small
``orjson.dumps`` per row.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from emulator.odata_edmx import metadata_edmx, service_document
from emulator.odata_filter import Filter, ODataError, parse_filter
from emulator.odata_select import (
    SYSTEM_FIELDS,
    SYSTEM_KEYS,
    Selection,
    parse_select,
    select_fields,
)
from emulator.odata_values import (
    geoline,
    geopoint,
    js_str,
    odata_datetime,
    parse_float,
    parse_int,
)
from emulator.xform import XForm, sanitize_odata_identifier

__all__ = [
    "SYSTEM_FIELDS",
    "SYSTEM_KEYS",
    "Filter",
    "ODataEntity",
    "ODataError",
    "Selection",
    "entity_from_submission",
    "metadata_edmx",
    "parse_filter",
    "parse_select",
    "select_fields",
    "service_document",
    "table_names",
    "with_system",
    "with_wkt",
    "without_expand",
]

_PRIM, _STRUCT, _REPEAT = 0, 1, 2
_NAV = "@odata.navigationLink"


# --- per-form lookup tables ---------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    """One field of the form, linked to its children for the XML walk."""

    name: str  # raw name: Central hashes with it
    out: str  # sanitized: the JSON key
    path: str
    kind: int
    type: str
    children: dict[str, _Node] = field(default_factory=dict)
    # non-repeat children in order: (key, None for a primitive | node for a group)
    frame: list[tuple[str, _Node | None]] = field(default_factory=list)
    flat_keys: tuple[str, ...] | None = None  # set when the frame has no groups
    table: str = ""  # repeats: "Submissions.group.repeat"
    parent_key: str = ""  # repeats: "__Submissions-id" or "__Submissions-outer-id"


@dataclass(eq=False)
class _Schema:
    root: _Node
    by_path: dict[str, _Node]  # sanitized path -> node
    tables: tuple[str, ...]


def _schema(form: XForm) -> _Schema:
    cached = form.cache.get("odata_schema")
    if cached is None:
        cached = _build_schema(form)
        form.cache["odata_schema"] = cached
    return cached


def _build_schema(form: XForm) -> _Schema:
    root = _Node(name="", out="", path="", kind=_STRUCT, type="structure")
    nodes: dict[str, _Node] = {"": root}
    by_path: dict[str, _Node] = {}
    tables: list[str] = []
    for f in form.fields:
        parent_path = f.path.rsplit("/", 1)[0]
        parent = nodes.get(parent_path)
        if parent is None:
            continue
        kind = _REPEAT if f.type == "repeat" else _STRUCT if f.type == "structure" else _PRIM
        node = _Node(
            name=f.name, out=sanitize_odata_identifier(f.name), path=f.path, kind=kind, type=f.type
        )
        nodes[f.path] = node
        by_path["/".join(sanitize_odata_identifier(p) for p in f.path.split("/"))] = node
        parent.children.setdefault(f.name, node)
        if kind == _PRIM:
            parent.frame.append((node.out, None))
        elif kind == _STRUCT:
            parent.frame.append((node.out, node))
        else:
            parts = [sanitize_odata_identifier(p) for p in f.path[1:].split("/")]
            node.table = "Submissions." + ".".join(parts)
            tables.append(node.table)
            # the parent key names the nearest enclosing repeat (edmxFor / repeatContextSlicer)
            enclosing = [p for p in form.repeats if f.path.startswith(p + "/") and p != f.path]
            if enclosing:
                ctx = max(enclosing, key=len)
                ctx_parts = [sanitize_odata_identifier(p) for p in ctx[1:].split("/")]
                node.parent_key = "__Submissions-" + "-".join(ctx_parts) + "-id"
            else:
                node.parent_key = "__Submissions-id"
    for node in nodes.values():
        if all(sub is None for _, sub in node.frame):
            node.flat_keys = tuple(k for k, _ in node.frame)
    return _Schema(root=root, by_path=by_path, tables=tuple(tables))


def _new_frame(node: _Node) -> dict[str, Any]:
    """lib/data/odata.js generateDataFrame: every non-repeat field present, as null."""
    if node.flat_keys is not None:
        return dict.fromkeys(node.flat_keys)
    frame: dict[str, Any] = {}
    for key, sub in node.frame:
        frame[key] = None if sub is None else _new_frame(sub)
    return frame


def table_names(form: XForm) -> tuple[str, ...]:
    """The repeat tables of a form, ``Submissions.child`` style, in field order."""
    return _schema(form).tables


# --- entity building --------------------------------------------------------------------------


def _local(tag: str) -> str:
    if tag[0] == "{":
        return tag[tag.index("}") + 1 :]
    if ":" in tag:
        return tag.rsplit(":", 1)[1]
    return tag


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324 - Central's join id


class _Walk:
    """State of one submission's walk: the repeat rows found so far."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        # (table, bag, parent_key, parent_id) in document order
        self.pending: list[tuple[str, dict[str, Any], str, str]] = []


def _walk(
    elem: ET.Element,
    node: _Node,
    data: dict[str, Any],
    counters: dict[str, int],
    hash_parts: str,
    nav: str,
    parent_id: str,
    state: _Walk,
) -> None:
    children = node.children
    for child in elem:
        tag = child.tag
        if type(tag) is not str:
            continue
        f = children.get(_local(tag))
        if f is None:
            continue  # not in the form: lib/data/odata.js skips the subtree
        kind = f.kind
        if kind == _PRIM:
            text = child.text
            if text is None:
                continue
            ftype = f.type
            if ftype == "int":
                data[f.out] = parse_int(text)
            elif ftype == "decimal":
                data[f.out] = parse_float(text)
            elif ftype == "geopoint":
                point = geopoint(text)
                if point is not None:
                    data[f.out] = point
            elif ftype == "geotrace" or ftype == "geoshape":
                line = geoline(text, ftype == "geoshape")
                if line is not None:
                    data[f.out] = line
            elif ftype == "dateTime":
                data[f.out] = odata_datetime(text)
            else:
                # lib/data/odata.js appends text events, so a repeated element concatenates
                prev = data.get(f.out)
                data[f.out] = text if not isinstance(prev, str) else prev + text
        elif kind == _STRUCT:
            sub = data.get(f.out)
            if not isinstance(sub, dict):
                sub = _new_frame(f)
                data[f.out] = sub
            _walk(
                child,
                f,
                sub,
                counters,
                f"{hash_parts}%%{f.name}#",
                f"{nav}/{f.out}",
                parent_id,
                state,
            )
        else:
            count = counters.get(f.path)
            count = 0 if count is None else count + 1
            counters[f.path] = count
            parts = f"{hash_parts}%%{f.name}#{count}"
            row_id = _sha1(parts)
            data[f.out + _NAV] = f"{nav}/{f.out}"
            rows = data.get(f.out)
            if not isinstance(rows, list):
                rows = []
                data[f.out] = rows
            bag = _new_frame(f)
            bag["__id"] = row_id
            rows.append(bag)
            state.pending.append((f.table, bag, f.parent_key, parent_id))
            _walk(child, f, bag, {}, parts, f"{nav}/{f.out}('{row_id}')", row_id, state)


@dataclass
class ODataEntity:
    """One submission version in OData shape.

    ``data`` is the full Submissions row with ``$expand=*`` (repeats inline), in Central's
    key order, with ``"__system": None`` as a placeholder at its place: fill it with
    :func:`with_system`. ``repeat_rows`` maps each repeat table to its rows as the table
    endpoint serves them under ``$expand=*`` (parent key after ``__id``); use
    :func:`without_expand` on them for the plain table.
    """

    instance_id: str
    data: dict[str, Any]
    repeat_rows: dict[str, list[dict[str, Any]]]
    _json_cache: dict[bool, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)

    def row(self, system: dict[str, Any], *, expand: bool = False) -> dict[str, Any]:
        """The Submissions row with ``__system`` filled in, repeats inline if ``expand``."""
        data = self.data if expand else without_expand(self.data)
        return with_system(data, system)

    def row_json(self, system: dict[str, Any], *, expand: bool = False) -> bytes:
        """``orjson.dumps(self.row(system, expand=expand))``, but only ``system`` is
        serialized per call."""
        parts = self._json_cache.get(expand)
        if parts is None:
            data = self.data if expand else without_expand(self.data)
            keys = list(data)
            cut = keys.index("__system") if "__system" in keys else len(keys)
            head = orjson.dumps({k: data[k] for k in keys[:cut]})[:-1]
            tail_dict = {k: data[k] for k in keys[cut + 1 :]}
            tail = b"," + orjson.dumps(tail_dict)[1:] if tail_dict else b"}"
            parts = (b'{"__system":' if head == b"{" else head + b',"__system":', tail)
            self._json_cache[expand] = parts
        return parts[0] + orjson.dumps(system) + parts[1]


def entity_from_submission(form: XForm, instance_xml: bytes, instance_id: str) -> ODataEntity:
    """Build the OData view of one submission (raises ``ValueError`` on unparseable XML)."""
    if form.encrypted:
        # lib/data/odata.js: an encrypted row is just __id and __system
        return ODataEntity(instance_id, {"__id": instance_id, "__system": None}, {})
    schema = _schema(form)
    if b"<!DOCTYPE" in instance_xml:
        # no entity tricks: submissions never carry a DTD (see xform.parse_xform)
        raise ValueError(f"submission XML for {instance_id} carries a DTD, which is refused")
    try:
        root_elem = ET.fromstring(instance_xml)  # noqa: S314 - DTDs refused just above
    except ET.ParseError as exc:
        raise ValueError(f"submission XML for {instance_id} is not well-formed: {exc}") from exc
    data = _new_frame(schema.root)
    data["__id"] = instance_id
    data["__system"] = None
    state = _Walk()
    nav = "Submissions('" + quote(instance_id, safe="-_.!~*'()") + "')"
    _walk(
        root_elem,
        schema.root,
        data,
        {},
        f"Submissions#{instance_id}",
        nav,
        instance_id,
        state,
    )
    repeat_rows: dict[str, list[dict[str, Any]]] = {t: [] for t in schema.tables}
    for table, bag, parent_key, parent_id in state.pending:
        row: dict[str, Any] = {}
        for key, value in bag.items():
            row[key] = value
            if key == "__id":
                row[parent_key] = parent_id
        repeat_rows[table].append(row)
    return ODataEntity(instance_id, data, repeat_rows)


# --- row transforms ---------------------------------------------------------------------------


def with_system(data: dict[str, Any], system: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``__system`` set in place (key order kept)."""
    out = dict(data)
    out["__system"] = system
    return out


def without_expand(data: dict[str, Any], instance_id: str | None = None) -> dict[str, Any]:
    """The row without inline repeats: only their ``@odata.navigationLink`` stays (golden
    34). ``instance_id`` is accepted for symmetry; the links are already in ``data``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if type(value) is list and (key + _NAV) in data:
            continue
        if type(value) is dict and key != "__system":
            value = without_expand(value)
        out[key] = value
    return out


def _is_geojson(value: dict[str, Any]) -> bool:
    return (
        value.get("type") in ("Point", "LineString", "Polygon")
        and isinstance(value.get("coordinates"), list)
        and set(value) <= {"type", "coordinates", "properties"}
    )


def _wkt(value: dict[str, Any]) -> str:
    def point(c: list[Any]) -> str:
        return " ".join(js_str(x) for x in c)

    coords = value["coordinates"]
    if value["type"] == "Point":
        return f"POINT ({point(coords)})"
    if value["type"] == "LineString":
        return f"LINESTRING ({','.join(point(c) for c in coords)})"
    ring = coords[0] if coords else []
    return f"POLYGON (({','.join(point(c) for c in ring)}))"


def with_wkt(data: dict[str, Any]) -> dict[str, Any]:
    """The row with geo values as WKT text (``$wkt=true``, golden 36)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "__system":
            out[key] = value
        elif type(value) is dict:
            out[key] = _wkt(value) if _is_geojson(value) else with_wkt(value)
        elif type(value) is list and (key + _NAV) in data:
            out[key] = [with_wkt(r) for r in value]
        else:
            out[key] = value
    return out
