"""The programme's register form and the entity rules of ``forms check`` and ``forms push``.

Truth comes from pyxform's XForm (the converter Central runs), read with the standard
library: the registration form must declare the ``women`` list, create only with consent,
and save each property from the question the programme intends.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import openpyxl

from collector.forms.check import check_form
from collector.forms.entities import entity_use, push_order, sensitive_properties
from collector.forms.entitycheck import entity_findings
from collector.forms.manifest import load_manifest
from collector.forms.xlsform import convert_xlsform, read_xlsform
from emulator.entity_forms import declaration

REPO = Path(__file__).resolve().parent.parent
FORMS = REPO / "forms"
REGISTRATION = FORMS / "woman_registration.xlsx"
XF = "{http://www.w3.org/2002/xforms}"
SAVETO = "{http://www.opendatakit.org/xforms/entities}saveto"


def test_registration_form_passes_check_and_declares_the_women_list() -> None:
    result = check_form(REGISTRATION)
    assert result.findings == (), [f.message for f in result.findings]
    xform = convert_xlsform(REGISTRATION).xform.encode()
    root = ET.fromstring(xform)  # noqa: S314 - pyxform's output for our own form
    saveto = {b.get("nodeset"): b.get(SAVETO) for b in root.iter(f"{XF}bind") if b.get(SAVETO)}
    assert saveto == {
        "/data/registration/district": "district",
        "/data/registration/jamoat": "jamoat",
        "/data/registration/village": "village",
        "/data/registration/woman_name": "woman_name",
        "/data/registration/woman_phone": "woman_phone",
        "/data/registration/birth_year": "birth_year",
        "/data/registration/household_size": "household_size",
        "/data/registration/children_count": "children_count",
        "/data/registration/husband_situation": "husband_situation",
    }
    binds = {b.get("nodeset"): b for b in root.iter(f"{XF}bind")}
    create = binds["/data/meta/entity/@create"]
    assert "consent" in (create.get("calculate") or "")
    # the emulator reads the same declaration Central does
    decl = declaration(xform)
    assert decl is not None and decl.dataset == "women" and decl.actions == ("create",)


def test_registration_identifying_properties_and_label_are_sensitive() -> None:
    use = entity_use(read_xlsform(REGISTRATION))
    assert use.list_name == "women" and use.registers
    assert use.sensitive_properties() == {"village", "woman_name", "woman_phone"}
    assert use.label_sensitive
    assert "woman_registration" in [f.form_id for f in load_manifest(FORMS).forms]


def _follow_up(tmp_path: Path, village_sensitive: str | None) -> Path:
    """A follow-up that saves the village again, with or without the sensitive mark."""
    path = tmp_path / "follow_up.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "survey"
    ws.append(["type", "name", "label::English (en)", "save_to", "sensitive"])
    ws.append(["select_one_from_file women.csv", "woman", "Woman", None, None])
    ws.append(["text", "village", "Village now", "village", village_sensitive])
    ws.append(["date", "visit_date", "Visit date", "last_visit", None])
    ent = wb.create_sheet("entities")
    ent.append(["list_name", "entity_id"])
    ent.append(["women", "${woman}"])
    st = wb.create_sheet("settings")
    st.append(["form_id"])
    st.append(["follow_up"])
    wb.save(path)
    return path


def test_a_property_saved_from_a_sensitive_question_must_be_sensitive_everywhere(
    tmp_path: Path,
) -> None:
    reg = tmp_path / "woman_registration.xlsx"
    shutil.copy(REGISTRATION, reg)
    unmarked = _follow_up(tmp_path, None)
    found = entity_findings([reg, unmarked])
    assert list(found) == [unmarked]
    [finding] = found[unmarked]
    assert (finding.code, finding.sheet, finding.row, finding.column) == (
        "entity-property-sensitive",
        "survey",
        3,
        "E",
    )
    assert "village" in finding.message and "women" in finding.message
    marked = _follow_up(tmp_path, "yes")
    assert entity_findings([reg, marked]) == {}
    uses = [entity_use(read_xlsform(p)) for p in (reg, marked)]
    assert sensitive_properties(uses) == {"women": {"village", "woman_name", "woman_phone"}}


def test_push_order_puts_the_list_writer_before_its_readers(tmp_path: Path) -> None:
    reg = entity_use(read_xlsform(REGISTRATION))
    follow = entity_use(read_xlsform(_follow_up(tmp_path, "yes")))
    assert follow.reads == ("women",) and not follow.registers
    other = entity_use(read_xlsform(FORMS / "roundtable.xlsx"))
    assert push_order([follow, other, reg]) == ["woman_registration", "follow_up", "roundtable"]
    assert push_order([other, reg, follow]) == ["roundtable", "woman_registration", "follow_up"]


def _checked_follow_up(path: Path) -> None:
    """A follow-up form that passes every ``forms check`` rule: it selects the woman from
    women.csv (the list it updates) and saves her district and last visit."""
    L = ["label::English (en)", "label::Tajik (tg)", "label::Russian (ru)"]
    src = openpyxl.load_workbook(REGISTRATION)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "survey"
    ws.append(["type", "name", *L, "required", "save_to", "sensitive"])
    ws.append(
        ["select_one district", "district", "District", "Ноҳия", "Район", "yes", "district", None]
    )
    ws.append(
        ["select_one_from_file women.csv", "woman", "Woman", "Зан", "Женщина", "yes", None, None]
    )
    ws.append(
        [
            "date",
            "visit_date",
            "Visit date",
            "Санаи ташриф",
            "Дата визита",
            "yes",
            "last_visit",
            None,
        ]
    )
    ch = wb.create_sheet("choices")
    ch.append(["list_name", "name", *L])
    for row in src["choices"].iter_rows(min_row=2, values_only=True):
        if row[0] == "district":
            ch.append(list(row[:5]))
    ent = wb.create_sheet("entities")
    ent.append(["list_name", "entity_id"])
    ent.append(["women", "${woman}"])
    st = wb.create_sheet("settings")
    st.append(["form_id", "form_title", "default_language"])
    st.append(["follow_up", "Follow-up visit", "English (en)"])
    wb.save(path)


def test_push_publishes_the_registration_first_so_the_follow_up_gets_the_list(
    central, tmp_path: Path, fresh_name: str
) -> None:
    """The writer goes first whatever the manifest's order. (A follow-up that updates the
    list declares it too, so a real Central links its women.csv either way; the order is
    what a form that only reads a list needs.)"""
    from collector.central import Central
    from collector.forms.push import plan_forms, push_forms
    from tests.test_forms_push import settings_for

    forms = tmp_path / "forms"
    forms.mkdir()
    shutil.copy(REGISTRATION, forms / "woman_registration.xlsx")
    shutil.copy(FORMS / "jamoats.csv", forms / "jamoats.csv")
    _checked_follow_up(forms / "follow_up.xlsx")
    (forms / "manifest.toml").write_text(
        f'[defaults]\nproject = "Entities {fresh_name}"\n\n'
        '[forms.follow_up]\nfile = "follow_up.xlsx"\nsync = { interval_minutes = 15 }\n\n'  # first
        '[forms.woman_registration]\nfile = "woman_registration.xlsx"\nmedia = ["jamoats.csv"]\n'
        "sync = { interval_minutes = 15 }\n",
        encoding="utf-8",
    )
    manifest = load_manifest(forms)
    results = check_form(forms / "follow_up.xlsx")
    assert results.findings == (), [f.message for f in results.findings]
    with Central(settings_for(central, tmp_path, forms), backoff=0.01) as client:
        done = push_forms(client, manifest)
        assert [r.plan.form_id for r in done] == ["woman_registration", "follow_up"]
        pid = done[0].plan.project_id
        r = client.request("GET", f"projects/{pid}/forms/follow_up/attachments/women.csv")
        header = r.text.splitlines()[0]
        # the list-backed attachment is no media to upload: nothing left to push
        assert [p.action.value for p in plan_forms(client, manifest)] == ["nothing", "nothing"]
        listed = client.json("GET", f"projects/{pid}/forms/follow_up/attachments")
        assert [(a["name"], a["exists"], a["datasetExists"]) for a in listed] == [
            ("women.csv", True, True)
        ]
    # Central serves the list itself: name, label, version, then the properties
    assert header.startswith("name,label,__version,")
    assert {"district", "household_size", "last_visit"} <= set(header.split(","))
