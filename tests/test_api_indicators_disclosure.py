"""Differencing attacks on the indicators, over real HTTP, on data synced from the emulator.

Small-cell suppression hides the two home visits in the rare district inside one answer;
a viewer who asks for the whole scope and for every other district, and subtracts, would
get them back if totals were computed apart from their cells. Below manager, a union of
districts is refused and every total is the sum of the published lattice cells
(``collector.read.indicators.disclosure``), so the difference is the withheld cell's published
share: nothing. The same attack with the manager's exact numbers must succeed, so the test
shows that the protection, and nothing else, is what defeats it.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from collector import store
from collector.read.forminfo import Scope
from collector.read.indicators import (
    INDICATORS_BY_ID,
    ROUNDING_SECRET,
    cell_key_fraction,
    compute,
    rounded,
)
from collector.store.caches import caches_for
from tests.api_fixtures import (
    RARE_DISTRICT,
    LiveApi,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

# (indicator, breakdowns): the total, and two breakdowns of the women visited
ATTACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("home_visits", ()),
    ("home_visits", ("husband_situation",)),
    ("referrals_made", ("kind",)),
)
Cells = dict[tuple[tuple[str, str | None], ...], int | None]


def cells(live: LiveApi, key: str, indicator: str, by: tuple[str, ...], **params) -> Cells:
    """The answer's cells by their keys; a withheld cell is None."""
    r = live.get(f"/v1/indicators/{indicator}", key, period="none", by=list(by), **params)
    assert r.status_code == 200, r.text
    return {
        tuple(sorted(c["keys"].items())): None if c["suppressed"] else c["value"]
        for c in r.json()["cells"]
    }


def withheld_truth(api: LiveApi, indicator: str, by: tuple[str, ...]) -> Cells:
    """The rare district's exact cells as the manager sees them, keyed without district."""
    exact = cells(api, "manager", indicator, ("district", *by))
    return {
        tuple(kv for kv in k if kv[0] != "district"): v
        for k, v in exact.items()
        if dict(k)["district"] == RARE_DISTRICT
    }


def differences(live: LiveApi, key: str, indicator: str, by: tuple[str, ...]) -> Cells:
    """The attack: (the key's whole scope) - (every other district, one by one), cell by
    cell, where the cells are published. A union of districts in one question is refused
    below manager (the lattice: ``collector.read.indicators.disclosure``)."""
    choices = live.get("/v1/forms/household_visit", key).json()["choices"]["district"]
    others = [c["value"] for c in choices if c["value"] != RARE_DISTRICT]
    union = live.get(
        f"/v1/indicators/{indicator}", key, period="none", by=list(by), district=others
    )
    if key != "manager":
        assert union.status_code == 422 and "district" in union.text, union.text
    everyone = cells(live, key, indicator, by)
    rest: dict = {}
    for k, v in cells(live, key, indicator, ("district", *by)).items():
        named = dict(k)
        if named.pop("district") != RARE_DISTRICT and v is not None:
            short = tuple(sorted(named.items()))
            rest[short] = rest.get(short, 0) + v
    return {k: v - rest.get(k, 0) for k, v in everyone.items() if v is not None}


def test_disclosure__differencing_no_longer_recovers_a_withheld_cell(api):
    rounding = api.synced.settings.indicator_rounding_base
    assert rounding == 5
    for indicator, by in ATTACKS:
        truth = withheld_truth(api, indicator, by)
        small = {k: v for k, v in truth.items() if v}
        assert small, f"{indicator} by {by}: the rare district has no women in the synced data"
        assert all(0 < v < api.synced.settings.suppression_threshold for v in small.values())

        attacked = differences(api, "viewer", indicator, by)
        for k, v in small.items():
            # totals are sums of the published cells: the withheld cell adds nothing
            assert attacked.get(k, 0) != v, f"viewer recovered {indicator} {k} = {v} exactly"
            assert attacked.get(k, 0) % rounding == 0

        # The attack is real: on exact numbers it gives the withheld cells back.
        control = differences(api, "manager", indicator, by)
        recovered = {k for k, v in small.items() if control.get(k) == v}
        assert recovered, f"{indicator} by {by}: the attack fails even on exact numbers"


def test_disclosure__viewer_counts_are_consistent_multiples_of_the_base_manager_exact(api):
    for indicator, by in ATTACKS:
        params = {"period": "month", "by": ["district", *by]}
        first = api.get(f"/v1/indicators/{indicator}", "viewer", **params).json()
        again = api.get(f"/v1/indicators/{indicator}", "viewer", **params).json()
        manager = api.get(f"/v1/indicators/{indicator}", "manager", **params).json()
        assert first["rounding_base"] == 5 and manager["rounding_base"] is None
        # the same question always gets the same answer: nothing to average away
        assert first["cells"] == again["cells"]
        exact = {tuple(sorted(c["keys"].items())): c["value"] for c in manager["cells"]}
        for c in first["cells"]:
            if c["suppressed"]:
                continue
            true = exact[tuple(sorted(c["keys"].items()))]
            assert c["value"] % 5 == 0 and abs(c["value"] - true) < 5, (c, true)
    # counts that are not people are neither suppressed nor rounded
    held = api.get("/v1/indicators/roundtables_held", "viewer", period="none").json()
    assert held["rounding_base"] is None and held["suppression_threshold"] is None


def test_rounded__unbiased_and_exact_on_multiples():
    grid = [(i + 0.5) / 1000 for i in range(1000)]
    assert sum(rounded(7, 5, u) for u in grid) / len(grid) == pytest.approx(7, abs=0.01)
    assert {rounded(7, 5, u) for u in grid} == {5, 10}
    assert {rounded(10, 5, u) for u in grid} == {10} and {rounded(0, 5, u) for u in grid} == {0}
    key = bytes(range(32))
    assert 0 <= cell_key_fraction(2**40 + 7, key) < 1
    assert cell_key_fraction(12345, key) == cell_key_fraction(12345 + 2**32, key)


def test_rounding__keyed_by_the_store_secret_not_by_what_analysts_see(api):
    """Analysts see every instance id, so the record keys are theirs to compute; the cell's
    number comes from a key only the store holds. Another key rounds other cells another way
    (the same counts, each still a multiple of the base within one base of the exact)."""
    engine = api.synced.engine
    scope = Scope(sensitive=False, districts=None)

    def cells(round_to: int | None) -> dict:
        result = compute(
            engine,
            INDICATORS_BY_ID["home_visits"],
            scope=scope,
            period="day",
            by=["district"],
            suppress_below=None,
            round_to=round_to,
        )
        return {tuple(sorted(c.keys.items())): c.value for c in result.cells}

    exact, before = cells(None), cells(5)
    secrets_t = store.T["store_secret"]
    with engine.connect() as conn:
        held = conn.execute(
            sa.select(secrets_t.c.value).where(secrets_t.c.name == ROUNDING_SECRET)
        ).scalar_one()
    try:
        with engine.begin() as conn:
            conn.execute(
                secrets_t.update()
                .where(secrets_t.c.name == ROUNDING_SECRET)
                .values(value=bytes(32).hex())
            )
        caches_for(engine).secrets.clear()
        after = cells(5)
    finally:
        with engine.begin() as conn:
            conn.execute(
                secrets_t.update().where(secrets_t.c.name == ROUNDING_SECRET).values(value=held)
            )
        caches_for(engine).secrets.clear()
    assert cells(5) == before  # the store's own key again: the same answers
    uneven = [k for k, v in exact.items() if v % 5]
    assert len(uneven) >= 10, "too few cells to tell the keys apart"
    assert any(before[k] != after[k] for k in uneven)
    for answer in (before, after):
        assert all(v % 5 == 0 and abs(v - exact[k]) < 5 for k, v in answer.items())
