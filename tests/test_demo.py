"""``collector demo`` headless, for a bounded time: submissions must reach the API.

The demo runs as a newcomer runs it (a subprocess of the ``collector`` command, nothing
imported), on free ports with its data in a temporary folder. While it runs, this test
reads ``demo.json`` (URLs and demo keys) and asks the API, as the analyst, for each form's
submissions: at least one must arrive through Central, the scheduler and the store. Then
the demo must stop by itself, exit 0, and leave no server behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests

from collector import store
from collector.demo import guide_paths
from collector.store.keys import caller_for_token, create_key

REPO = Path(__file__).resolve().parent.parent
DURATION = 15


def served_submissions(info: dict) -> int:
    """Submissions the API lists for the analyst, over every form."""
    headers = {"Authorization": f"Bearer {info['keys']['analyst']}"}
    total = 0
    for form in info["forms"]:
        r = requests.get(
            f"{info['api_url']}/v1/forms/{form}/submissions",
            params={"limit": 50},
            headers=headers,
            timeout=10,
        )
        if r.ok:
            total += len(r.json()["items"])
    return total


def guide_urls_answer(info: dict) -> dict[str, int]:
    """Each call the demo's guide prints (export, indicators, ...): its HTTP status."""
    headers = {"Authorization": f"Bearer {info['keys']['manager']}"}
    return {
        path: requests.get(info["api_url"] + path, headers=headers, timeout=30).status_code
        for path in guide_paths("household_visit")
    }


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def test_demo__headless_run_serves_submissions(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(
        COLLECTOR_DATA_DIR=str(tmp_path / "data"),
        COLLECTOR_FORMS_DIR=str(REPO / "forms"),
        COLUMNS="160",
    )
    argv = [
        sys.executable,
        "-m",
        "collector",
        "demo",
        "--duration",
        str(DURATION),
        "--emulator-port",
        "0",
        "--api-port",
        "0",
        "--every",
        "3",
        "--rate",
        "4",
    ]
    # an earlier run's key, in the store the demo will use: the new run must revoke it
    demo_db = tmp_path / "data" / "demo" / "collector.db"
    demo_db.parent.mkdir(parents=True)
    engine = store.engine_for(f"sqlite:///{demo_db}")
    store.create_schema(engine)
    old_key = create_key(engine, name="demo-admin-20250101-000000", role="admin").token
    kept_key = create_key(engine, name="field-office", role="viewer").token
    engine.dispose()
    log_path = tmp_path / "demo.out"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        info_path = tmp_path / "data" / "demo" / "demo.json"
        seen = 0
        guide_urls: dict[str, int] = {}
        info: dict = {}
        try:
            deadline = time.monotonic() + DURATION + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if not info and info_path.exists():
                    info = json.loads(info_path.read_text())
                if info and not seen:
                    with contextlib.suppress(requests.RequestException):  # it may be stopping
                        seen = served_submissions(info)
                        if seen:
                            guide_urls = guide_urls_answer(info)
                time.sleep(1)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log_path.read_text()
    assert info, f"the demo never wrote demo.json:\n{out}"
    assert set(info["keys"]) == {"viewer", "analyst", "manager", "admin"}
    assert stat.S_IMODE(info_path.stat().st_mode) == 0o600  # it holds working keys
    assert seen > 0, f"no submission reached the API while the demo ran:\n{out}"
    assert guide_urls and all(status == 200 for status in guide_urls.values()), guide_urls
    assert code == 0, f"the demo exited {code}:\n{out}"
    assert "reached the API" in out
    assert f"{info['api_url']}/docs" in out  # the guide told the data manager where to look
    # Stopped cleanly: nothing left answering on the demo's ports.
    assert not answers(info["api_url"] + "/health")
    assert not answers(info["central_url"] + "/_emulator/health")

    # The earlier demo key stopped working; a key of the user's own did not.
    engine = store.engine_for(f"sqlite:///{demo_db}")
    assert caller_for_token(engine, old_key) is None
    assert caller_for_token(engine, kept_key) is not None
    assert caller_for_token(engine, info["keys"]["admin"]) is not None
    engine.dispose()

    # At the start and at the end it says how to reach it again, with demo.json's settings;
    # at the end, that its URLs have stopped. The commands it prints work after it stopped.
    settings = info["settings"]
    assert settings["COLLECTOR_CENTRAL_URL"] == info["central_url"]
    for name, value in settings.items():
        assert out.count(f"export {name}=") >= 2, (name, out)
        assert str(value) in out
    assert out.index("To reach this demo") < out.index("The demo has stopped")
    assert "no longer answer" in out
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    again = subprocess.run(
        [sys.executable, "-m", "collector", "status"],
        env={**env, **settings, "COLUMNS": "120"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert all(form in again.stdout for form in info["forms"]), again.stdout
