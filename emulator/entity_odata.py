"""The entity list's OData feed, ``.../datasets/{name}.svc/Entities``.

central-backend lib/data/entity.js (odataToColumnMap, selectFields, extractSelectedProperties,
streamEntityOdata) and lib/model/query/entities.js (streamForExport, countByDatasetId):
newest first (createdAt DESC, id DESC), deleted entities hidden unless the filter names
``__system/deletedAt``, a ``$skiptoken`` of ``{"uuid"}``, and ``$select`` of ``__id``,
``__system``, ``__system/...`` and the properties (not ``label``: Central refuses it, 400.23).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from emulator.entity_store import Dataset, property_names, property_not_found
from emulator.odata_filter import Filter, ODataError, _Compiler, _iso, _parse

# lib/data/entity.js odataToColumnMap
_FIELDS = {
    "__system/createdAt": "time",
    "__system/updatedAt": "time",
    "__system/deletedAt": "time",
    "__system/creatorId": "int",
    "__system/conflict": "text",
}


class _EntityCompiler(_Compiler):
    """The submission filter's grammar and SQL semantics, over the entity columns."""

    def compile(self, node: tuple) -> tuple[Any, str]:
        if node[0] != "member":
            return super().compile(node)
        raw, pos = node[1], node[2]
        if raw == "__id":
            return (lambda iid, _s: iid), "text"
        kind = _FIELDS.get(raw)
        if kind is None:
            raise ODataError(
                501,
                501.5,
                "The given OData filter expression references fields not supported by this "
                f"server: {raw} at {pos}",
                {"at": pos, "text": raw},
            )
        if raw == "__system/deletedAt":
            self.mentions_deleted_at = True
        key = raw.split("/", 1)[1]

        def getter(_iid: str, system: dict[str, Any], key: str = key, kind: str = kind) -> Any:
            value = system.get(key)
            if kind == "time" and isinstance(value, str):
                return _iso(value)
            if kind == "int" and value is not None:
                return int(value)
            return value

        return getter, kind


def parse_entity_filter(text: str) -> Filter:
    node = _parse(text)
    compiler = _EntityCompiler(False)
    getter, _ = compiler.compile(node)

    def predicate(iid: str, system: dict[str, Any]) -> Any:
        value = getter(iid, system)
        return value if value is None or isinstance(value, bool) else bool(value)

    return Filter(text, compiler.mentions_deleted_at, predicate)


def selected(select: str | None, props: list[str]) -> set[str] | None:
    """extractSelectedProperties: None for every field."""
    if not select or select == "*":
        return None
    names = [p.strip() for p in select.split(",")]
    for p in names:
        if p not in ("__id", "__system") and p not in _FIELDS and p not in props:
            raise property_not_found(p)
    return set(names)


def rows(conn: sqlite3.Connection, ds: Dataset) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every entity as (row facts, ``__system`` filter view), newest first."""
    out = []
    for r in conn.execute(
        "SELECT e.id, e.uuid, e.created_at, e.creator_id, a.display_name, e.updated_at, "
        "e.deleted_at, e.conflict, d.version, d.label, d.data FROM entities e "
        "JOIN entity_defs d ON d.entity_id=e.id AND d.current=1 "
        "LEFT JOIN actors a ON a.id=e.creator_id WHERE e.dataset_id=? "
        "ORDER BY e.created_at DESC, e.id DESC",
        (ds.id,),
    ):
        system = {
            "createdAt": r[2],
            "creatorId": r[3],
            "updatedAt": r[5],
            "deletedAt": r[6],
            "conflict": r[7],
        }
        out.append(({"id": r[0], "uuid": r[1], "row": r}, system))
    return out


def render(row: tuple, props: list[str], sel: set[str] | None) -> dict[str, Any]:
    """lib/data/entity.js selectFields (deletedAt is not among the fields read, so it never
    appears in ``__system``)."""
    _id, uuid, created, creator, name, updated, _deleted, conflict, version, label, data = row
    values = orjson.loads(data)
    out: dict[str, Any] = {}
    if sel is None or "__id" in sel:
        out["__id"] = uuid
    if sel is None or "label" in sel:
        out["label"] = label
    system = {
        "createdAt": created,
        "creatorId": str(creator),
        "creatorName": name,
        "updates": version - 1,
        "updatedAt": updated,
        "version": version,
        "conflict": conflict,
    }
    if sel is None or "__system" in sel:
        out["__system"] = system
    else:
        part = {
            p.split("/", 1)[1]: system.get(p.split("/", 1)[1])
            for p in sel
            if p.startswith("__system/") and p.split("/", 1)[1] in system
        }
        if part:
            out["__system"] = part
    for p in props:
        if sel is None or p in sel:
            out[p] = values.get(p, "")
    return out


def feed(
    conn: sqlite3.Connection,
    ds: Dataset,
    filter_text: str | None,
    top: int | None,
    skip: int,
    skip_uuid: str | None,
    select: str | None,
) -> tuple[list[dict[str, Any]], int, int, str | None]:
    """(page, count, remaining after the page, uuid of the page's last row)."""
    props = property_names(conn, ds.id)
    sel = selected(select, props)
    flt = parse_entity_filter(filter_text) if filter_text else None
    matching = []
    for facts, system in rows(conn, ds):
        if (flt is None or not flt.mentions_deleted_at) and system["deletedAt"] is not None:
            continue
        if flt is not None and not flt.matches(facts["uuid"], system):
            continue
        matching.append(facts)
    count = len(matching)
    start = 0
    if skip_uuid is not None:
        cursor = next((i for i, f in enumerate(matching) if f["uuid"] == skip_uuid), None)
        start = count if cursor is None else cursor + 1
    else:
        start = skip
    end = count if top is None else start + top
    page = matching[start:end]
    remaining = max(0, count - end)
    last = page[-1]["uuid"] if page else None
    return [render(f["row"], props, sel) for f in page], count, remaining, last
