"""The data managers' page at ``/ui`` (``/`` leads there): sign in with an API key, then
the indicators by district and month as tables and bar charts (inline SVG), a map of counts
by district (circles at district centres shipped in ``static/``; no individual points for
anyone), sync status, data issues, and links to the exports and the OData feed.

Every figure comes from the API's own route functions (indicators, sync status, data
issues) called with the signed-in key, so the page shows what the API answers that key and
nothing else. The key lives in an HttpOnly, SameSite=Strict cookie scoped to ``/ui`` (never
in a URL, never readable by a script); the page has no JavaScript at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.deps import EngineDep, SettingsDep, caller_for_request
from api.routes import data_issues, exports, indicators, sync_status
from api.ui.text import LANGS, words
from collector.read.forminfo import all_forms, form_info
from collector.read.indicators import INDICATORS
from collector.store.keys import Caller, Role, caller_for_token

HERE = Path(__file__).parent
COOKIE = "collector_ui_key"
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")
router = APIRouter(include_in_schema=False)
CENTROIDS: dict[str, list[float]] = {
    k: v
    for k, v in json.loads((HERE / "static" / "district_centroids.json").read_text()).items()
    if not k.startswith("_")
}
MAP_INDICATOR = "home_visits"
NO_STORE = {"Cache-Control": "no-store"}


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang", "en")
    return lang if lang in LANGS else "en"


def _caller(request: Request, engine: Any) -> Caller | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return caller_for_request(request, engine, token, challenge={}, how="sign in at /ui/login")
    except HTTPException as err:
        if err.status_code == 401:
            return None
        raise


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=303)


@router.get("/ui/login")
def login_page(request: Request, error: bool = False) -> HTMLResponse:
    lang = _lang(request)
    return templates.TemplateResponse(
        request,
        "login.html",
        {"t": words(lang), "lang": lang, "langs": LANGS, "error": error},
        headers=NO_STORE,
    )


@router.post("/ui/login")
def login(
    request: Request, engine: EngineDep, key: Annotated[str, Form(max_length=200)]
) -> Response:
    """Checks the key and keeps it in the cookie; a bad key goes back to the form."""
    lang = _lang(request)
    if caller_for_token(engine, key.strip()) is None:
        request.app.state.auth_failure_limiter.acquire(
            request.client.host if request.client else ""
        )
        return RedirectResponse(f"/ui/login?lang={lang}&error=true", status_code=303)
    out = RedirectResponse(f"/ui?lang={lang}", status_code=303)
    out.set_cookie(
        COOKIE,
        key.strip(),
        max_age=8 * 3600,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return out


@router.post("/ui/logout")
def logout(request: Request) -> RedirectResponse:
    out = RedirectResponse(f"/ui/login?lang={_lang(request)}", status_code=303)
    out.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return out


@router.get("/ui")
def page(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    lang = _lang(request)
    caller = _caller(request, engine)
    if caller is None:
        return RedirectResponse(f"/ui/login?lang={lang}", status_code=303)
    t = words(lang)
    blocks = [_indicator_block(i, caller, engine, settings, lang) for i in INDICATORS]
    map_block = next((b for b in blocks if b["id"] == MAP_INDICATOR), None)
    issues = None
    if caller.role >= Role.analyst:
        issues = data_issues.list_data_issues(caller, engine, settings, limit=20).items
    context = {
        "t": t,
        "lang": lang,
        "langs": LANGS,
        "caller": caller,
        "blocks": blocks,
        "map": _map(map_block) if map_block else None,
        "sync": sync_status.sync_status(caller, engine, settings),
        "issues": issues,
        "forms": [f.xml_form_id for f in all_forms(engine)] if caller.role >= Role.analyst else [],
        "note": t["suppressed_note"].format(
            n=settings.suppression_threshold, b=settings.indicator_rounding_base
        ),
        "exact": caller.role >= Role.manager,
    }
    return templates.TemplateResponse(request, "page.html", context, headers=NO_STORE)


def _indicator_block(
    ind: Any, caller: Caller, engine: Any, settings: Any, lang: str
) -> dict[str, Any]:
    """One indicator: by district for all time (the bars) and by district and month."""
    call = dict(caller=caller, engine=engine, settings=settings, from_=None, to=None)
    whole = indicators.get_indicator(
        ind.id, period="none", by=["district"], district=None, lang=lang, **call
    )
    monthly = indicators.get_indicator(
        ind.id, period="month", by=["district"], district=None, lang=lang, **call
    )
    periods = sorted({c.keys.get("period") for c in monthly.cells if c.keys.get("period")})[-6:]
    rows: dict[str, dict[str, Any]] = {}
    for c in monthly.cells:
        d = c.keys.get("district")
        label = (c.labels or {}).get("district") or d
        row = rows.setdefault(d or "", {"district": d, "label": label, "cells": {}})
        row["cells"][c.keys.get("period")] = c
    bars = []
    for c in whole.cells:
        d = c.keys.get("district")
        bars.append(
            {
                "district": d,
                "label": (c.labels or {}).get("district") or d,
                "value": c.value,
                "suppressed": c.suppressed,
            }
        )
    bars.sort(key=lambda b: b["label"] or "")
    top = max((b["value"] or 0 for b in bars), default=0) or 1
    for b in bars:
        b["width"] = round(300 * (b["value"] or 0) / top, 1)
    return {
        "id": ind.id,
        "title": ind.title,
        "formula": ind.formula,
        "unit": ind.unit,
        "periods": periods,
        "rows": sorted(rows.values(), key=lambda r: r["label"] or ""),
        "bars": bars,
    }


# The map's frame: Tajikistan, lon 67.3..75.2, lat 36.6..41.1 (equirectangular, scaled by
# cos(38.8°) so the country keeps its shape).
_LON0, _LON1, _LAT0, _LAT1 = 67.3, 75.2, 36.6, 41.1
_W = 520
_H = round(_W * (_LAT1 - _LAT0) / ((_LON1 - _LON0) * math.cos(math.radians(38.8))))


def _map(block: dict[str, Any]) -> dict[str, Any]:
    """Circles at district centres, area proportional to the count; suppressed hollow."""
    top = max((b["value"] or 0 for b in block["bars"]), default=0) or 1
    dots = []
    for b in block["bars"]:
        where = CENTROIDS.get(b["district"] or "")
        if where is None:
            continue
        lat, lon = where
        x = (lon - _LON0) / (_LON1 - _LON0) * _W
        y = (_LAT1 - lat) / (_LAT1 - _LAT0) * _H
        r = 4 if b["suppressed"] else 4 + 18 * math.sqrt((b["value"] or 0) / top)
        dots.append({**b, "x": round(x, 1), "y": round(y, 1), "r": round(r, 1)})
    return {"width": _W, "height": _H, "dots": dots, "title": block["title"]}


@router.get("/ui/forms/{form_id}/export.{fmt}")
async def export(
    form_id: str, fmt: exports.Format, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The API's export, for the signed-in key (the cookie stands for the Bearer header);
    labels in the page's language."""
    caller = _caller(request, engine)
    if caller is None:
        return RedirectResponse("/ui/login", status_code=303)
    if caller.role < Role.analyst:
        raise HTTPException(403, "exports need the analyst role")
    if form_info(engine, form_id) is None:
        raise HTTPException(404, f"unknown form {form_id!r}")
    lang = _lang(request)
    job = exports.ExportJob(
        form_id=form_id,
        fmt=fmt,
        params=exports.SubmissionParams(),
        repeat=None,
        fields=[],
        lang=lang,
        geofield=None,
        shape=exports.Shape(header="label" if fmt == "xlsx" else "name"),
    )
    # the same per-key cap as the API's route
    return await exports._export(request.app.state.export_slots, job, caller, engine, settings)
