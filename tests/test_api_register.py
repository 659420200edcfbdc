"""The register API end to end: simulated tablets register women and visit them through
the Central under test (emulator or real), ``sync_entities`` pulls the list into SQLite or
PostgreSQL, and the API serves it by role.

Truth: what the tablets sent (instance ids, values, districts) and Central's own REST
answers (each entity's versions and ``createdAt``), recounted here in plain Python.
"""

from __future__ import annotations

import itertools
import statistics
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import requests
import sqlalchemy as sa

from api.app import create_app
from collector.central import Central
from collector.forms.entities import PropertyKind
from collector.store import create_schema, engine_for
from collector.store.keys import create_key
from collector.sync.entities import sync_entities
from tests.api_fixtures import serving
from tests.conftest import CentralTarget
from tests.test_entities_central import (
    entity_version_is,
    follow_up_xml,
    http,  # noqa: F401 - the fixture
    instance_of,
    registration_xml,
    submit,
    wait_for,
    women_project,
)
from tests.test_entity_sync import settings_for

# last_visit is treated as sensitive here, to see it withheld below manager
KINDS = {
    "women": {
        "district": PropertyKind("text", False),
        "household_size": PropertyKind("int", False),
        "last_visit": PropertyKind("date", True),
    }
}


def test_register_cases_visits_conflicts_and_identity_indicators(
    central: CentralTarget,
    http: requests.Session,  # noqa: F811
    fresh_name: str,
    tmp_path: Path,
    database_url: str,
) -> None:
    url = central.url
    pid = women_project(http, url, fresh_name)
    rest = f"{url}/v1/projects/{pid}/datasets/women/entities"
    at_version = partial(entity_version_is, http, rest)
    zarina = str(uuid.uuid4())
    reg_xml = registration_xml("reg", zarina, "Zarina", "nurek", "5")
    submit(http, url, pid, reg_xml)
    wait_for(lambda: at_version(zarina, 1), "Zarina")
    visits = []
    for n, (day, size) in enumerate(
        [("2026-03-01", "6"), ("2026-04-01", "5"), ("2026-05-01", "4")]
    ):
        xml = follow_up_xml("visit", zarina, n + 1, day, size)
        submit(http, url, pid, xml)
        visits.append(instance_of(xml))
        wait_for(lambda n=n: at_version(zarina, n + 2), f"visit {n + 1}")
    others = [str(uuid.uuid4()) for _ in range(7)]
    for i, eid in enumerate(others):
        submit(http, url, pid, registration_xml("reg", eid, f"Woman {i}", "vahdat", "3"))
    for eid in others:
        wait_for(lambda eid=eid: at_version(eid, 1), "registrations")
    gulnora = others[0]
    # two tablets visit Gulnora from version 1 while offline: a conflict
    submit(http, url, pid, follow_up_xml("visit", gulnora, 1, "2026-03-03", "4"))
    wait_for(lambda: at_version(gulnora, 2), "first offline visit")
    submit(http, url, pid, follow_up_xml("visit", gulnora, 1, "2026-03-04", "6"))
    wait_for(lambda: at_version(gulnora, 3), "second offline visit")

    settings = settings_for(central, pid, tmp_path, database_url)
    engine = engine_for(settings)
    create_schema(engine)  # the fixed tables (API keys, audit log), as a first sync makes
    with Central(settings, backoff=0.01) as client:
        sync_entities(client, engine, pid, KINDS)
    keys = {
        "analyst": create_key(engine, name="analyst", role="analyst").token,
        "manager": create_key(engine, name="manager", role="manager").token,
        "nurek": create_key(engine, name="nurek", role="analyst", districts=["nurek"]).token,
        "viewer": create_key(engine, name="viewer", role="viewer").token,
    }
    with serving(create_app(settings, engine=engine)) as api_url:
        check_api(api_url, keys, engine, http, rest, zarina, reg_xml, visits, others)


def check_api(
    api_url: str,
    keys: dict[str, str],
    engine,
    http: requests.Session,  # noqa: F811
    rest: str,
    zarina: str,
    reg_xml: str,
    visits: list[str],
    others: list[str],
) -> None:
    gulnora = others[0]

    def get(path: str, who: str, **params) -> requests.Response:
        return requests.get(
            api_url + path,
            params=params,
            headers={"Authorization": f"Bearer {keys[who]}"},
            timeout=30,
        )

    # a manager: her entity id, label, every property, and the visits in order
    r = get(f"/v1/register/women/{zarina}", "manager")
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["label"], case["entity_id"], case["district"]) == ("Zarina", zarina, "nurek")
    assert case["properties"] == {
        "district": "nurek",
        "household_size": "4",
        "last_visit": "2026-05-01",
    }
    assert case["visits"] == 3 and case["conflict"] is None
    assert [(h["action"], h["instance_id"]) for h in case["history"]] == [
        ("registration", instance_of(reg_xml)),
        *(("visit", v) for v in visits),
    ]
    with engine.connect() as conn:
        audited = conn.execute(
            sa.text("SELECT form, instance_id FROM audit_log WHERE form = 'entity:women'")
        ).all()
    assert ("entity:women", zarina) in [tuple(a) for a in audited]

    # an analyst: pseudonymous case ids, no label, the sensitive property withheld
    listed = get("/v1/register/women", "analyst").json()
    assert len(listed) == 8
    mine = next(c for c in listed if c["district"] == "nurek")
    assert mine["label"] is None and mine["entity_id"] is None
    assert mine["case_id"] != zarina and zarina not in str(listed)
    assert mine["properties"] == {"district": "nurek", "household_size": "4"}
    assert mine["withheld"] == ["last_visit"]
    detail = get(f"/v1/register/women/{mine['case_id']}", "analyst").json()
    assert [h["action"] for h in detail["history"]] == ["registration", "visit", "visit", "visit"]
    assert all("last_visit" not in h["changed"] for h in detail["history"])
    assert get(f"/v1/register/women/{zarina}", "analyst").status_code == 404
    assert [c["district"] for c in get("/v1/register/women", "nurek").json()] == ["nurek"]
    assert get("/v1/register/women", "viewer").status_code == 403
    assert get("/v1/register/nobody", "manager").status_code == 404

    # the conflict, as Central has it
    conflicts = get("/v1/register/women/conflicts", "manager").json()
    assert [c["entity_id"] for c in conflicts] == [gulnora]
    assert conflicts[0]["conflict"] == http.get(f"{rest}/{gulnora}").json()["conflict"]

    # identity indicators, recounted from Central's REST versions
    districts = {zarina: "nurek", **dict.fromkeys(others, "vahdat")}
    contacts: dict[str, list[datetime]] = {}
    for eid in districts:
        versions = http.get(f"{rest}/{eid}/versions").json()
        contacts[eid] = sorted(
            datetime.fromisoformat(v["createdAt"].replace("Z", "+00:00")) for v in versions
        )

    def cells(indicator: str, who: str = "manager", **params) -> dict:
        r = get(f"/v1/register/women/indicators/{indicator}", who, **params)
        assert r.status_code == 200, r.text
        return {c["keys"]["district"]: c for c in r.json()["cells"]}

    supported = cells("women_supported")
    assert {d: c["value"] for d, c in supported.items()} == {"nurek": 1, "vahdat": 7}
    twice = cells("women_visited_twice")
    expected_twice = {d: 0 for d in ("nurek", "vahdat")}
    for eid, times in contacts.items():
        if len(times) - 1 >= 2:
            expected_twice[districts[eid]] += 1
    assert {d: c["value"] for d, c in twice.items()} == expected_twice == {"nurek": 1, "vahdat": 1}
    gaps = [
        (b - a).total_seconds() / 86400
        for eid, times in contacts.items()
        if districts[eid] == "nurek"
        for a, b in itertools.pairwise(times)
    ]
    median = cells("median_days_between_visits")["nurek"]["value"]
    assert median == round(statistics.median(gaps), 1)
    later = (date.today() + timedelta(days=61)).isoformat()
    today = datetime.now(UTC).date().isoformat()
    assert {d: c["value"] for d, c in cells("women_without_visit_60_days", to=later).items()} == {
        "nurek": 1,
        "vahdat": 7,
    }
    assert {d: c["value"] for d, c in cells("women_without_visit_60_days", to=today).items()} == {
        "nurek": 0,
        "vahdat": 0,
    }
    # below manager: the cell of one woman is withheld, the rest rounded to the base
    protected = cells("women_supported", "analyst")
    assert protected["nurek"]["suppressed"] and protected["nurek"]["value"] is None
    assert all(c["value"] is None or c["value"] % 5 == 0 for c in protected.values())
