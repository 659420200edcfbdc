"""Names that cannot collide (issue 13 item 4): every form syncs into tables of its own,
the store's own tables untouched, each answer in its own column, found by the API's
reads (``forminfo`` + ``queries``: the registry in ``form``/``form_field``).

Each collision the issue met is its own test, against the emulator or a real Central,
on SQLite and PostgreSQL. The truth is the XML each test sends.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from collector import store
from collector.central import Central
from collector.read import queries
from collector.read.forminfo import Scope, form_info
from collector.sync import submissions as sync
from collector.sync.normalize import form_shape
from tests.test_sync_support import new_project

XFORM = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
 xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
<h:head><h:title>{fid}</h:title><model>
<instance><data id="{fid}" version="1">{nodes}<meta><instanceID/></meta></data></instance>
{binds}
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head>
<h:body>{body}</h:body></h:html>
"""

EVERYTHING = Scope(sensitive=True, districts=None)


def xform(
    fid: str, questions: list[tuple[str, str]], repeat: tuple[str, list] | None = None
) -> str:
    """``questions``: (name, bind type); ``repeat``: (name, its questions)."""
    nodes = "".join(f"<{n}/>" for n, _ in questions)
    binds = "".join(f'<bind nodeset="/data/{n}" type="{t}"/>' for n, t in questions)
    body = "".join(f'<input ref="/data/{n}"/>' for n, _ in questions)
    if repeat:
        name, inner = repeat
        nodes += f'<{name} jr:template="">' + "".join(f"<{n}/>" for n, _ in inner) + f"</{name}>"
        binds += "".join(f'<bind nodeset="/data/{name}/{n}" type="{t}"/>' for n, t in inner)
        body += f'<repeat nodeset="/data/{name}">' + "".join(
            f'<input ref="/data/{name}/{n}"/>' for n, _ in inner
        ) + "</repeat>"  # fmt: skip
    return XFORM.format(fid=fid, nodes=nodes, binds=binds, body=body)


def submit(project, fid: str, body: str) -> str:
    iid = f"uuid:{uuid.uuid4()}"
    project.submit(
        f'<data id="{fid}" version="1">{body}<meta><instanceID>{iid}</instanceID></meta></data>'
    )
    return iid


@pytest.fixture
def project(central, tmp_path, fresh_name):
    return new_project(central, tmp_path, fresh_name)


def sync_all(project, engine, forms: list[str]) -> dict[str, sync.FormResult]:
    settings = project.settings()
    with Central(settings, backoff=0.02, backoff_max=0.2) as c:
        results = {
            r.xml_form_id: r for r in sync.sync_forms(settings, forms, engine=engine, central=c)
        }
    for fid, r in results.items():
        assert r.status == "ok", (fid, r.error)
    return results


def read(engine, fid: str, iid: str) -> dict:
    """One submission as the API reads it (the registry names the table and columns)."""
    form = form_info(engine, fid)
    assert form is not None
    row = queries.submission_one(engine, form, iid, scope=EVERYTHING)
    assert row is not None, (fid, iid)
    out = {}
    for f in form.visible_fields(None, EVERYTHING):
        cols = f.value_columns()
        if cols:
            values = [row[queries.value_key(c)] for c in cols]
            out[f.name] = values[0] if len(values) == 1 else values
    return out


def table_columns(engine, name: str) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns(name)]


def test_names__form_named_like_a_store_table_leaves_it_alone(project, engine):
    fid = "enumerator"
    store.create_schema(engine)
    before = table_columns(engine, "enumerator")
    project.publish_xform(xform(fid, [("who", "string"), ("age", "int")]))
    iid = submit(project, fid, "<who>Мадина</who><age>31</age>")
    sync_all(project, engine, [fid])
    sync_all(project, engine, [fid])  # and every run after
    assert table_columns(engine, "enumerator") == before
    got = read(engine, fid, iid)
    assert got["who"] == "Мадина" and got["age"] == 31
    assert form_info(engine, fid).table_name != "enumerator"


def test_names__hyphen_and_underscore_form_ids_get_two_tables(project, engine):
    project.publish_xform(xform("hh-visit", [("visited", "date")]))
    project.publish_xform(xform("hh_visit", [("visited", "int")]))
    a = submit(project, "hh-visit", "<visited>2026-03-01</visited>")
    b = submit(project, "hh_visit", "<visited>7</visited>")
    sync_all(project, engine, ["hh-visit", "hh_visit"])
    sync_all(project, engine, ["hh-visit", "hh_visit"])
    assert str(read(engine, "hh-visit", a)["visited"]) == "2026-03-01"
    assert read(engine, "hh_visit", b)["visited"] == 7
    assert form_info(engine, "hh-visit").table_name != form_info(engine, "hh_visit").table_name
    with engine.connect() as c:
        for fid in ("hh-visit", "hh_visit"):
            n = c.execute(sa.text(f'SELECT count(*) FROM "{form_info(engine, fid).table_name}"'))
            assert n.scalar_one() == 1, fid  # no rows of the other form


def test_names__repeat_table_and_another_forms_id_do_not_meet(project, engine):
    owner = "edge_names3"
    project.publish_xform(xform(owner, [("name", "string")], ("items", [("qty", "int")])))
    project.publish_xform(xform("edge_names3__items", [("note", "string")]))
    a = submit(
        project, owner, "<name>x</name><items><qty>4</qty></items><items><qty>5</qty></items>"
    )
    b = submit(project, "edge_names3__items", "<note>hello</note>")
    sync_all(project, engine, [owner, "edge_names3__items"])
    assert read(engine, "edge_names3__items", b)["note"] == "hello"
    form = form_info(engine, owner)
    repeat = next(f for f in form.fields if f.type == "repeat")
    rows = queries.repeat_rows(engine, form, repeat, [a], scope=EVERYTHING)
    qty = next(f for f in form.fields if f.name == "qty")
    assert sorted(r[queries.value_key(qty.column_name)] for r in rows) == [4, 5]


def test_names__question_named_like_a_geopoint_expansion(project, engine):
    fid = "gps_first"
    project.publish_xform(xform(fid, [("gps_lat", "string"), ("gps", "geopoint")]))
    iid = submit(project, fid, "<gps_lat>north</gps_lat><gps>38.5 68.7 800 5</gps>")
    sync_all(project, engine, [fid])
    got = read(engine, fid, iid)
    assert got["gps_lat"] == "north"
    assert got["gps"][:2] == [pytest.approx(38.5), pytest.approx(68.7)]


def test_names__two_names_odata_cleans_to_one_do_not_stop_the_form(project, engine):
    fid = "cyrillic_names"
    project.publish_xform(xform(fid, [("имя", "string"), ("фамилия", "string"), ("age", "int")]))
    iid = submit(project, fid, "<имя>Зарина</имя><фамилия>Каримова</фамилия><age>40</age>")
    sync_all(project, engine, [fid])
    assert read(engine, fid, iid)["age"] == 40  # the rest of the form syncs


def test_form_shape__every_generated_name_distinct_and_deterministic():
    fields = [
        {"path": "/gps_lat", "name": "gps_lat", "type": "string"},
        {"path": "/gps", "name": "gps", "type": "geopoint"},
        {"path": "/instance_id", "name": "instance_id", "type": "string"},
        {"path": "/items", "name": "items", "type": "repeat"},
        {"path": "/items/x", "name": "x", "type": "string", "selectMultiple": True},
    ]
    shape = form_shape("f", fields, reserved={"f__items", "f__x"})
    again = form_shape("f", fields, reserved={"f__items", "f__x"})
    assert shape == again
    for t in shape.tables:
        names = t.column_names()
        assert len(names) == len(set(names)), names
    tables = [t.name for t in shape.tables] + [n for n, _ in shape.link_tables()]
    assert len(set(tables)) == len(tables) and not {"f__items", "f__x"} & set(tables)
