"""Simulated enumerators: Collect-like submissions (offline) and a real run against Central."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from pyxform.xls2xform import convert

from emulator.enumerators import AppUserKey, Enumerators, WebUser, device_id
from emulator.enumerators.tajik import DISTRICTS, LAT_RANGE, LON_RANGE
from emulator.enumerators.xpath import Context, XPathError, evaluate, to_bool
from emulator.odata import entity_from_submission
from emulator.xform import parse_xform
from tests.conftest import CentralTarget
from tests.emulator_support import login

REPO = Path(__file__).resolve().parent.parent

HOUSEHOLD_MD = """
| survey |
| | type | name | label | constraint | relevant | required | repeat_count | choice_filter | calculation |
| | start | start | | | | | | | |
| | end | end | | | | | | | |
| | deviceid | deviceid | | | | | | | |
| | today | today | | | | | | | |
| | text | name | Name | | | yes | | | |
| | integer | age | Age | . >= 0 and . <= 120 | | yes | | | |
| | select_one yn | married | Married? | | ${age} >= 16 | | | | |
| | begin group | place | Place | | | | | | |
| | select_one region | region | Region | | | yes | | | |
| | select_one district | district | District | | | yes | | region=${region} | |
| | geopoint | gps | GPS | | | yes | | | |
| | end group | | | | | | | | |
| | select_multiple need | needs | Needs | | | yes | | | |
| | text | needs_other | Other need | | selected(${needs}, 'other') | yes | | | |
| | integer | nkids | Children | . >= 0 and . <= 6 | | yes | | | |
| | begin repeat | child | Child | | | | ${nkids} | | |
| | text | child_name | Child name | | | yes | | | |
| | integer | child_age | Child age | . < 18 | | yes | | | |
| | end repeat | | | | | | | | |
| | begin repeat | visit | Visit | | | | | | |
| | date | visit_date | Visit date | . <= today() | | yes | | | |
| | end repeat | | | | | | | | |
| | image | photo | Photo | | | | | | |
| | decimal | remittance | Remittance | . > 0 | | yes | | | |
| | calculate | total | | | | | | | ${nkids} + 1 |
| | note | thanks | Thank you | | | | | | |
| choices |
| | list_name | name | label | region |
| | yn | yes | Yes | |
| | yn | no | No | |
| | region | sughd | Sughd | |
| | region | khatlon | Khatlon | |
| | district | khujand | Khujand | sughd |
| | district | isfara | Isfara | sughd |
| | district | kulob | Kulob | khatlon |
| | district | bokhtar | Bokhtar | khatlon |
| | need | legal | Legal aid | |
| | need | food | Food | |
| | need | other | Other | |
| settings |
| | form_id | version |
| | {form_id} | 1 |
"""

SUGHD = {"khujand", "isfara"}
UUID = re.compile(r"^uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def household_xform(form_id: str = "household") -> bytes:
    md = HOUSEHOLD_MD.replace("{form_id}", form_id)
    return convert(md.encode(), file_type=".md", form_name="data").xform.encode()


@pytest.fixture(scope="module")
def xform() -> bytes:
    return household_xform()


def offline(xform: bytes, seed: int | str = 1) -> Enumerators:
    runner = Enumerators("http://127.0.0.1:1", WebUser("x@example.org", "x"), 1, seed=seed)
    runner.add_form(xform)
    return runner


def answers(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 - our own output in a test


def test_build__same_seed_same_xml_and_ids(xform) -> None:
    first = [offline(xform, seed=7).build(k) for k in range(6)]
    again = [offline(xform, seed=7).build(k) for k in range(6)]
    other = [offline(xform, seed=8).build(k) for k in range(6)]
    assert [s.xml for s in first] == [s.xml for s in again]
    assert [s.instance_id for s in first] == [s.instance_id for s in again]
    assert {s.instance_id for s in first}.isdisjoint({s.instance_id for s in other})
    # submission k does not depend on what was built before it
    assert offline(xform, seed=7).build(5).xml == first[5].xml


def test_build__answers_respect_the_form(xform) -> None:
    runner = offline(xform, seed="checks")
    form = parse_xform(xform)
    cyrillic = 0
    for k in range(40):
        sub = runner.build(k)
        root = answers(sub.xml)
        assert sub.xml.startswith(b"<?xml version='1.0' ?><data ")
        assert root.get("id") == "household" and root.get("version") == "1"
        assert UUID.match(sub.instance_id)
        assert root.findtext("meta/instanceID") == sub.instance_id
        assert root.findtext("deviceid") == device_id("checks", k % 4)
        assert re.fullmatch(r"collect:[A-Za-z0-9]{16}", root.findtext("deviceid"))
        assert root.findtext("start") < root.findtext("end")
        age = int(root.findtext("age"))
        assert 0 <= age <= 120
        married = root.findtext("married")
        assert (married in ("yes", "no", None, "")) and (age >= 16 or not married)
        region, district = root.findtext("place/region"), root.findtext("place/district")
        assert region in ("sughd", "khatlon")
        assert (district in SUGHD) == (region == "sughd")  # choice_filter honoured
        lat, lon, _alt, _acc = map(float, root.findtext("place/gps").split())
        assert LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LON_RANGE[0] <= lon <= LON_RANGE[1]
        centre = DISTRICTS[district]
        assert abs(lat - centre[0]) < 0.1 and abs(lon - centre[1]) < 0.1  # near the district
        needs = root.findtext("needs").split()
        assert needs and set(needs) <= {"legal", "food", "other"}
        assert bool(root.findtext("needs_other")) == ("other" in needs)  # relevant honoured
        kids = root.findall("child")
        assert len(kids) == int(root.findtext("nkids"))  # jr:count honoured
        assert all(0 <= int(c.findtext("child_age")) < 18 for c in kids)
        assert 1 <= len(root.findall("visit")) <= 5
        assert all(
            v.findtext("visit_date") <= root.findtext("today") for v in root.findall("visit")
        )
        assert float(root.findtext("remittance")) > 0
        assert root.findtext("total") == str(len(kids) + 1)  # calculate evaluated
        assert root.find("thanks") is not None and not root.findtext("thanks")
        photo = root.findtext("photo")
        if photo:
            assert [a[0] for a in sub.attachments] == [photo]
            assert sub.attachments[0][1].startswith(b"\x89PNG")
        cyrillic += bool(re.search("[А-Яа-яҶҷҲҳҚқӮӯҒғӢӣ]", sub.xml.decode()))
        # Central's reading of it works: groups nested, repeats as rows
        entity = entity_from_submission(form, sub.xml, sub.instance_id)
        assert entity.data["age"] == age
        assert len(entity.repeat_rows["Submissions.child"]) == len(kids)
    assert cyrillic >= 30


def test_edit__new_instance_id_and_deprecated_id(xform) -> None:
    runner = offline(xform, seed=3)
    original = runner.build(0)
    factory = runner._factory("household", 0)
    edited = factory.edit(
        original, random.Random("edit"), datetime.fromisoformat("2026-03-03T10:00:00+05:00")
    )
    root = answers(edited.xml)
    assert edited.instance_id != original.instance_id and UUID.match(edited.instance_id)
    assert root.findtext("meta/instanceID") == edited.instance_id
    assert root.findtext("meta/deprecatedID") == original.instance_id
    assert [c.tag for c in root.find("meta")] == ["instanceID", "deprecatedID"]
    assert edited.xml != original.xml


# --- against a running Central -----------------------------------------------------------------


@pytest.fixture
def project(central, fresh_name):
    """A fresh project with the household form published; (session, project id, form id)."""
    s = login(central)
    pid = s.post(f"{central.url}/v1/projects", json={"name": fresh_name}, timeout=30).json()["id"]
    form_id = f"hh_{fresh_name}"
    resp = s.post(
        f"{central.url}/v1/projects/{pid}/forms",
        params={"publish": "true"},
        data=household_xform(form_id),
        headers={"Content-Type": "application/xml"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return s, pid, form_id


def _web_runner(central: CentralTarget, pid: int, **options: Any) -> Enumerators:
    """Enumerators signed in as the test's web user; ``options`` shape the run."""
    return Enumerators(central.url, WebUser(central.email, central.password), pid, **options)


def _odata(central, s, pid, form_id, query: str) -> dict:
    resp = s.get(
        f"{central.url}/v1/projects/{pid}/forms/{form_id}.svc/Submissions?{query}", timeout=30
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_run__web_user_submits_edits_reviews_deletes(central, project) -> None:
    s, pid, form_id = project
    events = []
    runner = _web_runner(
        central,
        pid,
        seed="e2e",
        enumerators=3,
        edit_share=0.4,
        review_share=0.4,
        delete_share=0.15,
        on_event=events.append,
    )
    assert runner.prepare() == [form_id]
    result = runner.run(count=15)
    assert result.failures == 0, [e for e in events if e.kind == "error"]
    assert (
        result.submitted == 15 and result.edits > 0 and result.reviews > 0 and result.deletions > 0
    )
    assert sum(e.kind == "submission" for e in events) == 15
    live = _odata(central, s, pid, form_id, "%24count=true&%24expand=*")
    assert live["@odata.count"] == 15 - result.deletions
    rows = {r["__id"]: r for r in live["value"]}
    assert set(rows) == set(result.instance_ids) - set(result.deleted_ids)
    assert sum(r["__system"]["edits"] for r in rows.values()) == result.edits
    assert {r["__system"]["deviceId"] for r in rows.values()} <= {
        device_id("e2e", i) for i in range(3)
    }
    assert any(
        r["__system"]["reviewState"] in ("approved", "hasIssues", "rejected") for r in rows.values()
    )
    # photos went up with their submissions, and again with each edit
    systems = [r["__system"] for r in rows.values()]
    assert all(x["attachmentsPresent"] == x["attachmentsExpected"] for x in systems)
    assert any(x["attachmentsExpected"] == 1 for x in systems)
    # no <child> element at all when nkids is 0: then Central has no key for it
    assert all(len(r.get("child", [])) == r["nkids"] for r in rows.values())
    deleted = _odata(central, s, pid, form_id, "%24filter=__system%2FdeletedAt%20ne%20null")
    assert {r["__id"] for r in deleted["value"]} == set(result.deleted_ids)


def test_run__app_user_key_at_a_rate(central, project) -> None:
    s, pid, form_id = project
    user = s.post(
        f"{central.url}/v1/projects/{pid}/app-users",
        json={"displayName": "enumerator 1"},
        timeout=30,
    ).json()
    resp = s.post(
        f"{central.url}/v1/projects/{pid}/forms/{form_id}/assignments/app-user/{user['id']}",
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    key = AppUserKey(f"{central.url}/v1/key/{user['token']}/projects/{pid}")
    runner = Enumerators(
        central.url,
        key,
        seed=5,
        rate=20,
        enumerators=2,
        edit_share=0,
        review_share=0,
        delete_share=0,
    )
    result = runner.run(count=6)
    assert (result.submitted, result.failures) == (6, 0)
    assert result.elapsed >= 5 / 20  # the rate paced them
    rows = _odata(central, s, pid, form_id, "")["value"]
    assert {r["__system"]["submitterName"] for r in rows} == {"enumerator 1"}


def test_command__runs_and_prints_a_summary(central, project) -> None:
    _s, pid, form_id = project
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator.enumerators",
            "--url",
            central.url,
            "--email",
            central.email,
            "--project",
            str(pid),
            "--form",
            form_id,
            "--count",
            "4",
            "--seed",
            "cli",
            "--enumerators",
            "2",
        ],
        env={"ENUMERATORS_PASSWORD": central.password, "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sent 4 submissions" in proc.stdout
    assert proc.stdout.count(" submission ") == 4
    assert central.password not in proc.stdout + proc.stderr


# --- the project's own forms -------------------------------------------------------------------

FORMS = sorted((REPO / "forms").glob("*.xlsx"))


def _relevant(elem, path, model, ctx_for, parents) -> bool:
    node = elem
    while node is not None:
        bind = model.binds.get(model_path(node, parents, model))
        if (
            bind is not None
            and bind.relevant
            and not to_bool(evaluate(bind.relevant, ctx_for(node)))
        ):
            return False
        node = parents.get(id(node))
    return True


def model_path(node, parents, model) -> str:
    parts = []
    while node is not None:
        parts.append(node.tag)
        node = parents.get(id(node))
    return "/" + "/".join(reversed(parts))


@pytest.mark.skipif(not FORMS, reason="no XLSForms in forms/")
@pytest.mark.parametrize("xlsx", FORMS, ids=[p.stem for p in FORMS])
def test_build__project_forms_pass_their_own_rules(xlsx: Path) -> None:
    """Every answer passes its constraint, and every relevant required question is
    answered, as Collect would insist, on the forms this project really pushes."""
    runner = Enumerators("http://127.0.0.1:1", WebUser("x@example.org", "x"), 1, seed="rules")
    form_id = runner.add_form(convert(str(xlsx)).xform.encode())
    model = runner.models[form_id]
    for instance_id, filename in model.external.items():
        model.add_csv_instance(instance_id, (xlsx.parent / filename).read_bytes())
    unreadable = 0
    for k in range(25):
        sub = runner.build(k)
        root = answers(sub.xml)
        now = datetime.fromisoformat(root.findtext("end")) if root.find("end") is not None else None
        parents = {id(c): p for p in root.iter() for c in p}

        def ctx_for(node, root=root, parents=parents, now=now):
            return Context(root, node, node, model.instances, parents, model.names, now)

        for elem in root.iter():
            if len(elem):
                continue
            path = model_path(elem, parents, model)
            bind = model.binds.get(path)
            if bind is None:
                continue
            try:  # an expression our evaluator cannot read is not checked
                if elem.text and bind.constraint:
                    assert to_bool(evaluate(bind.constraint, ctx_for(elem))), (path, elem.text)
                if bind.required == "true()" and _relevant(elem, path, model, ctx_for, parents):
                    assert elem.text, (form_id, k, path)
            except XPathError:
                unreadable += 1
    assert unreadable < 25 * 3  # nearly every rule was checked


def test_command__stops_cleanly_on_sigterm(central, project) -> None:
    _s, pid, _form_id = project
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "emulator.enumerators", "--url", central.url,
            "--email", central.email, "--project", str(pid), "--rate", "10",
            "--duration", "600",
        ],
        env={"ENUMERATORS_PASSWORD": central.password, "PATH": "/usr/bin:/bin"},
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # wait for 5 accepted submissions (not a fixed sleep: a real Central is slower)
        accepted = 0
        while accepted < 5:
            line = proc.stdout.readline()
            assert line, f"the enumerators ended early: {proc.stderr.read()}"
            accepted += " 201 " in line
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=30)
        out = rest.splitlines()[-1] if rest.strip() else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    sent = int(re.search(r"sent (\d+) submissions", out).group(1))
    assert sent >= 5


VILLAGES_MD = """
| survey |
| | type | name | label | required | choice_filter |
| | select_one district | district | District | yes | |
| | select_one_from_file villages.csv | village | Village | yes | district=${district} |
| choices |
| | list_name | name | label |
| | district | nurek | Nurek |
| | district | rogun | Rogun |
| | district | khorog | Khorog |
| settings |
| | form_id | version |
| | {form_id} | 1 |
"""
VILLAGES_CSV = (
    "name,label,district\nsarband,Сарбанд,nurek\nobigarm,Обигарм,rogun\nlaur,Лаур,rogun\n"
)


def test_run__reads_csv_media_from_the_manifest(central, project) -> None:
    """select_one_from_file choices come from the form's media, fetched via the manifest;
    the district with no villages listed (khorog) is never chosen."""
    s, pid, _ = project
    form_id = f"villages_{pid}"
    xml = convert(
        VILLAGES_MD.replace("{form_id}", form_id).encode(), file_type=".md", form_name="data"
    ).xform.encode()
    base = f"{central.url}/v1/projects/{pid}/forms"
    assert s.post(base, data=xml, headers={"Content-Type": "application/xml"}, timeout=30).ok
    upload = s.post(
        f"{base}/{form_id}/draft/attachments/villages.csv",
        data=VILLAGES_CSV.encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    assert s.post(f"{base}/{form_id}/draft/publish", timeout=30).status_code == 200
    runner = _web_runner(
        central,
        pid,
        forms=[form_id],
        seed="villages",
        edit_share=0,
        review_share=0,
        delete_share=0,
    )
    result = runner.run(count=8)
    assert (result.submitted, result.failures) == (8, 0)
    rows = _odata(central, s, pid, form_id, "")["value"]
    pairs = {(r["district"], r["village"]) for r in rows}
    assert pairs <= {("nurek", "sarband"), ("rogun", "obigarm"), ("rogun", "laur")}


def test_run__rides_out_central_misbehaving(emulator_central, project) -> None:
    """Like Collect, a device retries a 503, a dropped connection and an expired session."""
    s, pid, form_id = project
    url = emulator_central.url
    rules = [
        {"path": f"/projects/{pid}/submission\\?", "method": "POST", "skip": 1, "times": 2,
         "action": "status", "status": 503},
        {"path": f"/projects/{pid}/submission\\?", "method": "POST", "skip": 5, "times": 1,
         "action": "drop"},
        {"path": f"/projects/{pid}/forms/{form_id}/submissions/", "method": "PATCH", "skip": 0,
         "times": 1, "action": "expire_token"},
    ]  # fmt: skip
    assert requests.post(f"{url}/_emulator/faults", json={"seed": 1, "rules": rules}, timeout=30).ok
    try:
        runner = _web_runner(
            emulator_central,
            pid,
            seed="faults",
            enumerators=2,
            edit_share=0,
            review_share=0.5,
            delete_share=0,
        )
        result = runner.run(count=8)
        fired = [
            r["fired"] for r in requests.get(f"{url}/_emulator/faults", timeout=30).json()["rules"]
        ]
    finally:
        requests.delete(f"{url}/_emulator/faults", timeout=30)
    assert fired == [2, 1, 1]  # every fault really happened
    assert (result.submitted, result.failures) == (8, 0)
    assert result.reviews > 0
    live = _odata(emulator_central, s, pid, form_id, "%24count=true")
    assert live["@odata.count"] == 8


def test_run__same_seed_sends_the_same_submissions(central, fresh_name) -> None:
    """Two projects, one seed: the same instance ids and the same XML arrive in both."""
    s = login(central)
    sent = []
    for suffix in ("a", "b"):
        pid = s.post(
            f"{central.url}/v1/projects", json={"name": f"{fresh_name}{suffix}"}, timeout=30
        ).json()["id"]
        resp = s.post(
            f"{central.url}/v1/projects/{pid}/forms",
            params={"publish": "true"},
            data=household_xform(f"same_{fresh_name}"),
            headers={"Content-Type": "application/xml"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        runner = _web_runner(
            central,
            pid,
            seed="same",
            enumerators=3,
            review_share=0,
            delete_share=0,
            edit_share=0,
        )
        result = runner.run(count=6)
        assert (result.submitted, result.failures) == (6, 0)
        xml = {
            iid: s.get(
                f"{central.url}/v1/projects/{pid}/forms/same_{fresh_name}/submissions/{iid}.xml",
                timeout=30,
            ).content
            for iid in result.instance_ids
        }
        assert all(iid.encode() in body for iid, body in xml.items())
        sent.append(xml)
    assert sent[0] == sent[1]


# --- the XPath the enumerators evaluate -----------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (". >= 0 and . <= 120", True),
        ("/data/age > 16 and selected(/data/needs, 'food')", True),
        ("count-selected(/data/needs) = 2", True),
        ("not(selected(., 'none') and count-selected(.) > 1)", True),
        ("regex(/data/code, '^[A-Z]{2}-[0-9]{4,6}$')", True),
        ("concat(/data/name, '-', string-length(/data/name))", "Зарина-6"),
        ("if(/data/age >= 18, 'adult', 'child')", "adult"),
        ("sum(/data/kid/age) + count(/data/kid)", 15.0),
        ("position(/data/kid[2])", 2.0),
        ("/data/kid[age > 5]/name", "Али"),
        ("instance('districts')/root/item[region = 'sughd']/name", "khujand"),
        ("max(/data/kid/age)", 12.0),
        ("/data/visit <= today()", True),
        ("../age", "33"),
        ("coalesce(/data/missing, 'x')", "x"),
    ],
)
def test_xpath__evaluates_what_pyxform_writes(expr, expected) -> None:
    root = answers(
        "<data><age>33</age><needs>legal food</needs><code>HH-12345</code><name>Зарина</name>"
        "<kid><name>Малика</name><age>1</age></kid><kid><name>Али</name><age>12</age></kid>"
        "<visit>2026-01-01</visit><missing/></data>".encode()
    )
    districts = answers(
        b"<instance><root><item><name>khujand</name><region>sughd</region></item>"
        b"<item><name>kulob</name><region>khatlon</region></item></root></instance>"
    )
    parents = {id(c): p for p in root.iter() for c in p}
    node = root.find("age")
    if "selected(.," in expr:
        node = root.find("needs")
    ctx = Context(
        root,
        node,
        node,
        {"districts": districts},
        parents,
        {},
        datetime.fromisoformat("2026-03-02T10:00:00+05:00"),
    )
    value = evaluate(expr, ctx)
    if isinstance(value, list):  # a node-set: its string value
        value = value[0].text if value else ""
    assert value == expected


def test_run__picks_up_a_new_form_version(central, project) -> None:
    """With ``refresh``, a version published mid-run gets filled, as Collect's form
    auto-update does; submissions before it keep the old version."""
    s, pid, form_id = project
    events = []
    after_refresh = threading.Semaphore(0)  # one release per submission sent after the refresh

    first_sent = threading.Event()

    def on_event(e) -> None:
        events.append(e)
        if e.status in (200, 201):
            first_sent.set()
        if e.status in (200, 201) and any(x.kind == "forms" for x in events):
            after_refresh.release()

    runner = _web_runner(
        central,
        pid,
        seed="versions",
        rate=12,
        enumerators=2,
        edit_share=0,
        review_share=0,
        delete_share=0,
        refresh=0.3,
        on_event=on_event,
    )
    runner.prepare()
    results = []
    running = threading.Thread(target=lambda: results.append(runner.run(duration=120)))
    running.start()
    try:
        # publish while it runs (after its first submission), then wait for the enumerators
        # to see the new version and send with it: events, not sleeps (a real Central is slow)
        assert first_sent.wait(90), "no submission accepted"
        v2 = household_xform(form_id).replace(b'version="1"', b'version="2"')
        base = f"{central.url}/v1/projects/{pid}/forms/{form_id}"
        assert s.post(
            f"{base}/draft", data=v2, headers={"Content-Type": "application/xml"}, timeout=30
        ).ok
        assert s.post(f"{base}/draft/publish", timeout=30).ok
        for _ in range(4):
            assert after_refresh.acquire(timeout=90), "no submission after the new version"
    finally:
        runner.stop()
        running.join()
    result = results[0]
    assert result.failures == 0, [e for e in events if e.kind == "error"]
    assert any(e.kind == "forms" for e in events)
    versions = [r["__system"]["formVersion"] for r in _odata(central, s, pid, form_id, "")["value"]]
    assert "1" in versions and "2" in versions
