"""The emulator keeps everything in its SQLite file: a restart on the same data directory
finds the projects, forms, submissions, edits, reviews and sessions it had."""

from __future__ import annotations

import uuid
from pathlib import Path

from emulator.control import start_emulator
from tests.conftest import CentralTarget, stop_process
from tests.emulator_support import setup_form, submission


def test_state_survives_a_restart(tmp_path: Path) -> None:
    email, password = "admin@example.org", "restart-password"
    proc, url = start_emulator(tmp_path, email, password)
    try:
        s = setup_form(CentralTarget(url, email, password, True, tmp_path), "restart")
        kept = s.submit("kept")
        edited_to = f"uuid:{uuid.uuid4()}"
        r = s.http.put(
            f"{s.form_path}/submissions/{kept}",
            data=submission(s.form_id, edited_to, "edited", deprecated=kept),
            headers={"Content-Type": "application/xml"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        s.http.patch(
            f"{s.form_path}/submissions/{kept}", json={"reviewState": "approved"}, timeout=30
        )
        gone = s.submit("gone")
        s.http.delete(f"{s.form_path}/submissions/{gone}", timeout=30)
        before = s.odata("?$expand=*").json()
    finally:
        stop_process(proc)
    assert (tmp_path / "central.sqlite").exists()

    proc, url2 = start_emulator(tmp_path, email, password)
    try:
        s.url = url2  # same bearer token, new port
        after = s.odata("?$expand=*").json()  # the old bearer token is still valid
        assert after["value"] == before["value"]
        row = after["value"][0]
        assert row["__id"] == kept and row["name"] == "edited"
        assert row["__system"]["edits"] == 1 and row["__system"]["reviewState"] == "approved"
        deleted = s.odata("?$filter=__system/deletedAt ne null").json()["value"]
        assert [d["__id"] for d in deleted] == [gone]
        forms = s.http.get(f"{url2}/v1/projects/{s.project_id}/forms", timeout=30).json()
        assert [f["xmlFormId"] for f in forms] == [s.form_id]
    finally:
        stop_process(proc)
