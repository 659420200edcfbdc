"""Cursors checked like filters, and no 500 from ordinary paging input (issue 15, items 6-7).

A cursor is base64 JSON (the sort and a submission id): anyone can write one. The truth
here is the rows the test generated itself: which were deleted, which have no value.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from api.app import create_app
from bench.api_bench import odata_row
from collector import store
from collector.forms.xlsform import form_spec, read_xlsform
from collector.settings import Settings
from collector.store.keys import create_key
from collector.sync import normalize
from tests.api_fixtures import serving

FORMS = Path(__file__).resolve().parent.parent / "forms"
LIST = "/v1/forms/household_visit/submissions"
ROWS = 24
DELETED_AGE = 99  # only the deleted submission has it; the others are 15..75


@pytest.fixture
def paged(database_url: str, tmp_path: Path):
    spec = form_spec(read_xlsform(FORMS / "household_visit.xlsx"), media_dir=FORMS)
    engine = store.engine_for(database_url)
    store.create_schema(engine)
    form_id = store.save_form_spec(engine, spec)
    shape = store.stored_form_shape(engine, form_id)
    rng = random.Random(6)
    start = datetime(2026, 4, 1, tzinfo=UTC)
    rows = [odata_row(spec, rng, start + timedelta(hours=i)) for i in range(ROWS)]
    for i, row in enumerate(rows):
        if i % 3 == 0:  # a third have no age and no education: empty sort values
            row["visit"]["respondent_age"] = None
            row["visit"]["education"] = None
    deleted = rows[7]
    deleted["visit"]["respondent_age"] = DELETED_AGE
    deleted["__system"]["deletedAt"] = "2026-04-05T10:00:00.000Z"
    store.store_page(
        engine, form_id, shape, normalize.rows_for_page(shape, rows), store.form_tables(shape)
    )
    with engine.connect() as conn:
        deleted_id = conn.execute(
            sa.text("SELECT id FROM submission WHERE instance_id = :i"), {"i": deleted["__id"]}
        ).scalar_one()
    tokens = {
        role: create_key(engine, name=role, role=role).token for role in ("analyst", "manager")
    }
    settings = Settings(database_url=database_url, data_dir=tmp_path, _env_file=None)
    with serving(create_app(settings, engine=engine)) as url:
        yield {
            "url": url,
            "tokens": tokens,
            "deleted_id": deleted_id,
            "live": {r["__id"] for r in rows if r is not deleted},
        }
    engine.dispose()


def _get(ctx, role: str, path: str, **params) -> requests.Response:
    return requests.get(
        ctx["url"] + path,
        params=params,
        headers={"Authorization": f"Bearer {ctx['tokens'][role]}"},
        timeout=60,
    )


def _forged(sort: str, row_id: int) -> str:
    payload = json.dumps({"v": 2, "s": sort, "i": row_id}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize("sort", ["visit/respondent_age", "-visit/respondent_age"])
def test_cursor__naming_a_deleted_submission_is_refused_below_include_deleted(
    paged, sort: str
) -> None:
    cursor = _forged(sort, paged["deleted_id"])
    r = _get(paged, "analyst", LIST, sort=sort, cursor=cursor, fields="visit/respondent_age")
    assert r.status_code == 422, r.text
    assert "cursor" in r.json()["errors"][0]["parameter"]
    # A manager asking for deleted rows may page from it.
    r = _get(paged, "manager", LIST, sort=sort, cursor=cursor, include_deleted="true")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "sort",
    ["visit/respondent_age", "-visit/respondent_age", "visit/education", "-visit/education"],
)
def test_cursor__following_next_cursor_through_empty_values_reaches_every_row(
    paged, sort: str
) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(ROWS + 2):
        params = {"sort": sort, "limit": 4, **({"cursor": cursor} if cursor else {})}
        r = _get(paged, "analyst", LIST, **params)
        assert r.status_code == 200, r.text
        seen += [item["instance_id"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert set(seen) == paged["live"]


def test_data_issues__after_beyond_64_bits_is_422(paged) -> None:
    r = _get(paged, "analyst", "/v1/data-issues", after=str(2**63))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["parameter"] == "after"
    assert _get(paged, "analyst", "/v1/data-issues", after="1000000").status_code == 200
