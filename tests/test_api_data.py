"""The API over a store synced from the emulator: lists, filters, cursors, one submission,
exports, indicators with small-cell suppression, reviews, sync status, errors, auth."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time

import openpyxl
import pytest
import requests
import sqlalchemy as sa

from collector import store
from collector.read.exports import ExportSpec, csv_chunks, geojson_chunks
from collector.read.forminfo import Scope, form_info
from collector.read.queries import SubmissionFilter
from collector.sync import submissions as sync
from tests.api_fixtures import (
    HOME_DISTRICT,
    MARK_AGE_HOME,
    MARK_AGE_OTHER,
    MARK_HOME,
    MARK_OTHER,
    OTHER_DISTRICT,
    PLANTED_DEVICE,
    RARE_DISTRICT,
    all_pages,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

TAMPERED = base64.urlsafe_b64encode(b'{"s":"-submitted_at","v":"x","i":1}').decode()


def live_count(engine, form: str, district: str | None = None) -> int:
    sub, f = store.T["submission"], store.T["form"]
    q = (
        sa.select(sa.func.count())
        .select_from(sub.join(f, f.c.id == sub.c.form_id))
        .where(f.c.xml_form_id == form, sub.c.deleted_at.is_(None))
    )
    if district:
        q = q.where(sub.c.district == district)
    with engine.connect() as c:
        return c.execute(q).scalar_one()


def test_api__cursor_pages_cover_every_submission_once_in_order(api):
    n = live_count(api.synced.engine, "household_visit")
    for sort in ("-submitted_at", "submitted_at", "visit__respondent_age", "-district"):
        items = all_pages(api, "analyst", "household_visit", limit=7, sort=sort)
        ids = [i["instance_id"] for i in items]
        assert len(ids) == n and len(set(ids)) == n, sort
    items = all_pages(api, "analyst", "household_visit", limit=5, sort="visit__respondent_age")
    ages = [i["values"]["visit__respondent_age"] for i in items]
    present = [a for a in ages if a is not None]
    assert present == sorted(present) and ages[len(present) :] == [None] * (
        len(ages) - len(present)
    )


def test_api__filters_by_district_field_and_date(api):
    e = api.synced.engine
    items = all_pages(api, "analyst", "household_visit", district=HOME_DISTRICT, limit=50)
    assert len(items) == live_count(e, "household_visit", HOME_DISTRICT)
    assert {i["district"] for i in items} == {HOME_DISTRICT}
    ages = {i["values"]["visit__respondent_age"] for i in items}
    assert MARK_AGE_HOME in ages and MARK_AGE_OTHER not in ages
    marked = all_pages(
        api, "analyst", "household_visit", where=f"respondent_age:eq:{MARK_AGE_HOME}"
    )
    assert [i["district"] for i in marked] == [HOME_DISTRICT]
    # household_id identifies a household (SEC-13): managers only
    assert all("visit__household_id" not in i["values"] for i in items)
    r = api.get("/v1/forms/household_visit/submissions", "analyst", fields="visit/household_id")
    assert r.status_code == 403 and "household_id" in r.text, r.text
    managed = all_pages(api, "manager", "household_visit", district=HOME_DISTRICT, limit=50)
    assert MARK_HOME in {i["values"]["visit__household_id"] for i in managed}
    old = all_pages(api, "analyst", "household_visit", where="visit__respondent_age:gte:30")
    assert old and all(i["values"]["visit__respondent_age"] >= 30 for i in old)
    young = all_pages(api, "analyst", "household_visit", where="respondent_age:lt:30")
    assert len(old) + len(young) <= live_count(e, "household_visit")
    both = all_pages(
        api, "analyst", "household_visit", where=["respondent_age:gte:30", "consent:eq:yes"]
    )
    assert all(i["values"]["consent"] == "yes" for i in both)
    has = all_pages(api, "analyst", "household_visit", where="referrals:has:legal|health")
    assert has
    assert all({"legal", "health"} & set(i["values"]["visit__referrals"]) for i in has)
    assert all_pages(api, "analyst", "household_visit", to="2000-01-01") == []
    # what is left of deleted submissions is for managers only (SEC-6)
    for path in ("submissions", "export.csv"):
        r = api.get(f"/v1/forms/household_visit/{path}", "analyst", include_deleted="true")
        assert r.status_code == 403 and "include_deleted" in r.text, r.text
    r = api.get("/v1/forms/household_visit/submissions", "manager", include_deleted="true")
    assert r.status_code == 200, r.text
    assert len(
        all_pages(api, "analyst", "household_visit", **{"from": "2000-01-01"})
    ) == live_count(e, "household_visit")


def test_api__one_submission_with_repeats_and_labels(api):
    iid = api.synced.planted["roundtable"][0]
    r = api.get(f"/v1/forms/roundtable/submissions/{iid}", "manager", lang="ru")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["instance_id"] == iid and body["district"] == HOME_DISTRICT
    assert body["repeats"]["speakers"][0]["values"]["speaker_name"].startswith("PLANTSPEAKER")
    spec = api.synced.specs["roundtable"]
    ru = next(
        c.labels["ru"]
        for c in spec.choices
        if (c.list_name, c.value) == ("district", HOME_DISTRICT)
    )
    assert body["labels"]["district"] == ru != HOME_DISTRICT
    r = api.get(f"/v1/forms/roundtable/submissions/{iid}", "analyst")
    assert "speaker_name" not in r.json()["repeats"]["speakers"][0]["values"]


def test_api__bad_input_is_422_naming_parameter_and_value_unknown_is_404(api):
    cases = [
        ("/v1/forms/household_visit/submissions", {"limit": "abc"}, 422, "limit"),
        ("/v1/forms/household_visit/submissions", {"limit": "100000"}, 422, "limit"),
        ("/v1/forms/household_visit/submissions", {"from": "yesterday"}, 422, "yesterday"),
        ("/v1/forms/household_visit/submissions", {"where": "respondent_age:gte:old"}, 422, "old"),
        ("/v1/forms/household_visit/submissions", {"where": "respondent_age~3"}, 422, "where"),
        ("/v1/forms/household_visit/submissions", {"cursor": "garbage"}, 422, "cursor"),
        ("/v1/forms/household_visit/submissions", {"cursor": TAMPERED}, 422, "cursor"),
        ("/v1/forms/household_visit/submissions", {"district": "ku\x00lob"}, 422, "NUL"),
        ("/v1/forms/house\x00hold/submissions", {}, 422, "NUL"),
        (
            "/v1/forms/household_visit/submissions",
            {"where": "respondent_age:gt:" + "9" * 30},
            422,
            "9" * 30,
        ),
        (
            "/v1/forms/household_visit/submissions",
            {"where": "last_remittance_amount:lt:nan"},
            422,
            "nan",
        ),
        ("/v1/forms/household_visit/submissions", {"lang": "fr"}, 422, "lang"),
        ("/v1/forms/household_visit/submissions", {"review_state": "done"}, 422, "review_state"),
        ("/v1/forms/household_visit/submissions", {"where": "no_such:eq:1"}, 404, "no_such"),
        ("/v1/forms/household_visit/submissions", {"sort": "no_such"}, 404, "no_such"),
        ("/v1/forms/no_such_form/submissions", {}, 404, "no_such_form"),
        ("/v1/forms/household_visit/submissions/uuid:nope", {}, 404, "uuid:nope"),
        ("/v1/forms/household_visit/export.csv", {"repeat": "nope"}, 404, "nope"),
        ("/v1/indicators/nope", {}, 404, "nope"),
        ("/v1/indicators/home_visits", {"by": "village"}, 422, "village"),
        ("/v1/indicators/home_visits", {"period": "fortnight"}, 422, "fortnight"),
    ]
    for path, params, status, named in cases:
        r = api.get(path, "manager", **params)
        assert r.status_code == status, (path, params, r.status_code, r.text)
        assert named in r.json()["detail"], (path, params, r.text)


def test_api__auth_roles_and_withheld_fields(api):
    assert api.get("/v1/forms", None).status_code == 401
    r = api.get("/v1/forms", None)
    assert r.headers["www-authenticate"] == "Bearer"
    assert api.get("/v1/forms", "viewer").status_code == 200
    assert api.get("/v1/forms/household_visit/submissions", "viewer").status_code == 403
    assert api.get("/v1/keys", "manager").status_code == 403
    assert api.get("/v1/keys", "admin").status_code == 200
    for params in (
        {"where": "respondent_name:eq:x"},
        {"sort": "respondent_phone"},
        {"fields": "respondent_name"},
    ):
        r = api.get("/v1/forms/household_visit/submissions", "analyst", **params)
        assert r.status_code == 403, (params, r.text)
    r = api.get("/v1/forms/household_visit/export.geojson", "analyst")
    assert r.status_code == 403 and "gps" in r.json()["detail"]


def test_api__exports_stream_csv_xlsx_geojson_with_labels(api):
    n_home = live_count(api.synced.engine, "household_visit", HOME_DISTRICT)
    r = api.get(
        "/v1/forms/household_visit/export.csv", "analyst", district=HOME_DISTRICT, lang="tg"
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == n_home
    assert "visit__respondent_name" not in rows[0] and "visit__household_id" not in rows[0]
    assert str(MARK_AGE_HOME) in {row["visit__respondent_age"] for row in rows}
    tg_home = next(
        c.labels["tg"]
        for c in api.synced.specs["household_visit"].choices
        if (c.list_name, c.value) == ("district", HOME_DISTRICT)
    )
    assert {row["visit__district"] for row in rows} == {tg_home} != {HOME_DISTRICT}
    r = api.get("/v1/forms/household_visit/export.xlsx", "manager")
    assert r.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)["household_visit"]
    table = list(ws.iter_rows(values_only=True))
    assert len(table) - 1 == live_count(api.synced.engine, "household_visit")
    assert "visit__respondent_name" in table[0] and "visit__household_id" in table[0]
    r = api.get("/v1/forms/household_visit/export.csv", "analyst", repeat="children")
    assert r.status_code == 200
    kids = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert kids and {"row_id", "child_age"} <= set(kids[0])
    r = api.get("/v1/forms/household_visit/export.geojson", "manager", district=HOME_DISTRICT)
    geo = json.loads(r.content)
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == n_home
    lon, lat = geo["features"][0]["geometry"]["coordinates"][:2]
    assert 36 < lat < 41.5 and 67 < lon < 75.5


def test_api__small_cell_suppressed_for_viewer_shown_to_manager(api):
    params = {"by": "district", "period": "none"}
    viewer = api.get("/v1/indicators/home_visits", "viewer", **params).json()
    manager = api.get("/v1/indicators/home_visits", "manager", **params).json()
    cell = lambda body: next(c for c in body["cells"] if c["keys"]["district"] == RARE_DISTRICT)  # noqa: E731
    assert cell(manager) == {
        "keys": {"district": RARE_DISTRICT},
        "labels": None,
        "value": 2,
        "suppressed": False,
    }
    assert cell(viewer)["suppressed"] is True and cell(viewer)["value"] is None
    assert viewer["suppression_threshold"] == 5 and manager["suppression_threshold"] is None
    shown = [c["value"] for c in viewer["cells"] if not c["suppressed"]]
    assert all(v == 0 or v >= 5 for v in shown)
    # counts that are not people (roundtables held) are never suppressed
    held = api.get("/v1/indicators/roundtables_held", "viewer", **params).json()
    assert not any(c["suppressed"] for c in held["cells"])


@pytest.mark.parametrize(
    "indicator",
    ["ic_people_reached", "roundtable_participants", "awareness_audience", "referrals_made"],
)
def test_api__indicators_break_down_and_add_up(api, indicator):
    listed = {i["id"]: i for i in api.get("/v1/indicators", "viewer").json()}
    assert listed[indicator]["formula"]
    for b in listed[indicator]["breakdowns"]:
        r = api.get(f"/v1/indicators/{indicator}", "manager", by=b, period="month", lang="ru")
        assert r.status_code == 200, (b, r.text)
        assert all(b in c["keys"] and "period" in c["keys"] for c in r.json()["cells"])
    if indicator != "ic_people_reached":  # by topic a person counts under each topic
        total = api.get(f"/v1/indicators/{indicator}", "manager", period="none").json()["cells"]
        for b in listed[indicator]["breakdowns"]:
            split = api.get(f"/v1/indicators/{indicator}", "manager", by=b, period="none").json()
            assert sum(c["value"] for c in split["cells"]) == sum(c["value"] for c in total), b


def test_api__district_key_sees_only_its_district(api):
    items = all_pages(api, "analyst-home", "household_visit")
    assert items and {i["district"] for i in items} == {HOME_DISTRICT}
    iid_other = api.synced.planted["household_visit"][1]
    r = api.get(f"/v1/forms/household_visit/submissions/{iid_other}", "analyst-home")
    assert r.status_code == 404
    r = api.get("/v1/forms/household_visit/submissions", "analyst-home", district=OTHER_DISTRICT)
    assert r.json()["items"] == []
    cells = api.get(
        "/v1/indicators/home_visits", "viewer-home", by="district", period="none"
    ).json()["cells"]
    assert {c["keys"]["district"] for c in cells} <= {HOME_DISTRICT}


def test_api__manager_reads_of_sensitive_values_are_audited(api):
    audit = store.T["audit_log"]
    with api.synced.engine.connect() as c:
        before = c.execute(sa.select(sa.func.count()).select_from(audit)).scalar_one()
    iid = api.synced.planted["household_visit"][0]
    assert api.get(f"/v1/forms/household_visit/submissions/{iid}", "manager").status_code == 200
    assert api.get("/v1/forms/household_visit/submissions/" + iid, "analyst").status_code == 200
    with api.synced.engine.connect() as c:
        rows = c.execute(sa.select(audit).where(audit.c.id > 0).order_by(audit.c.id)).all()[before:]
    assert len(rows) == 1 and rows[0].instance_id == iid and rows[0].action == "read"
    assert "visit__respondent_name" in rows[0].fields


def test_api__sync_status_per_form(api):
    # exact counts from analyst up; a viewer's are protected (test_indicator_lattice_attack)
    body = api.get("/v1/sync/status", "analyst").json()
    forms = {f["form_id"]: f for f in body}
    assert set(forms) >= {"household_visit", "roundtable"}
    hv = forms["household_visit"]
    assert hv["last_run"]["status"] == "ok" and hv["watermark"] and hv["lag_seconds"] >= 0
    assert hv["submissions"] == live_count(api.synced.engine, "household_visit")
    assert hv["last_run"]["fetched"] is not None
    # a district-limited key learns nothing of the other districts' volumes (SEC-8)
    home = {f["form_id"]: f for f in api.get("/v1/sync/status", "analyst-home").json()}
    run = home["household_visit"]["last_run"]
    assert (run["fetched"], run["written"], run["deleted"]) == (None, None, None)
    assert home["household_visit"]["submissions"] == live_count(
        api.synced.engine, "household_visit", HOME_DISTRICT
    )


def test_api__review_goes_to_central_and_shows_in_both_after_sync(api):
    s = api.synced
    iid = s.planted["household_visit"][2]
    path = f"/v1/forms/household_visit/submissions/{iid}/review"
    body = {"review_state": "hasIssues", "comment": "age looks wrong; call back"}
    assert api.post(path, "analyst", json=body).status_code == 403
    assert api.post(path, "manager", json={"review_state": "edited"}).status_code == 422
    assert (
        api.post(
            "/v1/forms/household_visit/submissions/uuid:nope/review", "manager", json=body
        ).status_code
        == 404
    )
    r = api.post(path, "manager", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["central_review_state"] == "hasIssues"
    p = s.project
    central = requests.get(
        p.v1(f"projects/{p.project_id}/forms/household_visit/submissions/{iid}"),
        headers=p.headers(),
        timeout=30,
    ).json()
    comments = requests.get(
        p.v1(f"projects/{p.project_id}/forms/household_visit/submissions/{iid}/comments"),
        headers=p.headers(),
        timeout=30,
    ).json()
    assert central["reviewState"] == "hasIssues" and comments[-1]["body"] == body["comment"]
    sync.sync_forms(s.settings, ["household_visit"], engine=s.engine)
    got = api.get(f"/v1/forms/household_visit/submissions/{iid}", "manager").json()
    assert got["review_state"] == "hasIssues"
    listed = all_pages(api, "analyst", "household_visit", review_state="hasIssues")
    assert iid in {i["instance_id"] for i in listed}


def test_api__manager_export_audits_every_submission_with_sensitive_values(api):
    audit = store.T["audit_log"]
    with api.synced.engine.connect() as c:
        before = c.execute(sa.select(sa.func.max(audit.c.id))).scalar() or 0
    r = api.get("/v1/forms/household_visit/export.csv", "manager")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    with_sensitive = {x["instance_id"] for x in rows if x["visit__respondent_name"]}
    r = api.get("/v1/forms/household_visit/export.csv", "analyst")  # nothing sensitive: no rows
    with api.synced.engine.connect() as c:
        got = c.execute(sa.select(audit).where(audit.c.id > before)).all()
    assert {g.instance_id for g in got} == with_sensitive and len(got) == len(with_sensitive)
    assert {g.action for g in got} == {"export.csv"}


def test_api__manager_export_filtered_on_a_sensitive_answer_audits_every_row(api):
    """`where=` on a sensitive answer reads it for every row exported, even when the file
    holds no sensitive column (SEC-15)."""
    audit = store.T["audit_log"]
    with api.synced.engine.connect() as c:
        before = c.execute(sa.select(sa.func.max(audit.c.id))).scalar() or 0
    r = api.post(
        "/v1/forms/household_visit/export.csv",
        "manager",
        json={
            "where": ["visit/safety/violence_experienced:eq:yes"],
            "fields": ["visit/respondent_age"],
        },
    )
    assert r.status_code == 200, r.text
    exported = {
        x["instance_id"] for x in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))
    }
    assert exported
    with api.synced.engine.connect() as c:
        got = c.execute(sa.select(audit).where(audit.c.id > before)).all()
    assert {g.instance_id for g in got} == exported
    assert all(any("violence_experienced" in f for f in g.fields) for g in got)


def test_exports__every_row_is_audited_before_its_chunk_is_handed_out(api):
    """A client may stop reading after any chunk: the rows in the chunks it got must all
    have been handed to the audit hook by then (SEC-7), for CSV and GeoJSON alike."""
    engine = api.synced.engine
    form = form_info(engine, "household_visit")
    scope = Scope(sensitive=True, districts=None)
    spec = ExportSpec(
        form=form, flt=SubmissionFilter(), scope=scope, fields=form.visible_fields(None, scope)
    )
    geo = next(f for f in spec.fields if f.is_geopoint)
    for name, make in (
        ("csv", lambda hook: csv_chunks(engine, spec, on_sensitive=hook, chunk_rows=3)),
        (
            "geojson",
            lambda hook: geojson_chunks(engine, spec, geo, on_sensitive=hook, chunk_rows=3),
        ),
    ):
        audited: set[str] = set()
        seen: list[tuple[set[str], set[str]]] = []  # (ids in a chunk, audited when it came)
        for chunk in make(lambda reads, into=audited: into.update(i for i, _ in reads)):
            seen.append((set(re.findall(r"uuid:[0-9a-f-]{36}", chunk.decode())), set(audited)))
        assert len(seen) > 2 and audited, name
        for ids, audited_then in seen:
            late = (ids & audited) - audited_then
            assert not late, f"{name}: {len(late)} rows sent before their audit rows"


def test_api__data_issues_listed_and_scoped_by_district(api):
    body = api.get("/v1/data-issues", "analyst", form="household_visit").json()
    values = {i["value"] for i in body["items"]}
    assert {MARK_HOME, MARK_OTHER} <= values
    issue = next(i for i in body["items"] if i["value"] == MARK_HOME)
    assert issue["path"] == "/visit/last_remittance" and not issue["withheld"]
    home = api.get("/v1/data-issues", "analyst-home").json()["items"]
    assert MARK_HOME in {i["value"] for i in home} and MARK_OTHER not in {i["value"] for i in home}
    assert api.get("/v1/data-issues", "viewer").status_code == 403
    page = api.get("/v1/data-issues", "analyst", limit=1).json()
    assert len(page["items"]) == 1 and page["next_after"] == page["items"][0]["id"]


def test_api__admin_asks_the_scheduler_to_sync_and_status_shows_it(api):
    """Issue 16 item 7: the API writes a request; the leading scheduler runs it, the API
    process never syncs (it would pull beside the leader, outside its lock)."""
    import threading

    from collector.store import sync_requests
    from scheduler.leader import leader_lock_for
    from scheduler.service import SchedulerService
    from scheduler.triggers import FormSchedule
    from scheduler.wiring import StoreSyncRequests, sync_function

    before = {
        f["form_id"]: f["last_run"]["started_at"]
        for f in api.get("/v1/sync/status", "viewer").json()
    }
    assert api.post("/v1/sync/run", "manager").status_code == 403
    assert api.post("/v1/sync/run", "admin", form="no_such_form").status_code == 404
    r = api.post("/v1/sync/run", "admin", form="roundtable")
    assert r.status_code == 202, r.text
    request_id = r.json()["request_id"]
    again = api.post("/v1/sync/run", "admin")
    assert again.status_code == 409 and "waits for the scheduler" in again.json()["detail"]
    engine = api.synced.engine
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, forms, requested_by FROM sync_request WHERE id = :i"),
            {"i": request_id},
        ).one()
    assert row.status == "pending" and row.requested_by == "admin"
    now = {f["form_id"]: f for f in api.get("/v1/sync/status", "viewer").json()}
    assert now["roundtable"]["last_run"]["started_at"] == before["roundtable"]  # not run here

    settings = api.synced.settings
    service = SchedulerService(
        [FormSchedule(f, interval_seconds=86400, jitter_seconds=0) for f in before],
        leader_lock_for(settings),
        sync_function(settings, "test-scheduler"),
        poll_seconds=0.1,
        requests=StoreSyncRequests(engine, "test-scheduler"),
        request_poll_seconds=0.2,
        run_on_lead=False,
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = {f["form_id"]: f for f in api.get("/v1/sync/status", "viewer").json()}
            run = now["roundtable"]["last_run"]
            if run["started_at"] != before["roundtable"] and run["status"] != "running":
                break
            time.sleep(0.2)
        assert run["status"] == "ok" and run["started_at"] != before["roundtable"]
        assert now["household_visit"]["last_run"]["started_at"] == before["household_visit"]
        while time.monotonic() < deadline and sync_requests.waiting_since(engine) is None:
            with engine.connect() as conn:
                status = conn.execute(
                    sa.text("SELECT status FROM sync_request WHERE id = :i"), {"i": request_id}
                ).scalar()
            if status == "ok":
                break
            time.sleep(0.1)
        assert status == "ok"
    finally:
        stop.set()
        thread.join(30)
    assert service.stats.runs == {"roundtable": 1}


def test_api__who_sent_it_is_for_managers(api):
    """SEC-18: names of staff (often e-mail addresses) and device ids are the manager's, as
    /v1/activity is; analysts keep the submitter id, to group by, in pages, one and exports."""
    managed = all_pages(api, "manager", "household_visit", limit=100)
    assert any(i["submitter_name"] for i in managed)
    assert PLANTED_DEVICE in {i["device_id"] for i in managed}
    seen = all_pages(api, "analyst", "household_visit", limit=100)
    assert {i["instance_id"] for i in seen} == {i["instance_id"] for i in managed}
    assert all(i["submitter_name"] is None and i["device_id"] is None for i in seen)
    assert [i["submitter_id"] for i in seen if i["submitter_id"]]
    one = api.get(f"/v1/forms/household_visit/submissions/{seen[0]['instance_id']}", "analyst")
    assert one.status_code == 200
    assert one.json()["submitter_name"] is None and one.json()["device_id"] is None
    names = {i["submitter_name"] for i in managed if i["submitter_name"]}
    r = api.get("/v1/forms/household_visit/export.csv", "analyst")
    assert r.status_code == 200
    text = r.content.decode("utf-8-sig")
    assert PLANTED_DEVICE not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and all(row["submitter_name"] == "" and row["submitter_id"] for row in rows)
    assert not any(n in text for n in names)
    r = api.get("/v1/forms/household_visit/export.csv", "manager")
    assert names & {
        row["submitter_name"] for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))
    }
