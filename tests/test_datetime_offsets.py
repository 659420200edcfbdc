"""Issue 14 item 4: a dateTime answer keeps the offset Collect recorded, in the store, the
JSON API, the OData feed and every export (CSV, XLSX, GeoJSON), on SQLite and PostgreSQL.

Submitted over OpenRosa with ``+05:00`` (Tajikistan), ``-03:30`` and ``Z`` offsets, synced
from Central (the emulator or, with ``COLLECTOR_TEST_CENTRAL_*``, the real one), read back
through every output. The truth is the text in the submitted XML, never our code: each
output must give that text (or, in XLSX, its wall-clock time with its offset shown).
A store made before offsets were kept gets the column and the offsets on its next sync."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
import requests
import sqlalchemy as sa

from api.app import create_app
from collector import store
from collector.forms.push import store_recorder
from collector.forms.xlsform import form_spec, read_xlsform
from collector.store.caches import caches_for
from collector.store.keys import create_key
from collector.sync import submissions as sync
from tests.api_fixtures import serving
from tests.test_sync_support import new_project

FORM = "visit_times"
LANGS = ("English (en)", "Tajik (tg)", "Russian (ru)")
# (start, end, visited_at, [repeat call_at ...]) as Collect writes them: milliseconds, offset
SENT = [
    (
        "2026-12-03T10:02:56.000+05:00",
        "2026-12-03T10:15:01.250+05:00",
        "2026-12-01T23:30:00.000-03:30",
        ["2026-11-30T08:00:00.000+05:00", "2026-11-30T21:45:10.500+05:00"],
    ),
    (
        "2026-12-02T04:59:00.000Z",
        "2026-12-02T05:10:00.000Z",
        None,
        ["2026-12-02T00:30:00.000+05:00"],
    ),
]


def _xlsform(path: Path) -> None:
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", *(f"label::{lang}" for lang in LANGS)])
    survey.append(["start", "start", "", "", ""])
    survey.append(["end", "end", "", "", ""])
    survey.append(["select_one district", "district", "District", "Ноҳия", "Район"])
    survey.append(["dateTime", "visited_at", "Visited at", "Вақти боздид", "Время визита"])
    survey.append(["geopoint", "gps", "Where", "Дар куҷо", "Где"])
    survey.append(["begin_repeat", "calls", "Calls", "Зангҳо", "Звонки"])
    survey.append(["dateTime", "call_at", "Call at", "Вақти занг", "Время звонка"])
    survey.append(["end_repeat", "", "", "", ""])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", *(f"label::{lang}" for lang in LANGS)])
    choices.append(["district", "kulob", "Kulob", "Кӯлоб", "Куляб"])
    settings = wb.create_sheet("settings")
    settings.append(["form_id", "version", "default_language"])
    settings.append([FORM, "1", "English (en)"])
    wb.save(path)


def _xml(version: str, iid: str, start: str, end: str, visited: str | None, calls: list[str]):
    reps = "".join(f"<calls><call_at>{c}</call_at></calls>" for c in calls)
    return (
        f'<?xml version="1.0"?><data id="{FORM}" version="{version}">'
        f"<start>{start}</start><end>{end}</end><district>kulob</district>"
        f"<visited_at>{visited or ''}</visited_at><gps>38.5 69.3 800 5</gps>{reps}"
        f"<meta><instanceID>{iid}</instanceID></meta></data>"
    )


@pytest.fixture(name="offsets")
def offsets_fixture(central, database_url, tmp_path):
    xlsx = tmp_path / f"{FORM}.xlsx"
    _xlsform(xlsx)
    project = new_project(central, tmp_path, f"tz-{uuid.uuid4().hex[:8]}")
    settings = project.settings(database_url=database_url, api_rate_limit_per_minute=100_000)
    engine = store.engine_for(settings)
    store.create_schema(engine)
    form = project.publish_xlsx(xlsx, FORM)
    store_recorder(engine)(form_spec(read_xlsform(xlsx)), project.fields(FORM), project.project_id)
    sent: dict[str, tuple] = {}
    for start, end, visited, calls in SENT:
        iid = f"uuid:{uuid.uuid4()}"
        project.submit(_xml(form.get("version") or "", iid, start, end, visited, calls))
        sent[iid] = (start, end, visited, calls)
    results = sync.sync_forms(settings, engine=engine)
    assert all(r.status == "ok" for r in results), [(r.xml_form_id, r.error) for r in results]
    token = create_key(engine, name="manager", role="manager", districts=None).token
    with serving(create_app(settings, engine=engine)) as url:
        yield url, token, sent, settings, engine
    engine.dispose()


def _get(url: str, token: str, path: str, **params) -> requests.Response:
    r = requests.get(
        url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert r.status_code == 200, r.text
    return r


def _minutes(text: str) -> int:
    """The UTC offset written in a dateTime text, in minutes (read by the standard library)."""
    offset = datetime.fromisoformat(text).utcoffset()
    assert offset is not None
    return int(offset.total_seconds() // 60)


def _csv(r: requests.Response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))


def _assert_api_as_sent(url: str, token: str, sent: dict) -> None:
    items = _get(url, token, f"/v1/forms/{FORM}/submissions").json()["items"]
    assert {i["instance_id"] for i in items} == set(sent)
    for item in items:
        start, end, visited, calls = sent[item["instance_id"]]
        assert (item["values"]["start"], item["values"]["end"]) == (start, end)
        assert item["values"]["visited_at"] == visited
        one = _get(url, token, f"/v1/forms/{FORM}/submissions/{item['instance_id']}").json()
        assert one["values"]["start"] == start
        assert [r["values"]["call_at"] for r in one["repeats"]["calls"]] == calls


def test_offsets__as_sent_in_api_csv_xlsx_geojson_odata(offsets):
    url, token, sent, _settings, engine = offsets
    _assert_api_as_sent(url, token, sent)

    # the store keeps the instant (filters, indicators) and the offset in minutes
    with engine.connect() as conn:
        stored = {
            r.instance_id: (r.start_tzmin, r.visited_tzmin)
            for r in conn.execute(
                sa.text(
                    f"SELECT instance_id, start__tzmin AS start_tzmin, "
                    f'visited_at__tzmin AS visited_tzmin FROM "{FORM}"'
                )
            )
        }
    for iid, (start, _end, visited, _calls) in sent.items():
        assert stored[iid] == (_minutes(start), None if visited is None else _minutes(visited))

    # CSV: the same texts; a filter on the instant still works
    for row in _csv(_get(url, token, f"/v1/forms/{FORM}/export.csv")):
        start, end, visited, _calls = sent[row["instance_id"]]
        assert (row["start"], row["end"], row["visited_at"]) == (start, end, visited or "")
    calls_csv = _csv(_get(url, token, f"/v1/forms/{FORM}/export.csv", repeat="calls"))
    got: dict[str, list[str]] = {}
    for row in calls_csv:
        got.setdefault(row["instance_id"], []).append(row["call_at"])
    assert got == {iid: s[3] for iid, s in sent.items()}

    # GeoJSON properties: the same texts
    features = _get(url, token, f"/v1/forms/{FORM}/export.geojson").json()["features"]
    assert {f["properties"]["instance_id"]: f["properties"]["start"] for f in features} == {
        iid: s[0] for iid, s in sent.items()
    }

    # OData feed: Edm.DateTimeOffset with the offset, as Central's own feed gives it
    odata = _get(url, token, f"/v1/odata/{FORM}.svc/Submissions").json()["value"]
    assert {r["instance_id"]: r["visited_at"] for r in odata} == {
        iid: s[2] for iid, s in sent.items()
    }

    # XLSX: typed cells holding the wall-clock time recorded, the offset in the cell format
    r = _get(url, token, f"/v1/forms/{FORM}/export.xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.worksheets[0]
    head = [c.value for c in ws[1]]
    at = {name: head.index(name) for name in ("instance_id", "start", "visited_at")}
    for cells in ws.iter_rows(min_row=2):
        start, _end, visited, _calls = sent[cells[at["instance_id"]].value]
        for name, text in (("start", start), ("visited_at", visited)):
            cell = cells[at[name]]
            if text is None:
                assert cell.value is None
                continue
            recorded = datetime.fromisoformat(text.replace("Z", "+00:00"))
            assert cell.value == recorded.replace(tzinfo=None, microsecond=cell.value.microsecond)
            assert abs(cell.value - recorded.replace(tzinfo=None)).total_seconds() < 0.001
            assert cell.number_format.endswith(f'"{text[-6:] if text[-6] in "+-" else "Z"}"')
    fields = {row[1]: row[4] for row in wb["fields"].iter_rows(min_row=2, values_only=True)}
    assert fields["start"].startswith("dateTime (as recorded")
    assert fields["submitted_at"] == "dateTime (UTC)"


def test_offsets__an_old_store_gets_them_on_its_next_sync(offsets):
    url, token, sent, settings, engine = offsets
    # A store made before offsets were kept: no companion columns (a new process opens it).
    with engine.begin() as conn:
        for table, col in ((FORM, "start"), (FORM, "end"), (FORM, "visited_at")):
            conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{col}__tzmin"')
        calls = next(n for n in sa.inspect(conn).get_table_names() if n.startswith(f"{FORM}__"))
        conn.exec_driver_sql(f'ALTER TABLE "{calls}" DROP COLUMN "call_at__tzmin"')
    caches = caches_for(engine)  # what a new process opening the old store would know
    caches.form_tables.clear()
    caches.form_info.clear()
    items = _get(url, token, f"/v1/forms/{FORM}/submissions").json()["items"]
    for item in items:  # the same instants, in UTC with Z: unknown offset, never a wrong one
        start = sent[item["instance_id"]][0]
        assert item["values"]["start"].endswith("Z")
        assert datetime.fromisoformat(item["values"]["start"]) == datetime.fromisoformat(start)

    results = sync.sync_forms(settings, engine=engine)  # Central has nothing new
    assert all(r.status == "ok" for r in results), [(r.xml_form_id, r.error) for r in results]
    _assert_api_as_sent(url, token, sent)
