"""Settings mistakes are one line naming the setting; --debug shows the traceback;
`collector status` fits 80 columns; `collector --version`.

The command runs as people run it (a subprocess of ``python -m collector``), because the
one-line rule lives in ``main``, around the whole command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from collector import store
from tests.test_sync_support import REPO

PASSWORD = "Settings-secret-pw-7"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={**base, "COLLECTOR_DATA_DIR": str(tmp_path), **env},
        cwd=tmp_path,  # no .env of the repository's
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("setting", "value", "command"),
    [
        ("COLLECTOR_DATABASE_URL", f"postgres://u:{PASSWORD}@127.0.0.1/db", ["status"]),
        ("COLLECTOR_DATABASE_URL", f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/db", ["status"]),
        ("COLLECTOR_DATABASE_URL", "not a url", ["keys", "list"]),
        ("COLLECTOR_FORMS_DIR", "/no/such/forms/folder", ["sync"]),
        ("COLLECTOR_FORMS_DIR", "/no/such/forms/folder", ["forms", "plan"]),
        ("COLLECTOR_API_PORT", "eighty", ["status"]),
        ("COLLECTOR_CENTRAL_URL", "central.example.org", ["sync"]),
    ],
)
def test_settings_mistake__one_line_naming_the_setting(tmp_path, setting, value, command):
    result = run(tmp_path, *command, **{setting: value, "COLLECTOR_CENTRAL_PASSWORD": PASSWORD})
    text = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert "Traceback" not in text and "╭" not in text, text
    assert setting in text, text
    assert PASSWORD not in text
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, text


def test_debug__shows_the_traceback(tmp_path):
    result = run(tmp_path, "--debug", "status", COLLECTOR_DATABASE_URL="postgres://u@h/db")
    assert result.returncode != 0
    assert "Traceback" in result.stderr or "╭" in result.stderr


def test_version__is_the_package_s(tmp_path):
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"collector {expected}"


def test_status__fits_80_columns_with_names_and_errors_whole(tmp_path):
    engine = store.engine_for(f"sqlite:///{tmp_path / 'collector.db'}")
    store.create_schema(engine)
    error = "CentralUnavailable: Central connection failed: GET http://x/v1/projects/1/forms"
    for name in ("info_centre_consultation", "household_visit"):
        run_id = store.start_run(engine, name, None, "test")
        store.finish_run(engine, run_id, error=error)
    engine.dispose()
    result = run(tmp_path, "status", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert "…" not in result.stdout, result.stdout
    row = next(line for line in lines if line.lstrip().startswith("info_centre_consultation"))
    assert "failed" in row
    joined = " ".join(line.strip() for line in lines)
    assert "info_centre_consultation: last error: " + error in joined
