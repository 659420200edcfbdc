"""No sensitive value, and no other district's row, reaches a key that may not see it.

Known values are planted through OpenRosa and synced (``tests/api_fixtures.py``). The test
walks ``app.routes``, so a route added later is called too (a path parameter it does not
know how to fill fails the test, rather than letting the route escape), and calls every
route and export variant as viewer, analyst and district-limited keys. A manager's walk
must find every planted value, so the test can tell a leak from an empty store.
"""

from __future__ import annotations

import io
import itertools
import zipfile

import openpyxl
import sqlalchemy as sa
from fastapi.routing import APIRoute, iter_route_contexts

from collector import store
from collector.read.indicators import INDICATORS_BY_ID
from tests.api_fixtures import (
    FORMS,
    MARK_HOME,
    MARK_OTHER,
    SENSITIVE_NEEDLES,
    LiveApi,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

SENSITIVE_COLUMNS = (
    "visit__respondent_name",
    "visit__respondent_phone",
    "visit__village",
    "visit__gps_lat",
    "speaker_name",
    "gps_lat",
    "safety__violence_kind",
    "trafficking_cases_referred",
)
BODIES = {
    "/v1/forms/{form_id}/submissions/{instance_id}/review": {
        "review_state": "approved",
        "comment": "ok",
    },
    "/v1/keys": {"name": "leak-test-key", "role": "viewer"},
    # the read-only POST routes (filters in a body, SEC-21): everything, as the GETs ask
    "/v1/forms/{form_id}/submissions/query": {"limit": 500},
    "/v1/forms/{form_id}/export.{fmt}": {},
}
READ_ONLY_POSTS = {"/v1/forms/{form_id}/submissions/query", "/v1/forms/{form_id}/export.{fmt}"}
# The page's sign-in and sign-out forms change nothing in the store, for any caller.
PAGE_POSTS = {"/ui/login", "/ui/logout"}


def instance_ids(api: LiveApi, form: str) -> list[str]:
    planted = api.synced.planted.get(form) or []
    sub, f = store.T["submission"], store.T["form"]
    with api.synced.engine.connect() as c:
        some = c.execute(
            sa.select(sub.c.instance_id)
            .join(f, f.c.id == sub.c.form_id)
            .where(f.c.xml_form_id == form)
            .order_by(sub.c.id)
            .limit(2)
        ).scalars()
        return [*planted, *some]


def api_routes(api: LiveApi) -> list[tuple[str, APIRoute]]:
    """Every API route with its full path (FastAPI keeps included routers nested)."""
    return [
        (rc.path, rc.route)
        for rc in iter_route_contexts(api.app.routes)
        if isinstance(rc.route, APIRoute)
    ]


def path_values(api: LiveApi, route: APIRoute) -> list[dict[str, str]]:
    """Every combination of path parameters worth calling; unknown parameters fail."""
    names = [p.name for p in route.dependant.path_params]
    if not names:
        return [{}]
    known = {"form_id", "instance_id", "fmt", "indicator_id", "key_id", "entity_set"}
    known |= {"list_name", "case"}  # the register's
    unknown = set(names) - known
    assert not unknown, f"{route.path_format}: teach the leak test to fill {sorted(unknown)}"
    out = []
    forms = FORMS if "form_id" in names else [None]
    for form in forms:
        ids = instance_ids(api, form) if "instance_id" in names else [None]
        fmts = ["csv", "csv.zip", "xlsx", "geojson"] if "fmt" in names else [None]
        sets = [None]
        if "entity_set" in names:  # the OData feed's tables: main and every repeat
            spec = api.synced.specs[form]
            repeats = [f.name for f in spec.fields if f.type == "begin_repeat"]
            sets = ["Submissions", *(f"Submissions_{r}" for r in repeats)]
        inds = list(INDICATORS_BY_ID) if "indicator_id" in names else [None]
        keys = ["1"] if "key_id" in names else [None]
        for iid, fmt, ind, key, es in itertools.product(ids, fmts, inds, keys, sets):
            values = {
                "form_id": form,
                "instance_id": iid,
                "fmt": fmt,
                "indicator_id": ind,
                "key_id": key,
                "entity_set": es,
            }
            # the register's list and case (no entity list is synced here: 404s)
            values |= {"list_name": "women", "case": "c-0"}
            out.append({k: v for k, v in values.items() if k in names})
    return out


def query_variants(api: LiveApi, route: APIRoute, path: dict[str, str]) -> list[dict]:
    names = {p.alias or p.name for p in route.dependant.query_params}
    for dep in route.dependant.dependencies:
        names |= {p.alias or p.name for p in dep.query_params}
    variants: list[dict] = [{}]
    if "lang" in names:
        variants.append({"lang": "ru"})
    if "repeat" in names and path.get("form_id"):
        spec = api.synced.specs[path["form_id"]]
        variants += [{"repeat": f.name} for f in spec.fields if f.type == "begin_repeat"]
    if "by" in names and path.get("indicator_id"):
        ind = INDICATORS_BY_ID[path["indicator_id"]]
        variants += [{"by": b, "period": "none"} for b in ind.breakdown_names()]
        variants.append({"by": ind.breakdown_names(), "period": "day"})
    return variants


def body_text(content: bytes, content_type: str) -> str:
    if content.startswith(b"PK") and "spreadsheet" in content_type:
        wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
        cells = (
            str(v)
            for ws in wb.worksheets
            for row in ws.iter_rows(values_only=True)
            for v in row
            if v is not None
        )
        text = "\n".join(cells)
        with zipfile.ZipFile(io.BytesIO(content)) as z:  # and every raw part, to be sure
            text += "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        return text
    if content.startswith(b"PK"):  # the CSV zip: every entry, inflated
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    return content.decode("utf-8", "replace")


def walk(api: LiveApi, key: str | None) -> tuple[dict[str, str], set[str]]:
    """Call every route as ``key``; return each call's body text and the routes called."""
    bodies: dict[str, str] = {}
    called: set[str] = set()
    for full_path, route in api_routes(api):
        for method in sorted(route.methods):
            for path in path_values(api, route):
                url = full_path.format(**path)
                for params in query_variants(api, route, path):
                    if method == "GET":
                        r = api.get(url, key, **params)
                    else:
                        body = BODIES.get(full_path)
                        if key and key.startswith("manager") and full_path.endswith("/review"):
                            params = {**params, "dry_run": "true"}
                        r = api.request(method, url, key, json=body, **params)
                    assert r.status_code < 500, (method, url, params, r.status_code, r.text[:300])
                    if (
                        key
                        and key.startswith(("viewer", "analyst"))
                        and method != "GET"
                        and not (key.startswith("analyst") and full_path in READ_ONLY_POSTS)
                        and full_path not in PAGE_POSTS
                    ):
                        assert r.status_code in (401, 403, 404, 422), (method, url, r.status_code)
                    bodies[f"{method} {url} {params} -> {r.status_code}"] = body_text(
                        r.content, r.headers.get("content-type", "")
                    )
                    called.add(f"{method} {full_path}")
    return bodies, called


def all_route_names(api: LiveApi) -> set[str]:
    return {f"{m} {p}" for p, r in api_routes(api) for m in r.methods}


def test_api_leaks__planted_values_reach_the_manager(api):
    bodies, called = walk(api, "manager")
    assert called == all_route_names(api)
    text = "\n".join(bodies.values())
    missing = [n for n in SENSITIVE_NEEDLES if n not in text]
    assert not missing, f"planted values the manager never saw (the walk proves nothing): {missing}"
    assert MARK_HOME in text and MARK_OTHER in text


def test_api_leaks__no_sensitive_value_for_viewer_or_analyst(api):
    seen = {}
    for key in ("viewer", "analyst"):
        bodies, called = walk(api, key)
        seen[key] = "\n".join(bodies.values())
        assert called == all_route_names(api), key
        for call, text in bodies.items():
            leaked = [n for n in SENSITIVE_NEEDLES if n in text]
            assert not leaked, f"{key}: {call} shows {leaked}"
            if ("/v1/forms/" in call and ("/submissions" in call or "/export" in call)) or (
                "/v1/odata/" in call
            ):
                cols = [c for c in SENSITIVE_COLUMNS if c in text]
                assert not cols, f"{key}: {call} names sensitive columns {cols}"
    assert MARK_HOME in seen["analyst"] and MARK_OTHER in seen["analyst"]  # the walk sees rows


def test_api_leaks__district_keys_see_no_other_district(api):
    other_iid = api.synced.planted["household_visit"][1]  # planted in OTHER_DISTRICT
    for key in ("analyst-home", "viewer-home"):
        bodies, called = walk(api, key)
        assert called == all_route_names(api), key
        for call, text in bodies.items():
            if other_iid in call:
                assert "-> 404" in call or "-> 403" in call, f"{key}: {call}"
                continue
            assert MARK_OTHER not in text, f"{key}: {call} shows another district's row"
            assert other_iid not in text, f"{key}: {call} shows another district's instance"
            leaked = [n for n in SENSITIVE_NEEDLES if n in text]
            assert not leaked, f"{key}: {call} shows {leaked}"
        if key == "analyst-home":
            assert MARK_HOME in "\n".join(bodies.values())
