"""Removed questions lose nothing (issue 13 item 1), against the emulator or a real Central.

A real Central renders every submission with the current version's fields
(central-backend lib/resources/odata.js, lib/data/odata.js): once a question is removed,
its key is missing from every old row. The store keeps what it holds, reads what it never
saw from the submission's XML, and still takes edits and real clears from OData. The
truth each test compares with is the XML the test itself sent, never the store's code.
"""

from __future__ import annotations

import random
import uuid

import requests
import sqlalchemy as sa

from collector.central import Central
from collector.sync import submissions as sync
from tests.test_sync_support import new_project

XFORM = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
 xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
<h:head><h:title>Shrinking</h:title><model>
<instance><data id="{fid}" version="{version}">
<name/><age/>{nodes}<kid jr:template=""><kid_age/>{kid_nodes}</kid>
<meta><instanceID/></meta></data></instance>
<bind nodeset="/data/name" type="string"/>
<bind nodeset="/data/age" type="int"/>
<bind nodeset="/data/kid/kid_age" type="int"/>
{binds}
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head>
<h:body><input ref="/data/name"/><input ref="/data/age"/>
<repeat nodeset="/data/kid"><input ref="/data/kid/kid_age"/>{kid_body}</repeat>{body}</h:body>
</h:html>
"""


def xform(fid: str, version: str, *, full: bool) -> str:
    """``full``: with the questions a later version removes (phone, a select_multiple,
    a question in a group, a question in a repeat, a whole repeat)."""
    if not full:
        return XFORM.format(
            fid=fid, version=version, nodes="", kid_nodes="", binds="", kid_body="", body=""
        )
    return XFORM.format(
        fid=fid,
        version=version,
        nodes='<phone/><topics/><grp><gq/></grp><visit jr:template=""><when/></visit>',
        kid_nodes="<kid_name/>",
        binds=(
            '<bind nodeset="/data/phone" type="string"/>'
            '<bind nodeset="/data/topics" type="string"/>'
            '<bind nodeset="/data/grp/gq" type="string"/>'
            '<bind nodeset="/data/visit/when" type="date"/>'
            '<bind nodeset="/data/kid/kid_name" type="string"/>'
        ),
        kid_body='<input ref="/data/kid/kid_name"/>',
        body=(
            '<input ref="/data/phone"/><select ref="/data/topics">'
            "<item><label>Legal</label><value>legal</value></item>"
            "<item><label>Work</label><value>work</value></item></select>"
            '<group ref="/data/grp"><input ref="/data/grp/gq"/></group>'
            '<repeat nodeset="/data/visit"><input ref="/data/visit/when"/></repeat>'
        ),
    )


def answers(rng: random.Random) -> dict:
    """What one household answered to the full version (the truth the store must keep)."""
    return {
        "name": f"Зарина {rng.randint(0, 99)}",
        "age": rng.randint(18, 80),
        "phone": f"+992 9{rng.randint(10_000_000, 99_999_999)}",
        "topics": rng.choice(["legal", "work", "legal work"]),
        "gq": f"g{rng.randint(0, 999)}",
        "kids": [(rng.randint(0, 17), f"kid{rng.randint(0, 99)}") for _ in range(2)],
        "visits": [f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}" for _ in range(2)],
    }


def submission(fid: str, version: str, iid: str, a: dict, *, deprecated: str = "") -> str:
    """The XML of answers ``a`` as Collect sends it (only the version's questions when
    ``version`` is the shrunk one: a tablet cannot answer what its form lacks)."""
    full = version in ("1", "3")
    kids = "".join(
        f"<kid><kid_age>{age}</kid_age>{f'<kid_name>{nm}</kid_name>' if full else ''}</kid>"
        for age, nm in a["kids"]
    )
    extra = ""
    if full:
        visits = "".join(f"<visit><when>{w}</when></visit>" for w in a["visits"])
        extra = (
            f"<phone>{a['phone']}</phone><topics>{a['topics']}</topics>"
            f"<grp><gq>{a['gq']}</gq></grp>{visits}"
        )
    meta = f"<instanceID>{iid}</instanceID>"
    if deprecated:
        meta += f"<deprecatedID>{deprecated}</deprecatedID>"
    name = f"<name>{a['name']}</name>" if a["name"] is not None else "<name/>"
    return (
        f'<?xml version="1.0"?><data id="{fid}" version="{version}" '
        f'xmlns:orx="http://openrosa.org/xforms">{name}<age>{a["age"]}</age>{extra}{kids}'
        f"<meta>{meta}</meta></data>"
    )


def run(settings, engine, fid: str) -> sync.FormResult:
    with Central(settings, backoff=0.02, backoff_max=0.2) as c:
        (result,) = sync.sync_forms(settings, [fid], engine=engine, central=c)
    assert result.status == "ok", result.error
    return result


def publish_web_ui_style(project, fid: str, xml: str) -> None:
    """A new version as Central's web UI publishes it: warnings ignored (400.16 hidden)."""
    base = project.v1(f"projects/{project.project_id}/forms/{fid}")
    r = requests.post(
        f"{base}/draft",
        data=xml.encode(),
        headers={**project.headers(), "Content-Type": "application/xml"},
        params={"ignoreWarnings": "true"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    r = requests.post(f"{base}/draft/publish", headers=project.headers(), timeout=60)
    assert r.status_code == 200, r.text


def held(engine, fid: str) -> dict[str, dict]:
    """Per instance id, every answer of the removed questions as the store holds it."""
    t = fid.lower()
    with engine.connect() as c:
        main = {
            r.instance_id: r
            for r in c.execute(sa.text(f'SELECT instance_id, name, phone, grp__gq FROM "{t}"'))
        }
        topics: dict[str, list[str]] = {}
        for r in c.execute(
            sa.text(f'SELECT instance_id, value FROM "{t}__topics" ORDER BY position')
        ):
            topics.setdefault(r.instance_id, []).append(r.value)
        kids: dict[str, list] = {}
        for r in c.execute(
            sa.text(f'SELECT instance_id, kid_age, kid_name FROM "{t}__kid" ORDER BY position')
        ):
            kids.setdefault(r.instance_id, []).append((r.kid_age, r.kid_name))
        visits: dict[str, list[str]] = {}
        for r in c.execute(
            sa.text(f'SELECT instance_id, "when" FROM "{t}__visit" ORDER BY position')
        ):
            visits.setdefault(r.instance_id, []).append(str(r.when))
    return {
        iid: {
            "name": r.name,
            "phone": r.phone,
            "gq": r.grp__gq,
            "topics": " ".join(topics.get(iid, [])),
            "kids": kids.get(iid, []),
            "visits": visits.get(iid, []),
        }
        for iid, r in main.items()
    }


def expected(a: dict) -> dict:
    return {k: a[k] for k in ("name", "phone", "gq", "topics", "kids", "visits")}


def assert_kept(engine, fid: str, sent: dict[str, dict]) -> None:
    have = held(engine, fid)
    lost = {
        iid: (have.get(iid), expected(a)) for iid, a in sent.items() if have.get(iid) != expected(a)
    }
    assert not lost, f"{len(lost)} of {len(sent)} lost answers, e.g. {next(iter(lost.items()))}"


def test_sync__removed_questions_keep_every_answer_through_resyncs_review_and_restore(
    central, tmp_path, fresh_name, engine
):
    project = new_project(central, tmp_path, fresh_name)
    fid = f"shrinking_{fresh_name}"
    project.publish_xform(xform(fid, "1", full=True))
    rng = random.Random(13)
    sent: dict[str, dict] = {}
    for _ in range(4):
        iid, a = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}", answers(rng)
        project.submit(submission(fid, "1", iid, a))
        sent[iid] = a
    settings = project.settings(sync_page_size=3)
    assert run(settings, engine, fid).written == 4
    assert_kept(engine, fid, sent)

    # Version 2 drops phone, the select_multiple, the group's question, the repeat's
    # question and a whole repeat; Central's OData leaves their keys out of old rows.
    publish_web_ui_style(project, fid, xform(fid, "2", full=False))
    late_iid, late = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}", answers(rng)
    project.submit(submission(fid, "1", late_iid, late))  # a tablet still on version 1
    run(settings, engine, fid)
    run(settings, engine, fid)
    sent[late_iid] = late
    assert_kept(engine, fid, sent)

    # A review (what a reviewer's decision written back does) re-reads the row.
    first = next(iter(sent))
    project.review(fid, first, "approved")
    assert run(settings, engine, fid).written >= 1
    assert_kept(engine, fid, sent)

    # An edit under version 2 replaces what it carries, and a cleared answer clears.
    edited_iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    edit = {**sent[first], "name": None, "kids": [(5, None)]}
    project.submit(submission(fid, "2", edited_iid, edit, deprecated=first))
    run(settings, engine, fid)
    have = held(engine, fid)[first]
    assert have["name"] is None  # Central's row carries name: null (a real clear)
    assert have["kids"][0][0] == 5  # the edit's repeat replaced the original's
    if not central.is_emulator:
        # The emulator still renders an edit with every version's fields (removed ones as
        # null keys), which is a clear; Central leaves them out (lib/data/odata.js), and
        # the emulator is being changed to match.
        assert have["phone"] == sent[first]["phone"]  # the removed answer stays
        assert have["topics"] == sent[first]["topics"]
        assert have["visits"] == sent[first]["visits"]

    # The questions come back in version 3: every answer is still there.
    publish_web_ui_style(project, fid, xform(fid, "3", full=True))
    run(settings, engine, fid)
    others = {k: v for k, v in sent.items() if k != first}
    assert_kept(engine, fid, others)
    with engine.connect() as c:
        reviewed = c.execute(
            sa.text(f'SELECT review_state FROM "{fid.lower()}" WHERE instance_id = :i'),
            {"i": first},
        ).scalar_one()
    assert reviewed is not None  # the review landed; the edit reset or kept it, as Central says


def test_sync__store_that_never_saw_removed_questions_reads_them_from_xml(
    central, tmp_path, fresh_name, engine
):
    project = new_project(central, tmp_path, fresh_name)
    fid = f"shrunk_{fresh_name}"
    project.publish_xform(xform(fid, "1", full=True))
    rng = random.Random(31)
    sent: dict[str, dict] = {}
    for _ in range(3):
        iid, a = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}", answers(rng)
        project.submit(submission(fid, "1", iid, a))
        sent[iid] = a
    publish_web_ui_style(project, fid, xform(fid, "2", full=False))
    settings = project.settings()
    assert run(settings, engine, fid).written == 3  # the store's first look: after removal
    assert_kept(engine, fid, sent)
    run(settings, engine, fid)
    assert_kept(engine, fid, sent)
