"""Geotrace and geoshape answers as GeoJSON LineStrings and Polygons (issue 18 item 1), in the
GeoJSON export and the JSON API, with the same rule of who sees what: a form published to
Central from an XLSForm written here, submitted over OpenRosa, synced into a SQLite store.
Truth is the text sent, read here (ODK writes ``lat lon alt acc``; GeoJSON wants lon, lat)."""

from __future__ import annotations

import uuid
from pathlib import Path

import openpyxl
import pytest

from api.app import create_app
from collector import store
from collector.forms.push import store_recorder
from collector.forms.xlsform import form_spec, read_xlsform
from collector.store.keys import create_key
from collector.sync import submissions as sync
from tests.api_fixtures import serving
from tests.test_sync_support import new_project

ROUTE = "38.55 68.77 800 5;38.56 68.78 805 5;38.57 68.80 810 4"
PLOT = "38.50 68.70 0 3;38.50 68.71 0 3;38.51 68.71 0 3;38.51 68.70 0 3"
SECRET = "39.10 69.10 0 2;39.20 69.20 0 2"
LANGS = ("English (en)", "Tajik (tg)", "Russian (ru)")


def _xlsform(path: Path) -> None:
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", *(f"label::{lang}" for lang in LANGS), "sensitive"])
    survey.append(["select_one district", "district", "District", "Ноҳия", "Район", ""])
    survey.append(["geotrace", "route", "Route walked", "Роҳ", "Маршрут", ""])
    survey.append(["geoshape", "plot", "Plot", "Қитъа", "Участок", ""])
    survey.append(["geotrace", "secret_route", "Route to the shelter", "Роҳ", "Путь", "yes"])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", *(f"label::{lang}" for lang in LANGS)])
    choices.append(["district", "kulob", "Kulob", "Кӯлоб", "Куляб"])
    settings = wb.create_sheet("settings")
    settings.append(["form_id", "version", "default_language"])
    settings.append(["geo_walk", "1", "English (en)"])
    wb.save(path)


def _lonlat(text: str) -> list[list[float]]:
    return [
        [float(p.split()[1]), float(p.split()[0]), float(p.split()[2])] for p in text.split(";")
    ]


@pytest.fixture(scope="module", name="geo_api")
def geo_api_fixture(central, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("geolines")
    xlsx = tmp / "geo_walk.xlsx"
    _xlsform(xlsx)
    project = new_project(central, tmp, f"geo-{uuid.uuid4().hex[:8]}")
    settings = project.settings(
        database_url=f"sqlite:///{tmp / 'store.db'}", api_rate_limit_per_minute=100_000
    )
    engine = store.engine_for(settings)
    store.create_schema(engine)
    form = project.publish_xlsx(xlsx, "geo_walk")
    spec = form_spec(read_xlsform(xlsx))
    store_recorder(engine)(spec, project.fields("geo_walk"), project.project_id)
    iid = f"uuid:{uuid.uuid4()}"
    project.submit(
        f'<?xml version="1.0"?><data id="geo_walk" version="{form.get("version") or ""}">'
        f"<district>kulob</district><route>{ROUTE}</route><plot>{PLOT}</plot>"
        f"<secret_route>{SECRET}</secret_route><meta><instanceID>{iid}</instanceID></meta></data>"
    )
    results = sync.sync_forms(settings, engine=engine)
    assert all(r.status == "ok" for r in results), [(r.xml_form_id, r.error) for r in results]
    tokens = {
        role: create_key(engine, name=role, role=role, districts=None).token
        for role in ("analyst", "manager")
    }
    with serving(create_app(settings, engine=engine)) as url:
        yield url, tokens, iid
    engine.dispose()


def _get(geo_api, key: str, path: str, **params):
    import requests

    url, tokens, _ = geo_api
    return requests.get(
        url + path, params=params, headers={"Authorization": f"Bearer {tokens[key]}"}, timeout=60
    )


def test_geojson__geotrace_is_a_linestring_and_geoshape_a_polygon(geo_api):
    r = _get(geo_api, "analyst", "/v1/forms/geo_walk/export.geojson")  # first visible line
    assert r.status_code == 200, r.text
    (feature,) = r.json()["features"]
    assert feature["geometry"] == {"type": "LineString", "coordinates": _lonlat(ROUTE)}
    r = _get(geo_api, "analyst", "/v1/forms/geo_walk/export.geojson", geofield="plot")
    (feature,) = r.json()["features"]
    ring = _lonlat(PLOT)
    assert feature["geometry"] == {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    assert "secret_route" not in feature["properties"]
    assert SECRET.split()[0] not in r.text


def test_geojson__a_sensitive_geotrace_stays_the_managers(geo_api):
    r = _get(geo_api, "analyst", "/v1/forms/geo_walk/export.geojson", geofield="secret_route")
    assert r.status_code == 403 and "secret_route" in r.text
    r = _get(geo_api, "manager", "/v1/forms/geo_walk/export.geojson", geofield="secret_route")
    (feature,) = r.json()["features"]
    assert feature["geometry"]["coordinates"] == _lonlat(SECRET)


def test_json_api__geotrace_and_geoshape_values_are_geojson(geo_api):
    r = _get(geo_api, "analyst", "/v1/forms/geo_walk/submissions")
    (item,) = r.json()["items"]
    assert item["values"]["route"] == {"type": "LineString", "coordinates": _lonlat(ROUTE)}
    assert item["values"]["plot"]["type"] == "Polygon"
    assert "secret_route" not in item["values"]
    r = _get(geo_api, "manager", "/v1/forms/geo_walk/submissions")
    (item,) = r.json()["items"]
    assert item["values"]["secret_route"]["coordinates"] == _lonlat(SECRET)
