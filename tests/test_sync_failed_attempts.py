"""Every failed sync attempt is a recorded run, with an error free of secrets, shown by
`collector status` and /v1/sync/status; the scheduler retries with backoff.

Truth is what a data manager reads: the status table and the API's JSON, not the code's
return values.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr
from typer.testing import CliRunner

from api.app import create_app
from collector import store
from collector.central import Central, CentralError
from collector.cli import app
from collector.settings import Settings
from collector.store.keys import create_key
from collector.sync import submissions as sync
from scheduler.leader import LeaderLock
from scheduler.service import RunFailed, SchedulerService
from scheduler.triggers import FormSchedule
from tests.api_fixtures import serving
from tests.test_sync_support import REPO, new_project

FORM_ID = "household_visit"
PASSWORD = "Unreachable-secret-pw-1"


def api_status(settings: Settings, engine) -> list[dict]:
    token = create_key(engine, name="viewer", role="manager").token
    with serving(create_app(settings, engine=engine)) as url:
        r = requests.get(
            f"{url}/v1/sync/status", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    assert r.status_code == 200, r.text
    return r.json()


def attempt(settings: Settings, engine, forms: list[str] | None) -> None:
    with pytest.raises(CentralError), Central(settings, backoff=0.01, backoff_max=0.02) as c:
        sync.sync_forms(settings, forms, engine=engine, central=c)


def test_central_unreachable__a_failed_run_for_each_form_in_status_and_api(tmp_path: Path):
    settings = Settings(
        central_url="http://127.0.0.1:9",
        central_password=SecretStr(PASSWORD),
        central_retries=0,
        data_dir=tmp_path,
        forms_dir=REPO / "forms",
    )
    engine = store.engine_for(settings)
    store.create_schema(engine)
    attempt(settings, engine, None)  # no form named: the manifest's four

    statuses = {s["form_id"]: s for s in api_status(settings, engine)}
    assert set(statuses) >= {"household_visit", "roundtable", "awareness_event"}
    run = statuses[FORM_ID]["last_run"]
    assert run["status"] == "failed" and run["error"] and PASSWORD not in run["error"]
    assert statuses[FORM_ID]["last_error"] == run["error"]

    result = CliRunner().invoke(
        app, ["status"], env={"COLLECTOR_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if FORM_ID in x)
    assert "failed" in line and PASSWORD not in result.output


def test_refused_login__recorded_with_no_password(central, tmp_path: Path, fresh_name: str):
    project = new_project(central, tmp_path, fresh_name)
    settings = project.settings(central_password=SecretStr(PASSWORD), central_retries=0)
    engine = store.engine_for(f"sqlite:///{tmp_path / 'refused.db'}")
    store.create_schema(engine)
    attempt(settings, engine, [FORM_ID])
    (status,) = [s for s in store.form_statuses(engine) if s.xml_form_id == FORM_ID]
    assert status.last_run["status"] == "failed"
    assert status.last_error and PASSWORD not in status.last_error


@pytest.mark.emulator
def test_garbage_from_central__recorded(emulator_central, tmp_path: Path, fresh_name: str):
    project = new_project(emulator_central, tmp_path, fresh_name)
    project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    engine = store.engine_for(f"sqlite:///{tmp_path / 'garbage.db'}")
    store.create_schema(engine)
    listing = rf"projects/{project.project_id}/forms$"
    project.faults({"rules": [{"path": listing, "action": "garbage", "times": None}]})
    try:
        attempt(project.settings(central_retries=0), engine, [FORM_ID])
    finally:
        project.faults(None)
    (status,) = [s for s in store.form_statuses(engine) if s.xml_form_id == FORM_ID]
    assert status.last_run["status"] == "failed" and status.last_error


class _HeldLock(LeaderLock):
    description = "a test lock"

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def test_scheduler__retries_a_failed_form_before_its_schedule_with_backoff():
    """The form's schedule is an hour; Central fails twice then answers: the retries (after
    0.2 s, then 0.4 s) bring the sync well before the hour."""
    calls: list[float] = []
    done = threading.Event()

    def sync_one(form_id: str, should_stop) -> str:
        import time

        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RunFailed("Central unreachable")
        done.set()
        return "ok"

    service = SchedulerService(
        [FormSchedule(FORM_ID, interval_seconds=3600)],
        _HeldLock(),
        sync_one,
        poll_seconds=0.05,
        first_run_stagger_seconds=0,
        retry_first_seconds=0.2,
        retry_max_seconds=5,
    )
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert done.wait(30), f"no successful retry; {len(calls)} call(s)"
    finally:
        stop.set()
        runner.join(30)
    assert service.stats.errors[FORM_ID] == 2 and service.stats.runs[FORM_ID] == 1
    assert calls[2] - calls[1] >= calls[1] - calls[0] >= 0.2  # backoff grows
    assert service.retry_delay(10) == 5
