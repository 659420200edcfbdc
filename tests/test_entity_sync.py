"""Entity lists synced into the store, against the Central under test (emulator or real)
and on SQLite and PostgreSQL.

A woman registered and visited three times from simulated tablets, then a fourth visit made
offline from an old version (a conflict), a delete and a restore. The truth is what the
tests sent (the submissions' XML: instance ids, values) and Central's own REST answers,
never what the sync wrote.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path

import requests
import sqlalchemy as sa

from collector.central import Central
from collector.forms.entities import PropertyKind
from collector.settings import Settings
from collector.store import engine_for
from collector.store import entities as es
from collector.sync.entities import sync_entities
from tests.conftest import CentralTarget
from tests.test_entities_central import (
    entity_version_is,
    follow_up_xml,
    http,  # noqa: F401 - the fixture
    instance_of,
    registration_xml,
    submit,
    wait_for,
    women_project,
)

KINDS = {
    "women": {
        "district": PropertyKind("text", False),
        "household_size": PropertyKind("int", False),
        "last_visit": PropertyKind("date", False),
    }
}


def settings_for(central: CentralTarget, pid: int, tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        central_url=central.url,
        central_email=central.email,
        central_password=central.password,
        central_project_id=pid,
        data_dir=tmp_path / "data",
        database_url=database_url,
        central_retries=1,
    )


def test_register_and_visits_sync_incrementally_with_conflicts_deletes_and_links(
    central: CentralTarget,
    http: requests.Session,  # noqa: F811
    fresh_name: str,
    tmp_path: Path,
    database_url: str,
) -> None:
    url = central.url
    pid = women_project(http, url, fresh_name)
    rest = f"{url}/v1/projects/{pid}/datasets/women/entities"
    version_is = partial(entity_version_is, http, rest)
    eid = str(uuid.uuid4())
    reg = registration_xml("reg", eid, "Zarina", "nurek", "5")
    submit(http, url, pid, reg)
    wait_for(lambda: version_is(eid, 1), "registration")
    visits = []
    for n, (day, size) in enumerate(
        [("2026-03-01", "6"), ("2026-04-01", None), ("2026-05-01", "4")]
    ):
        xml = follow_up_xml("visit", eid, n + 1, day, size)
        submit(http, url, pid, xml)
        visits.append(instance_of(xml))
        wait_for(lambda n=n: version_is(eid, n + 2), f"visit {n + 1}")
    other = str(uuid.uuid4())
    submit(http, url, pid, registration_xml("reg", other, "Gulnora", "vahdat", "3"))
    wait_for(lambda: version_is(other, 1), "second registration")

    settings = settings_for(central, pid, tmp_path, database_url)
    engine = engine_for(settings)
    with Central(settings, backoff=0.01) as client:
        [first] = sync_entities(client, engine, pid, KINDS, overlap=timedelta(0))
    assert (first.entities, first.versions, first.deleted, first.conflicts) == (2, 2, 0, [])

    with engine.connect() as conn:
        row = conn.execute(sa.select(es.entity).where(es.entity.c.uuid == eid)).mappings().one()
        assert (row["label"], row["version"], row["conflict"]) == ("Zarina", 4, None)
        assert json.loads(row["data"]) == {
            "district": "nurek",
            "household_size": "4",
            "last_visit": "2026-05-01",
        }
        typed = sa.Table(es.typed_table_name("women"), sa.MetaData(), autoload_with=conn)
        t = conn.execute(sa.select(typed).where(typed.c.uuid == eid)).mappings().one()
        assert t["p_household_size"] == 4 and str(t["p_last_visit"]) == "2026-05-01"
        links = conn.execute(
            sa.select(es.entity_submission.c.instance_id, es.entity_submission.c.action)
            .where(es.entity_submission.c.uuid == eid)
            .order_by(es.entity_submission.c.version)
        ).all()
        assert [tuple(x) for x in links] == [
            (instance_of(reg), "create"),
            *((v, "update") for v in visits),
        ]
        sensitive = dict(
            conn.execute(sa.select(es.entity_property.c.name, es.entity_property.c.sensitive)).all()
        )
        assert sensitive == {"district": False, "household_size": False, "last_visit": False}

    # nothing new: the incremental filter reads at most the newest entity again
    with Central(settings, backoff=0.01) as client:
        [again] = sync_entities(client, engine, pid, KINDS, overlap=timedelta(0))
    assert again.entities <= 1 and again.versions == 0

    # a tablet offline since version 2 sends a visit: Central flags a conflict
    late = follow_up_xml("visit", eid, 2, "2026-04-15", "9")
    submit(http, url, pid, late)
    wait_for(lambda: version_is(eid, 5), "the late visit")
    assert http.delete(f"{rest}/{other}").json() == {"success": True}
    with Central(settings, backoff=0.01) as client:
        [third] = sync_entities(client, engine, pid, KINDS, overlap=timedelta(0))
    assert (third.versions, third.deleted, third.conflicts) == (1, 1, [eid])
    with engine.connect() as conn:
        row = conn.execute(sa.select(es.entity).where(es.entity.c.uuid == eid)).mappings().one()
        assert row["conflict"] == http.get(f"{rest}/{eid}").json()["conflict"] == "hard"
        v5 = (
            conn.execute(
                sa.select(es.entity_version).where(
                    es.entity_version.c.uuid == eid, es.entity_version.c.version == 5
                )
            )
            .mappings()
            .one()
        )
        assert (v5["base_version"], v5["conflict"], v5["instance_id"]) == (
            2,
            "hard",
            instance_of(late),
        )
        gone = conn.execute(sa.select(es.entity).where(es.entity.c.uuid == other)).mappings().one()
        assert gone["deleted_at"] is not None

    assert http.post(f"{rest}/{other}/restore").json() == {"success": True}
    with Central(settings, backoff=0.01) as client:
        sync_entities(client, engine, pid, KINDS, overlap=timedelta(0))
    with engine.connect() as conn:
        back = conn.execute(sa.select(es.entity).where(es.entity.c.uuid == other)).mappings().one()
        assert back["deleted_at"] is None


def test_cli_entities_sync_reads_property_kinds_from_the_forms(
    central: CentralTarget,
    http: requests.Session,  # noqa: F811
    fresh_name: str,
    tmp_path: Path,
    monkeypatch,
) -> None:
    from typer.testing import CliRunner

    from collector.cli import app

    url = central.url
    pid = women_project(http, url, fresh_name)
    eid = str(uuid.uuid4())
    submit(http, url, pid, registration_xml("reg", eid, "Zarina", "nurek", "5"))
    wait_for(lambda: http.get(f"{url}/v1/projects/{pid}/datasets/women/entities/{eid}").ok, "it")
    db = tmp_path / "store.db"
    for key, value in {
        "COLLECTOR_CENTRAL_URL": url,
        "COLLECTOR_CENTRAL_EMAIL": central.email,
        "COLLECTOR_CENTRAL_PASSWORD": central.password,
        "COLLECTOR_CENTRAL_PROJECT_ID": str(pid),
        "COLLECTOR_DATA_DIR": str(tmp_path / "data"),
        "COLLECTOR_DATABASE_URL": f"sqlite:///{db}",
        "COLLECTOR_FORMS_DIR": str(Path(__file__).resolve().parent.parent / "forms"),
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["entities", "sync"])
    assert result.exit_code == 0, result.output
    assert "women: 1 read, 1 with new versions, 0 deleted, 0 in conflict" in result.output
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        kinds = {
            r.name: (r.column_type, r.sensitive)
            for r in conn.execute(sa.select(es.entity_property))
        }
    # woman_registration.xlsx saves district (text) and household_size (integer), neither
    # sensitive; no form saves last_visit, so it is kept as sensitive text (fail closed)
    assert kinds == {
        "district": ("text", False),
        "household_size": ("int", False),
        "last_visit": ("text", True),
    }
