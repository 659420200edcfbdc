"""The OData feed (read-only) that Excel ("From OData Feed") and Power BI ("OData feed")
connect to natively: ``/v1/odata/{form}.svc``.

These clients cannot add an ``Authorization: Bearer`` header to a feed; they send HTTP
Basic credentials. So the API key travels as the Basic password (any user name), over
HTTPS in a deployment, exactly as ODK Central's feed takes a web user's password; a Bearer
header works too. Analyst and up; the same scope as every route (sensitive columns are no
properties below manager, other districts' rows are not there, a manager's reads of
sensitive values are audited).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from api.audit import audit_reads
from api.deps import EngineDep, SettingsDep, caller_for_request, form_or_404, scope_for
from collector.read.forminfo import UnknownName, table_for
from collector.read.odata import (
    entity_sets,
    filterable,
    json_row,
    metadata_xml,
    parse_filter,
    read_page,
    sensitive_reads,
)
from collector.store.keys import Caller, Role

# Not in the OpenAPI document: OData clients read $metadata, and Swagger cannot speak OData
# (tests/test_api_odata.py sends the odd input schemathesis would).
router = APIRouter(tags=["odata"], include_in_schema=False)

ODATA_HEADERS = {"OData-Version": "4.0"}
JSON_MEDIA = "application/json;odata.metadata=minimal;charset=utf-8"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="collector OData", charset="UTF-8"'}


def odata_caller(request: Request, engine: EngineDep) -> Caller:
    """The key from Basic credentials' password (or a Bearer header); analyst and up."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = None
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            token = None
    elif scheme.lower() == "bearer":
        token = value.strip()
    caller = caller_for_request(
        request,
        engine,
        token or None,
        challenge=CHALLENGE,
        how="sign in with HTTP Basic: any user name, the API key as the password",
    )
    if caller.role < Role.analyst:
        raise HTTPException(
            403,
            f"the OData feed needs the analyst role; the key {caller.name!r} is {caller.role.name}",
        )
    return caller


ODataCaller = Annotated[Caller, Depends(odata_caller)]


def _root(request: Request, form_id: str) -> str:
    return str(request.base_url).rstrip("/") + f"/v1/odata/{form_id}.svc"


@router.get("/odata/{form_id}.svc")
@router.get("/odata/{form_id}.svc/", include_in_schema=False)
def service_document(
    form_id: str, request: Request, caller: ODataCaller, engine: EngineDep
) -> JSONResponse:
    """The feed's service document: its entity sets (the main table and each repeat)."""
    form = form_or_404(engine, form_id)
    root = _root(request, form_id)
    sets = entity_sets(form, scope_for(caller))
    body = {
        "@odata.context": f"{root}/$metadata",
        "value": [{"name": s.name, "kind": "EntitySet", "url": s.name} for s in sets],
    }
    return JSONResponse(body, media_type=JSON_MEDIA, headers=ODATA_HEADERS)


@router.get("/odata/{form_id}.svc/$metadata")
def metadata(form_id: str, caller: ODataCaller, engine: EngineDep) -> Response:
    """The CSDL document: one entity type per table, with the columns this key may read."""
    form = form_or_404(engine, form_id)
    xml = metadata_xml(form, entity_sets(form, scope_for(caller)))
    return Response(xml, media_type="application/xml;charset=utf-8", headers=ODATA_HEADERS)


@router.get("/odata/{form_id}.svc/{entity_set}")
def rows(
    form_id: str,
    entity_set: str,
    request: Request,
    caller: ODataCaller,
    engine: EngineDep,
    settings: SettingsDep,
    top: Annotated[int | None, Query(alias="$top", ge=0, le=10_000_000)] = None,
    skip: Annotated[int, Query(alias="$skip", ge=0, le=10_000_000)] = 0,
    count: Annotated[bool, Query(alias="$count")] = False,
    filter_: Annotated[str | None, Query(alias="$filter", max_length=2000)] = None,
    skiptoken: Annotated[str | None, Query(alias="$skiptoken", max_length=200)] = None,
) -> JSONResponse:
    """A table's rows, a page at a time (``@odata.nextLink`` names the next page)."""
    form = form_or_404(engine, form_id)
    scope = scope_for(caller)
    es = next((s for s in entity_sets(form, scope) if s.name == entity_set), None)
    if es is None:
        raise UnknownName("entity set", entity_set, f"{form_id}.svc")
    if filter_:  # a bad filter is refused before anything is read
        parse_filter(filter_, filterable(form, scope, table_for(form)))
    page_size = settings.api_max_page_size
    want = page_size if top is None else min(top, page_size)
    page = read_page(
        engine,
        form,
        es,
        scope,
        filter_text=filter_,
        top=want,
        skip=skip,
        token=skiptoken,
        with_count=count,
    )
    audit_reads(engine, caller, form.xml_form_id, sensitive_reads(es, page.rows), action="odata")
    root = _root(request, form_id)
    body: dict[str, Any] = {"@odata.context": f"{root}/$metadata#{es.name}"}
    if page.count is not None:
        body["@odata.count"] = page.count
    body["value"] = [json_row(es, r) for r in page.rows]
    left = None if top is None else top - len(page.rows)
    if page.next_token and (left is None or left > 0):
        params: dict[str, Any] = {"$skiptoken": page.next_token}
        if filter_:
            params["$filter"] = filter_
        if left is not None:
            params["$top"] = left
        body["@odata.nextLink"] = f"{root}/{es.name}?{urlencode(params, safe='$')}"
    return JSONResponse(body, media_type=JSON_MEDIA, headers=ODATA_HEADERS)
