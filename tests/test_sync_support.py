"""Helpers for the sync tests (no tests here): a project with a form on the emulator or a
real Central, submissions sent over OpenRosa as Collect sends them, edits, reviews,
deletions, and the comparison of the store with what Central holds.

They talk HTTP with plain ``requests`` on purpose: they play Collect and a Central admin,
not collector, so they must not share collector's client code.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import requests
import sqlalchemy as sa
from pydantic import SecretStr

from collector import store
from collector.settings import Settings

REPO = Path(__file__).resolve().parent.parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DISTRICTS = ["nurek", "vahdat", "kulob", "khujand", "bokhtar"]


@dataclass
class Project:
    """A fresh project on a Central, with an admin session to drive it."""

    url: str
    email: str
    password: str
    data_dir: Path
    project_id: int = 0
    token: str = ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def v1(self, path: str) -> str:
        return f"{self.url}/v1/{path.lstrip('/')}"

    def login(self) -> None:
        r = requests.post(
            self.v1("sessions"), json={"email": self.email, "password": self.password}, timeout=30
        )
        r.raise_for_status()
        self.token = r.json()["token"]

    def settings(self, **extra) -> Settings:
        values = {
            "central_url": self.url,
            "central_email": self.email,
            "central_password": SecretStr(self.password),
            "central_project_id": self.project_id,
            "data_dir": self.data_dir,
            "central_retries": 6,
            "central_timeout": 10,
            **extra,
        }
        return Settings(**values)

    def collector_env(self, database_url: str, **extra: str) -> dict[str, str]:
        """The ``COLLECTOR_*`` variables a ``collector`` command needs to sync this project."""
        return {
            "COLLECTOR_CENTRAL_URL": self.url,
            "COLLECTOR_CENTRAL_EMAIL": self.email,
            "COLLECTOR_CENTRAL_PASSWORD": self.password,
            "COLLECTOR_CENTRAL_PROJECT_ID": str(self.project_id),
            "COLLECTOR_DATA_DIR": str(self.data_dir),
            "COLLECTOR_DATABASE_URL": database_url,
            **extra,
        }

    # --- forms ------------------------------------------------------------------------------

    def publish_xlsx(self, path: Path, form_id: str) -> dict:
        r = requests.post(
            self.v1(f"projects/{self.project_id}/forms"),
            params={"publish": "true", "ignoreWarnings": "true"},
            data=path.read_bytes(),
            headers={**self.headers(), "Content-Type": XLSX, "X-XlsForm-FormId-Fallback": form_id},
            timeout=60,
        )
        r.raise_for_status()
        return r.json()

    def publish_xform(self, xml: str) -> dict:
        r = requests.post(
            self.v1(f"projects/{self.project_id}/forms"),
            params={"publish": "true", "ignoreWarnings": "true"},
            data=xml.encode(),
            headers={**self.headers(), "Content-Type": "application/xml"},
            timeout=60,
        )
        r.raise_for_status()
        return r.json()

    def publish_new_version(self, xml: str, form_id: str) -> None:
        base = self.v1(f"projects/{self.project_id}/forms/{form_id}")
        r = requests.post(
            f"{base}/draft",
            data=xml.encode(),
            headers={**self.headers(), "Content-Type": "application/xml"},
            params={"ignoreWarnings": "true"},
            timeout=60,
        )
        r.raise_for_status()
        r = requests.post(f"{base}/draft/publish", headers=self.headers(), timeout=60)
        r.raise_for_status()

    def fields(self, form_id: str) -> list[dict]:
        r = requests.get(
            self.v1(f"projects/{self.project_id}/forms/{form_id}/fields"),
            params={"odata": "true"},
            headers=self.headers(),
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    # --- submissions --------------------------------------------------------------------------

    def submit(
        self, xml: str, attachments: dict[str, bytes] | None = None, device_id: str | None = None
    ) -> None:
        """Send as Collect does (OpenRosa), with its ``deviceID`` query parameter if given."""
        files = {"xml_submission_file": ("submission.xml", xml.encode(), "text/xml")}
        for name, data in (attachments or {}).items():
            files[name] = (name, data, "application/octet-stream")
        r = requests.post(
            self.v1(f"projects/{self.project_id}/submission"),
            params={"deviceID": device_id} if device_id else None,
            files=files,
            headers={**self.headers(), "X-OpenRosa-Version": "1.0"},
            timeout=60,
        )
        assert r.status_code in (200, 201), r.text

    def review(self, form_id: str, instance_id: str, state: str) -> None:
        r = requests.patch(
            self.v1(f"projects/{self.project_id}/forms/{form_id}/submissions/{instance_id}"),
            json={"reviewState": state},
            headers=self.headers(),
            timeout=30,
        )
        r.raise_for_status()

    def delete(self, form_id: str, instance_id: str) -> None:
        r = requests.delete(
            self.v1(f"projects/{self.project_id}/forms/{form_id}/submissions/{instance_id}"),
            headers=self.headers(),
            timeout=30,
        )
        r.raise_for_status()

    def restore(self, form_id: str, instance_id: str) -> None:
        r = requests.post(
            self.v1(
                f"projects/{self.project_id}/forms/{form_id}/submissions/{instance_id}/restore"
            ),
            headers=self.headers(),
            timeout=30,
        )
        r.raise_for_status()

    # --- the emulator's controls ----------------------------------------------------------------

    def truth(self, form_id: str) -> list[dict]:
        r = requests.get(f"{self.url}/_emulator/truth/{self.project_id}/{form_id}", timeout=60)
        r.raise_for_status()
        return r.json()

    def faults(self, config: dict | None) -> None:
        if config is None:
            r = requests.delete(f"{self.url}/_emulator/faults", timeout=10)
        else:
            r = requests.post(f"{self.url}/_emulator/faults", json=config, timeout=10)
        r.raise_for_status()

    def faults_fired(self) -> int:
        """How many scripted faults fired since the configuration was set."""
        r = requests.get(f"{self.url}/_emulator/faults", timeout=10)
        r.raise_for_status()
        return sum(rule.get("fired", 0) for rule in r.json().get("rules", []))

    def backdated(self, form_id: str, xml: str, when: datetime) -> None:
        r = requests.post(
            f"{self.url}/_emulator/projects/{self.project_id}/forms/{form_id}/backdated-submission",
            json={"xml": xml, "submissionDate": when.isoformat()},
            timeout=30,
        )
        r.raise_for_status()


def new_project(central, tmp_path: Path, name: str) -> Project:
    p = Project(central.url, central.email, central.password, tmp_path / "data")
    p.login()
    r = requests.post(p.v1("projects"), json={"name": name}, headers=p.headers(), timeout=30)
    r.raise_for_status()
    p.project_id = r.json()["id"]
    return p


# --- submissions as Collect writes them ---------------------------------------------------------


def _value(field: dict, rng: random.Random, now: datetime) -> str:
    name, ftype = field["name"], field["type"]
    if name == "district":
        return rng.choice(DISTRICTS)
    if field.get("selectMultiple"):
        return " ".join(
            rng.sample(["legal", "health", "school", "work", "money"], rng.randint(1, 3))
        )
    if ftype == "int":
        return str(rng.randint(0, 80))
    if ftype == "decimal":
        return f"{rng.uniform(0, 5000):.2f}"
    if ftype == "date":
        return (now - timedelta(days=rng.randint(0, 400))).date().isoformat()
    if ftype == "dateTime":
        return (now - timedelta(minutes=rng.randint(0, 600))).isoformat(timespec="milliseconds")
    if ftype == "time":
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000+05:00"
    if ftype == "geopoint":
        return f"{rng.uniform(37, 40.5):.6f} {rng.uniform(67.5, 74.5):.6f} {rng.randint(300, 3000)} {rng.randint(3, 20)}"
    if ftype == "boolean":
        return rng.choice(["true", "false"])
    return rng.choice(["yes", "no", "Зарина", "Мадина", "ok"]) + str(rng.randint(0, 99))


def submission_xml(
    form: dict,
    fields: list[dict],
    rng: random.Random,
    *,
    instance_id: str | None = None,
    deprecated_id: str | None = None,
    children: int | None = None,
) -> tuple[str, str]:
    """A submission's XML for this form's fields, and its instance id."""
    now = datetime.now(UTC)
    instance_id = instance_id or f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"

    def build(prefix: str, depth: int) -> str:
        out = []
        for f in fields:
            path = f["path"]
            parent = path.rsplit("/", 1)[0]
            if parent != prefix:
                continue
            tag = f["name"]
            if f["type"] == "structure":
                if tag == "meta":
                    continue
                out.append(f"<{tag}>{build(path, depth)}</{tag}>")
            elif f["type"] == "repeat":
                n = children if children is not None else rng.randint(0, 3)
                out.extend(f"<{tag}>{build(path, depth + 1)}</{tag}>" for _ in range(n))
            elif f.get("binary"):
                out.append(f"<{tag}/>")
            else:
                out.append(f"<{tag}>{escape(_value(f, rng, now))}</{tag}>")
        return "".join(out)

    meta = f"<instanceID>{instance_id}</instanceID>"
    if deprecated_id:
        meta += f"<deprecatedID>{deprecated_id}</deprecatedID>"
    version = escape(form.get("version") or "", {'"': "&quot;"})
    xml = (
        f'<?xml version="1.0"?><data id="{form["xmlFormId"]}" version="{version}" '
        f'xmlns:orx="http://openrosa.org/xforms">{build("", 0)}<meta>{meta}</meta></data>'
    )
    return xml, instance_id


def submit_many(
    project: Project, form: dict, fields: list[dict], n: int, seed: int
) -> list[tuple[str, str]]:
    """Send ``n`` submissions; returns ``(instance_id, xml)`` pairs."""
    rng = random.Random(seed)
    sent = []
    for _ in range(n):
        xml, iid = submission_xml(form, fields, rng)
        project.submit(xml)
        sent.append((iid, xml))
    return sent


# --- store vs truth ---------------------------------------------------------------------------


def store_view(engine, xml_form_id: str) -> dict[str, dict]:
    """Every stored submission of the form: instance id -> what the comparison needs."""
    sub, form = store.T["submission"], store.T["form"]
    with engine.connect() as c:
        rows = c.execute(
            sa.select(sub.c.instance_id, sub.c.deleted_at, sub.c.review_state, sub.c.edits).where(
                sub.c.form_id == form.c.id, form.c.xml_form_id == xml_form_id
            )
        ).all()
    assert len(rows) == len({r.instance_id for r in rows}), "a submission stored twice"
    return {
        r.instance_id: {
            "deleted": r.deleted_at is not None,
            "review": r.review_state,
            "edits": r.edits,
        }
        for r in rows
    }


def truth_view(project: Project, xml_form_id: str) -> dict[str, dict]:
    return {
        t["instanceId"]: {
            "deleted": t["deletedAt"] is not None,
            "review": t["reviewState"],
            "edits": t["edits"],
        }
        for t in project.truth(xml_form_id)
    }


def assert_store_equals_truth(engine, project: Project, xml_form_id: str) -> int:
    """0 lost, 0 duplicated, states equal; returns how many submissions there are."""
    held, truth = store_view(engine, xml_form_id), truth_view(project, xml_form_id)
    lost = set(truth) - set(held)
    extra = set(held) - set(truth)
    assert not lost, f"{len(lost)} submissions lost, e.g. {sorted(lost)[:3]}"
    assert not extra, f"{len(extra)} submissions stored that Central does not have"
    differ = {i: (held[i], truth[i]) for i in truth if held[i] != truth[i]}
    assert not differ, f"{len(differ)} differ, e.g. {list(differ.items())[:2]}"
    return len(truth)
