"""Issue 8: a tablet set up with one scan, cut off with one command, and who sent what.

The acceptance test plays ODK Collect with nothing but the QR code: it decodes the PNG
with OpenCV's QR decoder (not our encoder's data), inflates the settings, and uses
``general.server_url`` as Collect does (OpenRosa formList, form download, submission with a
``deviceID``). The submission is then synced into the store and must be attributed to the
enumerator; after ``revoke`` the same URL gets 403. Every log line, the terminal output,
the emulator's log, every database row and every file we wrote besides the QR code files
are searched for the token.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import time
import uuid
import zlib
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import cv2
import numpy as np
import openpyxl
import pytest
import requests
import sqlalchemy as sa
import zxingcpp
from typer.testing import CliRunner

from api.app import create_app
from collector import store
from collector.central import Central, app_users
from collector.cli import app as cli_app
from collector.forms.enumerators import (
    EnumeratorError,
    add_enumerators,
    app_user_server_url,
    collect_settings,
    collect_settings_payload,
    qr_png_bytes,
)
from collector.read.activity import enumerator_activity
from collector.settings import Settings
from collector.store.keys import create_key
from collector.sync import submissions as sync
from tests.api_fixtures import serving
from tests.emulator_support import login

OPENROSA = {"X-OpenRosa-Version": "1.0"}
XFORMS_LIST = "{http://openrosa.org/xforms/xformsList}"
FORM_ID = "enum_visit"
SERVER_URL = re.compile(r"^(?P<base>.+)/v1/key/(?P<token>[^/]+)/projects/(?P<pid>\d+)$")


# --- a project with one published form ------------------------------------------------------


def visit_xlsform() -> bytes:
    """A small three-language XLSForm with a ``district`` question, as an .xlsx."""
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(
        ["type", "name", "label::English (en)", "label::Tajik (tg)", "label::Russian (ru)"]
    )
    survey.append(["text", "respondent", "Name", "Ном", "Имя"])
    survey.append(["integer", "age", "Age", "Синну сол", "Возраст"])
    survey.append(["select_one districts", "district", "District", "Ноҳия", "Район"])
    choices = wb.create_sheet("choices")
    choices.append(
        ["list_name", "name", "label::English (en)", "label::Tajik (tg)", "label::Russian (ru)"]
    )
    choices.append(["districts", "nurek", "Nurek", "Норак", "Нурек"])
    choices.append(["districts", "vahdat", "Vahdat", "Ваҳдат", "Вахдат"])
    settings = wb.create_sheet("settings")
    settings.append(["form_id", "version", "default_language"])
    settings.append([FORM_ID, "1", "Tajik (tg)"])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def project(central, fresh_name) -> int:
    """A fresh Central project with the visit form published (set up as an admin would)."""
    with login(central) as s:
        made = s.post(f"{central.url}/v1/projects", json={"name": fresh_name}, timeout=30)
        made.raise_for_status()
        pid = made.json()["id"]
        form = s.post(
            f"{central.url}/v1/projects/{pid}/forms",
            params={"publish": "true", "ignoreWarnings": "true"},
            data=visit_xlsform(),
            headers={
                "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "X-XlsForm-FormId-Fallback": FORM_ID,
            },
            timeout=60,
        )
        assert form.status_code == 200, form.text
    return pid


def settings_for(central, project_id: int, tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        central_url=central.url,
        central_email=central.email,
        central_password=central.password,
        central_project_id=project_id,
        data_dir=tmp_path / "data",
        database_url=database_url,
        central_retries=1,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "COLLECTOR_CENTRAL_URL": settings.central_url,
        "COLLECTOR_CENTRAL_EMAIL": settings.central_email,
        "COLLECTOR_CENTRAL_PASSWORD": settings.central_password.get_secret_value(),
        "COLLECTOR_CENTRAL_PROJECT_ID": str(settings.central_project_id),
        "COLLECTOR_DATA_DIR": str(settings.data_dir),
        "COLLECTOR_DATABASE_URL": settings.database_url.get_secret_value(),
    }


# --- ODK Collect, played from the QR code alone ------------------------------------------------


def qr_text(image: np.ndarray) -> str:
    """The text of the one QR code in an image, read with ZXing as ODK Collect reads it.

    Collect scans with zxing-android-embedded; zxing-cpp is the same decoder's C++ port.
    OpenCV's QRCodeDetector was tried first and missed about 1 code in 100 that segno drew
    correctly (3 of 300 random tokens; zxing-cpp read 2,000 of 2,000), which made this test
    fail at random.
    """
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one QR code, ZXing found {len(found)}"
    return found[0].text


def scan(png: Path) -> dict:
    """What Collect does with the QR code: decode, base64-decode, inflate, parse."""
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"{png} is not an image"
    return json.loads(zlib.decompress(base64.b64decode(qr_text(image))))


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def filled_instance(xform: bytes, answers: dict[str, str], instance_id: str) -> bytes:
    """The form's primary instance filled in, namespaces dropped, as Collect sends it."""
    root = ET.fromstring(xform)  # noqa: S314 - the emulator's answer, in a test
    model = next(el for el in root.iter() if local(el.tag) == "model")
    instance = next(el for el in model if local(el.tag) == "instance")
    data = next(iter(instance))

    def plain(el: ET.Element) -> ET.Element:
        out = ET.Element(local(el.tag), {local(k): v for k, v in el.attrib.items()})
        for child in el:
            out.append(plain(child))
        name = local(el.tag)
        if name in answers:
            out.text = answers[name]
        elif name == "instanceID":
            out.text = instance_id
        return out

    return ET.tostring(plain(data), encoding="utf-8")


def collect_form_list(server_url: str) -> requests.Response:
    return requests.get(f"{server_url}/formList", headers=OPENROSA, timeout=30)


def collect_submit(server_url: str, xml: bytes, device_id: str) -> requests.Response:
    return requests.post(
        f"{server_url}/submission",
        params={"deviceID": device_id},
        files={"xml_submission_file": ("submission.xml", xml, "text/xml")},
        headers=OPENROSA,
        timeout=30,
    )


# --- the leak check -------------------------------------------------------------------------


def database_text(engine: sa.engine.Engine) -> str:
    """Every row of every table in the store, as text."""
    parts = []
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            parts.extend(repr(tuple(row)) for row in conn.execute(sa.select(table)))
    return "\n".join(parts)


def files_holding(root: Path, secret: str, *, except_dir: Path) -> list[Path]:
    needle = secret.encode()
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and except_dir not in p.parents and needle in p.read_bytes()
    ]


# --- tests ------------------------------------------------------------------------------------


def test_collect_settings__shape_and_encoding_as_central_builds_them():
    """central-frontend qr-panel.vue + collect-qr.vue: key order, compact JSON, zlib, base64."""
    url = app_user_server_url("https://central.example.org/", "a!b$c", 7)
    assert url == "https://central.example.org/v1/key/a!b$c/projects/7"
    settings = collect_settings(url, "Оила", app_language="ru")
    assert list(settings) == ["general", "project", "admin"]
    assert settings["general"] == {
        "server_url": url,
        "form_update_mode": "match_exactly",
        "autosend": "wifi_and_cellular",
        "app_language": "ru",
    }
    assert settings["project"] == {"name": "Оила"} and settings["admin"] == {}
    payload = collect_settings_payload(settings)
    raw = zlib.decompress(base64.b64decode(payload))
    assert raw == json.dumps(settings, separators=(",", ":"), ensure_ascii=False).encode()
    image = cv2.imdecode(np.frombuffer(qr_png_bytes(payload), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert qr_text(image) == payload
    assert "app_language" not in collect_settings(url, "p", app_language=None)["general"]


def test_enumerators__scan_fill_send_sync_attribute_revoke_and_no_token_anywhere(
    central, project, tmp_path, database_url, caplog, capsys
):
    caplog.set_level(logging.DEBUG)  # every library's debug lines too (urllib3 logs paths)
    settings = settings_for(central, project, tmp_path, database_url)
    env = cli_env(settings)
    runner = CliRunner()
    outputs = []
    out_dir = settings.data_dir / "enumerators"

    added = runner.invoke(
        cli_app, ["enumerators", "add", "Нодира Каримова", "-d", "nurek", "--allow-local"], env=env
    )
    outputs.append(added.output)
    assert added.exit_code == 0, added.output
    (png,) = out_dir.glob("*.png")
    (page,) = out_dir.glob("training-page-*.html")
    assert "Нодира Каримова" in page.read_text(encoding="utf-8")
    assert png.stat().st_mode & 0o077 == 0 and page.stat().st_mode & 0o077 == 0

    scanned = scan(png)
    general = scanned["general"]
    assert general["form_update_mode"] == "match_exactly"
    assert general["autosend"] == "wifi_and_cellular"
    assert scanned["admin"] == {}
    match = SERVER_URL.match(general["server_url"])
    assert match, general["server_url"]
    assert match["base"] == central.url and int(match["pid"]) == project
    token = match["token"]
    server_url = general["server_url"]
    with Central(settings) as c:
        (user,) = [u for u in app_users(c, project) if u.display_name == "Нодира Каримова"]
        project_json = c.json("GET", f"projects/{project}")
    assert scanned["project"] == {"name": project_json["name"]}
    assert user.token == token

    # Collect: formList -> the assigned form, download it, fill it, send it with its device id
    listing = collect_form_list(server_url)
    assert listing.status_code == 200, listing.text
    forms = {
        x.findtext(f"{XFORMS_LIST}formID"): x.findtext(f"{XFORMS_LIST}downloadUrl")
        for x in ET.fromstring(listing.content).iter(  # noqa: S314 - as above
            f"{XFORMS_LIST}xform"
        )
    }
    assert list(forms) == [FORM_ID]
    xform = requests.get(forms[FORM_ID], headers=OPENROSA, timeout=30)
    assert xform.status_code == 200
    instance_id = f"uuid:{uuid.uuid4()}"
    xml = filled_instance(
        xform.content, {"respondent": "Зарина", "age": "34", "district": "nurek"}, instance_id
    )
    device = "collect:T3stD3vice0001"
    sent = collect_submit(server_url, xml, device)
    assert sent.status_code == 201, sent.text

    # after a sync the submission is in the store, attributed to the enumerator and tablet
    engine = store.engine_for(settings)
    (synced,) = sync.sync_forms(settings, [FORM_ID], engine=engine)
    assert synced.status == "ok" and synced.written >= 1, synced.error
    sub = store.T["submission"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(sub).where(sub.c.instance_id == instance_id)).one()
    assert (row.submitter_id, row.submitter_name, row.device_id) == (
        str(user.id),
        "Нодира Каримова",
        device,
    )

    # Activity: the enumerator on that tablet, one today; a second enumerator who never sent
    # anything is flagged silent once the setting's hours have passed
    second = runner.invoke(cli_app, ["enumerators", "add", "Фарход", "--allow-local"], env=env)
    outputs.append(second.output)
    assert second.exit_code == 0, second.output
    later = store.now() + timedelta(hours=settings.enumerator_silent_hours + 1)
    rows = {
        (a.submitter_name, a.device_id): a
        for a in enumerator_activity(engine, silent_after_hours=settings.enumerator_silent_hours)
    }
    mine = rows[("Нодира Каримова", device)]
    assert (mine.submissions_day, mine.submissions_week, mine.submissions_total) == (1, 1, 1)
    assert mine.forms == (FORM_ID,) and mine.review_states == {"received": 1}
    assert mine.district == "nurek" and not mine.silent
    with Central(settings) as c:  # a manager approves it in Central; the next sync brings it
        c.request(
            "PATCH",
            c.form_path(FORM_ID) + f"/submissions/{instance_id}",
            json={"reviewState": "approved"},
        )
    sync.sync_forms(settings, [FORM_ID], engine=engine)
    (mine,) = [a for a in enumerator_activity(engine, silent_after_hours=1) if a.device_id]
    assert mine.review_states == {"approved": 1}
    assert not rows[("Фарход", None)].silent
    flagged = {
        a.submitter_name: a.silent
        for a in enumerator_activity(
            engine, silent_after_hours=settings.enumerator_silent_hours, now=later
        )
    }
    assert flagged == {"Нодира Каримова": True, "Фарход": True}

    # the same through the API, for a manager; a district-limited manager sees only its own
    manager = create_key(engine, name="mgr", role="manager")
    elsewhere = create_key(engine, name="mgr-vahdat", role="manager", districts=["vahdat"])
    analyst = create_key(engine, name="analyst", role="analyst")
    with serving(create_app(settings, engine=engine)) as api_url:

        def api(path: str, key: str) -> requests.Response:
            return requests.get(
                api_url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30
            )

        body = api("/v1/activity", manager.token).json()
        assert {(r["submitter_name"], r["device_id"]) for r in body["rows"]} == {
            ("Нодира Каримова", device),
            ("Фарход", None),
        }
        other = api("/v1/activity", elsewhere.token)
        assert other.status_code == 200 and other.json()["rows"] == []
        assert api("/v1/activity", analyst.token).status_code == 403
        assert api("/v1/activity?silent_only=true", manager.token).json()["rows"] == []
        time.sleep(0.4)  # silent_hours=0.0001 is 0.36 s: both rows are older than that now
        silent = api("/v1/activity?silent_hours=0.0001&silent_only=true", manager.token).json()
        assert silent["silent_count"] == 2 and len(silent["rows"]) == 2
        assert api("/v1/activity?silent_hours=-1", manager.token).status_code == 422

    listed = runner.invoke(cli_app, ["enumerators", "list"], env=env)
    outputs.append(listed.output)
    assert listed.exit_code == 0 and "Нодира Каримова" in listed.output

    # revoke: Central refuses the same URL from now on
    revoked = runner.invoke(cli_app, ["enumerators", "revoke", "Нодира Каримова"], env=env)
    outputs.append(revoked.output)
    assert revoked.exit_code == 0, revoked.output
    refused = collect_form_list(server_url)
    assert refused.status_code == 403
    again = collect_submit(
        server_url, filled_instance(xform.content, {}, f"uuid:{uuid.uuid4()}"), device
    )
    assert again.status_code in (401, 403)
    with Central(settings) as c:
        (after,) = [u for u in app_users(c, project) if u.id == user.id]
    assert after.token is None
    revoked_rows = [
        a for a in enumerator_activity(engine, silent_after_hours=1, now=later) if a.revoked
    ]
    assert [a.submitter_name for a in revoked_rows] == ["Нодира Каримова"]
    assert not revoked_rows[0].silent  # a revoked tablet is not "silent", it is gone

    # the token is nowhere but in the QR code files
    captured = capsys.readouterr()
    emulator_log = (
        (central.data_dir / "emulator.log").read_text("utf-8") if central.data_dir else ""
    )
    assert caplog.records, "no log records captured: the leak check would be empty"
    for where, text in {
        "log records": caplog.text,
        "stdout/stderr": captured.out + captured.err,
        "CLI output": "\n".join(outputs),
        "emulator log": emulator_log,
        "database": database_text(engine),
    }.items():
        assert token not in text, f"the app user's token leaked into the {where}"
    assert files_holding(settings.data_dir, token, except_dir=out_dir) == []
    assert token not in page.read_text("utf-8")  # on the page the token is only in the image


def test_enumerators__adding_the_same_name_twice_makes_one_app_user(central, project, tmp_path):
    settings = settings_for(central, project, tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    engine = store.engine_for(settings)
    with Central(settings) as c:
        first = add_enumerators(
            c, engine, ["Шаҳло", "Шаҳло "], out_dir=tmp_path / "a", allow_local=True
        )
        second = add_enumerators(
            c, engine, ["Шаҳло"], out_dir=tmp_path / "b", district="vahdat", allow_local=True
        )
        same = [u for u in app_users(c, project) if u.display_name == "Шаҳло"]
    assert len(same) == 1
    assert [x.app_user_id for x in first.codes + second.codes] == [same[0].id] * 2
    assert [x.reused for x in first.codes + second.codes] == [False, True]
    assert scan(first.pngs[0]) == scan(second.pngs[0])  # the same code, printed again
    enumerators = store.enumerators(engine, project_id=project)
    assert [(e.display_name, e.district) for e in enumerators] == [("Шаҳло", "vahdat")]


def test_enumerators__unknown_form_is_refused_naming_it(central, project, tmp_path):
    settings = settings_for(central, project, tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    with Central(settings) as c, pytest.raises(EnumeratorError, match="no_such_form"):
        add_enumerators(
            c,
            store.engine_for(settings),
            ["Бахтиёр"],
            out_dir=tmp_path / "out",
            forms=["no_such_form"],
            allow_local=True,
        )
    result = CliRunner().invoke(
        cli_app, ["enumerators", "revoke", "nobody-of-that-name"], env=cli_env(settings)
    )
    assert result.exit_code == 1
    assert "no active enumerator named 'nobody-of-that-name'" in result.output


# --- issue 19: codes tablets can use, districts the forms know, the page in their language --


def test_enumerators__loopback_server_is_refused_unless_allowed(central, project, tmp_path):
    settings = settings_for(central, project, tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    local = settings.model_copy(update={"enumerator_server_url": "http://localhost:8383"})
    engine = store.engine_for(settings)
    with Central(local) as c:
        with pytest.raises(EnumeratorError, match="--allow-local") as refused:
            add_enumerators(c, engine, ["Фарангис"], out_dir=tmp_path / "no")
        assert "localhost" in str(refused.value)
        assert [u for u in app_users(c, project) if u.display_name == "Фарангис"] == []
    assert not (tmp_path / "no").exists()

    result = CliRunner().invoke(
        cli_app, ["enumerators", "add", "Фарангис", "--allow-local"], env=cli_env(settings)
    )
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "127.0.0.1" in result.output
    (page,) = (settings.data_dir / "enumerators").glob("training-page-*.html")
    assert "class='local'" in page.read_text("utf-8")


def test_enumerators__district_must_be_one_of_the_forms_choices(central, project, tmp_path):
    settings = settings_for(central, project, tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    engine = store.engine_for(settings)
    with Central(settings) as c:
        with pytest.raises(EnumeratorError, match=r"'nowhere'.*nurek, vahdat"):
            add_enumerators(
                c, engine, ["Сино"], out_dir=tmp_path / "a", district="nowhere", allow_local=True
            )
        assert [u for u in app_users(c, project) if u.display_name == "Сино"] == []
        by_name = add_enumerators(
            c, engine, ["Сино"], out_dir=tmp_path / "b", district="Ваҳдат", allow_local=True
        )
    assert by_name.codes[0].district == "vahdat"  # the Tajik name, stored as the code


@pytest.mark.parametrize(
    ("lang", "district", "word"),
    [(None, "Норак", "Ноҳия"), ("ru", "Нурек", "Район"), ("en", "Nurek", "District")],
)
def test_enumerators__page_in_the_chosen_language_with_names(
    central, project, tmp_path, lang, district, word
):
    """The visit form's default language is Tajik; its choice labels are the truth."""
    settings = settings_for(central, project, tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    args = ["enumerators", "add", "Зебо", "-d", "nurek", "--allow-local"]
    result = CliRunner().invoke(cli_app, [*args, *(["--lang", lang] if lang else [])],
                                env=cli_env(settings))  # fmt: skip
    assert result.exit_code == 0, result.output
    (page,) = (settings.data_dir / "enumerators").glob("training-page-*.html")
    text = page.read_text("utf-8")
    assert f'<html lang="{lang or "tg"}">' in text
    assert f"{word}: {district}" in text
    assert ">nurek<" not in text and ": nurek<" not in text
