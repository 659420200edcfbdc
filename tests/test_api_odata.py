"""The OData feed as Excel and Power BI use it (issue 18 item 2): Basic credentials with the
API key as password, the service document, a ``$metadata`` checked against the CSDL rules a
client relies on, every row read by following ``@odata.nextLink``, ``$top``/``$skip``/
``$count``/``$filter``; the same who-sees-what as the API. Truth: the store's tables read with
plain SQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, datetime

import pytest
import requests
import sqlalchemy as sa

from api.app import create_app
from collector import store
from tests.api_fixtures import (
    FORMS,
    HOME_DISTRICT,
    SENSITIVE_NEEDLES,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    serving,
    synced_fixture,  # noqa: F401 - fixture
)
from tests.test_api_export_shapes import _live_ids, _repeat_rows, _sensitive_names

EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
PRIMITIVES = {
    "Edm.String",
    "Edm.Int64",
    "Edm.Double",
    "Edm.Boolean",
    "Edm.Date",
    "Edm.DateTimeOffset",
    "Edm.TimeOfDay",
}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PAGE = 7


@pytest.fixture(scope="module", name="feed")
def feed_fixture(synced):
    """The API with small pages, so that every table takes several nextLinks."""
    settings = synced.settings.model_copy(update={"api_max_page_size": PAGE})
    with serving(create_app(settings, engine=synced.engine)) as url:
        yield url, synced


def _get(feed, key: str, path: str, **params) -> requests.Response:
    url, synced = feed
    return requests.get(url + path, params=params, auth=("powerbi", synced.tokens[key]), timeout=60)


def _metadata(feed, key: str, form: str) -> dict[str, dict[str, str]]:
    """$metadata checked as a client reads it; entity set -> {property: Edm type}."""
    r = _get(feed, key, f"/v1/odata/{form}.svc/$metadata")
    assert r.status_code == 200 and r.headers["OData-Version"] == "4.0"
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)  # noqa: S314 - our own API's answer
    assert root.tag == f"{EDMX}Edmx" and root.get("Version") == "4.0"
    (schema,) = root.iter(f"{EDM}Schema")
    ns = schema.get("Namespace")
    types = {}
    for et in schema.findall(f"{EDM}EntityType"):
        assert IDENTIFIER.match(et.get("Name"))
        props = {p.get("Name"): p.get("Type") for p in et.findall(f"{EDM}Property")}
        assert len(props) == len(et.findall(f"{EDM}Property")), "duplicate property"
        assert all(IDENTIFIER.match(n) for n in props), props
        assert set(props.values()) <= PRIMITIVES
        (ref,) = et.find(f"{EDM}Key").findall(f"{EDM}PropertyRef")
        assert ref.get("Name") in props
        types[f"{ns}.{et.get('Name')}"] = props
    (container,) = schema.findall(f"{EDM}EntityContainer")
    sets = {}
    for s in container.findall(f"{EDM}EntitySet"):
        assert s.get("EntityType") in types, s.get("EntityType")
        sets[s.get("Name")] = types[s.get("EntityType")]
    return sets


def _follow(feed, key: str, first: str, **params) -> tuple[list[dict], int]:
    """Every row of a set, following nextLinks as Power BI does; and how many pages."""
    url, synced = feed
    r = requests.get(url + first, params=params, auth=("x", synced.tokens[key]), timeout=60)
    rows, pages = [], 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["value"]
        pages += 1
        link = body.get("@odata.nextLink")
        if not link:
            return rows, pages
        assert link.startswith(url) and "$skiptoken" in link
        r = requests.get(link, auth=("x", synced.tokens[key]), timeout=60)
        assert pages < 1000


def _typed(edm: str, value) -> bool:
    if value is None:
        return True
    return {
        "Edm.String": lambda v: isinstance(v, str),
        "Edm.Int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Edm.Double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "Edm.Boolean": lambda v: isinstance(v, bool),
        "Edm.Date": lambda v: bool(date.fromisoformat(v)),
        "Edm.DateTimeOffset": lambda v: (
            datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo is not None
        ),
        "Edm.TimeOfDay": lambda v: bool(re.match(r"^\d\d:\d\d(:\d\d(\.\d+)?)?$", v)),
    }[edm](value)


@pytest.mark.parametrize("key", ["manager", "analyst", "analyst-home"])
def test_odata__client_lists_tables_and_reads_every_row_through_next_links(feed, key):
    _, synced = feed
    engine = synced.engine
    district = HOME_DISTRICT if key == "analyst-home" else None
    for form in FORMS:
        sets = _metadata(feed, key, form)
        doc = _get(feed, key, f"/v1/odata/{form}.svc")
        assert doc.status_code == 200, doc.text
        assert [v["name"] for v in doc.json()["value"]] == list(sets)
        hidden = _sensitive_names(_Api(synced), form)
        for name, props in sets.items():
            rows, pages = _follow(feed, key, f"/v1/odata/{form}.svc/{name}")
            for row in rows:
                assert set(row) == set(props)
                assert all(_typed(props[p], v) for p, v in row.items()), row
            if name == "Submissions":
                truth = _live_ids(engine, form, district)
                assert sorted(r["instance_id"] for r in rows) == sorted(truth)
                if len(truth) > PAGE:
                    assert pages > 1
            else:
                repeat = name.removeprefix("Submissions_")
                truth = [
                    x
                    for x in _repeat_rows(engine, form, repeat)
                    if x[0] in _live_ids(engine, form, district)
                ]
                assert sorted((r["instance_id"], r["row_id"]) for r in rows) == sorted(truth)
            if key != "manager":
                assert not hidden & set(props), (form, name, hidden & set(props))
                text = repr(rows)
                assert not any(n in text for n in SENSITIVE_NEEDLES), (form, name)


class _Api:
    """The bit of LiveApi that _sensitive_names reads."""

    def __init__(self, synced) -> None:
        self.synced = synced


def test_odata__top_skip_count_and_filter_on_dates_and_district(feed):
    _, synced = feed
    base = "/v1/odata/household_visit.svc/Submissions"
    everything, _ = _follow(feed, "analyst", base)
    ids = [r["instance_id"] for r in everything]
    r = _get(feed, "analyst", base, **{"$top": 3, "$skip": 2})
    assert [x["instance_id"] for x in r.json()["value"]] == ids[2:5]
    assert "@odata.nextLink" not in r.json()
    rows, _ = _follow(feed, "analyst", base, **{"$top": 10})
    assert [x["instance_id"] for x in rows] == ids[:10]
    flt = f"district eq '{HOME_DISTRICT}' and submitted_at ge 2000-01-01T00:00:00Z"
    r = _get(feed, "analyst", base, **{"$filter": flt, "$count": "true"})
    truth = _live_ids(synced.engine, "household_visit", HOME_DISTRICT)
    assert r.json()["@odata.count"] == len(truth)
    rows, _ = _follow(feed, "analyst", base, **{"$filter": flt})
    assert sorted(x["instance_id"] for x in rows) == sorted(truth)
    r = _get(feed, "analyst", base, **{"$filter": "submitted_at lt 2000-01-01T00:00:00Z"})
    assert r.json()["value"] == []
    r = _get(feed, "analyst", base, **{"$filter": "visit__follow_up_date ge 2000-01-01"})
    assert r.status_code == 200, r.text
    # a sensitive answer is no property for an analyst: it cannot be filtered on either
    r = _get(feed, "analyst", base, **{"$filter": "visit__household_id eq 'x'"})
    assert r.status_code == 422 and "visit__household_id" in r.text
    r = _get(feed, "analyst", base, **{"$filter": "district eq"})
    assert r.status_code == 422 and "$filter" in r.text
    r = _get(feed, "analyst", base, **{"$skiptoken": "forged"})
    assert r.status_code == 422


def test_odata__basic_auth_roles_and_audit(feed):
    url, synced = feed
    path = url + "/v1/odata/household_visit.svc/Submissions"
    r = requests.get(path, timeout=30)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    r = requests.get(path, auth=("excel", "clk_not-a-key"), timeout=30)
    assert r.status_code == 401
    r = requests.get(path, auth=("excel", synced.tokens["viewer"]), timeout=30)
    assert r.status_code == 403
    r = requests.get(
        path, headers={"Authorization": f"Bearer {synced.tokens['analyst']}"}, timeout=30
    )
    assert r.status_code == 200
    audit = store.T["audit_log"]
    with synced.engine.connect() as c:
        before = c.execute(
            sa.select(sa.func.count()).select_from(audit).where(audit.c.action == "odata")
        ).scalar_one()
    rows, _ = _follow(feed, "manager", "/v1/odata/household_visit.svc/Submissions")
    with synced.engine.connect() as c:
        got = (
            c.execute(sa.select(audit.c.instance_id).where(audit.c.action == "odata"))
            .scalars()
            .all()
        )
    assert len(got) - before == sum(1 for r in rows if r.get("visit__household_id") is not None)


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "district eq 'kulob' or (submitted_at gt 2026-13-45T99:00:00Z)"},
        {"$filter": "contains(district, 'ku')"},
        {"$filter": "district in ('kulob', 'khujand')"},
        {"$filter": "now() gt submitted_at"},
        {"$filter": "x" * 2001},
        {"$filter": "district eq 1 and review_state eq null"},
        {"$filter": "submitted_at/year eq 2026"},
        {"$filter": "any(d: d eq 'x')"},
        {"$filter": "'" * 50},
        {"$top": "-1"},
        {"$top": "99999999999"},
        {"$skip": "abc"},
        {"$skiptoken": "eyJzIjoiYSIsInIiOjF9"},
        {"$count": "maybe"},
    ],
)
def test_odata__odd_queries_get_a_clear_4xx_or_an_answer_never_a_500(feed, params):
    r = _get(feed, "analyst", "/v1/odata/household_visit.svc/Submissions", **params)
    assert r.status_code in (200, 400, 422), (params, r.status_code, r.text[:300])
    r = _get(feed, "analyst", "/v1/odata/household_visit.svc/Submissions_children", **params)
    assert r.status_code in (200, 400, 422), (params, r.status_code, r.text[:300])
