"""normalize against rows a real Central answered (../shared/central-golden/)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from collector.forms.spec import FieldSpec, FormSpec
from collector.sync.normalize import (
    MAX_IDENT,
    fields_from_spec,
    form_shape,
    geopoint,
    ident,
    rows_for_page,
)

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "central-golden"
if not GOLDEN.exists():
    GOLDEN = Path("/work/shared/central-golden")


def golden(name: str):
    return json.loads((GOLDEN / name).read_text())["response"]["json"]


@pytest.fixture
def fields() -> list[dict]:
    return golden("15-form-fields.json")


@pytest.fixture
def rows() -> list[dict]:
    return golden("35-odata-expand.json")["value"]


def test_shape__wide_repeat_and_link_tables_from_fields(fields):
    shape = form_shape("diff_1795488171", fields)
    main, child = shape.tables
    assert main.name == "diff_1795488171"
    assert main.column_names() == [
        "instance_id", "form_version", "submitted_at", "updated_at", "deleted_at",
        "review_state", "name", "age", "place__district", "place__gps_lat", "place__gps_lon",
        "place__gps_alt", "place__gps_acc", "needs", "meta__instanceid",
    ]  # fmt: skip
    assert child.name == "diff_1795488171__child"
    assert child.parent == main.name and child.keys == ("child",)
    assert child.column_names()[-1] == "child_age"
    assert shape.link_tables() == [("diff_1795488171__needs", "diff_1795488171")]
    assert shape.placement["/place/gps"] == ("diff_1795488171", "place__gps", None)
    assert shape.district_keys == ("place", "district")


def test_rows__typed_values_repeats_links_geopoints(fields, rows):
    shape = form_shape("diff_1795488171", fields)
    page = rows_for_page(shape, rows)
    assert page.issues == []
    assert len(page.submissions) == 3
    first = page.tables["diff_1795488171"][0]
    assert first["instance_id"] == "uuid:b70f35dc-47dc-411d-a581-1a90606e164c"
    assert first["age"] == 33 and isinstance(first["age"], int)
    assert (first["place__gps_lat"], first["place__gps_lon"]) == (38.5, 69.3)
    assert (first["place__gps_alt"], first["place__gps_acc"]) == (800.0, 5.0)
    assert first["submitted_at"] == datetime(2026, 11, 24, 2, 42, 54, 583000, tzinfo=UTC)
    kids = page.tables["diff_1795488171__child"]
    assert [(k["position"], k["child_age"]) for k in kids[:2]] == [(1, 4), (2, 9)]
    assert kids[0]["row_id"] == "fec5d8d240054b2be0a1255021cc15885f827b68"
    assert kids[0]["parent_row_id"] is None and len(kids) == 6
    links = page.tables["diff_1795488171__needs"]
    assert [(x["position"], x["value"]) for x in links[:2]] == [(1, "legal"), (2, "financial")]
    sub = page.submissions[0]
    assert sub["district"] == "nurek" and sub["submitter_id"] == "5"
    assert json.loads(sub["raw"]) == rows[0]  # the row kept whole
    assert page.max_seen == datetime(2026, 11, 24, 2, 42, 54, 583000, tzinfo=UTC)


def test_rows__value_not_fitting_its_type_is_an_issue_never_dropped(fields, rows):
    bad = copy.deepcopy(rows[:1])
    bad[0]["age"] = "thirty"
    bad[0]["place"]["gps"] = {"type": "Point", "coordinates": [500, 500]}
    bad[0]["child"][0]["child_age"] = 4.5
    page = rows_for_page(form_shape("f", fields), bad)
    assert page.tables["f"][0]["age"] is None
    by_path = {i["path"]: i for i in page.issues}
    assert by_path["/age"]["value"] == "thirty" and "integer" in by_path["/age"]["reason"]
    assert by_path["/place/gps"]["value"] == '{"type":"Point","coordinates":[500,500]}'
    assert by_path["/child/child_age"]["row_key"] == bad[0]["child"][0]["__id"]
    assert "thirty" in page.submissions[0]["raw"]


def test_rows__wkt_geopoints_and_odk_text_geopoints():
    assert geopoint("POINT (69.3 38.5 800)") == (38.5, 69.3, 800.0, None)
    assert geopoint("38.5 69.3 800 4.5") == (38.5, 69.3, 800.0, 4.5)


def test_rows__dates_times_and_nested_repeats():
    fields = [
        {"path": "/d", "name": "d", "type": "date"},
        {"path": "/t", "name": "t", "type": "time"},
        {"path": "/ts", "name": "ts", "type": "dateTime"},
        {"path": "/hh", "name": "hh", "type": "repeat"},
        {"path": "/hh/person", "name": "person", "type": "repeat"},
        {"path": "/hh/person/age", "name": "age", "type": "int"},
        {"path": "/hh/person/topics", "name": "topics", "type": "string", "selectMultiple": True},
    ]
    row = {
        "__id": "uuid:1",
        "__system": {"submissionDate": "2026-01-01T00:00:00.000Z"},
        "d": "2026-03-08",
        "t": "10:30:00.000+05:00",
        "ts": "2026-03-08T10:30:00.000+05:00",
        "hh": [{"__id": "h1", "person": [{"__id": "p1", "age": 7, "topics": "a b"}]}],
    }
    shape = form_shape("f", fields)
    page = rows_for_page(shape, [row])
    main = page.tables["f"][0]
    assert main["d"] == date(2026, 3, 8) and main["t"] == time(10, 30)
    assert main["ts"] == datetime(2026, 3, 8, 5, 30, tzinfo=UTC)
    person = page.tables["f__hh__person"][0]
    assert person["parent_row_id"] == "h1" and person["age"] == 7
    assert page.tables["f__hh__person__topics"] == [
        {"instance_id": "uuid:1", "row_id": "p1", "position": 1, "value": "a"},
        {"instance_id": "uuid:1", "row_id": "p1", "position": 2, "value": "b"},
    ]


def test_ident__long_names_are_cut_with_a_hash_and_stay_distinct():
    a, b = ident("x" * 80 + "a"), ident("x" * 80 + "b")
    assert len(a) == MAX_IDENT and len(b) == MAX_IDENT and a != b
    assert ident("Household/Name-1") == "household_name_1"
    fields = [
        {"path": "/g" + "x" * 70 + "/q", "name": "q", "type": "string"},
        {"path": "/G" + "x" * 70 + "/q", "name": "q", "type": "string"},
    ]
    cols = [c.name for c in form_shape("f", fields).main.columns]
    assert len(set(cols)) == 2 and all(len(c) <= MAX_IDENT for c in cols)


def test_shape__stored_column_names_win_over_new_collisions():
    fields = [{"path": "/a_b", "name": "a_b", "type": "string"}]
    first = form_shape("f", fields).placement["/a_b"][1]
    later = [{"path": "/a/b", "name": "b", "type": "string"}, *fields]
    shape = form_shape("f", later, assigned={"/a_b": first})
    assert shape.placement["/a_b"][1] == first
    assert shape.placement["/a/b"][1] != first


def test_fields_from_spec__xlsform_types_map_to_centrals():
    spec = FormSpec(
        form_id="f",
        title="F",
        version="1",
        fields=(
            FieldSpec("n", "/n", "integer"),
            FieldSpec("kids", "/kids", "begin_repeat"),
            FieldSpec("k", "/kids/k", "select_multiple", choice_list="c", repeat_path="/kids"),
        ),
        choices=(),
    )
    fields = fields_from_spec(spec)
    assert [(f["path"], f["type"], f["selectMultiple"]) for f in fields] == [
        ("/n", "int", None),
        ("/kids", "repeat", None),
        ("/kids/k", "string", True),
    ]
    assert form_shape("f", fields).link_tables() == [("f__kids__k", "f__kids")]


def test_rows__a_datetime_keeps_its_recorded_offset_beside_the_instant():
    # Central serves a dateTime answer as the text Collect sent, "+07" widened to "+07:00"
    # (central-backend lib/data/odata.js, submissionToOData's dateTime branch).
    fields = [
        {"path": "/ts", "name": "ts", "type": "dateTime"},
        {"path": "/ts/tzmin", "name": "tzmin", "type": "string"},  # would be ts__tzmin
    ]
    shape = form_shape("f", fields)
    ts, other = shape.main.columns
    assert ts.stored_names() == ("ts", "ts__tzmin")
    assert other.name != "ts__tzmin"  # the companion column is taken before it
    texts = {
        "2026-03-08T10:30:00.000+05:00": 300,
        "2026-03-08T10:30:00.000-03:30": -210,
        "2026-03-08T10:30:00.000Z": 0,
        "2026-03-08T10:30:00.000+07:00": 420,
        "2026-03-08T10:30:00": None,  # no zone written: unknown, read as UTC
    }
    rows = [{"__id": f"uuid:{i}", "ts": t} for i, t in enumerate(texts)]
    rows.append({"__id": "uuid:bad", "ts": "yesterday"})
    page = rows_for_page(shape, rows)
    got = [(r["ts"], r["ts__tzmin"]) for r in page.tables["f"]]
    for (text, minutes), (instant, offset) in zip(texts.items(), got, strict=False):
        assert offset == minutes, text
        assert instant == datetime.fromisoformat(text.replace("Z", "+00:00")).replace(
            tzinfo=datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo or UTC
        )
    assert got[-1] == (None, None) and page.issues[0]["value"] == "yesterday"
