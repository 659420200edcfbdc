"""The scheduler on the embedded SQLite store, and its clean stop on SIGTERM mid-sync.

- Two scheduler processes with separate data folders writing one SQLite file contend for
  one file lock (kept beside the database), so the same scenario as on PostgreSQL holds:
  one pulls at a time, the standby takes over when the leader is killed, the store ends
  equal to the emulator's truth.
- SIGTERM while a sync is between pages (the emulator made slow, pages made small): the
  process exits 0 within seconds, the run is recorded as stopped (not left "running"),
  and the next sync completes the store: nothing half-written, nothing lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from collector import store
from collector.settings import Settings
from collector.sync import submissions as sync
from emulator.control import EmulatorControl, start_emulator
from tests.conftest import stop_process
from tests.test_scheduler_e2e import (
    EMAIL,
    PASSWORD,
    REPO,
    base_env,
    project_id_named,
    runs,
    spawn,
    two_schedulers_scenario,
    wait_for,
)
from tests.test_sync_support import Project, assert_store_equals_truth

pytestmark = [pytest.mark.timeout(240)]
FORM = "household_visit"


def test_two_schedulers_on_sqlite__one_pulls_hands_over_and_store_equals_truth(
    tmp_path: Path,
) -> None:
    database = tmp_path / "store" / "collector.db"
    database.parent.mkdir()
    two_schedulers_scenario(f"sqlite:///{database}", tmp_path)
    assert (database.parent / "collector.db.scheduler.lock").exists()


def test_scheduler__sigterm_mid_sync_stops_between_pages(tmp_path: Path) -> None:
    emulator, url = start_emulator(tmp_path, EMAIL, PASSWORD)
    database_url = f"sqlite:///{tmp_path / 'collector.db'}"
    engine = store.engine_for(database_url)
    scheduler = None
    try:
        push = subprocess.run(
            [sys.executable, "-m", "collector", "forms", "push", FORM],
            env=base_env(url, 1, database_url, tmp_path / "push"),
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert push.returncode == 0, push.stdout + push.stderr
        pid = project_id_named(url, "Migrant families - Tajikistan")
        sent = subprocess.run(
            [sys.executable, "-m", "emulator.enumerators", "--url", url, "--email", EMAIL,
             "--project", str(pid), "--form", FORM, "--count", "40", "--seed", "3", "--quiet"],
            env={**base_env(url, pid, database_url, tmp_path / "enum"),
                 "ENUMERATORS_PASSWORD": PASSWORD},
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr

        # Slow Central, small pages: the first sync takes several seconds, page by page.
        EmulatorControl(url).set_faults(latency_ms=300)
        env = base_env(url, pid, database_url, tmp_path / "sched")
        env["COLLECTOR_SYNC_PAGE_SIZE"] = "4"
        scheduler = spawn(
            [sys.executable, "-m", "collector", "scheduler", "--form", FORM, "--every", "600",
             "--lead-poll", "0.2"],
            env, tmp_path / "scheduler.log",
        )  # fmt: skip
        assert wait_for(lambda: [r for r in runs(engine) if r["status"] == "running"], 30), (
            tmp_path / "scheduler.log"
        ).read_text()
        time.sleep(1.0)  # a few pages in
        asked = time.monotonic()
        scheduler.send_signal(signal.SIGTERM)
        code = scheduler.wait(timeout=30)
        took = time.monotonic() - asked
        log = (tmp_path / "scheduler.log").read_text()
        assert code == 0, log
        assert took < 5, f"SIGTERM took {took:.1f} s to stop the scheduler:\n{log}"
        (run,) = runs(engine)
        assert run["status"] == "stopped", run
        assert run["finished_at"] is not None

        # Nothing half-written: the next sync completes the store.
        EmulatorControl(url).clear()
        settings = Settings(
            central_url=url,
            central_email=EMAIL,
            central_password=SecretStr(PASSWORD),
            central_project_id=pid,
            data_dir=tmp_path / "after",
            database_url=database_url,
        )
        (result,) = sync.sync_forms(settings, [FORM], engine=engine)
        assert result.status == "ok", result.error
        project = Project(url, EMAIL, PASSWORD, tmp_path / "truth", project_id=pid)
        assert assert_store_equals_truth(engine, project, FORM) == 40  # deleted ones marked
    finally:
        if scheduler is not None and scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()
        engine.dispose()
        stop_process(emulator)
