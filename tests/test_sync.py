"""Sync over real HTTP against the emulator (or a real Central), into SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from collector import store
from collector.central import Central
from collector.settings import Settings
from collector.sync import submissions as sync
from emulator.control import EmulatorControl
from tests.test_sync_support import (
    REPO,
    assert_store_equals_truth,
    new_project,
    submission_xml,
    submit_many,
)

FORM_ID = "household_visit"


def quick_central(settings) -> Central:
    return Central(settings, backoff=0.02, backoff_max=0.2)


def run(settings, engine, **kw) -> sync.FormResult:
    with quick_central(settings) as c:
        results = sync.sync_forms(settings, engine=engine, central=c, **kw)
    (result,) = [r for r in results if r.xml_form_id == kw.get("forms", [FORM_ID])[0]]
    return result


@pytest.fixture
def household(central, tmp_path, fresh_name):
    project = new_project(central, tmp_path, fresh_name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    return project, form, project.fields(FORM_ID)


def test_sync__every_submission_once_typed_with_repeats_links_geopoints(household, engine):
    project, form, fields = household
    sent = submit_many(project, form, fields, 40, seed=1)
    settings = project.settings(sync_page_size=7)
    first = run(settings, engine, forms=[FORM_ID])
    assert first.status == "ok", first.error
    assert (first.fetched, first.written) == (40, 40)
    assert first.pages == 6  # the window (deletions asked for in the same query) in pages of 7
    assert assert_store_equals_truth(engine, project, FORM_ID) == 40

    children = sum(xml.count("<children>") for _, xml in sent)
    needs = sum(len(re.search(r"<needs>([^<]*)</needs>", xml).group(1).split()) for _, xml in sent)
    with engine.connect() as c:
        n_children = c.execute(sa.text("SELECT count(*) FROM household_visit__visit__children"))
        n_needs = c.execute(sa.text("SELECT count(*) FROM household_visit__visit__needs"))
        assert (n_children.scalar_one(), n_needs.scalar_one()) == (children, needs)
        row = c.execute(
            sa.text(
                "SELECT visit__gps_lat, visit__gps_lon, visit__respondent_age, visit__district,"
                " submitted_at FROM household_visit WHERE instance_id = :i"
            ),
            {"i": sent[0][0]},
        ).one()
        lat = float(re.search(r"<gps>(\S+) ", sent[0][1]).group(1))
        assert row[0] == pytest.approx(lat) and 67 < row[1] < 75
        assert isinstance(row[2], int)
        assert row[3] == re.search(r"<district>(\w+)</district>", sent[0][1]).group(1)
        district = c.execute(
            sa.select(store.T["submission"].c.district).where(
                store.T["submission"].c.instance_id == sent[0][0]
            )
        ).scalar_one()
        assert district == row[3]

    again = run(settings, engine, forms=[FORM_ID])
    assert again.status == "ok" and again.written == 0


def test_sync__edits_reviews_deletions_and_restores_show_up(household, engine):
    project, form, fields = household
    sent = submit_many(project, form, fields, 12, seed=2)
    settings = project.settings(sync_page_size=5)
    assert run(settings, engine, forms=[FORM_ID]).written == 12

    rng = random.Random(3)
    edited_xml, _ = submission_xml(
        form, fields, rng, instance_id="uuid:edited-1", deprecated_id=sent[0][0], children=4
    )
    project.submit(edited_xml)
    project.review(FORM_ID, sent[1][0], "approved")
    project.delete(FORM_ID, sent[2][0])
    project.delete(FORM_ID, sent[3][0])
    result = run(settings, engine, forms=[FORM_ID])
    assert result.status == "ok", result.error
    assert result.deleted == 2
    assert_store_equals_truth(engine, project, FORM_ID)
    with engine.connect() as c:
        kids = c.execute(
            sa.text("SELECT count(*) FROM household_visit__visit__children WHERE instance_id = :i"),
            {"i": sent[0][0]},
        ).scalar_one()
        assert kids == 4  # the edit's repeats replaced the original's
        review = c.execute(
            sa.text("SELECT review_state FROM household_visit WHERE instance_id = :i"),
            {"i": sent[1][0]},
        ).scalar_one()
        assert review == "approved"

    project.restore(FORM_ID, sent[2][0])
    result = run(settings, engine, forms=[FORM_ID])
    assert result.restored == 1
    assert_store_equals_truth(engine, project, FORM_ID)
    assert run(settings, engine, forms=[FORM_ID]).written == 0


def test_sync__a_first_read_stores_earlier_deletions_marked(household, engine):
    """Deletions come with the window's own query: a first read asks for deleted rows too."""
    project, form, fields = household
    sent = submit_many(project, form, fields, 6, seed=21)
    project.delete(FORM_ID, sent[0][0])
    first = run(project.settings(), engine, forms=[FORM_ID])
    assert first.status == "ok" and (first.written, first.deleted, first.pages) == (6, 1, 1)
    assert assert_store_equals_truth(engine, project, FORM_ID) == 6
    state = store.sync_state(engine, store.form_id_for(engine, FORM_ID))
    assert state["deleted_watermark"] is not None


def test_sync__deletions_before_any_was_seen_come_with_the_window(household, engine):
    """Until a deletion has been seen, the deleted time starts at the window's (``... or
    deletedAt ge W``): an old submission deleted later is still found, without the
    instance-id reconciliation to fall back on."""
    project, form, fields = household
    sent = submit_many(project, form, fields, 6, seed=23)
    settings = project.settings(sync_overlap_seconds=0)
    assert run(settings, engine, forms=[FORM_ID]).written == 6
    state = store.sync_state(engine, store.form_id_for(engine, FORM_ID))
    assert state["deleted_watermark"] is None
    fresh = submit_many(project, form, fields, 2, seed=24)
    project.delete(FORM_ID, sent[0][0])  # the oldest: only its deletedAt is new
    project.delete(FORM_ID, fresh[1][0])
    later = run(settings, engine, forms=[FORM_ID], reconcile=False)
    # written: the two new ones (one already deleted) and the old one, now marked deleted
    assert later.status == "ok" and (later.written, later.deleted, later.pages) == (3, 2, 1)
    assert_store_equals_truth(engine, project, FORM_ID)


def test_sync__a_read_cut_short_by_central_moves_no_watermark(household, emulator_central, engine):
    """Central answers an empty last page when the row its skiptoken names was purged
    meanwhile; rows counted but never read must not be passed over by the watermark."""
    project, form, fields = household
    submit_many(project, form, fields, 20, seed=31)
    settings = project.settings(sync_page_size=7)
    control = EmulatorControl(emulator_central.url)
    control.add_rules(
        {"path": r"\.svc/Submissions", "method": "GET", "skip": 1, "times": 1,
         "action": "cursor_gone"}
    )  # fmt: skip
    try:
        cut = run(settings, engine, forms=[FORM_ID])
    finally:
        control.clear()
    assert cut.status == "failed" and "ended after 7 of the 20 rows" in (cut.error or "")
    state = store.sync_state(engine, store.form_id_for(engine, FORM_ID))
    assert state["watermark"] is None  # stored what came, and nothing more is assumed
    again = run(settings, engine, forms=[FORM_ID])
    assert again.status == "ok" and again.written == 13
    assert assert_store_equals_truth(engine, project, FORM_ID) == 20


def test_sync__late_commit_with_older_date_is_caught(household, emulator_central, engine):
    """central#1615: a submission lands behind the watermark (older than the overlap)."""
    project, form, fields = household
    submit_many(project, form, fields, 5, seed=4)
    settings = project.settings(sync_overlap_seconds=60)
    assert run(settings, engine, forms=[FORM_ID]).written == 5
    xml, late_id = submission_xml(form, fields, random.Random(5))
    project.backdated(FORM_ID, xml, datetime.now(UTC) - timedelta(hours=2))
    result = run(settings, engine, forms=[FORM_ID])
    assert result.reconciled and result.written == 1
    assert late_id in {r for r in store.instance_states(engine, store.form_id_for(engine, FORM_ID))}
    assert_store_equals_truth(engine, project, FORM_ID)


def test_sync__restore_older_than_overlap_is_caught_by_reconciliation(household, engine):
    project, form, fields = household
    sent = submit_many(project, form, fields, 4, seed=6)
    settings = project.settings(sync_overlap_seconds=0)
    run(settings, engine, forms=[FORM_ID])
    project.delete(FORM_ID, sent[0][0])
    assert run(settings, engine, forms=[FORM_ID]).deleted == 1
    project.restore(FORM_ID, sent[0][0])  # does not move updatedAt
    result = run(settings, engine, forms=[FORM_ID])
    assert result.restored == 1 and result.reconciled
    assert_store_equals_truth(engine, project, FORM_ID)


XFORM = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
 xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
<h:head><h:title>Evolving</h:title><model>
<instance><data id="{fid}" version="{version}">
<name/><age/>{extra_nodes}<kid jr:template=""><kid_age/></kid>
<meta><instanceID/></meta></data></instance>
<bind nodeset="/data/name" type="string"/>
<bind nodeset="/data/age" type="int"/>
{extra_binds}
<bind nodeset="/data/kid/kid_age" type="int"/>
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head>
<h:body><input ref="/data/name"/><input ref="/data/age"/>
<repeat nodeset="/data/kid"><input ref="/data/kid/kid_age"/></repeat>{extra_body}</h:body></h:html>
"""


def xform(fid: str, version: str, *, v2: bool = False) -> str:
    extra_nodes = '<phone/><topics/><visit jr:template=""><when/></visit>' if v2 else ""
    extra_binds = (
        '<bind nodeset="/data/phone" type="string"/>'
        '<bind nodeset="/data/topics" type="string"/>'
        '<bind nodeset="/data/visit/when" type="date"/>'
        if v2
        else ""
    )
    extra_body = (
        '<input ref="/data/phone"/><select ref="/data/topics">'
        "<item><label>Legal</label><value>legal</value></item>"
        "<item><label>Work</label><value>work</value></item></select>"
        '<repeat nodeset="/data/visit"><input ref="/data/visit/when"/></repeat>'
        if v2
        else ""
    )
    return XFORM.format(
        fid=fid,
        version=version,
        extra_nodes=extra_nodes,
        extra_binds=extra_binds,
        extra_body=extra_body,
    )


def test_sync__new_version_adds_question_and_repeat_keeping_earlier_rows(
    central, tmp_path, fresh_name, engine
):
    project = new_project(central, tmp_path, fresh_name)
    fid = f"evolving_{fresh_name}"
    form = project.publish_xform(xform(fid, "1"))
    fields = project.fields(fid)
    submit_many(project, form, fields, 3, seed=7)
    settings = project.settings()
    assert run(settings, engine, forms=[fid]).written == 3

    project.publish_new_version(xform(fid, "2", v2=True), fid)
    form2 = {**form, "version": "2"}
    fields2 = project.fields(fid)
    assert {f["path"] for f in fields2} >= {"/phone", "/visit/when", "/topics"}
    later = submit_many(project, form2, fields2, 2, seed=8)
    result = run(settings, engine, forms=[fid])
    assert result.status == "ok", result.error
    # the 2 new, and the 3 earlier ones again (read in the overlap): Central now serves them
    # in the new version's fields (the added ones null: lib/resources/odata.js), so they changed
    assert result.written == 5
    assert_store_equals_truth(engine, project, fid)
    table = store.form_tables(store.stored_form_shape(engine, store.form_id_for(engine, fid)))
    with engine.connect() as c:
        rows = c.execute(sa.select(table[fid.lower()]).order_by(sa.text("submitted_at"))).all()
        assert len(rows) == 5
        assert [r.phone is None for r in rows] == [True, True, True, False, False]
        visits = c.execute(sa.select(sa.func.count()).select_from(table[f"{fid.lower()}__visit"]))
        assert visits.scalar_one() == sum(xml.count("<visit>") for _, xml in later)
        topics = c.execute(sa.select(sa.func.count()).select_from(table[f"{fid.lower()}__topics"]))
        assert topics.scalar_one() == sum(
            len(re.search(r"<topics>([^<]*)</topics>", xml).group(1).split()) for _, xml in later
        )


def test_sync__unknown_form_fails_alone_and_is_recorded(household, engine):
    project, form, fields = household
    submit_many(project, form, fields, 2, seed=9)
    settings = project.settings()
    with quick_central(settings) as c:
        results = sync.sync_forms(settings, ["no_such_form", FORM_ID], engine=engine, central=c)
    by_id = {r.xml_form_id: r for r in results}
    assert by_id["no_such_form"].status == "failed"
    assert "no_such_form" in by_id["no_such_form"].error
    assert by_id[FORM_ID].status == "ok" and by_id[FORM_ID].written == 2
    with engine.connect() as c:
        errors = c.execute(
            sa.select(store.T["sync_run"].c.error).where(store.T["sync_run"].c.status == "failed")
        ).scalars()
        assert any("no_such_form" in e for e in errors)


ATTACHMENT_XFORM = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
 xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
<h:head><h:title>Photo</h:title><model>
<instance><data id="{fid}" version="1"><name/><photo/><meta><instanceID/></meta></data></instance>
<bind nodeset="/data/name" type="string"/>
<bind nodeset="/data/photo" type="binary"/>
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head>
<h:body><input ref="/data/name"/><upload ref="/data/photo" mediatype="image/*"/></h:body></h:html>
"""


def test_sync__attachments_fetched_checksummed_and_retried_until_present(
    central, tmp_path, fresh_name, engine
):
    project = new_project(central, tmp_path, fresh_name)
    fid = f"photo_{fresh_name}"
    project.publish_xform(ATTACHMENT_XFORM.format(fid=fid))
    photo = b"\x89PNG fake image bytes " * 50
    with_photo = (
        f'<data id="{fid}" version="1"><name>a</name><photo>a.png</photo>'
        "<meta><instanceID>uuid:with-photo</instanceID></meta></data>"
    )
    later = (
        f'<data id="{fid}" version="1"><name>b</name><photo>b.png</photo>'
        "<meta><instanceID>uuid:photo-later</instanceID></meta></data>"
    )
    project.submit(with_photo, {"a.png": photo})
    project.submit(later)  # its photo is still on the tablet
    settings = project.settings()
    result = run(settings, engine, forms=[fid])
    assert result.status == "ok", result.error
    assert result.attachments == 1
    att = store.T["attachment"]
    with engine.connect() as c:
        rows = {r.instance_id: r for r in c.execute(sa.select(att))}
    assert rows["uuid:with-photo"].sha256 == hashlib.sha256(photo).hexdigest()
    assert (settings.data_dir / rows["uuid:with-photo"].path).read_bytes() == photo
    assert rows["uuid:photo-later"].present is False

    project.submit(later, {"b.png": b"second"})  # Collect sends the missing file
    assert run(settings, engine, forms=[fid]).attachments == 1
    with engine.connect() as c:
        done = c.execute(sa.select(att).where(att.c.instance_id == "uuid:photo-later")).one()
    assert done.present and done.sha256 == hashlib.sha256(b"second").hexdigest()


ENCRYPTED_XFORM = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
 xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
<h:head><h:title>Secret</h:title><model>
<instance><data id="{fid}" version="1"><name/><meta><instanceID/></meta></data></instance>
<submission method="post" base64RsaPublicKey="MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAw1zV"/>
<bind nodeset="/data/name" type="string"/>
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head>
<h:body><input ref="/data/name"/></h:body></h:html>
"""


def test_sync__encrypted_form_fails_by_name_and_the_others_still_sync(household, engine):
    project, form, fields = household
    submit_many(project, form, fields, 3, seed=12)
    fid = f"secret_{project.project_id}"
    project.publish_xform(ENCRYPTED_XFORM.format(fid=fid))
    project.submit(
        f'<data id="{fid}" version="1"><name>x</name>'
        "<meta><instanceID>uuid:secret-1</instanceID></meta></data>"
    )
    settings = project.settings()
    with quick_central(settings) as c:
        results = {r.xml_form_id: r for r in sync.sync_forms(settings, engine=engine, central=c)}
    assert results[fid].status == "failed"
    assert fid in results[fid].error and "encrypted" in results[fid].error
    assert results[FORM_ID].status == "ok" and results[FORM_ID].written == 3
    assert store.instance_states(engine, store.form_id_for(engine, fid)) == {}


def test_sync__finds_each_forms_project_by_its_manifest_name(household, engine, tmp_path):
    project, form, fields = household
    submit_many(project, form, fields, 2, seed=13)
    forms_dir = tmp_path / "forms"
    forms_dir.mkdir()
    name = project_name(project)
    (forms_dir / "manifest.toml").write_text(
        f'[defaults]\nproject = "{name}"\n\n'
        f'[forms.{FORM_ID}]\nfile = "household_visit.xlsx"\nsync = {{ interval_minutes = 15 }}\n'
        '\n[forms.not_pushed]\nfile = "x.xlsx"\nproject = "No such project here"\n'
        "sync = { interval_minutes = 15 }\n"
    )
    given = project.settings(forms_dir=forms_dir).model_dump(exclude={"central_project_id"})
    settings = Settings(**given)  # no project id given: the manifest's names decide
    assert "central_project_id" not in settings.model_fields_set
    with quick_central(settings) as c:
        results = {r.xml_form_id: r for r in sync.sync_forms(settings, engine=engine, central=c)}
    assert results[FORM_ID].status == "ok" and results[FORM_ID].written == 2
    assert results["not_pushed"].status == "failed"
    assert "No such project here" in results["not_pushed"].error


def project_name(project) -> str:
    r = requests.get(
        project.v1(f"projects/{project.project_id}"), headers=project.headers(), timeout=30
    )
    r.raise_for_status()
    return r.json()["name"]


@pytest.mark.postgres
def test_sync__a_database_error_is_recorded_and_logged_without_the_rows_values(
    household, postgres_url, caplog
):
    """PostgreSQL quotes a refused row in its message (``Failing row contains (...)``);
    ``sync_run.error`` (shown to every role) and the log keep its class and constraint only,
    whether the error comes through SQLAlchemy (the upsert of re-read rows) or straight
    from the driver (COPY of rows none of which is stored yet, on the raw connection)."""
    project, form, fields = household
    engine = store.engine_for(postgres_url)
    constraint = (
        "ALTER TABLE household_visit ADD CONSTRAINT no_new_rows "
        "CHECK (visit__respondent_age < 0) NOT VALID"
    )

    def names_of(sent: list[tuple[str, str]]) -> list[str]:
        return [re.search(r"<respondent_name>([^<]+)<", xml).group(1) for _, xml in sent]

    def failed_without(names: list[str]) -> str:
        caplog.clear()
        failed = run(settings, engine, forms=[FORM_ID])
        assert failed.status == "failed"
        assert "CheckViolation" in failed.error and "no_new_rows" in failed.error
        with engine.connect() as c:
            recorded = c.execute(
                sa.select(store.T["sync_run"].c.error).where(
                    store.T["sync_run"].c.id == failed.run_id
                )
            ).scalar_one()
        for text in (failed.error, recorded, caplog.text):
            assert not any(n in text for n in names), text
        assert "no_new_rows" in caplog.text
        return failed.error

    try:
        caplog.set_level(logging.DEBUG)
        settings = project.settings()
        assert run(settings, engine, forms=[FORM_ID]).status == "ok"  # tables, no rows
        with engine.begin() as c:  # an operator's constraint that the next visits break
            c.exec_driver_sql(constraint)
        first = names_of(submit_many(project, form, fields, 2, seed=12))
        # the control: the database's own message quotes the row
        with (
            engine.begin() as c,
            pytest.raises(sa.exc.IntegrityError) as refused,
            c.begin_nested(),
        ):
            c.exec_driver_sql(
                "INSERT INTO household_visit (instance_id, visit__respondent_name, "
                f"visit__respondent_age) VALUES ('control', '{first[0]}', 5)"
            )
        assert first[0] in str(refused.value)
        failed_without(first)  # nothing stored yet: COPY on the raw connection
        with engine.begin() as c:
            c.exec_driver_sql("ALTER TABLE household_visit DROP CONSTRAINT no_new_rows")
        assert run(settings, engine, forms=[FORM_ID]).status == "ok"
        with engine.begin() as c:
            c.exec_driver_sql(constraint)
        later = names_of(submit_many(project, form, fields, 2, seed=13))
        failed_without(later)  # the window re-reads stored rows: the upsert, wrapped
    finally:
        engine.dispose()
