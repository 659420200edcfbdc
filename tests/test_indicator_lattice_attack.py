"""Issue 15 items 1-2: a viewer cannot average its way to a withheld cell, and reads no
exact count anywhere. Over real HTTP, on data synced from Central, on both databases.

The attack of the security review: ask many differently composed questions whose
difference is the rare district's withheld cell (two home visits), and average the
differences. Before the lattice (``collector.read.indicators.disclosure``) each composition drew
fresh rounding noise and the average converged on the true count; now unions of districts
are refused, every allowed answer is a sum of the same fixed published cells, and every
difference is the withheld cell's published contribution: nothing.
"""

from __future__ import annotations

import statistics

from tests.api_fixtures import (
    HOME_DISTRICT,
    RARE_DISTRICT,
    LiveApi,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

INDICATOR = "/v1/indicators/home_visits"


def _cells(api: LiveApi, key: str, **params) -> list[dict]:
    r = api.get(INDICATOR, key, **params)
    assert r.status_code == 200, r.text
    return r.json()["cells"]


def _total(cells: list[dict]) -> float:
    return sum(c["value"] or 0 for c in cells)


def test_lattice__bounded_averaging_attack_estimates_no_withheld_cell(api):
    true = _total(_cells(api, "manager", period="none", district=RARE_DISTRICT))
    assert 0 < true < api.synced.settings.suppression_threshold
    months = sorted({c["keys"]["period"] for c in _cells(api, "manager", period="month")})
    choices = api.get("/v1/forms/household_visit", "viewer").json()["choices"]["district"]
    others = [c["value"] for c in choices if c["value"] != RARE_DISTRICT]

    estimates: list[float] = []
    refused = 0
    # 1. the review's attack: district=S+D against district=S for many sets S
    for n in range(2, 12):
        union = api.get(INDICATOR, "viewer", period="none", district=[*others[:n], RARE_DISTRICT])
        refused += union.status_code == 422
        assert union.status_code == 422, union.text
    # 2. the whole scope minus the other districts, by every period and breakdown
    for period in ("none", "day", "week", "month", "quarter", "year"):
        for by in ([], ["husband_situation"]):
            whole = _total(_cells(api, "viewer", period=period, by=by))
            split = _cells(api, "viewer", period=period, by=["district", *by])
            rest = sum(c["value"] or 0 for c in split if c["keys"]["district"] != RARE_DISTRICT)
            estimates.append(whole - rest)
    # 3. the same over every window of whole months
    for i in range(len(months)):
        for j in range(i, len(months)):
            first, last = months[i] + "-01", months[j]
            last = _month_end(last)
            params = {"period": "none", "from": first, "to": last}
            whole = _total(_cells(api, "viewer", **params))
            rest = (
                sum(
                    _total(_cells(api, "viewer", district=d, **params))
                    for d in others[:6]  # a bounded sample: each is one published cell set
                )
                + sum(
                    c["value"] or 0
                    for c in _cells(api, "viewer", by=["district"], **params)
                    if c["keys"]["district"] not in (RARE_DISTRICT, *others[:6])
                )
            )
            estimates.append(whole - rest)
    assert refused == 10 and len(estimates) >= 12
    assert abs(statistics.fmean(estimates) - true) > 0.5, (true, estimates)
    assert all(abs(e - true) > 0.5 for e in estimates), (true, estimates)
    # the cell itself is withheld, however it is asked
    for period in ("none", "month", "year"):
        asked = _cells(api, "viewer", period=period, district=RARE_DISTRICT)
        assert all(c["suppressed"] for c in asked), asked


def _month_end(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    nxt = f"{year + (mon == 12)}-{(mon % 12) + 1:02d}-01"
    from datetime import date, timedelta

    return (date.fromisoformat(nxt) - timedelta(days=1)).isoformat()


def test_lattice__the_same_cell_has_the_same_value_whatever_was_asked(api):
    by_district = _cells(api, "viewer", period="month", by=["district"])
    for c in by_district:
        if c["keys"]["district"] != HOME_DISTRICT:
            continue
        alone = _cells(
            api,
            "viewer",
            period="month",
            district=HOME_DISTRICT,
            **{"from": c["keys"]["period"] + "-01", "to": _month_end(c["keys"]["period"])},
        )
        assert [(a["value"], a["suppressed"]) for a in alone] == [(c["value"], c["suppressed"])]
    # totals are sums of the published cells
    per_month = _cells(api, "viewer", period="month")
    by_month: dict[str, float] = {}
    for c in by_district:
        by_month[c["keys"]["period"]] = by_month.get(c["keys"]["period"], 0) + (c["value"] or 0)
    assert {c["keys"]["period"]: c["value"] or 0 for c in per_month} == by_month


def test_lattice__questions_off_the_lattice_are_refused_naming_the_parameter(api):
    for params, name in (
        ({"district": ["kulob", "nurek"]}, "district"),
        ({"from": "2026-11-02", "period": "month"}, "from"),
        ({"to": "2026-11-29", "period": "quarter"}, "to"),
        ({"from": "2026-11-03", "period": "week"}, "from"),
    ):
        r = api.get(INDICATOR, "viewer", **params)
        assert r.status_code == 422 and name in r.text, (params, r.text)
        assert api.get(INDICATOR, "manager", **params).status_code == 200


def test_side_routes__viewers_read_no_exact_count(api):
    """Issue 15 item 2: forms list, one form, sync status."""
    settings = api.synced.settings
    base, threshold = settings.indicator_rounding_base, settings.suppression_threshold
    exact = {f["form_id"]: f["submissions"] for f in api.get("/v1/forms", "manager").json()}
    assert {f["form_id"]: f["submissions"] for f in api.get("/v1/forms", "analyst").json()} == exact
    for key in ("viewer", "viewer-home"):
        listed = api.get("/v1/forms", key).json()
        status = api.get("/v1/sync/status", key).json()
        one = api.get("/v1/forms/household_visit", key).json()
        counts = [f["submissions"] for f in listed] + [s["submissions"] for s in status]
        counts.append(one["submissions"])
        assert all(c is None or c % base == 0 for c in counts), (key, counts)
        for s in status:
            run = s["last_run"] or {}
            assert run.get("fetched") is None and run.get("written") is None, run
    home = {f["form_id"]: f["submissions"] for f in api.get("/v1/forms", "analyst-home").json()}
    viewer_home = {
        f["form_id"]: f["submissions"] for f in api.get("/v1/forms", "viewer-home").json()
    }
    # the district-limited viewer's count is not its exact count where that is not a multiple
    for form, n in home.items():
        if n % base:
            assert viewer_home[form] != n, (form, n, viewer_home[form])
    assert threshold > 1
