"""Where the emulator was seen to answer differently from a real ODK Central, both now answer
the same; each test runs against the emulator (``make test``) and the real Central
(``make test-real-central``), and each expectation is what the real Central gave, with the
central-backend source that decides it named beside it.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import CentralTarget
from tests.emulator_support import XLSX, login
from tests.golden_forms import xlsx_bytes

OPENROSA = {"X-OpenRosa-Version": "1.0"}
XML = {"Content-Type": "application/xml"}


def xform(form_id: str, fields: list[tuple[str, str]], version: str = "1") -> bytes:
    """A minimal XForm: top-level fields of the given XForm types, and meta/instanceID."""
    binds = "".join(f'<bind nodeset="/data/{n}" type="{t}"/>' for n, t in fields)
    inst = "".join(f"<{n}/>" for n, _ in fields)
    return (
        '<?xml version="1.0"?><h:html xmlns="http://www.w3.org/2002/xforms" '
        'xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa">'
        f'<h:head><h:title>t</h:title><model><instance><data id="{form_id}" version="{version}">'
        f"{inst}<meta><instanceID/></meta></data></instance>{binds}"
        '<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" '
        'jr:preload="uid"/></model></h:head><h:body/></h:html>'
    ).encode()


class Project:
    """A fresh project with one form ``f`` (fields ``a`` int and ``b`` string) published."""

    def __init__(self, central: CentralTarget, name: str) -> None:
        self.url = central.url
        self.http = login(central)
        r = self.http.post(f"{self.url}/v1/projects", json={"name": name}, timeout=30)
        self.pid = r.json()["id"]
        self.base = f"{self.url}/v1/projects/{self.pid}"
        self.form = f"{self.base}/forms/f"
        r = self.http.post(
            f"{self.base}/forms?publish=true",
            data=xform("f", [("a", "int"), ("b", "string")]),
            headers=XML,
            timeout=30,
        )
        assert r.status_code == 200, r.text

    def submit(
        self, iid: str, body: str, version: str = "1", key: str | None = None
    ) -> requests.Response:
        xml = f'<data id="f" version="{version}">{body}<meta><instanceID>{iid}</instanceID></meta></data>'
        files = {"xml_submission_file": ("s.xml", xml.encode(), "text/xml")}
        if key is None:
            return self.http.post(
                f"{self.base}/submission", files=files, headers=OPENROSA, timeout=30
            )
        url = f"{self.url}/v1/key/{key}/projects/{self.pid}/submission"
        return requests.post(url, files=files, headers=OPENROSA, timeout=30)

    def draft(self, body: bytes, **params: str) -> requests.Response:
        return self.http.post(
            f"{self.form}/draft", data=body, headers=XML, params=params, timeout=30
        )

    def rows(self, query: str = "") -> dict[str, dict]:
        r = self.http.get(f"{self.form}.svc/Submissions{query}", timeout=30)
        assert r.status_code == 200, r.text
        return {row["__id"]: row for row in r.json()["value"]}


@pytest.fixture
def p(central: CentralTarget, fresh_name: str) -> Project:
    return Project(central, fresh_name)


def problem(r: requests.Response) -> tuple[int, float]:
    assert r.headers["Content-Type"].startswith("application/json"), r.text
    return r.status_code, r.json()["code"]


# --- versions -------------------------------------------------------------------------------


def test_odata_shows_every_row_in_the_current_versions_fields(p: Project) -> None:
    # lib/resources/odata.js reads Forms.getFields(form.def.id) (the current version) and
    # lib/data/odata.js renders each submission's XML against those fields.
    assert p.submit("uuid:old", "<a>1</a><b>gone later</b>").status_code == 201
    assert p.draft(xform("f", [("a", "int"), ("c", "string")], "2"), ignoreWarnings="true").ok
    assert p.http.post(f"{p.form}/draft/publish", timeout=30).ok
    assert p.submit("uuid:new", "<a>2</a><c>added</c>", version="2").status_code == 201
    rows = p.rows()
    assert "b" not in rows["uuid:old"] and rows["uuid:old"]["c"] is None
    assert rows["uuid:old"]["a"] == 1
    assert rows["uuid:new"]["c"] == "added" and "b" not in rows["uuid:new"]


def test_a_version_dropping_fields_warns_400_16_unless_told_to_ignore(p: Project) -> None:
    # lib/model/query/forms.js checkStructuralChange + rejectIfWarnings
    dropping = xform("f", [("a", "int")], "2")
    r = p.draft(dropping)
    assert problem(r) == (400, 400.16)
    assert r.json()["details"]["warnings"]["workflowWarnings"] == [
        {"type": "structureChanged", "details": ["b"]}
    ]
    assert p.draft(dropping, ignoreWarnings="true").json() == {"success": True}


def test_a_field_changing_type_is_refused_400_17_even_ignoring_warnings(p: Project) -> None:
    # lib/model/query/forms.js checkFieldDowncast over getMergedFields
    r = p.draft(xform("f", [("a", "date"), ("b", "string")], "2"), ignoreWarnings="true")
    assert problem(r) == (400, 400.17)
    assert r.json()["details"] == {"path": "/a", "type": "int"}
    # to a string is allowed (a downcast)
    assert p.draft(xform("f", [("a", "string"), ("b", "string")], "2")).ok


def test_a_draft_for_another_form_id_is_400_8(p: Project) -> None:
    # lib/model/query/forms.js createVersion: unexpectedValue xmlFormId
    r = p.draft(xform("other", [("a", "int"), ("b", "string")], "2"))
    assert problem(r) == (400, 400.8)
    assert r.json()["details"]["reason"] == "does not match the form you are updating"


# --- values ---------------------------------------------------------------------------------


def test_an_integer_beyond_64_bits_is_stored_and_served_as_javascript_reads_it(p: Project) -> None:
    # lib/data/odata.js: an int answer is parseInt(text, 10), a double
    big = "123456789012345678901234567890"
    assert p.submit("uuid:big", f"<a>{big}</a><b>x</b>").status_code == 201
    assert p.rows()["uuid:big"]["a"] == pytest.approx(float(big))
    xml = p.http.get(f"{p.form}/submissions/uuid:big.xml", timeout=30).text
    assert f"<a>{big}</a>" in xml  # the submission itself keeps every digit


def test_orderby_puts_nulls_first_ascending_and_last_descending(p: Project) -> None:
    # lib/data/odata-filter.js odataOrderBy: ASC NULLS FIRST / DESC NULLS LAST, then id
    for iid in ("uuid:o1", "uuid:o2", "uuid:o3"):
        assert p.submit(iid, "<a>1</a>").status_code == 201
    r = p.http.patch(f"{p.form}/submissions/uuid:o2", json={"reviewState": "approved"}, timeout=30)
    assert r.ok
    asc = list(p.rows("?$orderby=__system/updatedAt asc"))
    desc = list(p.rows("?$orderby=__system/updatedAt desc"))
    assert asc == ["uuid:o1", "uuid:o3", "uuid:o2"]
    assert desc == ["uuid:o2", "uuid:o3", "uuid:o1"]


# --- error codes ------------------------------------------------------------------------------


def test_login_without_a_json_body_is_400_3(central: CentralTarget) -> None:
    # express.json only parses application/json (lib/http/service.js); lib/resources/sessions.js
    # then finds email and password undefined
    url = f"{central.url}/v1/sessions"
    for kwargs in (
        {"data": b"email=a", "headers": {"Content-Type": "text/plain"}},
        {"json": ["a"]},
    ):
        r = requests.post(url, timeout=30, **kwargs)
        assert problem(r) == (400, 400.3), kwargs


@pytest.mark.parametrize(
    ("project", "code"),
    [("abc", 400.11), ("2147483648", 400.22), ("99999999999999999999999", 400.22)],
)
def test_project_ids_postgresql_cannot_read(
    central: CentralTarget, project: str, code: float
) -> None:
    # lib/util/db.js maps PostgreSQL 22P02 to 400.11 and 22003 to 400.22 (an integer column)
    r = login(central).get(f"{central.url}/v1/projects/{project}", timeout=30)
    assert problem(r) == (400, code)
    assert r.json()["details"]["value"] == project


def test_a_form_of_broken_xml_is_400_2_form_id_missing(p: Project) -> None:
    # lib/model/frames/form.js fromXml: no id found is missingParameter formId
    r = p.http.post(f"{p.base}/forms", data=b"<not xml", headers=XML, timeout=30)
    assert problem(r) == (400, 400.2)
    assert r.json()["details"] == {"field": "formId"}


def test_multipart_garbage_is_json_400_39(p: Project) -> None:
    # lib/resources/submissions.js multipartErrorHandler (before the OpenRosa endpoint)
    r = p.http.post(
        f"{p.base}/submission",
        data=b"--zz\r\ngarbage",
        headers={**OPENROSA, "Content-Type": "multipart/form-data; boundary=zz"},
        timeout=30,
    )
    assert problem(r) == (400, 400.39)


def test_an_app_user_submitting_to_a_form_not_assigned_is_401(p: Project) -> None:
    # lib/resources/submissions.js forceAuthFailed: 403.1 becomes 401.2 on OpenRosa submission
    user = p.http.post(f"{p.base}/app-users", json={"displayName": "u"}, timeout=30).json()
    r = p.submit("uuid:au", "<a>1</a>", key=user["token"])
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("text/xml")
    assert "Could not authenticate with the provided credentials." in r.text
    assert p.http.post(f"{p.form}/assignments/app-user/{user['id']}", timeout=30).ok
    assert p.submit("uuid:au", "<a>1</a>", key=user["token"]).status_code == 201


# --- XLSForm conversion -----------------------------------------------------------------------


@pytest.mark.parametrize("fallback", ["uuid:{u}", "форма_{u}_🙂"])
def test_formid_fallback_becomes_the_form_id_as_pyxform_http_makes_it(
    p: Project, fallback: str
) -> None:
    # lib/external/xlsform.js passes the header on; pyxform-http names the file
    # basename(escape(unquote(header))) and pyxform takes the id from it
    form_id = fallback.format(u=uuid.uuid4().hex[:6])
    body = xlsx_bytes({"survey": [["type", "name", "label"], ["text", "q", "Q"]]})
    r = p.http.post(
        f"{p.base}/forms",
        data=body,
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": requests.utils.quote(form_id)},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["xmlFormId"] == form_id


def test_external_choices_fill_the_itemsets_csv_attachment(p: Project) -> None:
    # lib/model/query/form-attachments.js itemsetsHack: the converter's itemsets.csv
    body = xlsx_bytes(
        {
            "survey": [
                ["type", "name", "label", "choice_filter"],
                ["select_one region", "region", "Region", ""],
                ["select_one_external town", "town", "Town", "region=${region}"],
            ],
            "choices": [["list_name", "name", "label"], ["region", "sughd", "Sughd"]],
            "external_choices": [
                ["list_name", "name", "label", "region"],
                ["town", "khujand", "Khujand", "sughd"],
                ["town", "isfara", "Isfara", "sughd"],
            ],
        }
    )
    form_id = f"ext_{uuid.uuid4().hex[:6]}"
    r = p.http.post(
        f"{p.base}/forms?publish=true",
        data=body,
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": form_id},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    listed = p.http.get(f"{p.base}/forms/{form_id}/attachments", timeout=30).json()
    assert [(a["name"], a["exists"]) for a in listed] == [("itemsets.csv", True)]
    csv = p.http.get(f"{p.base}/forms/{form_id}/attachments/itemsets.csv", timeout=30)
    assert csv.status_code == 200
    rows = csv.content.decode().splitlines()
    assert rows[0].replace('"', "") == "list_name,name,label,region"
    assert {r.replace('"', "").split(",")[1] for r in rows[1:]} == {"khujand", "isfara"}


def _encrypted(form_id: str, version: str, key: str) -> bytes:
    return xform(form_id, [("a", "int")], version).replace(
        b"</model>", f'<submission method="post" base64RsaPublicKey="{key}"/></model>'.encode()
    )


def test_an_encrypted_form_names_its_key(p: Project) -> None:
    # lib/model/query/keys.js ensure: one keys row per public key; the form JSON's keyId
    key = f"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA{uuid.uuid4().hex}"
    forms = {}
    for fid in ("enc1", "enc2"):
        r = p.http.post(
            f"{p.base}/forms?publish=true", data=_encrypted(fid, "1", key), headers=XML, timeout=30
        )
        assert r.status_code == 200, r.text
        forms[fid] = r.json()["keyId"]
    assert isinstance(forms["enc1"], int) and forms["enc1"] == forms["enc2"]
    assert p.http.get(p.form, timeout=30).json()["keyId"] is None  # the plaintext form
