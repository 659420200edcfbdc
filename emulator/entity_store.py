"""Entity lists (Central calls them datasets) and entities: their tables, the rules that
create and version them, and their JSON shapes.

Behaviour from central-backend: lib/resources/datasets.js, lib/resources/entities.js,
lib/data/entity.js (extractEntity, getDiffProp, getWithConflictDetails, the CSV shapes),
lib/model/query/entities.js (createNew, createVersion, _updateEntity's conflict rules,
_processEntityData's update-before-create order) and lib/model/query/datasets.js. Shapes
were checked against a real Central 2025 (tests/test_entities_pyodk.py runs the same tests
against both).

Central turns submissions into entities in a worker, seconds after they arrive; the
emulator does the same work lazily: every entity route first processes the submission
versions not yet seen (``process_pending``), so a client sees what Central's worker would
have done by then, and the submission routes stay untouched.
"""

from __future__ import annotations

import re
import sqlite3
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

import orjson

from emulator import errors
from emulator.db import apply_schema, now_iso, transaction
from emulator.entity_forms import EntityDeclaration, declaration, submitted_entity
from emulator.errors import CentralError

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
  id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL,
  approval_required INTEGER NOT NULL DEFAULT 0, owner_only INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL, UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS ds_properties (
  id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, name TEXT NOT NULL,
  published_at TEXT NOT NULL, UNIQUE (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS ds_property_forms (
  property_id INTEGER NOT NULL, form_id INTEGER NOT NULL, PRIMARY KEY (property_id, form_id)
);
CREATE TABLE IF NOT EXISTS ds_form_defs (
  def_id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, actions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
  id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, uuid TEXT NOT NULL UNIQUE,
  creator_id INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT, deleted_at TEXT,
  conflict TEXT
);
CREATE INDEX IF NOT EXISTS entities_order ON entities(dataset_id, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS entity_defs (
  id INTEGER PRIMARY KEY, entity_id INTEGER NOT NULL, version INTEGER NOT NULL,
  current INTEGER NOT NULL, label TEXT NOT NULL, data TEXT NOT NULL, data_received TEXT NOT NULL,
  base_version INTEGER, conflicting_properties TEXT, branch_id TEXT, trunk_version INTEGER,
  branch_base_version INTEGER, creator_id INTEGER NOT NULL, user_agent TEXT,
  created_at TEXT NOT NULL, source TEXT NOT NULL, UNIQUE (entity_id, version)
);
-- submission versions already turned into entities (or refused), with the reason
CREATE TABLE IF NOT EXISTS entity_events (
  version_id INTEGER PRIMARY KEY, entity_def_id INTEGER, error TEXT
);
"""

# lib/data/dataset.js validateDatasetName / validatePropertyName: XML names, no "__" start,
# and a property may not be called name or label (any case)
_XML_NAME = re.compile(r"^(?!__)[A-Za-z_][\w.\-]*$")
_UUID = re.compile(
    r"^(uuid:)?([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$", re.I
)


def ensure_schema(conn: sqlite3.Connection) -> None:
    apply_schema(conn, SCHEMA)


def valid_dataset_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_XML_NAME.match(name)) and ":" not in name


def valid_property_name(name: Any) -> bool:
    return valid_dataset_name(name) and name.lower() not in ("name", "label")


def normalize_uuid(value: Any) -> str:
    """lib/data/entity.js normalizeUuid: a version 4 UUID, ``uuid:`` prefix allowed."""
    if not isinstance(value, str) or not value.strip():
        raise errors.missing_parameter("uuid")
    m = _UUID.match(value)
    if m is None:
        raise invalid_type("uuid", "valid version 4 UUID")
    return m.group(2).lower()


# --- Central's problems (lib/util/problem.js) --------------------------------------------------


def invalid_type(field: str, expected: str) -> CentralError:
    return CentralError(
        400.11,
        f"Invalid input data type: expected ({field}) to be ({expected})",
        {"field": field, "expected": expected},
    )


def invalid_entity(reason: str) -> CentralError:
    return CentralError(400.28, f"The entity is invalid. {reason}", {"reason": reason})


def version_conflict(current: int, provided: str | None) -> CentralError:
    details: dict[str, Any] = {"current": str(current)}
    if provided is not None:
        details["provided"] = provided
    return CentralError(
        409.15,
        f"Current version of the Entity is '{current}' and you provided "
        f"'{'undefined' if provided is None else provided}'. Please correct the version "
        "number or pass '?force=true' in the URL to forcefully update the Entity.",
        details,
    )


def no_conflict() -> CentralError:
    return CentralError(400.32, "The Entity doesn't have any conflict")


def property_not_found(name: str) -> CentralError:
    return CentralError(400.23, f"Could not find a property named '{name}'", {"property": name})


def exists(fields: list[str], values: list[Any], table: str) -> CentralError:
    text = ",".join(str(v) for v in values)
    return CentralError(
        409.3,
        f"A resource already exists with {','.join(fields)} value(s) of {text}.",
        {"table": table, "fields": fields, "values": values}
        if table != "entities"
        else {"fields": fields, "values": values, "table": table},
    )


# --- datasets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    id: int
    project_id: int
    name: str
    approval_required: bool
    owner_only: bool
    created_at: str


def find_dataset(conn: sqlite3.Connection, project_id: int, name: str) -> Dataset:
    row = conn.execute(
        "SELECT id, project_id, name, approval_required, owner_only, created_at FROM datasets "
        "WHERE project_id=? AND name=?",
        (project_id, name),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return Dataset(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5])


def create_dataset(
    conn: sqlite3.Connection, project_id: int, name: str, approval_required: bool
) -> Dataset:
    if conn.execute(
        "SELECT 1 FROM datasets WHERE project_id=? AND name=?", (project_id, name)
    ).fetchone():
        raise exists(["name", "projectId"], [name, project_id], "datasets")
    conn.execute(
        "INSERT INTO datasets (project_id, name, approval_required, created_at) VALUES (?,?,?,?)",
        (project_id, name, int(approval_required), now_iso()),
    )
    return find_dataset(conn, project_id, name)


def add_property(conn: sqlite3.Connection, ds: Dataset, name: str, strict: bool = True) -> int:
    """A published property; ``strict`` (the REST route) refuses one that exists (409.3)."""
    row = conn.execute(
        "SELECT id FROM ds_properties WHERE dataset_id=? AND name=?", (ds.id, name)
    ).fetchone()
    if row is not None:
        if strict:
            raise exists(["name", "datasetId"], [name, ds.id], "ds_properties")
        return int(row[0])
    cur = conn.execute(
        "INSERT INTO ds_properties (dataset_id, name, published_at) VALUES (?,?,?)",
        (ds.id, name, now_iso()),
    )
    return int(cur.lastrowid or 0)


def property_names(conn: sqlite3.Connection, dataset_id: int) -> list[str]:
    """Published properties in the order they were added (Central's ds_properties.id)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM ds_properties WHERE dataset_id=? ORDER BY id", (dataset_id,)
        )
    ]


def _forms_of(conn: sqlite3.Connection, ds: Dataset) -> list[dict[str, str]]:
    return [
        {"xmlFormId": xml_form_id, "name": name or xml_form_id}
        for xml_form_id, name in conn.execute(
            "SELECT DISTINCT f.xml_form_id, d.name FROM ds_form_defs x "
            "JOIN form_defs d ON d.id=x.def_id JOIN forms f ON f.id=d.form_id "
            "WHERE x.dataset_id=? AND f.deleted_at IS NULL AND f.current_def=d.id "
            "ORDER BY f.xml_form_id",
            (ds.id,),
        )
    ]


def dataset_json(ds: Dataset) -> dict[str, Any]:
    """The list's shape (GET /projects/:id/datasets)."""
    return {
        "name": ds.name,
        "createdAt": ds.created_at,
        "projectId": ds.project_id,
        "approvalRequired": ds.approval_required,
        "ownerOnly": ds.owner_only,
        "deletedAt": None,
    }


def dataset_metadata(conn: sqlite3.Connection, ds: Dataset) -> dict[str, Any]:
    """Datasets.getMetadata: the list's shape plus forms and properties."""
    last = conn.execute(
        "SELECT max(coalesce(e.updated_at, e.created_at)) FROM entities e WHERE e.dataset_id=?",
        (ds.id,),
    ).fetchone()[0]
    props = []
    for pid, name, published in conn.execute(
        "SELECT id, name, published_at FROM ds_properties WHERE dataset_id=? ORDER BY id",
        (ds.id,),
    ):
        forms = [
            {"xmlFormId": x, "name": n or x}
            for x, n in conn.execute(
                "SELECT f.xml_form_id, d.name FROM ds_property_forms pf "
                "JOIN forms f ON f.id=pf.form_id LEFT JOIN form_defs d ON d.id=f.current_def "
                "WHERE pf.property_id=? ORDER BY f.xml_form_id",
                (pid,),
            )
        ]
        props.append({"name": name, "publishedAt": published, "odataName": name, "forms": forms})
    linked = [
        {"xmlFormId": x, "name": n or x}
        for x, n in conn.execute(
            "SELECT DISTINCT f.xml_form_id, d.name FROM forms f JOIN form_defs d "
            "ON d.id=f.current_def JOIN form_attachments a ON a.def_id=d.id "
            "WHERE f.project_id=? AND f.deleted_at IS NULL AND a.name=? AND a.content IS NULL "
            "AND a.type='file' ORDER BY f.xml_form_id",
            (ds.project_id, f"{ds.name}.csv"),
        )
    ]
    return {
        **dataset_json(ds),
        "lastUpdate": last or ds.created_at,
        "linkedForms": linked,
        "sourceForms": _forms_of(conn, ds),
        "draftLinkedForms": [],
        "draftSourceForms": [],
        "properties": props,
    }


# --- entities ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityRow:
    id: int
    uuid: str
    creator_id: int
    created_at: str
    updated_at: str | None
    deleted_at: str | None
    conflict: str | None


_ENTITY_COLS = "id, uuid, creator_id, created_at, updated_at, deleted_at, conflict"
_DEF_COLS = (
    "id, version, current, label, data, data_received, base_version, conflicting_properties, "
    "branch_id, trunk_version, branch_base_version, creator_id, user_agent, created_at, source"
)


def find_entity(
    conn: sqlite3.Connection, ds: Dataset, raw_uuid: str, deleted: bool = False
) -> EntityRow:
    """A live entity (or, with ``deleted``, a deleted one) of the list, else 404.1."""
    row = conn.execute(
        f"SELECT {_ENTITY_COLS} FROM entities WHERE dataset_id=? AND uuid=? "
        f"AND deleted_at IS {'NOT ' if deleted else ''}NULL",
        (ds.id, raw_uuid.lower()),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return EntityRow(*row)


def _defs(conn: sqlite3.Connection, entity_id: int) -> list[tuple]:
    return conn.execute(
        f"SELECT {_DEF_COLS} FROM entity_defs WHERE entity_id=? ORDER BY version", (entity_id,)
    ).fetchall()


def _current_def(conn: sqlite3.Connection, entity_id: int) -> tuple:
    return conn.execute(
        f"SELECT {_DEF_COLS} FROM entity_defs WHERE entity_id=? AND current=1", (entity_id,)
    ).fetchone()


def def_json(d: tuple, with_data: bool = True, props: list[str] | None = None) -> dict:
    """An entity version, in the key order Central writes (Entity.Def forApi)."""
    data = orjson.loads(d[4])
    if props is not None:
        data = {k: data[k] for k in props if k in data}
    out: dict[str, Any] = {
        "current": bool(d[2]),
        "label": d[3],
        "creatorId": d[11],
        "userAgent": d[12],
    }
    if with_data:
        out["data"] = data
    out["version"] = d[1]
    out["baseVersion"] = d[6]
    if with_data:
        out["dataReceived"] = orjson.loads(d[5])
    out.update(
        {
            "conflictingProperties": None if d[7] is None else orjson.loads(d[7]),
            "createdAt": d[13],
            "branchId": d[8],
            "trunkVersion": d[9],
            "branchBaseVersion": d[10],
        }
    )
    return out


def entity_json(
    conn: sqlite3.Connection, e: EntityRow, with_data: bool = True, props: list[str] | None = None
) -> dict:
    return {
        "uuid": e.uuid,
        "creatorId": e.creator_id,
        "conflict": e.conflict,
        "createdAt": e.created_at,
        "updatedAt": e.updated_at,
        "deletedAt": e.deleted_at,
        "currentVersion": def_json(_current_def(conn, e.id), with_data, props),
    }


def list_entities(conn: sqlite3.Connection, ds: Dataset, deleted: bool) -> list[dict]:
    rows = conn.execute(
        f"SELECT {_ENTITY_COLS} FROM entities WHERE dataset_id=? AND deleted_at IS "
        f"{'NOT ' if deleted else ''}NULL ORDER BY created_at DESC, id DESC",
        (ds.id,),
    ).fetchall()
    return [entity_json(conn, EntityRow(*r), with_data=False) for r in rows]


def check_body(body: dict[str, Any], props: list[str], creating: bool) -> tuple[str | None, dict]:
    """lib/data/entity.js extractEntity: (label or None, data) after Central's checks."""
    allowed = ["label", "uuid", "data"]
    if any(k not in allowed for k in body):
        raise CentralError(
            400.5,
            "Expected attributes: (label, uuid, data). Got (" + ", ".join(body) + ").",
            {"expected": allowed, "actual": list(body)},
        )
    label = body.get("label")
    if label is not None:
        if not isinstance(label, str):
            raise invalid_type("label", "string")
        if not label.strip():
            raise errors.unexpected_value("label", "(empty string)", "Label cannot be blank.")
    elif creating:
        raise errors.missing_parameter("label")
    data = body.get("data")
    if data is None and label is None:
        raise invalid_entity("No entity data or label provided.")
    out: dict[str, str] = {}
    if data is not None:
        if not isinstance(data, dict):
            raise invalid_type("data", "object")
        for k, v in data.items():
            if not isinstance(v, str):
                raise invalid_type(k, "string")
            if k not in props:
                raise invalid_entity(
                    f"You specified the dataset property [{k}] which does not exist."
                )
            out[k] = v
    return label, out


def insert_entity(
    conn: sqlite3.Connection,
    ds: Dataset,
    entity_uuid: str,
    label: str,
    data: dict[str, str],
    received: dict[str, str],
    creator_id: int,
    user_agent: str | None,
    source: dict,
    created_at: str | None = None,
) -> tuple[int, int]:
    """A new entity and its version 1 (Entities.createNew); 409.3 for a uuid in use."""
    if conn.execute("SELECT 1 FROM entities WHERE uuid=?", (entity_uuid,)).fetchone():
        raise exists(["uuid"], [entity_uuid], "entities")
    now = created_at or now_iso()
    cur = conn.execute(
        "INSERT INTO entities (dataset_id, uuid, creator_id, created_at) VALUES (?,?,?,?)",
        (ds.id, entity_uuid, creator_id, now),
    )
    eid = int(cur.lastrowid or 0)
    cur = conn.execute(
        "INSERT INTO entity_defs (entity_id, version, current, label, data, data_received, "
        "creator_id, user_agent, created_at, source) VALUES (?,1,1,?,?,?,?,?,?,?)",
        (
            eid,
            label,
            orjson.dumps(data).decode(),
            orjson.dumps(received).decode(),
            creator_id,
            user_agent,
            now,
            orjson.dumps(source).decode(),
        ),
    )
    return eid, int(cur.lastrowid or 0)


def insert_version(
    conn: sqlite3.Connection,
    entity: EntityRow,
    label: str,
    data: dict[str, str],
    received: dict[str, str],
    base_version: int,
    creator_id: int,
    user_agent: str | None,
    source: dict,
    conflict: str | None,
    conflicting: list[str] | None = None,
    branch: tuple[str | None, int | None, int | None] = (None, None, None),
) -> int:
    """A new current version (Entities.createVersion): updatedAt moves, conflict is set."""
    current = _current_def(conn, entity.id)
    now = now_iso()
    conn.execute("UPDATE entity_defs SET current=0 WHERE entity_id=?", (entity.id,))
    cur = conn.execute(
        "INSERT INTO entity_defs (entity_id, version, current, label, data, data_received, "
        "base_version, conflicting_properties, branch_id, trunk_version, branch_base_version, "
        "creator_id, user_agent, created_at, source) VALUES (?,?,1,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            entity.id,
            current[1] + 1,
            label,
            orjson.dumps(data).decode(),
            orjson.dumps(received).decode(),
            base_version,
            None if conflicting is None else orjson.dumps(conflicting).decode(),
            *branch,
            creator_id,
            user_agent,
            now,
            orjson.dumps(source).decode(),
        ),
    )
    conn.execute(
        "UPDATE entities SET updated_at=?, conflict=? WHERE id=?", (now, conflict, entity.id)
    )
    return int(cur.lastrowid or 0)


def diff_props(received: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """lib/data/entity.js getDiffProp."""
    return [k for k in received if k not in other or received[k] != other[k]]


def versions_json(conn: sqlite3.Connection, entity: EntityRow, props: list[str]) -> list[dict]:
    """lib/data/entity.js getWithConflictDetails, without the audit log: a conflict is a
    version not built on the one before it; ``resolved`` once the entity's conflict is
    cleared after it."""
    defs = _defs(conn, entity.id)
    result: list[dict] = []
    last_good = 0
    relevant: set[int] = set()
    for d in defs:
        v = {
            "conflict": None,
            "resolved": False,
            "baseDiff": [],
            "serverDiff": [],
            "lastGoodVersion": False,
            **def_json(d, True, props if d[2] else None),
            "source": orjson.loads(d[14]),
        }
        if v["version"] > 1:
            base = defs[v["baseVersion"] - 1] if v["baseVersion"] else defs[v["version"] - 2]
            prev = defs[v["version"] - 2]
            v["baseDiff"] = diff_props(
                v["dataReceived"], {**orjson.loads(base[4]), "label": base[3]}
            )
            v["serverDiff"] = diff_props(
                v["dataReceived"], {**orjson.loads(prev[4]), "label": prev[3]}
            )
            if v["version"] != (v["baseVersion"] or 0) + 1:
                v["conflict"] = "hard" if v["conflictingProperties"] else "soft"
                v["resolved"] = entity.conflict is None
                if not v["resolved"] and last_good == 0:
                    last_good = v["version"] - 1
                    result[v["version"] - 2]["lastGoodVersion"] = True
            if last_good > 0:
                relevant.add(v["baseVersion"])
        result.append(v)
    for v in result:
        v["relevantToConflict"] = last_good > 0 and (
            v["version"] >= last_good or v["version"] in relevant
        )
    if last_good == 0 and result:
        result[-1]["lastGoodVersion"] = True
    return result


# --- entities from submissions -----------------------------------------------------------------


def declare_published_forms(conn: sqlite3.Connection, project_id: int) -> None:
    """Datasets and properties of every published entity form not yet seen (Central does this
    when the form is published: lib/model/query/datasets.js createOrMerge)."""
    rows = conn.execute(
        "SELECT f.id, d.id, d.xml FROM forms f JOIN form_defs d ON d.form_id=f.id "
        "WHERE f.project_id=? AND d.published_at IS NOT NULL "
        "AND d.id NOT IN (SELECT def_id FROM ds_form_defs) ORDER BY d.id",
        (project_id,),
    ).fetchall()
    for form_id, def_id, xml in rows:
        decl = declaration(bytes(xml))
        if decl is None:
            conn.execute(
                "INSERT INTO ds_form_defs (def_id, dataset_id, actions) VALUES (?,0,'')",
                (def_id,),
            )
            continue
        try:
            ds = find_dataset(conn, project_id, decl.dataset)
        except CentralError:
            ds = create_dataset(conn, project_id, decl.dataset, False)
        for _path, prop in decl.saveto:
            pid = add_property(conn, ds, prop, strict=False)
            conn.execute(
                "INSERT OR IGNORE INTO ds_property_forms (property_id, form_id) VALUES (?,?)",
                (pid, form_id),
            )
        conn.execute(
            "INSERT INTO ds_form_defs (def_id, dataset_id, actions) VALUES (?,?,?)",
            (def_id, ds.id, ",".join(decl.actions)),
        )


def _is_on(value: str | None) -> bool:
    return value in ("1", "true")


def process_pending(conn: sqlite3.Connection, project_id: int) -> None:
    """Turn every unprocessed submission version of the project's entity forms into entity
    creates and updates, oldest first, as Central's worker does. A version that Central
    would refuse is recorded with its problem and changes nothing."""
    with transaction(conn):
        declare_published_forms(conn, project_id)
        pending = conn.execute(
            "SELECT v.id, v.xml, v.submitter_id, v.user_agent, v.instance_id, v.created_at, "
            "x.dataset_id, x.actions, d.xml, f.xml_form_id, v.device_id, s.id, s.created_at, "
            "s.updated_at, s.review_state FROM submission_versions v "
            "JOIN submissions s ON s.id=v.submission_id "
            "JOIN forms f ON f.id=v.form_id JOIN ds_form_defs x ON x.def_id=v.def_id "
            "JOIN form_defs d ON d.id=v.def_id "
            "WHERE f.project_id=? AND x.dataset_id<>0 "
            "AND v.id NOT IN (SELECT version_id FROM entity_events) ORDER BY v.id",
            (project_id,),
        ).fetchall()
        for (vid, xml, submitter, agent, iid, _created, ds_id, actions, form_xml, xml_form_id,
             device, sub_id, sub_created, sub_updated, review) in pending:  # fmt: skip
            decl = declaration(bytes(form_xml))
            # the shape of a real Central's version source (its audit event and submission)
            source = {
                "event": {
                    "actorId": submitter,
                    "action": "submission.create" if sub_updated is None
                    else "submission.update.version",
                    "details": {"instanceId": iid, "submissionId": sub_id,
                                "submissionDefId": vid},
                },
                "submission": {
                    "xmlFormId": xml_form_id, "instanceId": iid, "submitterId": submitter,
                    "deviceId": device, "createdAt": sub_created, "updatedAt": sub_updated,
                    "reviewState": review, "userAgent": agent, "deletedAt": None,
                },
            }  # fmt: skip
            def_id: int | None = None
            error: str | None = None
            if decl is not None:
                try:
                    def_id = _apply_submission(
                        conn,
                        project_id,
                        ds_id,
                        actions.split(","),
                        decl,
                        bytes(xml),
                        submitter,
                        agent,
                        source,
                    )
                except CentralError as exc:
                    error = f"{exc.code}: {exc.message}"
            conn.execute(
                "INSERT INTO entity_events (version_id, entity_def_id, error) VALUES (?,?,?)",
                (vid, def_id, error),
            )


def _apply_submission(
    conn: sqlite3.Connection,
    project_id: int,
    dataset_id: int,
    actions: list[str],
    decl: EntityDeclaration,
    xml: bytes,
    submitter: int,
    agent: str | None,
    source: dict,
) -> int | None:
    """lib/model/query/entities.js _processEntityData: update before create when both are
    asked; an update of an unknown entity becomes a create if create is asked too."""
    sub = submitted_entity(decl, xml)
    if sub is None:
        return None
    ds_row = conn.execute("SELECT name FROM datasets WHERE id=?", (dataset_id,)).fetchone()
    ds = find_dataset(conn, project_id, ds_row[0])
    for action in ("create", "update"):
        if _is_on(getattr(sub, action)) and action not in actions:
            raise CentralError(
                400.31,
                f"The submission attempts an entity {action}, which the form does not allow.",
            )
    entity_uuid = normalize_uuid(sub.id)
    if _is_on(sub.update):
        try:
            return _update_from(conn, ds, entity_uuid, sub, submitter, agent, source)
        except CentralError as exc:
            if not (_is_on(sub.create) and exc.code in (404.8, 400.2)):
                raise
    if _is_on(sub.create):
        label = sub.label
        if label is None or not label.strip():
            raise errors.missing_parameter("label")
        received = {**sub.data, "label": label}
        _eid, def_id = insert_entity(
            conn, ds, entity_uuid, label, dict(sub.data), received, submitter, agent, source
        )
        return def_id
    return None


def _update_from(
    conn: sqlite3.Connection,
    ds: Dataset,
    entity_uuid: str,
    sub: Any,
    submitter: int,
    agent: str | None,
    source: dict,
) -> int:
    """_updateEntity: the version the tablet started from decides whether the update
    conflicts; a property both sides changed makes it a hard conflict, else soft."""
    if sub.base_version is None or not sub.base_version.strip():
        raise errors.missing_parameter("baseVersion")
    if not sub.base_version.isdigit():
        raise invalid_type("baseVersion", "integer")
    base_version = int(sub.base_version)
    row = conn.execute(
        f"SELECT {_ENTITY_COLS} FROM entities WHERE dataset_id=? AND uuid=?",
        (ds.id, entity_uuid),
    ).fetchone()
    if row is None:
        raise CentralError(
            404.8,
            f"The entity with UUID ({entity_uuid}) specified in the submission does not exist "
            f"in the dataset ({ds.name}).",
        )
    entity = EntityRow(*row)
    if entity.deleted_at is not None:
        raise CentralError(404.11, f"The entity ({entity_uuid}) has been deleted.")
    defs = {d[1]: d for d in _defs(conn, entity.id)}
    base = defs.get(base_version)
    if base is None:
        raise CentralError(
            404.9,
            f"Base version ({base_version}) does not exist for entity UUID ({entity_uuid}) in "
            f"dataset ({ds.name}).",
        )
    current = _current_def(conn, entity.id)
    current_data = orjson.loads(current[4])
    label = sub.label if sub.label and sub.label.strip() else None
    received = dict(sub.data)
    if label is not None:
        received["label"] = label
    conflict = entity.conflict
    conflicting: list[str] | None = None
    if base[1] != current[1]:
        base_data = orjson.loads(base[4])
        server_diff = {k: current_data.get(k) for k in diff_props(current_data, base_data)}
        if current[3] != base[3]:
            server_diff["label"] = current[3]
        conflicting = [k for k in received if k in server_diff and received[k] != server_diff[k]]
        if conflict != "hard":
            conflict = "hard" if conflicting else "soft"
    merged = {**current_data, **sub.data}
    trunk = int(sub.trunk_version) if (sub.trunk_version or "").isdigit() else None
    branch_id = sub.branch_id or None
    return insert_version(
        conn,
        entity,
        label or current[3],
        merged,
        received,
        base[1],
        submitter,
        agent,
        source,
        conflict,
        conflicting,
        (branch_id, trunk, base_version if branch_id else None),
    )


def new_uuid() -> str:
    return str(uuidlib.uuid4())
