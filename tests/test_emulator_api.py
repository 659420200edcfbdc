"""The emulator behaves as Central where the golden files do not reach: de-duplication and
edits over OpenRosa, delete/restore and updatedAt, paging that new arrivals do not shift,
app-user revocation, and bad requests answered with Central's codes, never a 500.

These run against a real Central too (COLLECTOR_TEST_CENTRAL_URL); only the control-route
checks need the emulator.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from emulator.control import EmulatorControl
from tests.conftest import CentralTarget
from tests.emulator_support import XLSX, Setup, setup_form, submission
from tests.golden_forms import xlsx_bytes


@pytest.fixture
def s(central: CentralTarget, fresh_name: str) -> Setup:
    return setup_form(central, fresh_name)


def openrosa(s: Setup, xml: bytes, files: dict | None = None) -> requests.Response:
    parts = {"xml_submission_file": ("s.xml", xml, "text/xml"), **(files or {})}
    return s.http.post(
        f"{s.url}/v1/projects/{s.project_id}/submission",
        files=parts,
        headers={"X-OpenRosa-Version": "1.0"},
        timeout=30,
    )


def test_resubmission_rules_identical_changed_deleted(s: Setup) -> None:
    iid = s.submit("first")
    again = openrosa(s, submission(s.form_id, iid, "first"))
    assert again.status_code == 201  # identical: accepted again
    changed = openrosa(s, submission(s.form_id, iid, "other"))
    assert changed.status_code == 409
    assert "different XML" in changed.text
    assert s.http.delete(f"{s.form_path}/submissions/{iid}", timeout=30).status_code == 200
    after_delete = openrosa(s, submission(s.form_id, iid, "first"))
    assert after_delete.status_code == 409
    assert s.odata("?$count=true").json()["@odata.count"] == 0


def test_xlsform_errors_carry_pyxforms_message(s: Setup) -> None:
    broken = xlsx_bytes({"survey": [["type", "name", "label"], ["no_such_type", "q", "Q"]]})
    r = s.http.post(
        f"{s.url}/v1/projects/{s.project_id}/forms?ignoreWarnings=true",
        data=broken,
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": "broken"},
        timeout=30,
    )
    assert (r.status_code, r.json()["code"]) == (400, 400.15)
    assert "no_such_type" in r.json()["details"]["error"]


def test_submission_xml_is_the_current_version(s: Setup) -> None:
    iid = s.submit("first words")
    assert "first words" in s.http.get(f"{s.form_path}/submissions/{iid}.xml", timeout=30).text


def test_edit_over_openrosa_keeps_the_logical_id(s: Setup) -> None:
    iid = s.submit("before")
    new = f"uuid:{uuid.uuid4()}"
    r = openrosa(s, submission(s.form_id, new, "after", deprecated=iid))
    assert r.status_code == 201, r.text
    row = s.odata().json()["value"][0]
    assert row["__id"] == iid and row["name"] == "after"
    assert row["meta"]["instanceID"] == new
    assert row["__system"]["edits"] == 1 and row["__system"]["reviewState"] == "edited"
    stale = openrosa(s, submission(s.form_id, f"uuid:{uuid.uuid4()}", "x", deprecated=iid))
    assert stale.status_code == 409  # editing an old version: 409.9
    rest = s.http.get(f"{s.form_path}/submissions/{iid}", timeout=30).json()
    assert rest["currentVersion"]["instanceId"] == new


def test_review_bumps_updated_at_but_delete_and_restore_do_not(s: Setup) -> None:
    iid = s.submit()
    assert s.odata().json()["value"][0]["__system"]["updatedAt"] is None
    s.http.patch(f"{s.form_path}/submissions/{iid}", json={"reviewState": "hasIssues"}, timeout=30)
    reviewed = s.odata().json()["value"][0]["__system"]["updatedAt"]
    assert reviewed is not None
    time.sleep(0.01)
    assert s.http.delete(f"{s.form_path}/submissions/{iid}", timeout=30).status_code == 200
    deleted = s.odata("?$filter=__system/deletedAt ne null").json()["value"]
    assert [r["__id"] for r in deleted] == [iid]
    assert deleted[0]["__system"]["updatedAt"] == reviewed
    assert s.odata().json()["value"] == []
    listed = s.http.get(f"{s.form_path}/submissions?deleted=true", timeout=30).json()
    assert [x["instanceId"] for x in listed] == [iid]
    assert s.http.post(f"{s.form_path}/submissions/{iid}/restore", timeout=30).status_code == 200
    back = s.odata().json()["value"][0]["__system"]
    assert back["deletedAt"] is None and back["updatedAt"] == reviewed


def test_skiptoken_pages_do_not_shift_when_submissions_arrive(s: Setup) -> None:
    ids = [s.submit(f"n{i}") for i in range(5)]
    first = s.odata("?$top=2").json()
    assert [r["__id"] for r in first["value"]] == ids[::-1][:2]
    s.submit("late arrival")  # newer than everything: must not push rows into page 2
    nxt = first["@odata.nextLink"]
    assert "%24skiptoken=01" in nxt
    second = s.http.get(nxt, timeout=30).json()
    assert [r["__id"] for r in second["value"]] == ids[::-1][2:4]
    third = s.http.get(second["@odata.nextLink"], timeout=30).json()
    assert [r["__id"] for r in third["value"]] == [ids[0]]
    assert "@odata.nextLink" not in third


def test_filter_on_updated_at_finds_changes_and_new_rows(s: Setup) -> None:
    old = s.submit("old")
    time.sleep(0.02)
    mark = s.odata().json()["value"][0]["__system"]["submissionDate"]
    time.sleep(0.02)
    s.http.patch(f"{s.form_path}/submissions/{old}", json={"reviewState": "approved"}, timeout=30)
    new = s.submit("new")
    flt = f"?$filter=__system/submissionDate gt {mark} or __system/updatedAt gt {mark}"
    got = {r["__id"] for r in s.odata(flt).json()["value"]}
    assert got == {old, new}


def test_app_user_key_is_refused_after_revoke_and_delete(s: Setup) -> None:
    base = f"{s.url}/v1/projects/{s.project_id}"
    users = []
    for name in ("a", "b"):
        u = s.http.post(f"{base}/app-users", json={"displayName": name}, timeout=30).json()
        assert s.http.post(f"{s.form_path}/assignments/app-user/{u['id']}", timeout=30).ok
        users.append(u)
    key = f"{s.url}/v1/key/{{}}/projects/{s.project_id}/formList"
    hdr = {"X-OpenRosa-Version": "1.0"}
    stranger = s.http.post(f"{base}/app-users", json={"displayName": "c"}, timeout=30).json()
    as_stranger = requests.post(
        f"{s.url}/v1/key/{stranger['token']}/projects/{s.project_id}/submission",
        files={"xml_submission_file": ("s.xml", submission(s.form_id, "uuid:x1", "x"), "text/xml")},
        headers=hdr,
        timeout=30,
    )
    assert as_stranger.status_code == 401  # not assigned: 403.1 made 401.2 (forceAuthFailed)
    assert (
        "<formID>" not in requests.get(key.format(stranger["token"]), headers=hdr, timeout=30).text
    )
    assert requests.get(key.format(users[0]["token"]), headers=hdr, timeout=30).status_code == 200
    assert s.http.delete(f"{s.url}/v1/sessions/{users[0]['token']}", timeout=30).ok
    assert requests.get(key.format(users[0]["token"]), headers=hdr, timeout=30).status_code == 403
    listed = {u["id"]: u for u in s.http.get(f"{base}/app-users", timeout=30).json()}
    assert listed[users[0]["id"]]["token"] is None
    assert s.http.delete(f"{base}/app-users/{users[1]['id']}", timeout=30).ok
    assert requests.get(key.format(users[1]["token"]), headers=hdr, timeout=30).status_code == 403


def test_versions_keep_their_own_definition(s: Setup) -> None:
    from tests.golden_forms import golden_xlsx

    r = s.http.post(
        f"{s.form_path}/draft?ignoreWarnings=true",
        data=golden_xlsx("2"),
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": s.form_id},
        timeout=30,
    )
    assert r.ok, r.text
    again = s.http.post(f"{s.form_path}/draft/publish?version=1", timeout=30)
    assert (again.status_code, again.json()["code"]) == (409, 409.6)
    assert s.http.post(f"{s.form_path}/draft/publish?version=2b", timeout=30).ok
    versions = [v["version"] for v in s.http.get(f"{s.form_path}/versions", timeout=30).json()]
    assert versions == ["2b", "1"]
    xml = s.http.get(f"{s.form_path}/versions/2b.xml", timeout=30).text
    assert 'version="2b"' in xml
    assert 'version="1"' in s.http.get(f"{s.form_path}/versions/1.xml", timeout=30).text
    assert (
        s.http.get(f"{s.form_path}/versions/1/fields?odata=true", timeout=30).json()[0]["name"]
        == "name"
    )
    s.submit("old version still accepted", version="1")
    s.submit("new version", version="2b")
    assert {r["__system"]["formVersion"] for r in s.odata().json()["value"]} == {"1", "2b"}


def test_form_media_upload_manifest_and_unexpected_name(
    central: CentralTarget, fresh_name: str
) -> None:
    from tests.test_pyodk_against_emulator import household_xlsx

    s = setup_form(central, fresh_name)
    base = f"{s.url}/v1/projects/{s.project_id}/forms"
    fid = f"hh_{fresh_name}"
    r = s.http.post(
        f"{base}?ignoreWarnings=true",
        data=household_xlsx("1"),
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": fid},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["publishedAt"] is None
    listed = s.http.get(f"{base}/{fid}/draft/attachments", timeout=30).json()
    assert [(a["name"], a["exists"]) for a in listed] == [("villages.csv", False)]
    nope = s.http.post(f"{base}/{fid}/draft/attachments/other.csv", data=b"x", timeout=30)
    assert (nope.status_code, nope.json()["code"]) == (404, 404.1)
    ok = s.http.post(
        f"{base}/{fid}/draft/attachments/villages.csv", data=b"name,label\n", timeout=30
    )
    assert ok.status_code == 200
    assert s.http.post(f"{base}/{fid}/draft/publish", timeout=30).ok
    form_list = s.http.get(
        f"{s.url}/v1/projects/{s.project_id}/formList",
        headers={"X-OpenRosa-Version": "1.0"},
        timeout=30,
    ).text
    assert f"/forms/{fid}/manifest</manifestUrl>" in form_list
    manifest = s.http.get(
        f"{base}/{fid}/manifest", headers={"X-OpenRosa-Version": "1.0"}, timeout=30
    )
    assert "<filename>villages.csv</filename>" in manifest.text
    media = s.http.get(f"{base}/{fid}/attachments/villages.csv", timeout=30)
    assert media.content == b"name,label\n"


BAD_REQUESTS = [
    # (method, path under the form or absolute (starts with /v1), kwargs, status, code)
    # (what the real Central answered; test_central_fidelity.py names the source of each)
    ("POST", "/v1/sessions", {"data": b"{not json"}, 400, 400.3),  # not application/json
    (
        "POST",
        "/v1/sessions",
        {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        400.1,
    ),
    ("POST", "/v1/sessions", {"json": ["a"]}, 400, 400.3),
    ("GET", "/v1/projects/abc", {}, 400, 400.11),
    ("GET", "/v1/projects/99999999999999999999999", {}, 400, 400.22),
    ("GET", "/v1/no/such/route", {}, 404, 404.1),
    ("POST", "/v1/projects", {"json": {}}, 400, 400.2),
    (
        "POST",
        "{P}/forms",
        {"data": b"<not xml", "headers": {"Content-Type": "application/xml"}},
        400,
        400.2,
    ),
    ("POST", "{P}/forms", {"data": b"garbage", "headers": {"Content-Type": XLSX}}, 400, 400.15),
    ("GET", "{F}/submissions/uuid:nope", {}, 404, 404.1),
    ("PATCH", "{F}/submissions/{I}", {"json": {"reviewState": "lovely"}}, 400, 400.8),
    (
        "PATCH",
        "{F}/submissions/{I}",
        {"data": b"[[[", "headers": {"Content-Type": "application/json"}},
        400,
        400.1,
    ),
    ("PUT", "{F}/submissions/{I}", {"data": b"<data id='x'><meta/></data>"}, 400, 400.8),
    ("PUT", "{F}/submissions/{I}", {"data": b"<data id='{FID}'><meta/></data>"}, 400, 400.19),
    ("POST", "{F}/submissions/{I}/comments", {"json": {}}, 400, 400.2),
    ("POST", "{F}/draft/publish", {}, 404, 404.1),
    ("GET", "{F}.svc/Submissions?$skiptoken=01!!!", {}, 400, 400.35),
    ("GET", "{F}.svc/Submissions?$skiptoken=01" + "eyJ4IjoxfQ==", {}, 400, 400.35),
    ("GET", "{F}.svc/Submissions?$expand=child", {}, 501, 501.6),
    ("GET", "{F}.svc/Submissions?$expand=*&$select=name", {}, 501, 501.11),
    ("GET", "{F}.svc/Submissions?$orderby=__id&$skiptoken=01e30=", {}, 501, 501.1),
    ("GET", "{F}.svc/Submissions?$filter=name eq 'x'", {}, 501, 501.5),
    ("GET", "{F}.svc/Submissions?$filter=__system/submissionDate gt", {}, 400, 400.18),
    ("GET", "{F}.svc/Submissions?$select=nope", {}, 400, 400.23),
    ("GET", "{F}.svc/Nope", {}, 404, 404.1),
    ("GET", "{F}.svc/Submissions('uuid:nope')", {}, 404, 404.1),
    ("GET", "/v1/projects/{PID}/forms/nope.svc/Submissions", {}, 404, 404.1),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), BAD_REQUESTS)
def test_bad_requests_get_centrals_codes(
    central: CentralTarget, s: Setup, method: str, path: str, kwargs: dict, status: int, code: float
) -> None:
    iid = s.submit()
    url = s.url + path.format(
        P=f"/v1/projects/{s.project_id}",
        F=f"/v1/projects/{s.project_id}/forms/{s.form_id}",
        I=iid,
        PID=s.project_id,
    )
    if "data" in kwargs and b"{FID}" in kwargs["data"]:
        kwargs = {**kwargs, "data": kwargs["data"].replace(b"{FID}", s.form_id.encode())}
    if "eyJ4IjoxfQ" in path and not central.is_emulator:
        # A well-formed base64 skiptoken with the wrong keys: the real Central answers 500
        # (its bug: lib/util/db.js parseSkiptoken accepts any JSON object); the emulator keeps
        # Central's 400.35 for a token it cannot read.
        pytest.xfail("Central answers 500 to a skiptoken with the wrong keys (Central's bug)")
    r = s.http.request(method, url, timeout=30, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"]


OPENROSA_BAD = [
    ({"headers": {}}, 400, "X-OpenRosa-Version"),
    ({"data": b"plain"}, 400, "xml_submission_file"),
    ({"files": {"other": ("a", b"b")}}, 400, "xml_submission_file"),
    # multipart garbage is JSON 400.39: test_central_fidelity.py
    (
        {"files": {"xml_submission_file": ("s.xml", b"<broken", "text/xml")}},
        400,
        "Required parameter form ID xml attribute missing.",
    ),
    (
        {"files": {"xml_submission_file": ("s.xml", b'<data id="nope"/>', "text/xml")}},
        404,
        "Could not find",
    ),
]


@pytest.mark.parametrize(("kwargs", "status", "text"), OPENROSA_BAD)
def test_bad_openrosa_submissions_get_xml_errors(
    s: Setup, kwargs: dict, status: int, text: str
) -> None:
    headers = kwargs.pop("headers", {"X-OpenRosa-Version": "1.0"})
    r = s.http.post(
        f"{s.url}/v1/projects/{s.project_id}/submission", headers=headers, timeout=30, **kwargs
    )
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("text/xml")
    assert 'nature="error"' in r.text and text in r.text


def test_expired_and_logged_out_tokens_are_401(central: CentralTarget, s: Setup) -> None:
    assert s.http.delete(f"{s.url}/v1/sessions/current", timeout=30).ok
    r = s.http.get(f"{s.url}/v1/projects", timeout=30)
    assert (r.status_code, r.json()["code"]) == (401, 401.2)


def test_backdated_submission_and_truth(emulator_central: CentralTarget, s: Setup) -> None:
    ctl = EmulatorControl(emulator_central.url)
    recent = s.submit("recent")
    late = f"uuid:{uuid.uuid4()}"
    out = ctl.backdated_submission(
        s.project_id,
        s.form_id,
        submission(s.form_id, late, "late").decode(),
        "2020-01-02T03:04:05Z",
    )
    assert out["submissionDate"] == "2020-01-02T03:04:05.000Z"
    rows = s.odata().json()["value"]
    assert [r["__id"] for r in rows] == [recent, late]  # ordered by submissionDate
    assert rows[1]["__system"]["submissionDate"] == "2020-01-02T03:04:05.000Z"
    s.http.delete(f"{s.form_path}/submissions/{recent}", timeout=30)
    truth = {t["instanceId"]: t for t in ctl.truth(s.project_id, s.form_id)}
    assert set(truth) == {recent, late}
    assert truth[recent]["deletedAt"] is not None and truth[late]["deletedAt"] is None
    assert len(truth[late]["xmlSha256"]) == 64
    many = [
        (
            submission(s.form_id, f"uuid:{uuid.uuid4()}", f"bulk {i}").decode(),
            f"2021-03-0{i + 1}T00:00:00Z",
        )
        for i in range(5)
    ]
    assert ctl.backdated_submissions(s.project_id, s.form_id, many) == 5
    assert s.odata("?$count=true&$top=0").json()["@odata.count"] == 6


def test_repeat_table_pages_by_repeat_id(s: Setup) -> None:
    for i in range(3):
        iid = f"uuid:{uuid.uuid4()}"
        xml = submission(s.form_id, iid, f"n{i}").replace(
            b"</child>", b"</child><child><child_age>9</child_age></child>", 1
        )
        assert openrosa(s, xml).status_code == 201
    table = f"{s.form_path}.svc/Submissions.child"
    everything = s.http.get(table, timeout=30).json()["value"]
    assert len(everything) == 6
    seen, url = [], f"{table}?$top=4&$count=true"
    while url:
        page = s.http.get(url, timeout=30).json()
        assert page["@odata.count"] == 6
        seen += page["value"]
        url = page.get("@odata.nextLink")
        assert url is None or "%24skiptoken=01" in url
    assert seen == everything
    gone = s.http.get(f"{table}?$skiptoken=01eyJyZXBlYXRJZCI6Im5vcGUifQ==", timeout=30)
    assert (gone.status_code, gone.json()["code"]) == (400, 400.34)


def test_select_without_id_leaves_it_out(s: Setup) -> None:
    s.submit("only the name")
    assert s.odata("?$select=name").json()["value"] == [{"name": "only the name"}]
    assert list(s.odata("?$select=__id,name").json()["value"][0]) == ["name", "__id"]


def test_orderby_sorts_with_nulls_as_postgresql(s: Setup) -> None:
    a, b, c = s.submit("a"), s.submit("b"), s.submit("c")
    s.http.patch(f"{s.form_path}/submissions/{a}", json={"reviewState": "approved"}, timeout=30)
    time.sleep(0.005)
    s.http.patch(f"{s.form_path}/submissions/{c}", json={"reviewState": "approved"}, timeout=30)
    asc = [r["__id"] for r in s.odata("?$orderby=__system/updatedAt asc").json()["value"]]
    assert asc == [b, a, c]  # ASC NULLS FIRST (lib/data/odata-filter.js odataOrderBy)
    desc = [r["__id"] for r in s.odata("?$orderby=__system/updatedAt desc").json()["value"]]
    assert desc == [c, a, b]  # DESC NULLS LAST
    paged = s.odata("?$orderby=__system/updatedAt asc&$top=2").json()
    assert [r["__id"] for r in paged["value"]] == asc[:2]
    # the real Central's nextLink carries a $skiptoken it then refuses beside $orderby
    nxt = s.http.get(paged["@odata.nextLink"], timeout=30)
    assert (nxt.status_code, nxt.json()["code"]) == (501, 501.1)
    bad = s.odata("?$orderby=name")
    assert (bad.status_code, bad.json()["code"]) == (501, 501.5)  # unsupportedODataField


def test_openrosa_routes_require_the_version_header(s: Setup) -> None:
    for path in ("formList", f"forms/{s.form_id}/manifest"):
        r = s.http.get(f"{s.url}/v1/projects/{s.project_id}/{path}", timeout=30)
        assert r.status_code == 400 and "X-OpenRosa-Version" in r.text, path
        assert r.headers["Content-Type"].startswith("text/xml")
