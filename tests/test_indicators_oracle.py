"""An independent oracle for every indicator: what Central holds, counted in plain Python.

The truth is read from Central's OData feed with plain ``requests`` (never from our store),
and each indicator is recounted here from its definition *as the programme states it*,
written apart from ``collector/read/indicators`` (no import of the catalogue or the SQL): which
form, which condition, which date, which number. The API, asked as a manager (exact
numbers), must give the same cells for every indicator, every period, every breakdown, a
district filter and a date range, on SQLite and PostgreSQL.

The data: the API fixtures' submissions, plus visits uploaded long after the visit (their
``start`` months before the upload, so dating by upload would move them), events and
consultations without their own date (dated by ``start``) or without any date (by the
upload), and deleted submissions (Central's OData leaves them out; so must the API).

Mutations checked by hand (each made a test here fail, then was reverted): dropping the
``consent = yes`` condition, counting deleted submissions, reading men's participants
from the women's field (see the report of issue 14).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from collector.sync import submissions as sync
from tests.api_fixtures import (
    LiveApi,
    Synced,
    build_synced,
    instance_xml,
    module_database_url_fixture,  # noqa: F401 - fixture
    serving,
)

PERIODS = ("none", "day", "week", "month", "quarter", "year")
Row = dict


# --- the programme's definitions, in plain Python ---------------------------------------------


def _utc_day(text: str | None) -> str | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(UTC).date().isoformat() if moment.tzinfo else text[:10]


def _dated(own: str | None) -> Callable[[Row], str | None]:
    """The event's own date, else Collect's start (its UTC day), else the upload's day."""

    def day(row: Row) -> str | None:
        return (
            (row.get(own) if own else None)
            or _utc_day(row.get("start"))
            or _utc_day(row["__system"]["submissionDate"])
        )

    return day


def _chosen(text: str | None) -> list[str]:
    return sorted(set((text or "").split()))


@dataclass(frozen=True)
class Truth:
    """One indicator as the programme defines it: per row, its date and its contributions
    (breakdown values -> amount); ``dims`` values that are lists are select_multiple."""

    form: str
    day: Callable[[Row], str | None]
    keep: Callable[[Row], bool]
    dims: Callable[[Row], dict]
    amounts: Callable[[Row], list[tuple[dict, float]]]  # (part's breakdown values, amount)
    district: Callable[[Row], str | None] = lambda r: r.get("district")


def _n(v) -> float:
    return float(v or 0)


def _one(r: Row) -> list[tuple[dict, float]]:
    return [({}, 1.0)]


def _visit(r: Row) -> dict:
    return r.get("visit") or {}


_ORGS = [
    "hrc_office",
    "migration_service",
    "women_committee",
    "child_rights_centre",
    "local_government",
    "community",
    "international",
    "ngo",
    "media",
]

TRUTH: dict[str, Truth] = {
    "ic_people_reached": Truth(
        "info_centre_consultation",
        _dated("consultation_date"),
        lambda r: True,
        lambda r: {
            "info_centre": r.get("info_centre"),
            "sex": r.get("visitor_sex"),
            "age_band": r.get("age_band"),
            "visitor_kind": r.get("visitor_kind"),
            "topic": _chosen(r.get("topics")),
        },
        _one,
    ),
    "ic_booklets_distributed": Truth(
        "info_centre_consultation",
        _dated("consultation_date"),
        lambda r: True,
        lambda r: {"info_centre": r.get("info_centre")},
        lambda r: [({}, _n(r.get("booklets_given")))],
    ),
    "ic_referrals_made": Truth(
        "info_centre_consultation",
        _dated("consultation_date"),
        lambda r: r.get("referral") != "none",
        lambda r: {"kind": r.get("referral"), "info_centre": r.get("info_centre")},
        _one,
    ),
    "roundtables_held": Truth(
        "roundtable", _dated("event_date"), lambda r: True, lambda r: {}, _one
    ),
    "roundtable_participants": Truth(
        "roundtable",
        _dated("event_date"),
        lambda r: True,
        lambda r: {},
        lambda r: [
            ({"sex": "female"}, _n(r["participants"].get("participants_women"))),
            ({"sex": "male"}, _n(r["participants"].get("participants_men"))),
        ],
    ),
    "roundtable_participants_by_organisation": Truth(
        "roundtable",
        _dated("event_date"),
        lambda r: True,
        lambda r: {},
        lambda r: [
            ({"organisation_kind": k}, _n(r["participants"].get(f"from_{k}"))) for k in _ORGS
        ],
    ),
    "awareness_events_held": Truth(
        "awareness_event",
        _dated("event_date"),
        lambda r: True,
        lambda r: {"event_kind": r.get("event_kind")},
        _one,
    ),
    "awareness_audience": Truth(
        "awareness_event",
        _dated("event_date"),
        lambda r: True,
        lambda r: {"event_kind": r.get("event_kind")},
        lambda r: [
            ({"sex": "female", "age_group": "child"}, _n(r["audience"].get("audience_girls"))),
            ({"sex": "female", "age_group": "adult"}, _n(r["audience"].get("audience_women"))),
            ({"sex": "male", "age_group": "child"}, _n(r["audience"].get("audience_boys"))),
            ({"sex": "male", "age_group": "adult"}, _n(r["audience"].get("audience_men"))),
        ],
    ),
    "event_booklets_distributed": Truth(
        "awareness_event",
        _dated("event_date"),
        lambda r: "booklets" in _chosen(r.get("materials")),
        lambda r: {"event_kind": r.get("event_kind")},
        lambda r: [({}, _n(r.get("materials_count")))],
    ),
    "event_consultations_given": Truth(
        "awareness_event",
        _dated("event_date"),
        lambda r: True,
        lambda r: {"event_kind": r.get("event_kind")},
        lambda r: [({}, _n(r.get("consultations_given")))],
    ),
    "leader_trainings_held": Truth(
        "awareness_event",
        _dated("event_date"),
        lambda r: r.get("event_kind") == "leader_training",
        lambda r: {},
        _one,
    ),
    "leader_training_participants": Truth(
        "awareness_event",
        _dated("event_date"),
        lambda r: r.get("event_kind") == "leader_training",
        lambda r: {},
        lambda r: [
            ({"sex": "female"}, _n(r["audience"].get("audience_women"))),
            ({"sex": "male"}, _n(r["audience"].get("audience_men"))),
        ],
    ),
    "home_visits": Truth(
        "household_visit",
        _dated(None),
        lambda r: r.get("consent") == "yes",
        lambda r: {"husband_situation": _visit(r).get("husband_situation")},
        _one,
        district=lambda r: _visit(r).get("district"),
    ),
    "referrals_made": Truth(
        "household_visit",
        _dated(None),
        lambda r: r.get("consent") == "yes",
        lambda r: {},
        lambda r: [({"kind": k}, 1.0) for k in _chosen(_visit(r).get("referrals"))],
        district=lambda r: _visit(r).get("district"),
    ),
    "follow_ups_due": Truth(
        "household_visit",
        lambda r: _visit(r).get("follow_up_date"),
        lambda r: r.get("consent") == "yes",
        lambda r: {},
        _one,
        district=lambda r: _visit(r).get("district"),
    ),
}


def label(day: str, period: str) -> str | None:
    d = date.fromisoformat(day)
    return {
        "none": None,
        "day": day,
        "week": f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}",
        "month": day[:7],
        "quarter": f"{d.year}-Q{(d.month - 1) // 3 + 1}",
        "year": str(d.year),
    }[period]


def oracle(
    rows: list[Row],
    t: Truth,
    period: str,
    by: list[str],
    districts: list[str] | None = None,
    first: str | None = None,
    last: str | None = None,
) -> dict[tuple, float]:
    out: dict[tuple, float] = defaultdict(float)
    for r in rows:
        day = t.day(r)
        if day is None or not t.keep(r):
            continue
        if (first and day < first) or (last and day > last):
            continue
        district = t.district(r)
        if districts and district not in districts:
            continue
        dims = {**t.dims(r), "district": district}
        for part, amount in t.amounts(r):
            values = {**dims, **part}
            choices = [[v] if not isinstance(v, list) else v for v in (values[b] for b in by)]
            combos: list[tuple] = [()]
            for c in choices:
                combos = [(*x, v) for x in combos for v in c]
            for combo in combos:
                key = ((label(day, period),) if period != "none" else ()) + combo
                out[key] += amount
    return {k: v for k, v in out.items() if v}


# --- the data, and the API ----------------------------------------------------------------------


def odata_rows(synced: Synced, form: str) -> list[Row]:
    """Central's own rows for ``form`` (deleted ones left out, as Central's OData does)."""
    p = synced.project
    r = requests.get(
        p.v1(f"projects/{p.project_id}/forms/{form}.svc/Submissions"),
        headers=p.headers(),
        timeout=60,
    )
    r.raise_for_status()
    return r.json()["value"]


def _extra_submissions(synced: Synced) -> None:
    """Late uploads, undated events, and deletions (see the module doc)."""
    rng = random.Random(1414)
    project, specs = synced.project, synced.specs
    versions = {f["xmlFormId"]: f.get("version") or "" for f in _forms(synced)}
    now = datetime.now(UTC)
    hv = specs["household_visit"]
    sent: dict[str, list[str]] = defaultdict(list)
    for i in range(30):  # visits recorded 1..400 days before their upload
        start = now - timedelta(days=rng.randint(1, 400), hours=rng.randint(0, 23))
        xml, iid = instance_xml(
            hv,
            versions["household_visit"],
            rng,
            overrides={
                "/start": start.isoformat(timespec="milliseconds"),
                "/consent": "yes" if i % 5 else "no",
            },
        )
        project.submit(xml)
        sent["household_visit"].append(iid)
    for form, own in (
        ("info_centre_consultation", "/consultation_date"),
        ("roundtable", "/event_date"),
        ("awareness_event", "/event_date"),
    ):
        for i in range(6):
            start = now - timedelta(days=rng.randint(30, 300))
            xml, iid = instance_xml(
                specs[form],
                versions[form],
                rng,
                overrides={"/start": start.isoformat(timespec="milliseconds")},
                drawn_then={own: "", **({"/start": ""} if i % 3 == 0 else {})},
            )
            project.submit(xml)
            sent[form].append(iid)
    for form in ("household_visit", "info_centre_consultation", "roundtable", "awareness_event"):
        ids = [r["__id"] for r in odata_rows(synced, form)]
        for iid in rng.sample(ids, 4):
            project.delete(form, iid)


def _forms(synced: Synced) -> list[dict]:
    p = synced.project
    r = requests.get(p.v1(f"projects/{p.project_id}/forms"), headers=p.headers(), timeout=30)
    r.raise_for_status()
    return r.json()


@pytest.fixture(scope="module", name="oracle_api")
def oracle_api_fixture(central, module_database_url, tmp_path_factory) -> Iterator[LiveApi]:
    synced = build_synced(central, tmp_path_factory.mktemp("oracle"), module_database_url)
    try:
        _extra_submissions(synced)
        results = sync.sync_forms(synced.settings, engine=synced.engine)
        assert all(r.status == "ok" for r in results), [(r.xml_form_id, r.error) for r in results]
        app = create_app_for(synced)
        with serving(app) as url:
            yield LiveApi(url, app, synced)
    finally:
        synced.engine.dispose()


def create_app_for(synced: Synced):
    from api.app import create_app

    return create_app(synced.settings, engine=synced.engine)


def api_cells(api: LiveApi, indicator: str, **params) -> dict[tuple, float]:
    r = api.get(f"/v1/indicators/{indicator}", "manager", **params)
    assert r.status_code == 200, r.text
    body = r.json()
    names = (["period"] if body["period"] != "none" else []) + body["by"]
    return {
        tuple(c["keys"][n] for n in names): float(c["value"]) for c in body["cells"] if c["value"]
    }


# --- the tests --------------------------------------------------------------------------------


def test_oracle__covers_every_indicator_the_api_lists(oracle_api):
    listed = {i["id"] for i in oracle_api.get("/v1/indicators", "manager").json()}
    assert listed == set(TRUTH)


@pytest.mark.parametrize("indicator", sorted(TRUTH))
def test_oracle__every_period_and_breakdown_as_central_counts(oracle_api, indicator):
    t = TRUTH[indicator]
    rows = odata_rows(oracle_api.synced, t.form)
    meta = oracle_api.get(f"/v1/indicators/{indicator}", "manager", period="none").json()
    breakdowns = meta["breakdowns"]
    asked = [[]] + [[b] for b in breakdowns] + [breakdowns]
    checked = 0
    for period in PERIODS:
        for by in asked if period in ("none", "month") else [[], breakdowns]:
            want = oracle(rows, t, period, by)
            got = api_cells(oracle_api, indicator, period=period, by=by)
            assert got == pytest.approx(want), f"{indicator} period={period} by={by}"
            checked += len(want)
    assert checked, f"{indicator}: the data set gives it no value at all"
    # one district, and a date range (inclusive), by month
    district = sorted({t.district(r) for r in rows if t.district(r)})[0]
    want = oracle(rows, t, "month", ["district"], districts=[district])
    got = api_cells(oracle_api, indicator, period="month", by=["district"], district=district)
    assert got == pytest.approx(want), f"{indicator} district={district}"
    days = sorted(d for d in (t.day(r) for r in rows) if d)
    first, last = days[len(days) // 4], days[3 * len(days) // 4]
    want = oracle(rows, t, "day", [], first=first, last=last)
    got = api_cells(oracle_api, indicator, period="day", **{"from": first, "to": last})
    assert got == pytest.approx(want), f"{indicator} from={first} to={last}"


def test_oracle__quarters_are_four_a_year(oracle_api):
    """SQLite once labelled quarters ``2025-Q2.33333333333333``: 13 for 13 months."""
    body = oracle_api.get("/v1/indicators/home_visits", "manager", period="quarter").json()
    labels = {c["keys"]["period"] for c in body["cells"]}
    assert labels and all(
        lbl[:4].isdigit() and lbl[4:] in {"-Q1", "-Q2", "-Q3", "-Q4"} for lbl in labels
    )


def test_oracle__late_uploads_dated_by_the_visit_not_the_upload(oracle_api):
    rows = odata_rows(oracle_api.synced, "household_visit")
    moved = [
        r
        for r in rows
        if r.get("consent") == "yes"
        and _utc_day(r["start"])[:7] != _utc_day(r["__system"]["submissionDate"])[:7]
    ]
    assert len(moved) >= 10, "the data set must hold visits uploaded in a later month"
    got = api_cells(oracle_api, "home_visits", period="month")
    assert got == pytest.approx(oracle(rows, TRUTH["home_visits"], "month", []))


def test_oracle__far_dates_are_answered_not_500(oracle_api):
    for params in (
        {"to": "9999-12-31"},
        {"from": "0001-01-01"},
        {"from": "0001-01-01", "to": "9999-12-31"},
    ):
        r = oracle_api.get("/v1/indicators/home_visits", "manager", period="year", **params)
        assert r.status_code == 200, (params, r.text)


def test_oracle__totals_per_indicator(oracle_api, capsys):
    """Every indicator's total (period=none) from the oracle and from the API, printed for
    the closing note (``pytest -s``)."""
    lines = []
    for indicator, t in sorted(TRUTH.items()):
        rows = odata_rows(oracle_api.synced, t.form)
        want = sum(oracle(rows, t, "none", []).values())
        got = sum(api_cells(oracle_api, indicator, period="none").values())
        lines.append(f"{indicator:42s} oracle {want:8g}  api {got:8g}")
        assert got == pytest.approx(want), indicator
    with capsys.disabled():
        print("\n" + "\n".join(lines))
