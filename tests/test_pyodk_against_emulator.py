"""pyodk 1.3, unmodified, over real HTTP against the Central under test (the emulator by
default): the calls collector makes, in the order a form's life takes them."""

from __future__ import annotations

import uuid
from pathlib import Path

from pyodk.client import Client

from tests.golden_forms import xlsx_bytes

CSV = "name,label\nvahdat,Vahdat\nrudaki,Rudaki\n"


def household_xlsx(version: str) -> bytes:
    """A form with a CSV attachment (select_one_from_file), a photo, a group and a repeat."""
    return xlsx_bytes(
        {
            "survey": [
                ["type", "name", "label", "required"],
                ["text", "head", "Head of household", "yes"],
                ["select_one_from_file villages.csv", "village", "Village", ""],
                ["image", "photo", "Photo", ""],
                ["begin_repeat", "member", "Member", ""],
                ["text", "member_name", "Name", ""],
                ["integer", "member_age", "Age", ""],
                ["end_repeat", "", "", ""],
            ],
            "settings": [["version"], [version]],
        }
    )


def submission_xml(
    form_id: str, version: str, iid: str, head: str, photo: str = "", deprecated: str | None = None
) -> str:
    meta = f"<instanceID>{iid}</instanceID>"
    if deprecated:
        meta += f"<deprecatedID>{deprecated}</deprecatedID>"
    return (
        f'<data id="{form_id}" version="{version}"><head>{head}</head><village>vahdat</village>'
        f"<photo>{photo}</photo><member><member_name>Ali</member_name><member_age>7</member_age>"
        f"</member><member><member_name>Зарина</member_name><member_age>12</member_age></member>"
        f"<meta>{meta}</meta></data>"
    )


def test_pyodk_drives_a_form_through_its_life(
    pyodk_client: Client, tmp_path: Path, fresh_name: str
) -> None:
    with pyodk_client:
        project = pyodk_client.session.post("projects", json={"name": fresh_name}).json()
        pid = project["id"]
        assert any(p.id == pid for p in pyodk_client.projects.list())

        form_id = f"hh_{fresh_name}"
        v1 = tmp_path / f"{form_id}.xlsx"
        v1.write_bytes(household_xlsx("1"))
        csv = tmp_path / "villages.csv"
        csv.write_text(CSV)
        form = pyodk_client.forms.create(
            definition=v1, attachments=[csv], project_id=pid, form_id=form_id
        )
        assert form.xmlFormId == form_id

        v2 = tmp_path / "v2" / f"{form_id}.xlsx"
        v2.parent.mkdir()
        v2.write_bytes(household_xlsx("2"))
        pyodk_client.forms.update(form_id, project_id=pid, definition=v2, attachments=[csv])
        listed = {f.xmlFormId: f for f in pyodk_client.forms.list(project_id=pid)}
        assert listed[form_id].version == "2"
        assert listed[form_id].publishedAt is not None

        # the CSV reached the published version
        attachments = pyodk_client.session.get(f"projects/{pid}/forms/{form_id}/attachments").json()
        assert [(a["name"], a["exists"]) for a in attachments] == [("villages.csv", True)]

        # new media only: pyodk copies the definition into a draft and publishes a new version
        csv.write_text(CSV + "hisor,Hisor\n")
        pyodk_client.forms.update(
            form_id, project_id=pid, attachments=[csv], version_updater=lambda v: "3"
        )
        assert pyodk_client.forms.get(form_id, project_id=pid).version == "3"
        media = pyodk_client.session.get(f"projects/{pid}/forms/{form_id}/attachments/villages.csv")
        assert b"hisor" in media.content

        photo = tmp_path / "door.jpg"
        photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        first = f"uuid:{uuid.uuid4()}"
        second = f"uuid:{uuid.uuid4()}"
        pyodk_client.submissions.create(
            submission_xml(form_id, "3", first, "Ada", "door.jpg"),
            form_id=form_id,
            project_id=pid,
            attachments=[photo],
        )
        pyodk_client.submissions.create(
            submission_xml(form_id, "2", second, "Гулчеҳра Раҳимова"),
            form_id=form_id,
            project_id=pid,
        )
        got = pyodk_client.session.get(
            f"projects/{pid}/forms/{form_id}/submissions/{first}/attachments/door.jpg"
        )
        assert got.content == photo.read_bytes()

        table = pyodk_client.submissions.get_table(
            form_id=form_id,
            project_id=pid,
            filter="__system/submissionDate ge 2020-01-01T00:00:00Z",
            top=1,
            skip=0,
            count=True,
            expand="*",
        )
        assert table["@odata.count"] == 2
        assert len(table["value"]) == 1
        newest = table["value"][0]
        assert newest["__id"] == second and newest["head"] == "Гулчеҳра Раҳимова"
        assert [m["member_name"] for m in newest["member"]] == ["Ali", "Зарина"]
        page2 = pyodk_client.submissions.get_table(form_id=form_id, project_id=pid, skip=1)
        assert [r["__id"] for r in page2["value"]] == [first]
        assert page2["value"][0]["__system"]["attachmentsPresent"] == 1

        edited = f"uuid:{uuid.uuid4()}"
        pyodk_client.submissions.edit(
            first,
            submission_xml(form_id, "3", edited, "Ada (edited)", "door.jpg", deprecated=first),
            form_id=form_id,
            project_id=pid,
            comment="fixed the name",
        )
        pyodk_client.submissions.review(
            first, "approved", form_id=form_id, project_id=pid, comment="ok"
        )
        row = pyodk_client.submissions.get_table(
            form_id=form_id, project_id=pid, filter=f"__id eq '{first}'"
        )["value"][0]
        assert row["head"] == "Ada (edited)"
        assert row["__system"]["edits"] == 1
        assert row["__system"]["reviewState"] == "approved"
        assert row["__system"]["updatedAt"] is not None

        pyodk_client.submissions.add_comment(
            first, "checked by phone", form_id=form_id, project_id=pid
        )
        comments = pyodk_client.submissions.list_comments(first, form_id=form_id, project_id=pid)
        assert {c.body for c in comments} == {"fixed the name", "ok", "checked by phone"}

        users = pyodk_client.projects.create_app_users(
            display_names=["enumerator A", "enumerator B"], forms=[form_id], project_id=pid
        )
        assert sorted(u.displayName for u in users) == ["enumerator A", "enumerator B"]
        assert all(u.token for u in users)
        assigned = pyodk_client.session.get(
            f"projects/{pid}/forms/{form_id}/assignments/app-user"
        ).json()
        assert sorted(a["displayName"] for a in assigned) == ["enumerator A", "enumerator B"]
