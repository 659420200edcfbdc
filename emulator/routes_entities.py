"""Entity lists and entities over HTTP: the REST routes of central-backend
lib/resources/datasets.js and lib/resources/entities.js, the OData feed
``.../datasets/{name}.svc/Entities``, and an entity list served to Collect as a follow-up
form's ``{list}.csv`` attachment (lib/resources/forms.js streamAttachment,
lib/data/entity.js streamEntityCsvAttachment; lib/model/query/form-attachments.js links an
attachment named ``{list}.csv`` to the list).

Registered before the forms and OpenRosa routes: the attachment and manifest routes here
answer for list-backed attachments and hand every other request to the original handler.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Awaitable, Callable
from html import escape

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import errors, openrosa, routes_forms
from emulator.auth import require_actor
from emulator.common import (
    base_url,
    emu,
    find_form,
    form_row,
    int_param,
    is_true,
    json_body,
    key_prefix,
    may_use_form,
    ok,
    success,
    user_project,
)
from emulator.db import now_iso, transaction
from emulator.entity_odata import feed
from emulator.entity_store import (
    Dataset,
    add_property,
    check_body,
    create_dataset,
    dataset_json,
    dataset_metadata,
    ensure_schema,
    entity_json,
    find_dataset,
    find_entity,
    insert_entity,
    insert_version,
    list_entities,
    new_uuid,
    normalize_uuid,
    process_pending,
    property_names,
    valid_dataset_name,
    valid_property_name,
    version_conflict,
    versions_json,
)
from emulator.odata_filter import ODataError
from emulator.odata_options import ODATA_HEADERS, Options, decode_skiptoken, encode_skiptoken

_ready: set[int] = set()


def _schema(e) -> None:
    """The entity tables, created once per connection (CREATE IF NOT EXISTS commits)."""
    if id(e.conn) not in _ready:
        ensure_schema(e.conn)
        _ready.add(id(e.conn))


def _project(request: Request) -> tuple:
    """(emulator, project id) with the schema in place and pending submissions processed."""
    e, pid = user_project(request)
    _schema(e)
    process_pending(e.conn, pid)
    return e, pid


def _dataset(request: Request) -> tuple:
    e, pid = _project(request)
    return e, pid, find_dataset(e.conn, pid, request.path_params["name"])


def _user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def _actor_id(request: Request, e) -> int:
    return require_actor(request, e.conn).id


# --- entity lists -------------------------------------------------------------------------------


async def datasets_list(request: Request) -> Response:
    e, pid = _project(request)
    rows = e.conn.execute("SELECT name FROM datasets WHERE project_id=? ORDER BY name", (pid,))
    return ok([dataset_json(find_dataset(e.conn, pid, r[0])) for r in rows.fetchall()])


async def dataset_create(request: Request) -> Response:
    e, pid = _project(request)
    body = await json_body(request)
    name = body.get("name")
    if name is None or not valid_dataset_name(name):
        raise errors.unexpected_value("name", name, "This is not a valid dataset name.")
    approval = body.get("approvalRequired", False)
    with transaction(e.conn):
        ds = create_dataset(e.conn, pid, name, bool(approval))
    return ok(dataset_metadata(e.conn, ds))


async def dataset_get(request: Request) -> Response:
    e, _pid, ds = _dataset(request)
    return ok(dataset_metadata(e.conn, ds))


async def property_create(request: Request) -> Response:
    e, _pid, ds = _dataset(request)
    body = await json_body(request)
    name = body.get("name")
    if name is None or not valid_property_name(name):
        raise errors.unexpected_value("name", name, "This is not a valid property name.")
    with transaction(e.conn):
        add_property(e.conn, ds, name)
    return success()


# --- entities -----------------------------------------------------------------------------------


async def entities_list(request: Request) -> Response:
    e, _pid, ds = _dataset(request)
    return ok(list_entities(e.conn, ds, is_true(request.query_params.get("deleted"))))


async def entities_create(request: Request) -> Response:
    """One entity (answers it) or many (``{"entities": [...], "source": {...}}``, answers
    success): lib/resources/entities.js POST .../entities."""
    e, _pid, ds = _dataset(request)
    body = await json_body(request)
    props = property_names(e.conn, ds.id)
    actor = _actor_id(request, e)
    agent = _user_agent(request)
    if "entities" not in body:
        label, data = check_body(body, props, creating=True)
        if body.get("uuid") is not None and not isinstance(body["uuid"], str):
            raise errors.CentralError(
                400.11,
                "Invalid input data type: expected (uuid) to be (string)",
                {"field": "uuid", "expected": "string"},
            )
        entity_uuid = normalize_uuid(body["uuid"]) if body.get("uuid") else new_uuid()
        with transaction(e.conn):
            insert_entity(
                e.conn,
                ds,
                entity_uuid,
                str(label),
                data,
                {**data, "label": label},
                actor,
                agent,
                {},
            )
        return ok(entity_json(e.conn, find_entity(e.conn, ds, entity_uuid), props=props))
    items = body["entities"]
    if not isinstance(items, list):
        raise _unexpected_attributes(["entities: [...]"], ["not an array"])
    if not items:
        raise _unexpected_attributes(["entities: [...]"], ["empty array"])
    source = body.get("source")
    if not source:
        raise errors.missing_parameter("source")
    if not isinstance(source, dict) or not source.get("name"):
        raise errors.missing_parameter("source.name")
    checked = []
    for item in items:
        if not isinstance(item, dict):
            raise _unexpected_attributes(["label", "uuid", "data"], ["not an object"])
        label, data = check_body(item, props, creating=True)
        entity_uuid = normalize_uuid(item["uuid"]) if item.get("uuid") else new_uuid()
        checked.append((entity_uuid, str(label), data))
    details = {"name": source["name"], "count": len(checked), "userAgent": agent}
    if source.get("size"):
        details["size"] = source["size"]
    with transaction(e.conn):  # all or nothing, as Entities.createMany's one insert
        for entity_uuid, label, data in checked:
            insert_entity(
                e.conn,
                ds,
                entity_uuid,
                label,
                data,
                {**data, "label": label},
                actor,
                agent,
                details,
            )
    return success()


def _unexpected_attributes(expected: list[str], actual: list[str]) -> errors.CentralError:
    return errors.CentralError(
        400.5,
        f"Expected attributes: ({', '.join(expected)}). Got ({', '.join(actual)}).",
        {"expected": expected, "actual": actual},
    )


async def entity_get(request: Request) -> Response:
    e, _pid, ds = _dataset(request)
    entity = find_entity(e.conn, ds, request.path_params["uuid"])
    return ok(entity_json(e.conn, entity, props=property_names(e.conn, ds.id)))


async def entity_versions(request: Request) -> Response:
    e, _pid, ds = _dataset(request)
    entity = find_entity(e.conn, ds, request.path_params["uuid"])
    out = versions_json(e.conn, entity, property_names(e.conn, ds.id))
    if is_true(request.query_params.get("relevantToConflict")):
        out = [v for v in out if v["relevantToConflict"]]
    return ok(out)


async def entity_update(request: Request) -> Response:
    """PATCH with ``baseVersion`` (409.15 unless it is the current version) or ``force``;
    ``resolve=true`` clears a conflict, with or without a change."""
    e, _pid, ds = _dataset(request)
    entity = find_entity(e.conn, ds, request.path_params["uuid"])
    q = request.query_params
    resolve = is_true(q.get("resolve"))
    if resolve and entity.conflict is None:
        raise errors.CentralError(400.32, "The Entity doesn't have any conflict")
    current = entity_json(e.conn, entity)["currentVersion"]
    if q.get("baseVersion") != str(current["version"]) and not is_true(q.get("force")):
        raise version_conflict(current["version"], q.get("baseVersion"))
    body = await json_body(request)
    with transaction(e.conn):
        if resolve and not body:
            e.conn.execute(
                "UPDATE entities SET conflict=NULL, updated_at=? WHERE id=?",
                (now_iso(), entity.id),
            )
        else:
            props = property_names(e.conn, ds.id)
            label, data = check_body(body, props, creating=False)
            received = dict(data)
            if label is not None:
                received["label"] = label
            insert_version(
                e.conn,
                entity,
                label or current["label"],
                {**current["data"], **data},
                received,
                current["version"],
                _actor_id(request, e),
                _user_agent(request),
                {},
                None if resolve else entity.conflict,
            )
    entity = find_entity(e.conn, ds, entity.uuid)
    return ok(entity_json(e.conn, entity, props=property_names(e.conn, ds.id)))


async def entity_delete(request: Request) -> Response:
    """Soft delete; ``updatedAt`` does not move (checked against Central)."""
    e, _pid, ds = _dataset(request)
    entity = find_entity(e.conn, ds, request.path_params["uuid"])
    e.conn.execute("UPDATE entities SET deleted_at=? WHERE id=?", (now_iso(), entity.id))
    return success()


async def entity_restore(request: Request) -> Response:
    """Restore; Central moves ``updatedAt`` (lib/model/query/entities.js restore)."""
    e, _pid, ds = _dataset(request)
    entity = find_entity(e.conn, ds, request.path_params["uuid"], deleted=True)
    now = now_iso()
    e.conn.execute("UPDATE entities SET deleted_at=NULL, updated_at=? WHERE id=?", (now, entity.id))
    return success()


# --- OData ------------------------------------------------------------------------------------


def _odata_root(request: Request, pid: int, ds: Dataset) -> str:
    return f"{base_url(request)}/v1/projects/{pid}/datasets/{ds.name}.svc"


async def odata_service(request: Request) -> Response:
    _e, pid, ds = _dataset(request)
    root = _odata_root(request, pid, ds)
    return ok(
        {
            "@odata.context": f"{root}/$metadata",
            "value": [{"name": "Entities", "kind": "EntitySet", "url": "Entities"}],
        },
        headers=dict(ODATA_HEADERS),
    )


async def odata_entities(request: Request) -> Response:
    e, pid, ds = _dataset(request)
    opts = Options(request)
    skip_uuid = decode_skiptoken(opts.skiptoken, "uuid") if opts.skiptoken else None
    try:
        page, count, remaining, last = feed(
            e.conn, ds, opts.filter_text, opts.top, opts.skip, skip_uuid, opts.select
        )
    except ODataError as exc:
        raise errors.CentralError(exc.code, exc.message, exc.details, dict(ODATA_HEADERS)) from None
    root = _odata_root(request, pid, ds)
    out: dict = {"value": page, "@odata.context": f"{root}/$metadata#Entities"}
    if remaining > 0 and last is not None:
        out["@odata.nextLink"] = opts.next_link(
            base_url(request),
            f"/v1/projects/{pid}/datasets/{ds.name}.svc/Entities",
            encode_skiptoken(last, "uuid"),
            None,
        )
    if opts.count:
        out["@odata.count"] = count
    return ok(out, headers=dict(ODATA_HEADERS))


# --- the list as a form attachment --------------------------------------------------------------


def entities_csv(e, ds: Dataset) -> bytes:
    """streamEntityCsvAttachment: ``name,label,__version`` then the properties."""
    props = property_names(e.conn, ds.id)
    page, *_ = feed(e.conn, ds, None, None, 0, None, None)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "label", "__version", *props])
    for row in page:
        writer.writerow(
            [row["__id"], row["label"], row["__system"]["version"], *(row[p] for p in props)]
        )
    return buf.getvalue().encode()


def _linked_dataset(e, pid: int, def_id: int | None, name: str) -> Dataset | None:
    """The list behind an attachment: a ``file`` named ``{list}.csv`` with no uploaded
    content, in a project that has that list."""
    if def_id is None or not name.endswith(".csv"):
        return None
    row = e.conn.execute(
        "SELECT content, type FROM form_attachments WHERE def_id=? AND name=?", (def_id, name)
    ).fetchone()
    if row is None or row[0] is not None or row[1] != "file":
        return None
    try:
        return find_dataset(e.conn, pid, name[: -len(".csv")])
    except errors.CentralError:
        return None


def _with_list(
    original: Callable[[Request], Awaitable[Response]], kind: str
) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        e = emu(request)
        _schema(e)
        pid = int_param(request.path_params["pid"])
        form = form_row(e.conn, pid, request.path_params["fid"])
        process_pending(e.conn, pid)  # the lists published forms declare, as Central has them
        def_id = form.draft_def if kind == "draft" else form.current_def
        ds = _linked_dataset(e, pid, def_id, request.path_params["name"])
        if ds is None:
            return await original(request)
        actor = require_actor(request, e.conn)
        if not may_use_form(e.conn, actor, form) or (kind == "draft" and not actor.is_user):
            raise errors.insufficient_rights()
        return Response(entities_csv(e, ds), 200, media_type="text/csv; charset=utf-8")

    return handler


async def manifest(request: Request) -> Response:
    """The OpenRosa manifest, plus the list-backed attachments (their hash is the CSV's)."""
    response = await openrosa.manifest(request)
    e = emu(request)
    _schema(e)
    pid = int_param(request.path_params["pid"])
    form = find_form(e.conn, pid, request.path_params["fid"])
    process_pending(e.conn, pid)
    names = [
        r[0]
        for r in e.conn.execute(
            "SELECT name FROM form_attachments WHERE def_id=? AND content IS NULL ORDER BY name",
            (form.current_def,),
        )
    ]
    extra = ""
    root = f"{base_url(request)}{key_prefix(request)}/projects/{pid}/forms/{form.xml_form_id}"
    for name in names:
        ds = _linked_dataset(e, pid, form.current_def, name)
        if ds is None:
            continue
        digest = hashlib.md5(entities_csv(e, ds)).hexdigest()  # noqa: S324 - OpenRosa md5
        extra += (
            "\n    <mediaFile>"
            f"\n      <filename>{escape(name)}</filename>"
            f"\n      <hash>md5:{digest}</hash>"
            f"\n      <downloadUrl>{escape(root)}/attachments/{escape(name)}</downloadUrl>"
            "\n    </mediaFile>"
        )
    if not extra:
        return response
    body = bytes(response.body).replace(b"\n  </manifest>", extra.encode() + b"\n  </manifest>")
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body, response.status_code, headers=headers)


def _listing_with_lists(
    original: Callable[[Request], Awaitable[Response]], kind: str
) -> Callable[[Request], Awaitable[Response]]:
    """A form's attachment list where a list-backed attachment exists as a dataset
    (``exists`` and ``datasetExists`` true, no blob), as Central lists it."""

    async def handler(request: Request) -> Response:
        response = await original(request)
        if response.status_code != 200:
            return response
        e = emu(request)
        _schema(e)
        pid = int_param(request.path_params["pid"])
        form = form_row(e.conn, pid, request.path_params["fid"])
        process_pending(e.conn, pid)
        def_id = form.draft_def if kind == "draft" else form.current_def
        items = orjson.loads(bytes(response.body))
        for item in items:
            if _linked_dataset(e, pid, def_id, item["name"]) is not None:
                item.update({"exists": True, "blobExists": False, "datasetExists": True})
        return ok(items)

    return handler


P = "/v1/projects/{pid}/datasets"
F = "/v1/projects/{pid}/forms/{fid}"
ROUTES = [
    Route(F + "/attachments", _listing_with_lists(routes_forms.form_attachments, "current")),
    Route(F + "/draft/attachments", _listing_with_lists(routes_forms.draft_attachments, "draft")),
    Route(F + "/attachments/{name}", _with_list(routes_forms.published_attachment, "current")),
    Route(F + "/draft/attachments/{name}", _with_list(routes_forms.draft_attachment, "draft")),
    Route(F + "/manifest", manifest, methods=["GET"]),
    Route(P, datasets_list, methods=["GET"]),
    Route(P, dataset_create, methods=["POST"]),
    Route(P + "/{name}.svc", odata_service, methods=["GET"]),
    Route(P + "/{name}.svc/", odata_service, methods=["GET"]),
    Route(P + "/{name}.svc/Entities", odata_entities, methods=["GET"]),
    Route(P + "/{name}", dataset_get, methods=["GET"]),
    Route(P + "/{name}/properties", property_create, methods=["POST"]),
    Route(P + "/{name}/entities", entities_list, methods=["GET"]),
    Route(P + "/{name}/entities", entities_create, methods=["POST"]),
    Route(P + "/{name}/entities/{uuid}", entity_get, methods=["GET"]),
    Route(P + "/{name}/entities/{uuid}", entity_update, methods=["PATCH"]),
    Route(P + "/{name}/entities/{uuid}", entity_delete, methods=["DELETE"]),
    Route(P + "/{name}/entities/{uuid}/versions", entity_versions, methods=["GET"]),
    Route(P + "/{name}/entities/{uuid}/restore", entity_restore, methods=["POST"]),
]
