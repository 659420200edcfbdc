"""Issue 14 items 4-6: one time convention in every route and export, on both databases;
select_multiple labels that split back; out-of-range parameters answered 422, never 500.

Truth comes from Central: its OData rows give each submission's ``submissionDate`` (UTC,
``Z``) and each ``start`` as Collect recorded it."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import openpyxl
import requests

from collector.times import SELECT_MULTIPLE_SEPARATOR
from tests.api_fixtures import (
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def _central_rows(api, form: str) -> dict[str, dict]:
    p = api.synced.project
    r = requests.get(
        p.v1(f"projects/{p.project_id}/forms/{form}.svc/Submissions"),
        headers=p.headers(),
        timeout=60,
    )
    r.raise_for_status()
    return {row["__id"]: row for row in r.json()["value"]}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_times__system_times_utc_z_everywhere(api):
    central = _central_rows(api, "roundtable")
    page = api.get("/v1/forms/roundtable/submissions", "manager", limit=500).json()["items"]
    assert page
    for item in page:
        assert UTC_Z.match(item["submitted_at"]), item["submitted_at"]
        assert _instant(item["submitted_at"]) == _instant(
            central[item["instance_id"]]["__system"]["submissionDate"]
        )
        if item["updated_at"]:
            assert UTC_Z.match(item["updated_at"])
        assert ZONED.match(item["values"]["start"]), item["values"]["start"]
        assert _instant(item["values"]["start"]) == _instant(central[item["instance_id"]]["start"])
        assert re.match(r"^\d{4}-\d\d-\d\d$", item["values"]["event_date"] or "2000-01-01")
    one = api.get(f"/v1/forms/roundtable/submissions/{page[0]['instance_id']}", "manager").json()
    assert one["submitted_at"] == page[0]["submitted_at"]
    assert one["values"]["start"] == page[0]["values"]["start"]
    by_id = {i["instance_id"]: i for i in page}

    # CSV, XLSX and GeoJSON write the same texts as the API
    r = api.get("/v1/forms/roundtable/export.csv", "manager")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    iid_col = next(k for k in rows[0] if k.endswith("instance_id"))
    for row in rows:
        item = by_id[row[iid_col]]
        assert row["submitted_at"] == item["submitted_at"]
        assert row["start"] == item["values"]["start"]
    r = api.get("/v1/forms/roundtable/export.xlsx", "manager")
    assert r.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    sheet = list(ws.iter_rows(values_only=True))
    head = list(sheet[0])
    for values in sheet[1:]:
        row = dict(zip(head, values, strict=False))
        item = by_id[row[iid_col]]
        # XLSX holds typed date-time cells, which have no zone: UTC, said in its fields sheet
        for cell, text in (
            (row["submitted_at"], item["submitted_at"]),
            (row["start"], item["values"]["start"]),
        ):
            assert cell.replace(tzinfo=UTC) == _instant(text), (cell, text)
    r = api.get("/v1/forms/awareness_event/export.geojson", "manager")
    assert r.status_code == 200, r.text
    for feature in r.json()["features"]:
        assert UTC_Z.match(feature["properties"]["submitted_at"])
        assert ZONED.match(feature["properties"]["start"])
    # routes that carry system times
    for path in ("/v1/sync/status", "/v1/activity", "/v1/data-issues", "/v1/keys"):
        body = api.get(path, "admin").text
        stamps = re.findall(r'"(\d{4}-\d\d-\d\dT[^"]*)"', body)
        assert all(UTC_Z.match(s) for s in stamps), (
            path,
            [s for s in stamps if not UTC_Z.match(s)],
        )


def test_times__select_multiple_labels_split_back(api):
    r = api.get("/v1/forms/household_visit/export.csv", "manager", lang="en")
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    form = api.get("/v1/forms/household_visit", "manager").json()
    labels = {c["labels"]["en"] for c in form["choices"]["income_source"]}
    col = next(k for k in rows[0] if k.endswith("income_sources"))
    cells = [row[col] for row in rows if row[col]]
    assert cells
    for cell in cells:
        assert set(cell.split(SELECT_MULTIPLE_SEPARATOR)) <= labels, cell


def test_params__out_of_range_is_422_naming_it_never_500(api):
    cases = [
        ("/v1/indicators/home_visits", {"to": "9999-12-31"}, None),
        ("/v1/indicators/home_visits", {"from": "0001-01-01", "period": "week"}, None),
        ("/v1/indicators/home_visits", {"to": "10000-01-01"}, "to"),
        ("/v1/forms/household_visit/submissions", {"to": "9999-12-31"}, None),
        ("/v1/forms/household_visit/submissions", {"from": "9999-12-31T23:59:59+14:00"}, None),
        ("/v1/forms/household_visit/submissions", {"from": "0001-01-01T00:00:00-12:00"}, None),
        ("/v1/forms/household_visit/submissions", {"limit": "99999999999999999999"}, "limit"),
        (
            "/v1/forms/household_visit/submissions",
            {"where": "visit/respondent_age:gte:99999999999999999999"},
            "where",
        ),
        (
            "/v1/forms/household_visit/submissions",
            {"where": "visit/last_remittance_amount:gte:1e999"},
            "where",
        ),
        ("/v1/forms/household_visit/export.csv", {"to": "9999-12-31"}, None),
    ]
    viewer = [
        {"to": "9999-12-31"},
        {"to": "9999-12-31", "period": "week"},
        {"from": "0001-01-01", "period": "week"},
        {"from": "0001-01-01", "to": "9999-12-31"},
    ]
    for params in viewer:  # the lattice's checks too (collector.read.indicators.disclosure)
        r = api.get("/v1/indicators/home_visits", "viewer", **params)
        assert r.status_code == 200, (params, r.status_code, r.text[:300])
    for path, params, name in cases:
        r = api.get(path, "manager", **params)
        if name is None:
            assert r.status_code == 200, (path, params, r.status_code, r.text[:300])
        else:
            assert r.status_code == 422 and name in r.text, (path, params, r.status_code, r.text)
