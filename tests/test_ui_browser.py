"""The data managers' page in a real browser (issue 18 items 3 and 4): Debian's chromium
driven by Playwright (never ``playwright install``: the executable is the system's), over
the API on loopback and a store synced from Central. The numbers on the page are compared
with the API's JSON for the same key; screenshots go to the test's tmp dir.

Skipped when /usr/bin/chromium is missing (.ci/run installs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.api_fixtures import (
    HOME_DISTRICT,
    RARE_DISTRICT,
    SENSITIVE_NEEDLES,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module", name="browser")
def browser_fixture():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


SHOTS: list[str] = []


def _signed_in(browser, api, key: str, lang: str = "en"):
    """A fresh browser context signed in through the login form."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{api.url}/?lang={lang}")
    page.fill("#key", api.synced.tokens[key])
    page.click("button[type=submit]")
    page.wait_for_selector("#indicators")
    return context, page


def _shot(page, tmp_path_factory, api, name: str) -> None:
    """Saved as ui-screenshots/<database>-<view>.png under the run's base temp dir."""
    db = api.synced.engine.dialect.name
    folder = tmp_path_factory.getbasetemp() / "ui-screenshots"
    folder.mkdir(exist_ok=True)
    path = folder / f"{db}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.append(str(path))
    print(f"screenshot: {path}")


def _api_cells(api, key: str, indicator: str) -> dict[str, dict]:
    body = api.get(
        f"/v1/indicators/{indicator}", key, period="none", by="district", lang="en"
    ).json()
    return {c["keys"]["district"]: c for c in body["cells"]}


def _page_cells(page, indicator: str) -> dict[str, str]:
    rows = page.locator(f"#ind-{indicator} table.by-district tbody tr")
    out = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        out[row.get_attribute("data-district")] = row.locator("td").first.inner_text().strip()
    return out


@pytest.mark.parametrize("key", ["viewer", "analyst", "manager", "viewer-home", "analyst-home"])
def test_ui__page_renders_per_role_with_the_apis_numbers(api, browser, key, tmp_path_factory):
    context, page = _signed_in(browser, api, key)
    try:
        assert page.locator("#role").inner_text() == key.split("-")[0]
        for indicator in ("home_visits", "roundtables_held"):
            truth = _api_cells(api, key, indicator)
            shown = _page_cells(page, indicator)
            assert set(shown) == set(truth), (indicator, shown, truth)
            for district, cell in truth.items():
                want = "suppressed" if cell["suppressed"] else str(cell["value"])
                assert shown[district] == want, (indicator, district, shown[district], cell)
        html = page.content()
        assert not any(n in html for n in SENSITIVE_NEEDLES)
        if key.startswith("viewer"):
            assert "Needs an analyst key." in page.locator("#exports").inner_text()
        else:
            assert page.locator("#exports a").count() >= 4
        if key.endswith("-home"):
            districts = {
                page.locator("#map g.dot").nth(i).get_attribute("data-district")
                for i in range(page.locator("#map g.dot").count())
            }
            assert districts <= {HOME_DISTRICT}
            rows = page.locator("table.by-district tbody tr")
            assert {rows.nth(i).get_attribute("data-district") for i in range(rows.count())} <= {
                HOME_DISTRICT
            }
        _shot(page, tmp_path_factory, api, f"page-{key}")
    finally:
        context.close()


def test_ui__viewer_sees_suppressed_cells_as_suppressed_and_manager_the_value(
    api, browser, tmp_path_factory
):
    for key in ("viewer", "manager"):
        context, page = _signed_in(browser, api, key)
        try:
            row = page.locator(f'#ind-home_visits tr[data-district="{RARE_DISTRICT}"] td').first
            if key == "viewer":
                assert row.inner_text() == "suppressed" and row.get_attribute("data-suppressed")
                dot = page.locator(f'#map g.dot[data-district="{RARE_DISTRICT}"]')
                assert "suppressed" in dot.get_attribute("class")
            else:
                assert row.inner_text() == "2"
            _shot(page, tmp_path_factory, api, f"suppressed-{key}")
        finally:
            context.close()


def test_ui__language_switch_changes_labels(api, browser, tmp_path_factory):
    context, page = _signed_in(browser, api, "analyst")
    try:
        assert page.locator("#indicators h2").inner_text() == "Indicators"
        page.click("#lang-tg")
        page.wait_for_url(re.compile(r"lang=tg"))
        assert page.locator("#indicators h2").inner_text() == "Нишондиҳандаҳо"
        tg_kulob = next(
            c.labels["tg"]
            for c in api.synced.specs["household_visit"].choices
            if (c.list_name, c.value) == ("district", HOME_DISTRICT)
        )
        cell = page.locator(f'#ind-home_visits tr[data-district="{HOME_DISTRICT}"] th')
        assert cell.inner_text() == tg_kulob
        _shot(page, tmp_path_factory, api, "lang-tg")
        page.click("#lang-ru")
        page.wait_for_url(re.compile(r"lang=ru"))
        assert page.locator("#indicators h2").inner_text() == "Показатели"
        _shot(page, tmp_path_factory, api, "lang-ru")
    finally:
        context.close()


def test_ui__key_lives_in_an_httponly_strict_cookie_never_in_a_url(api, browser):
    context, page = _signed_in(browser, api, "analyst")
    try:
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        assert api.synced.tokens["analyst"] not in page.url
        assert page.evaluate("document.cookie") == ""  # no script can read it
        links = page.locator("a")
        hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
        assert not any(api.synced.tokens["analyst"] in h for h in hrefs)
        # an export link works with the cookie alone
        with page.expect_download() as got:
            page.click('#exports a[href^="/ui/forms/household_visit/export.csv.zip"]')
        assert got.value.suggested_filename == "household_visit.csv.zip"
        page.click(".who button")
        page.wait_for_selector("#key")
        assert context.cookies() == []
    finally:
        context.close()


def test_ui__works_offline_and_states_its_weight(api, browser):
    """Every request the page makes goes to the API itself; its weight is printed."""
    context, page = _signed_in(browser, api, "manager")
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    weight = {}
    page.on("response", lambda r: weight.__setitem__(r.url, len(r.body())))
    page.reload()
    page.wait_for_selector("#indicators")
    assert seen and all(u.startswith(api.url) for u in seen), seen
    total = sum(weight.values())
    print(f"page weight (manager, uncompressed): {total / 1024:.1f} KB over {len(weight)} files")
    packed = requests.get(
        f"{api.url}/ui",
        cookies={"collector_ui_key": api.synced.tokens["manager"]},
        headers={"Accept-Encoding": "gzip"},
        timeout=60,
        stream=True,
    )
    print(f"page HTML gzipped: {len(packed.raw.read(decode_content=False)) / 1024:.1f} KB")
    assert total < 300 * 1024
    context.close()
