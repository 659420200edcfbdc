"""Draft testing: push a draft with its media, test it from its QR code as Collect does,
publish it; test submissions never reach the store.

Truth is Central's: the draft's own REST list of test submissions, the form's published
submissions, the version Central publishes. Runs on the emulator by default and on the real
Central when COLLECTOR_TEST_CENTRAL_* are set (central-backend docs/api.yaml "Draft
Testing"; the emulator's emulator/draft_testing.py follows lib/resources/forms.js).
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from xml.etree import ElementTree as ET

import openpyxl
import requests
import sqlalchemy as sa
from typer.testing import CliRunner

from collector import store
from collector.cli import app
from collector.settings import Settings
from collector.sync import submissions as sync
from tests.emulator_support import login
from tests.test_enumerators_setup import (
    OPENROSA,
    XFORMS_LIST,
    collect_submit,
    filled_instance,
    scan,
)

REPO = Path(__file__).resolve().parent.parent
FORM_ID = "household_visit"
TEST_URL = re.compile(r"^(?P<base>.+)/v1/test/(?P<token>[^/]+)/projects/(?P<pid>\d+)/forms/"
                      rf"{FORM_ID}/draft$")  # fmt: skip


def forms_folder(tmp_path: Path, project: str) -> Path:
    folder = tmp_path / "forms"
    folder.mkdir()
    shutil.copy(REPO / "forms" / f"{FORM_ID}.xlsx", folder)
    shutil.copy(REPO / "forms" / "jamoats.csv", folder)
    (folder / "manifest.toml").write_text(
        f'[defaults]\nproject = "{project}"\n\n[forms.{FORM_ID}]\nmedia = ["jamoats.csv"]\nsync = {{ interval_minutes = 15 }}\n'
    )
    return folder


def retitle(path: Path, title: str) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["settings"]
    column = next(c.column for c in ws[1] if c.value == "form_title")
    ws.cell(row=2, column=column, value=title)
    wb.save(path)


def test_draft__tested_on_a_tablet_then_published_and_tests_never_stored(
    central, tmp_path, fresh_name
):
    folder = forms_folder(tmp_path, fresh_name)
    settings = Settings(
        central_url=central.url,
        central_email=central.email,
        central_password=central.password,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        forms_dir=folder,
        central_retries=1,
    )
    env = {
        "COLLECTOR_CENTRAL_URL": central.url,
        "COLLECTOR_CENTRAL_EMAIL": central.email,
        "COLLECTOR_CENTRAL_PASSWORD": central.password,
        "COLLECTOR_DATA_DIR": str(settings.data_dir),
        "COLLECTOR_DATABASE_URL": settings.database_url.get_secret_value(),
        "COLLECTOR_FORMS_DIR": str(folder),
    }
    runner = CliRunner()
    first = runner.invoke(app, ["forms", "push"], env=env)
    assert first.exit_code == 0, first.output

    retitle(folder / f"{FORM_ID}.xlsx", "Household visit (draft under test)")
    pushed = runner.invoke(app, ["forms", "push", "--draft", FORM_ID], env=env)
    assert pushed.exit_code == 0, pushed.output
    (png,) = (settings.data_dir / "drafts").glob(f"draft-{FORM_ID}-*.png")
    draft_version = png.stem.removeprefix(f"draft-{FORM_ID}-")
    general = scan(png)["general"]
    match = TEST_URL.match(general["server_url"])
    assert match, general["server_url"]
    server_url, token, pid = general["server_url"], match["token"], int(match["pid"])
    assert token not in pushed.output  # the token is a password to the draft

    with login(central) as admin:
        form_path = f"{central.url}/v1/projects/{pid}/forms/{FORM_ID}"
        published = admin.get(form_path, timeout=30).json()
        assert published["version"] != draft_version  # the published version is untouched

        # Collect, from the code alone: the draft's form list, its XForm, its media
        listing = requests.get(f"{server_url}/formList", headers=OPENROSA, timeout=30)
        assert listing.status_code == 200, listing.text
        (entry,) = ET.fromstring(listing.content).iter(f"{XFORMS_LIST}xform")  # noqa: S314
        assert entry.findtext(f"{XFORMS_LIST}version") == draft_version
        xform = requests.get(entry.findtext(f"{XFORMS_LIST}downloadUrl"), timeout=30)
        assert b"Household visit (draft under test)" in xform.content
        manifest = requests.get(f"{server_url}/manifest", headers=OPENROSA, timeout=30)
        assert b"jamoats.csv" in manifest.content
        instance_id = f"uuid:{uuid.uuid4()}"
        xml = filled_instance(xform.content, {"district": "vahdat"}, instance_id)
        sent = collect_submit(server_url, xml, "collect:DraftTester01")
        assert sent.status_code == 201, sent.text
        tests = admin.get(f"{form_path}/draft/submissions", timeout=30).json()
        assert [t["instanceId"] for t in tests] == [instance_id]
        live = admin.get(f"{form_path}/submissions", timeout=30).json()
        assert instance_id not in {s["instanceId"] for s in live}

        engine = store.engine_for(settings)
        sync.sync_forms(settings, [FORM_ID], engine=engine)
        sub = store.T["submission"]
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count()).where(sub.c.instance_id == instance_id)
            ).scalar_one()
        assert stored == 0

        done = runner.invoke(app, ["forms", "publish", FORM_ID], env=env)
        assert done.exit_code == 0, done.output
        assert admin.get(form_path, timeout=30).json()["version"] == draft_version
        assert admin.get(f"{form_path}/draft", timeout=30).status_code == 404
        live = admin.get(f"{form_path}/submissions", timeout=30).json()
        assert instance_id not in {s["instanceId"] for s in live}
        sync.sync_forms(settings, [FORM_ID], engine=engine)
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count()).where(sub.c.instance_id == instance_id)
            ).scalar_one()
        assert stored == 0
        engine.dispose()


def test_draft__publish_without_a_draft_says_what_to_do(central, tmp_path, fresh_name):
    folder = forms_folder(tmp_path, fresh_name)
    env = {
        "COLLECTOR_CENTRAL_URL": central.url,
        "COLLECTOR_CENTRAL_EMAIL": central.email,
        "COLLECTOR_CENTRAL_PASSWORD": central.password,
        "COLLECTOR_DATA_DIR": str(tmp_path / "data"),
        "COLLECTOR_FORMS_DIR": str(folder),
    }
    runner = CliRunner()
    assert runner.invoke(app, ["forms", "push"], env=env).exit_code == 0
    result = runner.invoke(app, ["forms", "publish", FORM_ID], env=env)
    assert result.exit_code == 1
    assert f"forms push --draft {FORM_ID}" in result.output
