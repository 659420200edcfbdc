"""``forms plan`` / ``forms push`` against a Central (the emulator unless configured).

Each test copies ``forms/`` into a temporary folder whose manifest names a fresh project,
so tests never share forms. Writes are observed where our client sends them: a response
hook on the pyodk session records every call, so "a second push makes no write" is a
fact about the wire, not about our own bookkeeping.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import select

from collector import store
from collector.central import Central, CentralGarbage
from collector.central import forms as central_forms
from collector.central import projects as central_projects
from collector.forms.manifest import load_manifest
from collector.forms.push import (
    Action,
    FormsInvalid,
    PushBlocked,
    PushFailed,
    plan_forms,
    push_forms,
    store_recorder,
)
from collector.settings import Settings
from tests.conftest import CentralTarget
from tests.test_forms_check import CORPUS, FORM_IDS, broken_copy

REPO = Path(__file__).resolve().parent.parent


def forms_copy(folder: Path, project: str) -> Path:
    """``forms/`` copied to ``folder``, its manifest pointing at ``project``."""
    shutil.copytree(REPO / "forms", folder)
    manifest = folder / "manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(re.sub(r'(?m)^project = ".*"$', f'project = "{project}"', text))
    return folder


def settings_for(central: CentralTarget, tmp_path: Path, forms_dir: Path, **extra) -> Settings:
    return Settings(
        central_url=central.url,
        central_email=central.email,
        central_password=SecretStr(central.password),
        data_dir=tmp_path / "data",
        forms_dir=forms_dir,
        **extra,
    )


class Wire:
    """Every request our client sent, as (method, path)."""

    def __init__(self, central: Central) -> None:
        self.calls: list[tuple[str, str]] = []
        central.session.hooks["response"].append(self._seen)

    def _seen(self, response: requests.Response, *args, **kwargs) -> None:
        self.calls.append((response.request.method or "", response.request.path_url))

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] not in ("GET", "HEAD") and "/sessions" not in c[1]]


@pytest.fixture
def forms_dir(tmp_path: Path, fresh_name: str) -> Path:
    return forms_copy(tmp_path / "forms", f"Push test {fresh_name}")


@pytest.fixture
def client(central: CentralTarget, tmp_path: Path, forms_dir: Path) -> Iterator[Central]:
    with Central(settings_for(central, tmp_path, forms_dir), backoff=0.01) as c:
        yield c


def published(client: Central, project_id: int, form_id: str) -> dict:
    form = central_forms.form_or_none(client, form_id, project_id)
    assert form is not None and form["publishedAt"]
    return form


def relabel(path: Path, name: str, english: str | None) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["survey"]
    row = next(r for r in range(2, ws.max_row + 1) if ws[f"B{r}"].value == name)
    ws[f"C{row}"] = english
    wb.save(path)


# --- the acceptance path ------------------------------------------------------------------


def test_push__creates_the_four_forms_then_a_second_push_writes_nothing(
    client: Central, forms_dir: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(forms_dir)
    before = plan_forms(client, manifest)
    assert [p.action for p in before] == [Action.CREATE] * len(FORM_IDS)
    assert {p.form_id for p in before} == set(FORM_IDS)

    engine = store.engine_for(client.settings)
    results = push_forms(client, manifest, record=store_recorder(engine))
    pid = results[0].plan.project_id
    assert pid is not None
    for result in results:
        form = published(client, pid, result.plan.form_id)
        assert form["version"] == result.published_version
        assert re.fullmatch(r"\d{8}-[0-9a-f]{8}", form["version"])
        xml = client.request("GET", client.form_path(result.plan.form_id, pid) + ".xml").content
        assert hashlib.sha256(xml).hexdigest() == form["sha256"]
    media = central_forms.form_attachment_bytes(client, "household_visit", "jamoats.csv", pid)
    assert media == (forms_dir / "jamoats.csv").read_bytes()

    wire = Wire(client)
    again = push_forms(client, manifest, record=store_recorder(engine))
    assert [r.plan.action for r in again] == [Action.NOTHING] * len(FORM_IDS)
    assert [r.published_version for r in again] == [None] * len(FORM_IDS)
    assert wire.calls and wire.writes == []
    for result in results:
        assert len(central_forms.form_versions(client, result.plan.form_id, pid)) == 1

    # the store holds every field with its labels and sensitivity
    fields = store.T["form_field"]
    forms = store.T["form"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(fields.c.path, fields.c.label_tg, fields.c.label_ru, fields.c.sensitive)
            .join(forms, forms.c.id == fields.c.form_id)
            .where(forms.c.xml_form_id == "household_visit")
        ).all()
        version = conn.execute(
            select(forms.c.version).where(forms.c.xml_form_id == "household_visit")
        ).scalar()
    engine.dispose()
    by_path = {r.path: r for r in rows}
    assert by_path["/visit/respondent_phone"].sensitive
    assert by_path["/visit/respondent_phone"].label_tg == "Рақами телефони посухдиҳанда"
    assert not by_path["/visit/respondent_age"].sensitive
    assert version == results[0].published_version


def test_push__one_edited_label_publishes_one_new_version_of_that_form_only(
    client: Central, forms_dir: Path
) -> None:
    manifest = load_manifest(forms_dir)
    first = {r.plan.form_id: r for r in push_forms(client, manifest)}
    pid = first["roundtable"].plan.project_id
    relabel(forms_dir / "roundtable.xlsx", "venue", "Venue of the roundtable")

    plans = {p.form_id: p for p in plan_forms(client, manifest)}
    assert plans["roundtable"].action is Action.NEW_VERSION
    assert {p.action for f, p in plans.items() if f != "roundtable"} == {Action.NOTHING}

    wire = Wire(client)
    second = {r.plan.form_id: r for r in push_forms(client, manifest)}
    new = second["roundtable"].published_version
    assert new and new != first["roundtable"].published_version
    assert all("/forms/roundtable" in path or path.endswith("/forms") for _, path in wire.writes)
    assert published(client, pid, "roundtable")["version"] == new
    assert len(central_forms.form_versions(client, "roundtable", pid)) == 2
    for form_id in FORM_IDS:
        if form_id != "roundtable":
            assert len(central_forms.form_versions(client, form_id, pid)) == 1
    xml = client.request("GET", client.form_path("roundtable", pid) + ".xml").text
    assert "Venue of the roundtable" in xml


def test_push__changed_media_only_publishes_a_new_version_with_the_new_file(
    client: Central, forms_dir: Path
) -> None:
    manifest = load_manifest(forms_dir)
    first = {r.plan.form_id: r for r in push_forms(client, manifest)}
    pid = first["household_visit"].plan.project_id
    csv = forms_dir / "jamoats.csv"
    csv.write_text(
        csv.read_text(encoding="utf-8") + "yovon,Ёвон,Yovon,Ёвон,Яван,bokhtar\n", encoding="utf-8"
    )
    plan = {p.form_id: p for p in plan_forms(client, manifest)}["household_visit"]
    assert plan.action is Action.MEDIA_ONLY and plan.media == ("jamoats.csv",)
    pushed = {r.plan.form_id: r for r in push_forms(client, manifest)}
    assert pushed["household_visit"].published_version != first["household_visit"].published_version
    assert (
        central_forms.form_attachment_bytes(client, "household_visit", "jamoats.csv", pid)
        == csv.read_bytes()
    )
    assert [p.action for p in plan_forms(client, manifest)] == [Action.NOTHING] * len(FORM_IDS)


def test_push__designer_version_is_used_and_a_stale_one_blocks(
    client: Central, forms_dir: Path
) -> None:
    path = forms_dir / "awareness_event.xlsx"
    wb = openpyxl.load_workbook(path)
    wb["settings"]["D1"], wb["settings"]["D2"] = "version", "2026.1"
    wb.save(path)
    manifest = load_manifest(forms_dir)
    results = push_forms(client, manifest, ["awareness_event"])
    pid = results[0].plan.project_id
    assert published(client, pid, "awareness_event")["version"] == "2026.1"

    relabel(path, "venue", "Where the event took place")
    [plan] = plan_forms(client, manifest, ["awareness_event"])
    assert plan.action is Action.BLOCKED and "2026.1" in plan.reason
    wire = Wire(client)
    with pytest.raises(PushBlocked, match="change the version"):
        push_forms(client, manifest, ["awareness_event"])
    assert wire.writes == []

    wb = openpyxl.load_workbook(path)
    wb["settings"]["D2"] = "2026.2"
    wb.save(path)
    [bumped] = push_forms(client, manifest, ["awareness_event"])
    assert bumped.published_version == "2026.2"
    relabel(path, "venue", "Place of the event, again")
    wb = openpyxl.load_workbook(path)
    wb["settings"]["D2"] = "2026.1"  # back to a version Central already had
    wb.save(path)
    [plan] = plan_forms(client, manifest, ["awareness_event"])
    assert plan.action is Action.BLOCKED and "published before" in plan.reason


@pytest.mark.parametrize("case_id", sorted(CORPUS))
def test_push__broken_form_never_reaches_central(
    central: CentralTarget, tmp_path: Path, case_id: str
) -> None:
    case = CORPUS[case_id]
    path, folder, _ = broken_copy(tmp_path, case)
    media = '["jamoats.csv"]' if case.form == "household_visit" else "[]"
    (folder / "manifest.toml").write_text(
        f'[defaults]\nproject = "never"\n[forms.{case.form}]\nfile = "{path.name}"\n'
        f"media = {media}\nsync = {{ interval_minutes = 5 }}\n"
    )
    with Central(settings_for(central, tmp_path, folder)) as client:
        wire = Wire(client)
        with pytest.raises(FormsInvalid):
            push_forms(client, load_manifest(folder))
    assert wire.calls == []


# --- faults half-way ------------------------------------------------------------------------


def set_faults(central: CentralTarget, rules: list[dict]) -> None:
    r = requests.post(f"{central.url}/_emulator/faults", json={"rules": rules}, timeout=10)
    assert r.ok, r.text


def fired(central: CentralTarget) -> int:
    rules = requests.get(f"{central.url}/_emulator/faults", timeout=10).json().get("rules", [])
    return sum(rule.get("fired", 0) for rule in rules)


@pytest.fixture
def faults(emulator_central: CentralTarget) -> Iterator[CentralTarget]:
    try:
        yield emulator_central
    finally:
        requests.delete(f"{emulator_central.url}/_emulator/faults", timeout=10)


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("kind", "rule", "extra"),
    [
        ("down", {"path": "/draft/attachments/", "method": "POST", "times": None,
                  "action": "status", "status": 503}, {}),
        ("dropped", {"path": "/draft/attachments/", "method": "POST", "times": None,
                     "action": "drop"}, {}),
        ("slow", {"path": "/draft/attachments/", "method": "POST", "times": None,
                  "action": "latency", "ms": 2500}, {"central_timeout": 1.0}),
        ("garbage", {"path": "/forms/household_visit/draft($|\\?)", "method": "POST", "times": None,
                     "action": "garbage"}, {}),
    ],
)  # fmt: skip
def test_push__failure_half_way_leaves_published_version_and_rerun_finishes(
    faults: CentralTarget, tmp_path: Path, forms_dir: Path, kind: str, rule: dict, extra: dict
) -> None:
    settings = settings_for(faults, tmp_path, forms_dir, central_retries=1, **extra)
    manifest = load_manifest(forms_dir)
    with Central(settings, backoff=0.01) as client:
        first = {r.plan.form_id: r for r in push_forms(client, manifest)}
        pid = first["household_visit"].plan.project_id
        before = published(client, pid, "household_visit")
        relabel(forms_dir / "household_visit.xlsx", "village", f"Village ({kind})")

        set_faults(faults, [rule])
        with pytest.raises(PushFailed) as info:
            push_forms(client, manifest, ["household_visit"])
        assert fired(faults) >= 1
        message = str(info.value)
        assert (
            message.startswith("household_visit: ") and "published version is as it was" in message
        )
        requests.delete(f"{faults.url}/_emulator/faults", timeout=10)

        after = published(client, pid, "household_visit")
        assert (after["version"], after["sha256"]) == (before["version"], before["sha256"])

        [rerun] = push_forms(client, manifest, ["household_visit"])
        assert rerun.plan.action is Action.NEW_VERSION
        done = published(client, pid, "household_visit")
        assert done["version"] == rerun.published_version != before["version"]
        assert (
            central_forms.form_attachment_bytes(client, "household_visit", "jamoats.csv", pid)
            == (forms_dir / "jamoats.csv").read_bytes()
        )
        assert [p.action for p in plan_forms(client, manifest)] == [Action.NOTHING] * len(FORM_IDS)


@pytest.mark.emulator
def test_push__failure_while_creating_then_rerun_finishes(
    faults: CentralTarget, tmp_path: Path, forms_dir: Path
) -> None:
    """A new form stuck as a draft (publish failed) is finished by the next push."""
    settings = settings_for(faults, tmp_path, forms_dir, central_retries=0)
    manifest = load_manifest(forms_dir)
    with Central(settings, backoff=0.01) as client:
        set_faults(faults, [{"path": "/forms/roundtable/draft/publish", "method": "POST",
                             "times": None, "action": "status", "status": 500}])  # fmt: skip
        with pytest.raises(PushFailed, match="roundtable: publishing"):
            push_forms(client, manifest, ["roundtable"])
        requests.delete(f"{faults.url}/_emulator/faults", timeout=10)
        pid = central_projects.project_id_named(client, manifest.form("roundtable").project)
        assert pid is not None
        draft_only = central_forms.form_or_none(client, "roundtable", pid)
        assert draft_only is not None and not draft_only["publishedAt"]
        [plan] = plan_forms(client, manifest, ["roundtable"])
        assert plan.action is Action.CREATE and plan.exists
        [done] = push_forms(client, manifest, ["roundtable"])
        assert published(client, pid, "roundtable")["version"] == done.published_version


# --- the commands ---------------------------------------------------------------------------


def test_cli_plan_and_push__report_per_form_and_exit_codes(
    central: CentralTarget, tmp_path: Path, forms_dir: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from collector.cli import app

    for key, value in {
        "COLLECTOR_CENTRAL_URL": central.url,
        "COLLECTOR_CENTRAL_EMAIL": central.email,
        "COLLECTOR_CENTRAL_PASSWORD": central.password,
        "COLLECTOR_DATA_DIR": str(tmp_path / "data"),
        "COLLECTOR_FORMS_DIR": str(forms_dir),
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    plan = runner.invoke(app, ["forms", "plan"])
    assert plan.exit_code == 0, plan.output
    assert plan.output.count(" create ") == 5
    push = runner.invoke(app, ["forms", "push"])
    assert push.exit_code == 0, push.output
    assert "5 form(s) published, 0 unchanged" in push.output
    assert central.password not in push.output
    again = runner.invoke(app, ["forms", "push", "roundtable"])
    assert again.exit_code == 0 and "0 form(s) published, 1 unchanged" in again.output

    relabel(forms_dir / "roundtable.xlsx", "venue", None)  # a question without its label
    refused = runner.invoke(app, ["forms", "push"])
    assert refused.exit_code == 1
    assert "missing-translation" in refused.output and "nothing pushed" in refused.output


@pytest.mark.emulator
def test_push__publish_answer_cut_short_then_rerun_sees_it_done(
    faults: CentralTarget, tmp_path: Path, forms_dir: Path
) -> None:
    """Central published but its answer was lost: the rerun finds the version in place."""
    settings = settings_for(faults, tmp_path, forms_dir, central_retries=0)
    manifest = load_manifest(forms_dir)
    with Central(settings, backoff=0.01) as client:
        set_faults(faults, [{"path": "/forms/awareness_event/draft/publish", "method": "POST",
                             "times": None, "action": "truncate"}])  # fmt: skip
        with pytest.raises(PushFailed, match="awareness_event: publishing") as info:
            push_forms(client, manifest, ["awareness_event"])
        requests.delete(f"{faults.url}/_emulator/faults", timeout=10)
        assert isinstance(info.value.cause, CentralGarbage)
        pid = central_projects.project_id_named(client, manifest.form("awareness_event").project)
        assert pid is not None
        wire = Wire(client)
        [rerun] = push_forms(client, manifest, ["awareness_event"])
        assert rerun.plan.action is Action.NOTHING and wire.writes == []
        assert published(client, pid, "awareness_event")["version"] == rerun.plan.central_version
