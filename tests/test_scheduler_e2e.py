"""Two scheduler processes, one PostgreSQL, one emulator, enumerators submitting.

The issue's acceptance, end to end and without stand-ins: the forms are pushed with
``collector forms push``, simulated enumerators submit over OpenRosa, and two
``collector scheduler`` processes (each its own data folder, as on two hosts) share the
store. Checked:

- exactly one pulls at a time: ``sync_run`` rows of different processes never overlap,
  and every row names the process (host:pid) that ran it;
- killing the leader (SIGKILL: no goodbye) hands the lead to the other within the bound;
- after the enumerators stop and the survivor syncs again, the store equals the
  emulator's truth for every form (0 lost, 0 duplicated, same review and delete states);
- SIGTERM stops the survivor cleanly: exit 0, no run left "running".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from collector import store
from collector.forms.manifest import load_manifest
from emulator.control import start_emulator
from tests.conftest import stop_process
from tests.test_sync_support import Project, assert_store_equals_truth

REPO = Path(__file__).resolve().parent.parent
EMAIL, PASSWORD = "e2e-admin@example.org", "e2e-admin-password"
EVERY = 2  # seconds between runs of each form
LEAD_POLL = 0.5  # seconds between a standby's tries
HANDOVER_BOUND = 20.0  # seconds; the issue asks "within the schedule", well under 60 s

pytestmark = [pytest.mark.timeout(240)]


def base_env(central_url: str, project_id: int, database_url: str, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(
        COLLECTOR_CENTRAL_URL=central_url,
        COLLECTOR_CENTRAL_EMAIL=EMAIL,
        COLLECTOR_CENTRAL_PASSWORD=PASSWORD,
        COLLECTOR_CENTRAL_PROJECT_ID=str(project_id),
        COLLECTOR_DATABASE_URL=database_url,
        COLLECTOR_DATA_DIR=str(data_dir),
        COLLECTOR_FORMS_DIR=str(REPO / "forms"),
        PYTHONUNBUFFERED="1",
    )
    return env


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def project_id_named(url: str, name: str) -> int:
    token = requests.post(
        f"{url}/v1/sessions", json={"email": EMAIL, "password": PASSWORD}, timeout=10
    ).json()["token"]
    projects = requests.get(
        f"{url}/v1/projects", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    (pid,) = [p["id"] for p in projects if p["name"] == name]
    return pid


def runs(engine) -> list[dict]:
    run = store.T["sync_run"]
    with engine.connect() as c:
        rows = c.execute(sa.select(run).order_by(run.c.started_at)).mappings().all()
    return [
        {
            **r,
            "started_at": store.as_utc(r["started_at"]),
            "finished_at": store.as_utc(r["finished_at"]),
        }
        for r in rows
    ]


def wait_for(predicate, seconds: float, every: float = 0.25):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


@pytest.mark.postgres
def test_two_schedulers__one_pulls_hands_over_and_store_equals_truth(
    postgres_url: str, tmp_path: Path
) -> None:
    """Production's shape: PostgreSQL store, advisory lock, two hosts' data folders."""
    two_schedulers_scenario(postgres_url, tmp_path)


def two_schedulers_scenario(database_url: str, tmp_path: Path) -> None:
    """The scenario in the module docstring, on the store ``database_url`` names."""
    emulator, url = start_emulator(tmp_path, EMAIL, PASSWORD)
    children: list[subprocess.Popen] = []
    engine = store.engine_for(database_url)
    try:
        manifest = load_manifest(REPO / "forms")
        form_ids = [f.form_id for f in manifest.forms]

        # The forms, pushed as an operator would.
        env = base_env(url, 1, database_url, tmp_path / "push")
        push = subprocess.run(
            [sys.executable, "-m", "collector", "forms", "push"],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert push.returncode == 0, push.stdout + push.stderr
        pid = project_id_named(url, manifest.forms[0].project)
        store.create_schema(engine)

        # Enumerators submitting, with edits, reviews and deletions.
        enumerators = spawn(
            [
                sys.executable, "-m", "emulator.enumerators",
                "--url", url, "--email", EMAIL, "--project", str(pid),
                "--rate", "6", "--seed", "7", "--duration", "600", "--quiet",
            ],
            {**base_env(url, pid, database_url, tmp_path / "enum"), "ENUMERATORS_PASSWORD": PASSWORD},
            tmp_path / "enumerators.log",
        )  # fmt: skip
        children.append(enumerators)

        def scheduler(name: str) -> subprocess.Popen:
            argv = [sys.executable, "-m", "collector", "scheduler",
                    "--every", str(EVERY), "--lead-poll", str(LEAD_POLL)]  # fmt: skip
            proc = spawn(
                argv, base_env(url, pid, database_url, tmp_path / name), tmp_path / f"{name}.log"
            )
            children.append(proc)
            return proc

        a, b = scheduler("a"), scheduler("b")
        procs = {a.pid: a, b.pid: b}

        # One of them leads; only its runs appear.
        first = wait_for(lambda: [r for r in runs(engine) if r["status"] == "ok"], 30)
        assert first, "no successful sync run in 30 s; logs: " + (tmp_path / "a.log").read_text()
        leader_runner = first[0]["runner"]
        leader_pid = int(leader_runner.rsplit(":", 1)[1])
        assert leader_pid in procs, f"run by {leader_runner}, not one of our schedulers"
        leader = procs[leader_pid]
        survivor = b if leader is a else a
        time.sleep(2 * EVERY)
        assert {r["runner"] for r in runs(engine)} == {leader_runner}

        # Kill the leader without a goodbye; the other takes over.
        killed_at = datetime.now(UTC)  # before the signal: the lead is free only after it
        leader.kill()
        leader.wait()
        survivor_runner = f"{leader_runner.rsplit(':', 1)[0]}:{survivor.pid}"
        took_over = wait_for(
            lambda: [r for r in runs(engine) if r["runner"] == survivor_runner], HANDOVER_BOUND
        )
        assert took_over, (
            f"the standby did not pull within {HANDOVER_BOUND} s of the leader's death; "
            + (tmp_path / ("a.log" if survivor is a else "b.log")).read_text()[-3000:]
        )
        handover = (took_over[0]["started_at"] - killed_at).total_seconds()
        assert 0 <= handover < HANDOVER_BOUND

        # Let it pull a while under load, then stop the field and let it catch up.
        time.sleep(EVERY)
        enumerators.send_signal(signal.SIGTERM)
        enumerators.wait(timeout=30)
        quiet_at = datetime.now(UTC)

        def caught_up() -> bool:
            done = {
                r["xml_form_id"]
                for r in runs(engine)
                if r["runner"] == survivor_runner
                and r["status"] == "ok"
                and r["started_at"] > quiet_at
            }
            return set(form_ids) <= done

        assert wait_for(caught_up, 30), (
            "the survivor did not sync every form after the field stopped"
        )

        # A clean stop.
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0

        # Store equals truth, every form.
        project = Project(url, EMAIL, PASSWORD, tmp_path / "truth", project_id=pid)
        total = sum(assert_store_equals_truth(engine, project, f) for f in form_ids)
        assert total > 0

        # Exactly one pulled at a time: runs of different processes never overlap.
        history = runs(engine)
        assert all(r["runner"] in (leader_runner, survivor_runner) for r in history)
        assert not [
            r for r in history if r["runner"] == survivor_runner and r["status"] == "running"
        ]
        by_leader = [r for r in history if r["runner"] == leader_runner]
        by_survivor = [r for r in history if r["runner"] == survivor_runner]
        leader_last = max((r["finished_at"] or killed_at) for r in by_leader)
        assert leader_last <= min(r["started_at"] for r in by_survivor)
        assert len(by_leader) >= len(form_ids) and len(by_survivor) >= len(form_ids)
        print(
            f"handover {handover:.1f} s; runs: leader {len(by_leader)}, survivor "
            f"{len(by_survivor)}; {total} submissions equal to the truth"
        )
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        engine.dispose()
        stop_process(emulator)
