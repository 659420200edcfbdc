"""Small helpers the emulator tests share: log in, make a project and the golden form, submit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import requests

from tests.conftest import CentralTarget
from tests.golden_forms import golden_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Setup:
    url: str
    http: requests.Session
    project_id: int
    form_id: str

    @property
    def form_path(self) -> str:
        return f"{self.url}/v1/projects/{self.project_id}/forms/{self.form_id}"

    def submit(self, name: str = "Ада", iid: str | None = None, version: str = "1") -> str:
        iid = iid or f"uuid:{uuid.uuid4()}"
        r = self.http.post(
            f"{self.url}/v1/projects/{self.project_id}/submission",
            files={
                "xml_submission_file": (
                    "s.xml",
                    submission(self.form_id, iid, name, version),
                    "text/xml",
                )
            },
            headers={"X-OpenRosa-Version": "1.0"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return iid

    def odata(self, query: str = "") -> requests.Response:
        return self.http.get(f"{self.form_path}.svc/Submissions{query}", timeout=30)


def submission(
    form_id: str, iid: str, name: str, version: str = "1", deprecated: str | None = None
) -> bytes:
    meta = f"<instanceID>{iid}</instanceID>" + (
        f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    )
    return (
        f'<data id="{form_id}" version="{version}"><name>{name}</name><age>33</age>'
        "<place><district>nurek</district><gps>38.5 69.3 800 5</gps></place>"
        "<needs>legal financial</needs><child><child_age>4</child_age></child>"
        f"<meta>{meta}</meta></data>"
    ).encode()


def login(central: CentralTarget) -> requests.Session:
    http = requests.Session()
    r = http.post(
        f"{central.url}/v1/sessions",
        json={"email": central.email, "password": central.password},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    http.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return http


def setup_form(central: CentralTarget, name: str) -> Setup:
    """A fresh project with the golden form (version 1) published."""
    http = login(central)
    pid = http.post(f"{central.url}/v1/projects", json={"name": name}, timeout=30).json()["id"]
    form_id = f"f_{name}"
    r = http.post(
        f"{central.url}/v1/projects/{pid}/forms?publish=true&ignoreWarnings=true",
        data=golden_xlsx("1"),
        headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": form_id},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return Setup(central.url, http, pid, form_id)
