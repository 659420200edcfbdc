"""The reference pages work offline and every response carries security headers (issue 15,
item 9). The API runs in uvicorn on loopback; the pages are parsed with the standard
library's HTML parser, and every script, stylesheet and icon they name is fetched."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import requests

from api.app import create_app
from collector import store
from collector.settings import Settings
from collector.store.keys import create_key
from tests.api_fixtures import serving


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.urls.append(a["src"] or "")
            else:
                self._in_script = True
        if tag == "link" and a.get("href"):
            self.urls.append(a["href"] or "")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


@pytest.fixture
def live(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/s.db", _env_file=None
    )
    engine = store.engine_for(settings)
    store.create_schema(engine)
    token = create_key(engine, name="analyst", role="analyst").token
    with serving(create_app(settings, engine=engine)) as url:
        yield url, token
    engine.dispose()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs__assets_come_from_the_api_itself(live, page: str) -> None:
    url, _ = live
    r = requests.get(url + page, timeout=30)
    assert r.status_code == 200
    parser = _Assets()
    parser.feed(r.text)
    assert parser.urls, "the page names no assets"
    assert parser.inline_scripts == 0  # so script-src 'self' can hold
    host = urlparse(url).netloc
    for ref in parser.urls:
        absolute = urljoin(url + page, ref)
        assert urlparse(absolute).netloc == host, f"{ref} is loaded from elsewhere"
        asset = requests.get(absolute, timeout=30)
        assert asset.status_code == 200, absolute
        assert len(asset.content) > 0
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "cdn" not in r.text.lower()
    spec = requests.get(urljoin(url + page, "openapi.json"), timeout=30)
    assert spec.status_code == 200 and spec.json()["info"]["title"]


def test_security_headers__on_every_response(live) -> None:
    url, token = live
    auth = {"Authorization": f"Bearer {token}"}
    responses = [
        requests.get(url + "/health", timeout=30),
        requests.get(url + "/openapi.json", timeout=30),
        requests.get(url + "/v1/forms", timeout=30),  # 401
        requests.get(url + "/v1/forms", headers=auth, timeout=30),
        requests.get(url + "/v1/forms/nope", headers=auth, timeout=30),  # 404
        requests.get(url + "/nowhere", timeout=30),
        requests.post(url + "/v1/forms/x/submissions/query", data=b"x" * (2 << 20), timeout=30),
    ]
    assert {r.status_code for r in responses} >= {200, 401, 404, 413}
    for r in responses:
        assert r.headers.get("X-Content-Type-Options") == "nosniff", r.url
        assert r.headers.get("Referrer-Policy") == "no-referrer", r.url
        assert "frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", ""), r.url
    api = requests.get(url + "/v1/forms", headers=auth, timeout=30)
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert api.headers["Cache-Control"] == "no-store"


def test_openapi__needs_no_key_and_lists_no_data(live) -> None:
    """The README says so: the document describes routes and roles, not forms or rows."""
    url, _ = live
    spec = requests.get(url + "/openapi.json", timeout=30)
    assert spec.status_code == 200
    assert "/v1/forms/{form_id}/submissions" in spec.json()["paths"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "`/openapi.json` need no key" in " ".join(readme.split())
