"""Hostile attachment names (issue 13 item 5): refused and recorded, never requested;
names that clean to one file get two; one attachment's failure is recorded on its row,
tried again next run, and never fails the form's run."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from collector import store
from collector.central import Central
from collector.sync import submissions as sync
from collector.sync.submissions import attachment_file_name, attachment_name_refusal
from tests.test_sync_support import new_project

NAMES = ("p_dot", "p_dotdot", "p_space", "p_under", "p_good")

XFORM = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
 xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
<h:head><h:title>Photos</h:title><model>
<instance><data id="{fid}" version="1"><name/>{nodes}<meta><instanceID/></meta></data></instance>
<bind nodeset="/data/name" type="string"/>
{binds}
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head>
<h:body><input ref="/data/name"/>{body}</h:body></h:html>
"""


def xform(fid: str) -> str:
    return XFORM.format(
        fid=fid,
        nodes="".join(f"<{n}/>" for n in NAMES),
        binds="".join(f'<bind nodeset="/data/{n}" type="binary"/>' for n in NAMES),
        body="".join(f'<upload ref="/data/{n}" mediatype="image/*"/>' for n in NAMES),
    )


FILES = {
    "p_dot": ".",
    "p_dotdot": "..",
    "p_space": "consent signature.jpg",
    "p_under": "consent_signature.jpg",
    "p_good": "good.jpg",
}


def run(settings, engine, fid):
    with Central(settings, backoff=0.01, backoff_max=0.05) as c:
        (result,) = sync.sync_forms(settings, [fid], engine=engine, central=c)
    return result


def rows(engine) -> dict[str, sa.Row]:
    att = store.T["attachment"]
    with engine.connect() as c:
        return {r.name: r for r in c.execute(sa.select(att))}


def test_attachment_names__refusals_and_distinct_files() -> None:
    for bad in ("", " ", ".", "..", "...", "a/b", "..\\x"):
        assert attachment_name_refusal(bad), bad
    for fine in ("good.jpg", "фото.jpg", "consent signature.jpg", ".hidden.jpg"):
        assert attachment_name_refusal(fine) is None, fine
    names = ["consent signature.jpg", "consent_signature.jpg", "фото.jpg", "фато.jpg"]
    files = [attachment_file_name(n) for n in names]
    assert len(set(files)) == len(files)
    assert files[1] == "consent_signature.jpg"  # a safe name keeps itself
    assert all(f.endswith(".jpg") and "/" not in f for f in files)


def test_sync__hostile_attachment_names_are_refused_and_the_rest_fetched(
    central, tmp_path, fresh_name, engine
):
    project = new_project(central, tmp_path, fresh_name)
    fid = f"photos_{fresh_name}"
    project.publish_xform(xform(fid))
    body = "".join(f"<{q}>{name}</{q}>" for q, name in FILES.items())
    content = {name: f"bytes of {name!r}".encode() * 20 for name in FILES.values()}
    project.submit(
        f'<data id="{fid}" version="1"><name>a</name>{body}'
        "<meta><instanceID>uuid:hostile-1</instanceID></meta></data>",
        {n: content[n] for n in FILES.values() if n not in (".", "..")},
    )
    settings = project.settings()
    result = run(settings, engine, fid)
    assert result.status == "ok", result.error
    assert result.attachments == 3
    held = rows(engine)
    for name in ("consent signature.jpg", "consent_signature.jpg", "good.jpg"):
        row = held[name]
        assert row.sha256 == hashlib.sha256(content[name]).hexdigest(), name
        assert (settings.data_dir / row.path).read_bytes() == content[name]
    paths = {held[n].path for n in ("consent signature.jpg", "consent_signature.jpg", "good.jpg")}
    assert len(paths) == 3
    for name in (".", ".."):
        assert (
            held[name].refused and held[name].sha256 is None and "path segment" in held[name].error
        )
    folder = settings.data_dir / "attachments"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert len(files) == 3 and all(f.startswith(f"{fid}/") for f in files), files
    assert not any(f.endswith(".part") for f in files)

    again = run(settings, engine, fid)
    assert again.status == "ok" and again.attachments == 0
    assert {n: r.tries for n, r in rows(engine).items()}[".."] == 1  # never tried again


def test_sync__one_failing_attachment_is_recorded_retried_and_never_fails_the_run(
    emulator_central, tmp_path, fresh_name, engine
):
    project = new_project(emulator_central, tmp_path, fresh_name)
    fid = f"photos_{fresh_name}"
    project.publish_xform(xform(fid))
    project.submit(
        f'<data id="{fid}" version="1"><name>a</name><p_good>good.jpg</p_good>'
        "<p_under>consent_signature.jpg</p_under>"
        "<meta><instanceID>uuid:flaky-1</instanceID></meta></data>",
        {"good.jpg": b"good", "consent_signature.jpg": b"signed"},
    )
    project.faults(
        {"rules": [{"path": r"/attachments/good\.jpg$", "action": "status", "status": 500,
                    "times": None}]}
    )  # fmt: skip
    settings = project.settings(central_retries=0)
    try:
        result = run(settings, engine, fid)
    finally:
        project.faults(None)
    assert result.status == "ok", result.error
    held = rows(engine)
    assert held["consent_signature.jpg"].sha256 == hashlib.sha256(b"signed").hexdigest()
    assert held["good.jpg"].sha256 is None and "500" in held["good.jpg"].error

    retried = run(settings, engine, fid)
    assert retried.status == "ok" and retried.attachments == 1
    good = rows(engine)["good.jpg"]
    assert good.sha256 == hashlib.sha256(b"good").hexdigest() and good.error is None
