"""Sync while the emulator misbehaves: after the faults stop, the store equals Central.

Each schedule is seeded: 5xx bursts and 429s at a rate, plus scripted faults on chosen
OData pages (connection dropped mid-body, truncated JSON, garbage, an expired token).
Central changes between runs (new submissions, edits, reviews, deletions). Whatever the
faulty runs did, one clean run later the store holds every submission exactly once, in
Central's state. A longer sweep runs under ``-m slow``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from collector import store
from collector.central import Central
from collector.sync import submissions as sync
from tests.test_sync_support import (
    REPO,
    assert_store_equals_truth,
    new_project,
    submission_xml,
    submit_many,
)

FORM_ID = "household_visit"


def schedule(seed: int) -> dict:
    rng = random.Random(seed)
    rules = []
    for action in rng.sample(["drop", "truncate", "garbage", "expire_token", "status"], 3):
        rule = {
            "path": r"\.svc/Submissions",
            "method": "GET",
            "skip": rng.randint(0, 4),
            "times": rng.randint(1, 3),
            "action": action,
        }
        if action == "status":
            rule["status"] = rng.choice([500, 502, 503, 429])
        rules.append(rule)
    return {
        "seed": seed,
        "error_rate": rng.choice([0.05, 0.15, 0.3]),
        "error_statuses": [500, 502, 503, 429],
        "retry_after": 0,
        "rules": rules,
    }


def sync_once(settings, engine, retries: int) -> sync.FormResult:
    s = settings.model_copy(update={"central_retries": retries})
    try:
        with Central(s, backoff=0.01, backoff_max=0.05) as c:
            (r,) = sync.sync_forms(s, [FORM_ID], engine=engine, central=c)
            return r
    except Exception as exc:  # listing forms failed: the run never started
        return sync.FormResult(FORM_ID, status="failed", error=str(exc))


def churn(project, form, fields, rng: random.Random, current: dict[str, str | None]) -> None:
    """Central moves on between runs: new, edited, reviewed, deleted, restored.

    ``current`` maps each logical instance id to its current version's instanceID (an
    edit must name that as its deprecatedID), or to None once deleted.
    """
    for iid, _ in submit_many(project, form, fields, rng.randint(1, 6), rng.random()):
        current[iid] = iid
    live = sorted(i for i, v in current.items() if v)
    target = rng.choice(live)
    xml, new_version = submission_xml(
        form, fields, rng, instance_id=f"uuid:e{rng.getrandbits(40)}", deprecated_id=current[target]
    )
    project.submit(xml)
    current[target] = new_version
    project.review(FORM_ID, rng.choice(live), rng.choice(["approved", "hasIssues", "rejected"]))
    victim = rng.choice(live)
    project.delete(FORM_ID, victim)
    if rng.random() < 0.5:
        project.restore(FORM_ID, victim)
    else:
        current[victim] = None


def run_schedule(central, tmp_path, name, database_url, seed: int, rounds: int) -> None:
    project = new_project(central, tmp_path, name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    fields = project.fields(FORM_ID)
    current: dict[str, str | None] = {i: i for i, _ in submit_many(project, form, fields, 25, seed)}
    settings = project.settings(sync_page_size=4)
    engine = store.engine_for(database_url)
    rng = random.Random(seed)
    try:
        outcomes, fired = [], 0
        for _ in range(rounds):
            project.faults(schedule(rng.randint(0, 10**6)))
            outcomes.append(sync_once(settings, engine, retries=rng.choice([0, 1, 3])).status)
            fired += project.faults_fired()
            project.faults(None)
            churn(project, form, fields, rng, current)
        project.faults(None)
        final = sync_once(settings, engine, retries=3)
        assert final.status == "ok", final.error
        assert_store_equals_truth(engine, project, FORM_ID)
        again = sync_once(settings, engine, retries=3)
        assert again.status == "ok" and again.written == 0
        assert fired > 0, "no scripted fault fired: the schedule tested nothing"
        run = store.T["sync_run"]
        with engine.connect() as c:
            recorded = dict(
                c.execute(sa.select(run.c.status, sa.func.count()).group_by(run.c.status)).all()
            )
        # every run that started is recorded (a run whose form listing failed never started)
        assert recorded.get("ok", 0) == outcomes.count("ok") + 2
        assert recorded.get("failed", 0) <= outcomes.count("failed")
        assert "running" not in recorded
    finally:
        project.faults(None)
        engine.dispose()


@pytest.mark.emulator
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_sync_faults__seeded_schedules_end_with_store_equal_to_truth(
    emulator_central, tmp_path, fresh_name, database_url, seed
):
    run_schedule(emulator_central, tmp_path, fresh_name, database_url, seed, rounds=3)


@pytest.mark.slow
@pytest.mark.emulator
@pytest.mark.parametrize("seed", range(100, 120))
def test_sync_faults__long_sweep(
    request, emulator_central, tmp_path, fresh_name, database_url, seed
):
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("the long fault sweep runs with -m slow")
    run_schedule(emulator_central, tmp_path, fresh_name, database_url, seed, rounds=6)


@pytest.mark.emulator
def test_sync_faults__process_killed_between_pages_loses_nothing(
    emulator_central, tmp_path, fresh_name, database_url
):
    project = new_project(emulator_central, tmp_path, fresh_name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    fields = project.fields(FORM_ID)
    submit_many(project, form, fields, 60, seed=21)
    # every OData page takes a while, so the kill lands between pages
    project.faults(
        {"rules": [{"path": r"\.svc/Submissions", "action": "latency", "ms": 150, "times": None}]}
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")},
        **project.collector_env(database_url, COLLECTOR_SYNC_PAGE_SIZE="5"),
    }
    engine = store.engine_for(database_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "sync", FORM_ID],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stored = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as c:
                    stored = c.execute(
                        sa.select(sa.func.count()).select_from(store.T["submission"])
                    ).scalar_one()
            except sa.exc.DatabaseError:
                stored = 0  # tables not created yet
            if stored >= 15:
                break
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        assert 0 < stored < 60, f"the kill should land mid-run, {stored} stored"
        project.faults(None)
        form_id = store.form_id_for(engine, FORM_ID)
        assert store.sync_state(engine, form_id)["watermark"] is None  # not moved mid-window
        settings = project.settings()
        with Central(settings, backoff=0.01) as c:
            (result,) = sync.sync_forms(settings, [FORM_ID], engine=engine, central=c)
        assert result.status == "ok", result.error
        assert result.written == 60 - stored
        assert_store_equals_truth(engine, project, FORM_ID)
    finally:
        project.faults(None)
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
