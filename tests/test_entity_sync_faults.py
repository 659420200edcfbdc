"""The entity sync while the emulator misbehaves: after the faults stop, one clean run
leaves the store equal to Central (every entity, live or deleted, at Central's version,
label and properties, with all its versions). Central changes between the faulty runs
(new women, updates, deletes, restores). Seeded, as the submissions' fault schedules.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from collector.central import Central, CentralError
from collector.store import engine_for
from collector.store import entities as es
from collector.sync import entities as entitysync
from collector.sync.entities import sync_entities
from emulator.control import EmulatorControl
from tests.conftest import CentralTarget
from tests.test_entities_central import http, new_project  # noqa: F401 - the fixture
from tests.test_entity_sync import KINDS, settings_for


def schedule(rng: random.Random) -> dict:
    rules = []
    for path in (r"\.svc/Entities", r"/versions$", r"/entities$"):
        action = rng.choice(["drop", "truncate", "garbage", "expire_token", "status"])
        rule = {
            "path": path,
            "method": "GET",
            "skip": rng.randint(0, 3),
            "times": rng.randint(1, 2),
            "action": action,
        }
        if action == "status":
            rule["status"] = rng.choice([500, 502, 503, 429])
        rules.append(rule)
    return {
        "seed": rng.randint(0, 10**6),
        "error_rate": rng.choice([0.05, 0.15, 0.3]),
        "error_statuses": [500, 502, 503, 429],
        "retry_after": 0,
        "rules": rules,
    }


def churn(http: requests.Session, base: str, rng: random.Random, live: list[str]) -> None:  # noqa: F811
    """New women, updates (some with a stale base version: forced), a delete, a restore."""
    batch = [
        {"label": f"W{rng.getrandbits(20)}", "district": rng.choice(["nurek", "vahdat"])}
        for _ in range(rng.randint(1, 4))
    ]
    r = http.post(
        f"{base}/entities",
        json={
            "entities": [
                {
                    "uuid": str(uuid.uuid4()),
                    "label": b["label"],
                    "data": {"district": b["district"]},
                }
                for b in batch
            ],
            "source": {"name": "churn"},
        },
    )
    r.raise_for_status()
    live[:] = [e["uuid"] for e in http.get(f"{base}/entities").json()]
    for eid in rng.sample(live, min(3, len(live))):
        http.patch(
            f"{base}/entities/{eid}",
            params={"force": "true"},
            json={"data": {"household_size": str(rng.randint(1, 9))}},
        ).raise_for_status()
    victim = rng.choice(live)
    http.delete(f"{base}/entities/{victim}").raise_for_status()
    if rng.random() < 0.5:
        http.post(f"{base}/entities/{victim}/restore").raise_for_status()


def truth(http: requests.Session, base: str) -> dict[str, tuple]:  # noqa: F811
    """Each entity as Central's REST has it; a deleted one by label and version only
    (Central hides a deleted entity's properties and versions)."""
    out: dict[str, tuple] = {}
    for e in http.get(f"{base}/entities").json():
        full = http.get(f"{base}/entities/{e['uuid']}/versions").json()
        cur = full[-1]
        data = {k: v for k, v in cur["data"].items() if v != ""}
        out[e["uuid"]] = (cur["label"], cur["version"], data, False, len(full))
    for e in http.get(f"{base}/entities", params={"deleted": "true"}).json():
        cur = e["currentVersion"]
        out[e["uuid"]] = (cur["label"], cur["version"], None, True, None)
    return out


@pytest.mark.emulator
@pytest.mark.parametrize("seed", [21, 22])
def test_entity_sync_faults__store_equals_central_after_a_clean_run(
    emulator_central: CentralTarget,
    http: requests.Session,  # noqa: F811
    fresh_name: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    monkeypatch.setattr(entitysync, "PAGE_SIZE", 3)  # several pages per run
    url = emulator_central.url
    pid = new_project(http, url, fresh_name)
    base = f"{url}/v1/projects/{pid}/datasets/women"
    http.post(f"{url}/v1/projects/{pid}/datasets", json={"name": "women"}).raise_for_status()
    for prop in ("district", "household_size"):
        http.post(f"{base}/properties", json={"name": prop}).raise_for_status()
    rng = random.Random(seed)
    live: list[str] = []
    churn(http, base, rng, live)
    control = EmulatorControl(url)
    settings = settings_for(emulator_central, pid, tmp_path, database_url)
    engine = engine_for(settings)
    fired = 0
    try:
        for _ in range(3):
            control.set_faults(**schedule(rng))
            s = settings.model_copy(update={"central_retries": rng.choice([0, 1, 3])})
            try:
                with Central(s, backoff=0.01, backoff_max=0.05) as c:
                    sync_entities(c, engine, pid, KINDS)
            except CentralError:
                pass  # a run cut short: the next one reads again
            fired += sum(r.get("fired", 0) for r in control.faults()["rules"])
            control.clear()
            churn(http, base, rng, live)
        control.clear()
        with Central(settings, backoff=0.01) as c:
            sync_entities(c, engine, pid, KINDS)
    finally:
        control.clear()
    assert fired > 0, "no scripted fault fired: the schedule tested nothing"
    expected = truth(http, base)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(es.entity).where(es.entity.c.project_id == pid)).mappings()
        counts = dict(
            conn.execute(
                sa.select(es.entity_version.c.uuid, sa.func.count())
                .where(es.entity_version.c.project_id == pid)
                .group_by(es.entity_version.c.uuid)
            ).all()
        )
        stored = {}
        for r in rows:
            gone = r["deleted_at"] is not None
            data = {k: v for k, v in json.loads(r["data"]).items() if v != ""}
            stored[r["uuid"]] = (
                r["label"],
                r["version"],
                None if gone else data,
                gone,
                None if gone else counts.get(r["uuid"], 0),
            )
    assert stored == expected
