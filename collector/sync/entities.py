"""Pull a project's entity lists from Central into the store, incrementally.

For each list: its properties (``GET .../datasets/{name}``); the entities created or
updated since the list's watermark, from the OData feed
(``$filter=__system/createdAt ge W or __system/updatedAt ge W``, with an overlap: a
transaction that committed late with an earlier clock is read again, never skipped; a new
entity's ``updatedAt`` is null, hence createdAt too); the deleted ones from the REST list
(``?deleted=true``: a delete does not move ``updatedAt`` and the feed does not show
``deletedAt``; a restore moves ``updatedAt``, so the feed brings it back); and, for each
entity whose version moved, its versions (``.../entities/{uuid}/versions``), whose
``source.submission`` names the submission that created or updated it - the link from a
visit to the woman. Shapes checked against a real Central (tests/test_entities_central.py).

Each page is stored in one transaction and the watermark moves only when the whole list
is stored, so a run cut short reads a little again and loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from collector.central import Central
from collector.central import entities as central_entities
from collector.forms.entities import PropertyKind
from collector.store import entities as es
from collector.store.engine import create_schema

OVERLAP = timedelta(minutes=2)
PAGE_SIZE = 500


@dataclass
class ListSyncResult:
    """What one list's sync did, for the CLI and the run history."""

    list_name: str
    entities: int = 0  # rows read from the feed (created or updated since the watermark)
    versions: int = 0  # entities whose versions were read again
    deleted: int = 0  # newly marked deleted
    conflicts: list[str] = field(default_factory=list)  # uuids with a conflict now


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def odata_time(moment: datetime) -> str:
    """A time literal Central's OData parser reads (ISO 8601, milliseconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sync_entities(
    central: Central,
    engine: Engine,
    project_id: int,
    kinds: dict[str, dict[str, PropertyKind]],
    lists: list[str] | None = None,
    overlap: timedelta = OVERLAP,
) -> list[ListSyncResult]:
    """Sync every entity list of the project (or ``lists``); ``kinds`` from the forms
    (``entityforms.manifest_property_kinds``) gives each property's type and sensitivity.

    The entity tables come from the migrations (revision 0005): an empty store is made at
    head here, and a store that is behind is refused (``StoreBehind``), as every other
    entry point does."""
    create_schema(engine)
    names = lists if lists is not None else central_entities.entity_lists(central, project_id)
    return [
        sync_list(central, engine, project_id, name, kinds.get(name, {}), overlap) for name in names
    ]


def sync_list(
    central: Central,
    engine: Engine,
    project_id: int,
    list_name: str,
    kinds: dict[str, PropertyKind],
    overlap: timedelta = OVERLAP,
) -> ListSyncResult:
    result = ListSyncResult(list_name)
    meta = central_entities.entity_list(central, project_id, list_name)
    props = [p["name"] for p in meta.get("properties") or []]
    started = datetime.now(UTC)
    with engine.begin() as conn:
        es.save_properties(
            conn,
            project_id,
            list_name,
            {
                p: (kinds[p].column_type, kinds[p].sensitive) if p in kinds else ("text", True)
                for p in props
            },
        )
        types = es.property_types(conn, project_id, list_name)
        typed = es.ensure_typed_table(conn, list_name, types)
        watermark = es.list_watermark(conn, project_id, list_name)
        known = es.stored_versions(conn, project_id, list_name)
    params = {"$top": str(PAGE_SIZE)}
    if watermark is not None:
        since = odata_time(watermark - overlap)
        params["$filter"] = f"__system/createdAt ge {since} or __system/updatedAt ge {since}"
    newest = watermark
    changed: list[str] = []
    for page in central_entities.entity_pages(central, project_id, list_name, params):
        rows = [_entity_row(r, props) for r in page["value"]]
        with engine.begin() as conn:
            es.store_entities(conn, project_id, list_name, rows, typed, types, started)
        for row in rows:
            result.entities += 1
            moment = max(t for t in (row["created_at"], row["updated_at"]) if t is not None)
            newest = moment if newest is None or moment > newest else newest
            if known.get(row["uuid"]) != row["version"]:
                changed.append(row["uuid"])
            if row["conflict"]:
                result.conflicts.append(row["uuid"])
    for uuid in changed:
        versions = central_entities.entity_versions(central, project_id, list_name, uuid)
        if versions is None:
            continue  # deleted since (Central hides a deleted entity's versions)
        with engine.begin() as conn:
            es.store_versions(
                conn, project_id, list_name, uuid, [_version_row(v) for v in versions]
            )
        result.versions += 1
    gone = central_entities.deleted_entities(central, project_id, list_name)
    deleted = {d["uuid"]: parse_time(d.get("deletedAt")) or started for d in gone}
    with engine.begin() as conn:
        # created and deleted between two runs: never in the feed, kept as Central lists it
        # (its properties and versions are hidden once deleted)
        stored = es.stored_uuids(conn, project_id, list_name)
        es.store_entities(
            conn,
            project_id,
            list_name,
            [_deleted_row(d) for d in gone if d["uuid"] not in stored],
            typed,
            types,
            started,
        )
        es.refresh_deleted(
            conn,
            project_id,
            list_name,
            [_deleted_row(d) for d in gone if d["uuid"] in stored],
            typed,
        )
        result.deleted = es.mark_deleted(conn, project_id, list_name, deleted, typed)
        es.save_list_watermark(conn, project_id, list_name, newest, started)
    return result


def _entity_row(r: dict, props: list[str]) -> dict:
    """One OData row as the store keeps it (properties as Central's strings)."""
    system = r.get("__system") or {}
    return {
        "uuid": r["__id"],
        "label": r.get("label") or "",
        "version": int(system.get("version") or 1),
        "creator_id": system.get("creatorId"),
        "created_at": parse_time(system.get("createdAt")),
        "updated_at": parse_time(system.get("updatedAt")),
        "deleted_at": None,  # the feed shows live entities only
        "conflict": system.get("conflict"),
        "data": {p: r.get(p, "") for p in props if p in r},
    }


def _deleted_row(d: dict) -> dict:
    """An entity known only from Central's list of deleted ones."""
    current = d.get("currentVersion") or {}
    return {
        "uuid": d["uuid"],
        "label": current.get("label") or "",
        "version": int(current.get("version") or 1),
        "creator_id": str(d.get("creatorId")) if d.get("creatorId") is not None else None,
        "created_at": parse_time(d.get("createdAt")),
        "updated_at": parse_time(d.get("updatedAt")),
        "deleted_at": None,  # set by mark_deleted, which counts it
        "conflict": d.get("conflict"),
        "data": {},
    }


def _version_row(v: dict) -> dict:
    submission = (v.get("source") or {}).get("submission") or {}
    received = v.get("dataReceived") or {}
    return {
        "version": int(v["version"]),
        "label": v.get("label") or "",
        "data": json.dumps(v.get("data") or {}, ensure_ascii=False, sort_keys=True),
        "data_received": json.dumps(received, ensure_ascii=False, sort_keys=True),
        "base_version": v.get("baseVersion"),
        "conflict": v.get("conflict"),
        "conflicting_properties": None
        if v.get("conflictingProperties") is None
        else json.dumps(v["conflictingProperties"]),
        "created_at": parse_time(v.get("createdAt")),
        "form_id": submission.get("xmlFormId"),
        "instance_id": submission.get("instanceId"),
    }
