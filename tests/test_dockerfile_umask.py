"""The image's entrypoint runs every service's command with ``umask 077``.

Checked without a Docker engine: the ENTRYPOINT's exec form is run here as it is in the
container, with a command in the place of CMD, so files the services write in /data are
private to the collector user whatever command compose gives.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def entrypoint() -> list[str]:
    text = (REPO / "Dockerfile").read_text()
    found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, flags=re.M)
    assert len(found) == 1, "the Dockerfile needs exactly one exec-form ENTRYPOINT"
    return json.loads(found[0])


def test_dockerfile__entrypoint_runs_the_command_with_umask_077(tmp_path: Path) -> None:
    made = tmp_path / "written-by-a-service"
    script = (
        "import os, sys; open(sys.argv[1], 'w').close(); os.mkdir(sys.argv[1] + '.d'); "
        "print(oct(os.umask(0)))"
    )
    done = subprocess.run(
        [*entrypoint(), sys.executable, "-c", script, str(made)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0o77", done.stdout
    assert made.stat().st_mode & 0o777 == 0o600
    assert Path(f"{made}.d").stat().st_mode & 0o777 == 0o700


def test_dockerfile__entrypoint_passes_the_exit_status_through(tmp_path: Path) -> None:
    done = subprocess.run(
        [*entrypoint(), sys.executable, "-c", "raise SystemExit(3)"], timeout=30, check=False
    )
    assert done.returncode == 3
