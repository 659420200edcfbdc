"""The emulator's admin password comes from the environment, never its command line.

``ps`` shows every process's argv to every user of the machine; the environment only to
the same user (and root). ``--admin-password`` is still accepted for old scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from emulator.control import start_emulator
from tests.conftest import REPO, stop_process

PASSWORD = "env-only-admin-password-Qx7"  # a throwaway emulator's


def test_emulator_password__from_the_environment_and_not_in_argv(tmp_path: Path) -> None:
    proc, url = start_emulator(tmp_path, "env@example.org", PASSWORD)
    try:
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert "--admin-email" in argv and PASSWORD not in argv, argv
        ok = requests.post(
            f"{url}/v1/sessions",
            json={"email": "env@example.org", "password": PASSWORD},
            timeout=10,
        )
        assert ok.status_code == 200, ok.text
        wrong = requests.post(
            f"{url}/v1/sessions",
            json={"email": "env@example.org", "password": PASSWORD + "x"},
            timeout=10,
        )
        assert wrong.status_code == 401, wrong.text
    finally:
        stop_process(proc)


def test_emulator_password__missing_is_refused_by_name(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EMULATOR_ADMIN_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "--data", str(tmp_path), "--admin-email", "a@b.org"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2 and "EMULATOR_ADMIN_PASSWORD" in done.stderr, done.stderr
