"""Entity lists and entities, as pyodk 1.3 (unmodified) and Collect use them, against the
Central under test: the emulator by default, a real Central with COLLECTOR_TEST_CENTRAL_URL.
Every expectation here was first seen on a real Central (central-backend
lib/resources/entities.js, datasets.js); the same file passes against both.

Central turns submissions into entities in a background worker, so the tests that submit
wait for the entity to appear (polling its REST route), never for a fixed time.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from pyodk.client import Client

from tests.conftest import CentralTarget
from tests.golden_forms import xlsx_bytes

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def http(central: CentralTarget) -> requests.Session:
    s = requests.Session()
    r = s.post(
        f"{central.url}/v1/sessions",
        json={"email": central.email, "password": central.password},
        timeout=30,
    )
    r.raise_for_status()
    s.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return s


def new_project(http: requests.Session, url: str, name: str) -> int:
    r = http.post(f"{url}/v1/projects", json={"name": name}, timeout=30)
    r.raise_for_status()
    return int(r.json()["id"])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy (Central's worker is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_pyodk_entity_lists_and_entities(
    pyodk_client: Client, central: CentralTarget, http: requests.Session, fresh_name: str
) -> None:
    with pyodk_client:
        pid = new_project(http, central.url, fresh_name)
        # pyodk 1.3's merge reads the table without passing project_id on: use the default
        pyodk_client.entities.default_project_id = pid
        el = pyodk_client.entity_lists.create(entity_list_name="women", project_id=pid)
        assert (el.name, el.projectId, el.approvalRequired) == ("women", pid, False)
        assert [e.name for e in pyodk_client.entity_lists.list(project_id=pid)] == ["women"]
        assert pyodk_client.entity_lists.add_property(
            name="district", entity_list_name="women", project_id=pid
        )
        got = pyodk_client.entity_lists.get(entity_list_name="women", project_id=pid)
        assert [p.name for p in got.properties or []] == ["district"]

        one = pyodk_client.entities.create(
            label="Zarina", data={"district": "nurek"}, entity_list_name="women", project_id=pid
        )
        assert one.currentVersion.version == 1
        assert one.currentVersion.data == {"district": "nurek"}
        assert pyodk_client.entities.create_many(
            data=[{"label": "Gulnora", "district": "vahdat"}, {"label": "Mehri", "district": ""}],
            entity_list_name="women",
            project_id=pid,
        )
        listed = pyodk_client.entities.list(entity_list_name="women", project_id=pid)
        assert sorted(e.currentVersion.label for e in listed) == ["Gulnora", "Mehri", "Zarina"]

        updated = pyodk_client.entities.update(
            one.uuid,
            entity_list_name="women",
            project_id=pid,
            data={"district": "rudaki"},
            base_version=1,
        )
        assert (updated.currentVersion.version, updated.currentVersion.baseVersion) == (2, 1)
        assert updated.currentVersion.data == {"district": "rudaki"}
        forced = pyodk_client.entities.update(
            one.uuid, entity_list_name="women", project_id=pid, label="Zarina B", force=True
        )
        assert (forced.currentVersion.label, forced.currentVersion.version) == ("Zarina B", 3)

        table = pyodk_client.entities.get_table(
            entity_list_name="women", project_id=pid, count=True
        )
        assert table["@odata.count"] == 3
        by_label = {r["label"]: r for r in table["value"]}
        assert by_label["Zarina B"]["district"] == "rudaki"
        assert by_label["Zarina B"]["__system"]["version"] == 3
        assert by_label["Mehri"]["district"] == ""

        # merge: one updated, one new (with a new property), one deleted
        actions = pyodk_client.entities.merge(
            [
                {"label": "Zarina B", "district": "rudaki", "phone": "+992 1"},
                {"label": "Gulnora", "district": "nurek"},
                {"label": "Sitora", "district": "vahdat"},
            ],
            entity_list_name="women",
            project_id=pid,
            delete_not_matched=True,
        )
        assert set(actions.to_insert) == {("Sitora",)}
        assert set(actions.to_delete) == {("Mehri",)}
        table = pyodk_client.entities.get_table(entity_list_name="women", project_id=pid)
        rows = {r["label"]: r for r in table["value"]}
        assert sorted(rows) == ["Gulnora", "Sitora", "Zarina B"]
        assert rows["Gulnora"]["district"] == "nurek"
        assert rows["Zarina B"]["phone"] == "+992 1"

        gone = next(e for e in listed if e.currentVersion.label == "Gulnora")
        assert pyodk_client.entities.delete(gone.uuid, entity_list_name="women", project_id=pid)
        left = pyodk_client.entities.list(entity_list_name="women", project_id=pid)
        assert sorted(e.currentVersion.label for e in left) == ["Sitora", "Zarina B"]


def test_rest_rules_and_odata(
    central: CentralTarget, http: requests.Session, fresh_name: str
) -> None:
    url = central.url
    pid = new_project(http, url, fresh_name)
    base = f"{url}/v1/projects/{pid}/datasets"
    assert http.post(base, json={"name": "people"}).status_code == 200
    r = http.post(base, json={"name": "people"})
    assert (r.status_code, r.json()["code"]) == (409, 409.3)
    assert http.post(base, json={"name": "__bad"}).json()["code"] == 400.8
    assert http.post(f"{base}/people/properties", json={"name": "age"}).json() == {"success": True}
    assert http.post(f"{base}/people/properties", json={"name": "age"}).json()["code"] == 409.3
    assert http.post(f"{base}/people/properties", json={"name": "label"}).json()["code"] == 400.8

    ents = f"{base}/people/entities"
    u = str(uuid.uuid4())
    r = http.post(ents, json={"uuid": u, "label": "A", "data": {"age": "30"}})
    body = r.json()
    assert body["currentVersion"]["dataReceived"] == {"age": "30", "label": "A"}
    assert body["updatedAt"] is None and body["conflict"] is None
    assert http.post(ents, json={"uuid": u, "label": "A"}).json()["code"] == 409.3
    assert http.post(ents, json={"label": "B", "data": {"age": 3}}).json()["code"] == 400.11
    assert http.post(ents, json={"label": "B", "data": {"x": "3"}}).json()["code"] == 400.28
    assert http.post(ents, json={"data": {"age": "3"}}).json()["code"] == 400.2
    assert http.post(ents, json={"uuid": "abc", "label": "B"}).json()["code"] == 400.11

    r = http.patch(f"{ents}/{u}", json={"data": {"age": "31"}})
    assert (r.status_code, r.json()["details"]) == (409, {"current": "1"})
    r = http.patch(f"{ents}/{u}", params={"baseVersion": "2"}, json={"data": {"age": "31"}})
    assert r.json()["code"] == 409.15
    r = http.patch(f"{ents}/{u}", params={"baseVersion": "1"}, json={"data": {"age": "31"}})
    assert r.json()["currentVersion"]["dataReceived"] == {"age": "31"}
    assert r.json()["updatedAt"] is not None
    r = http.patch(f"{ents}/{u}", params={"resolve": "true", "baseVersion": "2"})
    assert r.json()["code"] == 400.32
    versions = http.get(f"{ents}/{u}/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["lastGoodVersion"] for v in versions] == [False, True]
    assert versions[1]["baseDiff"] == ["age"]

    other = str(uuid.uuid4())
    http.post(ents, json={"uuid": other, "label": "C", "data": {"age": "5"}}).raise_for_status()
    svc = f"{base}/people.svc/Entities"
    page = http.get(svc, params={"$top": "1", "$count": "true"}).json()
    assert page["@odata.count"] == 2 and [r["__id"] for r in page["value"]] == [other]
    nxt = http.get(page["@odata.nextLink"]).json()
    assert [r["__id"] for r in nxt["value"]] == [u] and "@odata.nextLink" not in nxt
    assert [r["__id"] for r in http.get(svc, params={"$skip": "1"}).json()["value"]] == [u]
    sel = http.get(svc, params={"$select": "__id,age,__system/conflict"}).json()["value"]
    assert sel[1] == {"__id": u, "__system": {"conflict": None}, "age": "31"}
    # Central selects only the filterable __system fields (lib/data/entity.js)
    assert http.get(svc, params={"$select": "__system/version"}).json()["code"] == 400.23
    assert http.get(svc, params={"$select": "label"}).json()["code"] == 400.23
    changed = http.get(svc, params={"$filter": "__system/updatedAt gt 2020-01-01T00:00:00Z"})
    assert [r["__id"] for r in changed.json()["value"]] == [u]

    assert http.delete(f"{ents}/{other}").json() == {"success": True}
    assert http.get(f"{ents}/{other}").status_code == 404
    assert [r["__id"] for r in http.get(svc).json()["value"]] == [u]
    deleted = http.get(svc, params={"$filter": "__system/deletedAt ne null"}).json()["value"]
    assert [r["__id"] for r in deleted] == [other]
    assert deleted[0]["__system"]["updatedAt"] is None  # a delete does not move updatedAt
    assert http.post(f"{ents}/{other}/restore").json() == {"success": True}
    back = http.get(f"{ents}/{other}").json()
    assert back["deletedAt"] is None and back["updatedAt"] is not None  # a restore does


REGISTRATION = {
    "survey": [
        ["type", "name", "label", "save_to"],
        ["text", "woman_name", "Name", ""],
        ["text", "district", "District", "district"],
        ["integer", "household_size", "Household size", "household_size"],
    ],
    "entities": [["list_name", "label"], ["women", "${woman_name}"]],
    "settings": [["form_id", "version"], ["{fid}", "1"]],
}

FOLLOW_UP = {
    "survey": [
        ["type", "name", "label", "save_to"],
        ["select_one_from_file women.csv", "woman", "Woman", ""],
        ["date", "visit_date", "Visit date", "last_visit"],
        ["integer", "household_size", "Household size", "household_size"],
    ],
    "entities": [["list_name", "entity_id"], ["women", "${woman}"]],
    "settings": [["form_id", "version"], ["{fid}", "1"]],
}


def publish(http: requests.Session, url: str, pid: int, sheets: dict, fid: str) -> None:
    filled = {k: [[c.replace("{fid}", fid) for c in row] for row in v] for k, v in sheets.items()}
    r = http.post(
        f"{url}/v1/projects/{pid}/forms",
        params={"publish": "true", "ignoreWarnings": "true"},
        data=xlsx_bytes(filled),
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": fid},
    )
    assert r.status_code == 200, r.text


def submit(http: requests.Session, url: str, pid: int, xml: str) -> None:
    r = http.post(
        f"{url}/v1/projects/{pid}/submission",
        files={"xml_submission_file": ("s.xml", xml.encode(), "text/xml")},
        headers={"X-OpenRosa-Version": "1.0"},
    )
    assert r.status_code == 201, r.text


def registration_xml(fid: str, eid: str, name: str, district: str, size: str) -> str:
    return (
        f'<data id="{fid}" version="1"><woman_name>{name}</woman_name><district>{district}'
        f"</district><household_size>{size}</household_size><meta><instanceID>uuid:{uuid.uuid4()}"
        f'</instanceID><entity dataset="women" id="{eid}" create="1"><label>{name}</label>'
        "</entity></meta></data>"
    )


def follow_up_xml(fid: str, eid: str, base: int, visit: str, size: str | None) -> str:
    size_xml = "" if size is None else f"<household_size>{size}</household_size>"
    return (
        f'<data id="{fid}" version="1"><woman>{eid}</woman><visit_date>{visit}</visit_date>'
        f"{size_xml}<meta><instanceID>uuid:{uuid.uuid4()}</instanceID>"
        f'<entity dataset="women" id="{eid}" update="1" baseVersion="{base}" trunkVersion="" '
        'branchId=""/></meta></data>'
    )


def women_project(http: requests.Session, url: str, name: str) -> int:
    """A new project with the ``women`` list's registration (``reg``) and follow-up
    (``visit``) forms published."""
    pid = new_project(http, url, name)
    publish(http, url, pid, REGISTRATION, "reg")
    publish(http, url, pid, FOLLOW_UP, "visit")
    return pid


def entity_version_is(http: requests.Session, rest: str, eid: str, n: int) -> bool:
    """Whether Central has entity ``eid`` (under the list's ``rest`` URL) at version ``n``
    yet: its worker applies submissions in the background."""
    r = http.get(f"{rest}/{eid}")
    return r.status_code == 200 and r.json()["currentVersion"]["version"] == n


def instance_of(xml: str) -> str:
    """The instance id a submission's XML carries (what Central keys it by)."""
    return re.search(r"<instanceID>([^<]+)</instanceID>", xml).group(1)


def test_submissions_create_and_update_entities_with_conflicts(
    central: CentralTarget, http: requests.Session, fresh_name: str
) -> None:
    url = central.url
    pid = women_project(http, url, fresh_name)
    base = f"{url}/v1/projects/{pid}/datasets/women"
    meta = http.get(base).json()
    assert [p["name"] for p in meta["properties"]] == ["district", "household_size", "last_visit"]
    assert [f["xmlFormId"] for f in meta["sourceForms"]] == ["reg", "visit"]

    eid = str(uuid.uuid4())
    submit(http, url, pid, registration_xml("reg", eid, "Zarina", "nurek", "5"))

    def entity() -> dict | None:
        r = http.get(f"{base}/entities/{eid}")
        return r.json() if r.status_code == 200 else None

    created = wait_for(entity, "the registered entity")
    assert created["currentVersion"]["label"] == "Zarina"
    assert created["currentVersion"]["data"] == {"district": "nurek", "household_size": "5"}

    # the follow-up form gets the list as women.csv, as Collect downloads it
    csv_text = http.get(f"{url}/v1/projects/{pid}/forms/visit/attachments/women.csv").text
    lines = csv_text.strip().splitlines()
    assert lines[0] == "name,label,__version,district,household_size,last_visit"
    assert lines[1] == f"{eid},Zarina,1,nurek,5,"

    # two tablets update from version 1 while offline: the second one conflicts
    submit(http, url, pid, follow_up_xml("visit", eid, 1, "2026-03-01", "6"))
    wait_for(lambda: (entity() or {}).get("currentVersion", {}).get("version") == 2, "v2")
    second = follow_up_xml("visit", eid, 1, "2026-03-02", "7")
    submit(http, url, pid, second)
    after = wait_for(lambda: (e := entity()) and e["currentVersion"]["version"] == 3 and e, "v3")
    assert after["conflict"] == "hard"
    assert after["currentVersion"]["data"] == {
        "district": "nurek",
        "household_size": "7",
        "last_visit": "2026-03-02",
    }
    assert sorted(after["currentVersion"]["conflictingProperties"]) == [
        "household_size",
        "last_visit",
    ]
    versions = http.get(f"{base}/entities/{eid}/versions").json()
    assert [(v["version"], v["baseVersion"], v["conflict"]) for v in versions] == [
        (1, None, None),
        (2, 1, None),
        (3, 1, "hard"),
    ]
    # each version names the submission that made it (how the sync links visits to women)
    source = versions[2]["source"]["submission"]
    assert (source["xmlFormId"], f"<instanceID>{source['instanceId']}<") == (
        "visit",
        second[second.index("<instanceID>") : second.index("</instanceID>") + 1],
    )
    feed = http.get(f"{url}/v1/projects/{pid}/datasets/women.svc/Entities").json()["value"]
    assert feed[0]["__system"]["conflict"] == "hard"

    # resolving clears the conflict and moves updatedAt
    r = http.patch(f"{base}/entities/{eid}", params={"resolve": "true", "baseVersion": "3"})
    assert r.status_code == 200, r.text
    assert r.json()["conflict"] is None
