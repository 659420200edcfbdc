"""Differencing attacks on the indicators, over real HTTP, on data synced from the emulator.

Small-cell suppression hides the two women visited in the rare district inside one answer;
a viewer who asks twice (every district, then every district but the rare one) and
subtracts gets them back unless every people count is rounded (consistent random rounding
to ``indicator_rounding_base``, ``collector.indicators``). Each attack is also run against
a second server on the same store with rounding off (base 1): there it must succeed, so
the test shows that the rounding, and nothing else, is what defeats it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from api.app import create_app
from collector import store
from collector.forminfo import Scope
from collector.indicators import (
    INDICATORS_BY_ID,
    ROUNDING_SECRET,
    cell_key_fraction,
    compute,
    rounded,
)
from collector.storage.secrets import _CACHE as secret_cache
from tests.api_fixtures import (
    RARE_DISTRICT,
    LiveApi,
    Synced,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    serving,
    synced_fixture,  # noqa: F401 - fixture
)

# (indicator, breakdowns): the total, and two breakdowns of the women visited
ATTACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("women_visited", ()),
    ("women_visited", ("husband_situation",)),
    ("referrals_made", ("kind",)),
)
Cells = dict[tuple[tuple[str, str | None], ...], int | None]


@pytest.fixture(scope="module", name="unrounded")
def unrounded_fixture(synced: Synced) -> Iterator[LiveApi]:
    """The same store served with rounding off: the control the attack must beat."""
    settings = synced.settings.model_copy(update={"indicator_rounding_base": 1})
    app = create_app(settings, engine=synced.engine)
    with serving(app) as url:
        yield LiveApi(url, app, synced)


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
    """The attack: (every district) - (every district but the rare one), cell by cell,
    where both cells are published."""
    choices = live.get("/v1/forms/household_visit", key).json()["choices"]["district"]
    others = [c["value"] for c in choices if c["value"] != RARE_DISTRICT]
    everyone = cells(live, key, indicator, by)
    all_but_rare = cells(live, key, indicator, by, district=others)
    return {
        k: v - all_but_rare.get(k, 0)
        for k, v in everyone.items()
        if v is not None and all_but_rare.get(k, 0) is not None
    }


def test_disclosure__differencing_no_longer_recovers_a_withheld_cell(api, unrounded):
    rounding = api.synced.settings.indicator_rounding_base
    assert rounding == 5
    for indicator, by in ATTACKS:
        truth = withheld_truth(api, indicator, by)
        small = {k: v for k, v in truth.items() if v}
        assert small, f"{indicator} by {by}: the rare district has no women in the synced data"
        assert all(0 < v < api.synced.settings.suppression_threshold for v in small.values())

        attacked = differences(api, "viewer", indicator, by)
        assert set(small) & set(attacked), f"{indicator} by {by}: no cell pair to subtract"
        for k, v in small.items():
            if k in attacked:
                assert attacked[k] != v, f"viewer recovered {indicator} {k} = {v} exactly"
                assert attacked[k] % rounding == 0

        # The attack is real: without rounding it gives the withheld cells back exactly.
        control = differences(unrounded, "viewer", indicator, by)
        recovered = {k for k, v in small.items() if control.get(k) == v}
        assert recovered, f"{indicator} by {by}: the attack fails even unrounded: {control}"


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
            INDICATORS_BY_ID["women_visited"],
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
        secret_cache.clear()
        after = cells(5)
    finally:
        with engine.begin() as conn:
            conn.execute(
                secrets_t.update().where(secrets_t.c.name == ROUNDING_SECRET).values(value=held)
            )
        secret_cache.clear()
    assert cells(5) == before  # the store's own key again: the same answers
    uneven = [k for k, v in exact.items() if v % 5]
    assert len(uneven) >= 10, "too few cells to tell the keys apart"
    assert any(before[k] != after[k] for k in uneven)
    for answer in (before, after):
        assert all(v % 5 == 0 and abs(v - exact[k]) < 5 for k, v in answer.items())
