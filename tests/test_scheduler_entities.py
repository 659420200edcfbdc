"""The scheduler follows the register: a run of a form that writes an entity list also pulls
that list, so the register is as fresh as the visits without a separate command.

Truth is Central's own entity API (each entity's uuid, label and current version), against
the emulator and a real Central alike; the store is read with plain SQL.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import sqlalchemy as sa

from collector.settings import Settings
from collector.store import engine_for
from collector.store import entities as es
from scheduler.wiring import sync_function
from tests.conftest import CentralTarget
from tests.emulator_support import login
from tests.test_entities_central import wait_for
from tests.test_enumerators_entities import _publish, _registration_xform, register_women

REPO = Path(__file__).resolve().parent.parent


def test_scheduler_run__pulls_the_entity_list_its_form_writes(
    central: CentralTarget, fresh_name: str, tmp_path: Path
) -> None:
    s = login(central)
    pid = s.post(f"{central.url}/v1/projects", json={"name": fresh_name}, timeout=30).json()["id"]
    form_id = _publish(central, s, pid, _registration_xform())
    result = register_women(central, pid, form_id, f"scheduler-entities-{fresh_name}", 6)

    creates = 0
    for iid in result.instance_ids:
        xml = s.get(
            f"{central.url}/v1/projects/{pid}/forms/{form_id}/submissions/{iid}.xml", timeout=30
        )
        entity = ET.fromstring(xml.content).find("meta/entity")  # noqa: S314 - Central's XML
        creates += entity is not None and entity.get("create") in ("1", "true")
    assert creates, "no registration with consent: change the seed"

    def listed() -> list[dict]:
        # Central's worker makes the entities after the submissions land (asynchronous)
        resp = s.get(f"{central.url}/v1/projects/{pid}/datasets/women/entities", timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json() if len(resp.json()) >= creates else []

    rows = wait_for(listed, f"{creates} entities in Central's women list")
    truth = {}
    for row in rows:
        one = s.get(
            f"{central.url}/v1/projects/{pid}/datasets/women/entities/{row['uuid']}", timeout=30
        ).json()
        truth[row["uuid"]] = (one["currentVersion"]["label"], one["currentVersion"]["version"])

    settings = Settings(
        central_url=central.url,
        central_email=central.email,
        central_password=central.password,
        central_project_id=pid,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        forms_dir=REPO / "forms",
        central_retries=1,
    )
    described = sync_function(settings, "test-scheduler")(form_id, lambda: False)
    assert "entity list women" in described, described

    engine = engine_for(settings)
    try:
        with engine.connect() as conn:
            stored = {
                r.uuid: (r.label, r.version)
                for r in conn.execute(
                    sa.select(es.entity.c.uuid, es.entity.c.label, es.entity.c.version)
                )
            }
            submissions = conn.execute(sa.text("SELECT count(*) FROM submission")).scalar_one()
    finally:
        engine.dispose()
    assert submissions == 6
    assert stored == truth
