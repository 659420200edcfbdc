"""Helpers for the sync tests (no tests here): a project with a form on the emulator or a
real Central, submissions sent over OpenRosa as Collect sends them, edits, reviews,
deletions, and the comparison of the store with what Central holds.

They talk HTTP with plain ``requests`` on purpose: they play Collect and a Central admin,
not collector, so they must not share collector's client code.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
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


# --- store vs Central -------------------------------------------------------------------------


def central_rows(project: Project, xml_form_id: str) -> dict[str, dict]:
    """Every submission of the form as Central's OData serves it with ``$expand=*``: the live
    ones, then the deleted ones (served only to a filter naming deletedAt: lib/data/odata-filter.js
    odataExcludeDeleted). Central's own answers: the truth on the emulator and a real Central."""
    if not project.token:
        project.login()
    base = project.v1(f"projects/{project.project_id}/forms/{xml_form_id}.svc/Submissions")
    out: dict[str, dict] = {}
    for extra in ({}, {"$filter": "__system/deletedAt ne null"}):
        url: str | None = base
        params: dict[str, str] | None = {"$expand": "*", **extra}
        while url:
            r = requests.get(url, params=params, headers=project.headers(), timeout=120)
            r.raise_for_status()
            page = r.json()
            out.update((row["__id"], row) for row in page["value"])
            url, params = page.get("@odata.nextLink"), None
    return out


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


def truth_view(project: Project, xml_form_id: str, rows: dict[str, dict] | None = None) -> dict:
    """Central's state of every submission, from its OData ``__system``."""
    rows = central_rows(project, xml_form_id) if rows is None else rows
    return {
        iid: {
            "deleted": row["__system"]["deletedAt"] is not None,
            "review": row["__system"]["reviewState"],
            "edits": row["__system"]["edits"],
        }
        for iid, row in rows.items()
    }


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def _utc(value: datetime) -> datetime:
    """A stored timestamp as an aware instant (SQLite hands back naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _expected(kind: str, value: Any) -> Any:
    """What the store should hold for Central's OData value: the same value, typed (an
    answer that does not fit its type is held as null and reported, so it differs here)."""
    if value is None:
        return None
    if kind == "datetime":
        return _utc(datetime.fromisoformat(value))  # the instant, whatever offset it carries
    if kind == "date":
        return date.fromisoformat(value[:10])
    if kind == "time":
        return time.fromisoformat(value).replace(tzinfo=None)  # the enumerator's wall time
    if kind == "int":
        return int(value) if -(2**63) <= value < 2**63 else None
    if kind == "decimal":
        return pytest.approx(float(value), rel=1e-12)
    if kind == "json":
        return value
    if kind == "text" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, dict | list) else str(value).lower()
    return value


def _stored(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return _utc(value)
    if kind == "json":
        return json.loads(value)
    return value


def _geo(value: Any) -> tuple | None:
    """``(lat, lon, alt, acc)`` from Central's GeoJSON point."""
    if value is None:
        return None
    coords = value["coordinates"]
    alt = coords[2] if len(coords) > 2 else None
    return (coords[1], coords[0], alt, (value.get("properties") or {}).get("accuracy"))


def _expected_rows(shape, rows: dict[str, dict]) -> dict[str, dict[tuple[str, str], dict]]:
    """table name -> (instance id, row id) -> {column: expected value}, and each link
    table's (instance id, row id) -> its values in order, from Central's rows alone."""
    out: dict[str, dict] = {t.name: {} for t in shape.tables}
    links: dict[str, dict] = {}
    children: dict[str | None, list] = {}
    for t in shape.tables[1:]:
        children.setdefault(t.parent, []).append(t)

    def fill(table, obj: dict, iid: str, rid: str) -> None:
        values: dict[str, Any] = {}
        for c in table.columns:
            v = _dig(obj, c.keys)
            if c.kind == "geopoint":
                values[c.name] = _geo(v)
            else:
                values[c.name] = _expected(c.kind, v)
            if c.link_table is not None:
                links.setdefault(c.link_table, {})[(iid, rid)] = str(v).split() if v else []
        out[table.name][(iid, rid)] = values
        for child in children.get(table.name, ()):
            items = _dig(obj, child.keys) or []
            for item in items:
                fill(child, item, iid, item["__id"])

    for iid, row in rows.items():
        fill(shape.tables[0], row, iid, iid)
    return {**out, **{f"link:{k}": v for k, v in links.items()}}


def _stored_rows(engine, shape) -> dict[str, dict]:
    """The same, read back from the store's tables."""
    tables = store.form_tables(shape)
    out: dict[str, dict] = {}
    with engine.connect() as c:
        for t in shape.tables:
            table = tables[t.name]
            got: dict[tuple[str, str], dict] = {}
            for r in c.execute(sa.select(table)).mappings():
                rid = r["instance_id"] if t.repeat_path is None else r["row_id"]
                values: dict[str, Any] = {}
                for col in t.columns:
                    if col.kind == "geopoint":
                        parts = tuple(r[f"{col.name}_{p}"] for p in ("lat", "lon", "alt", "acc"))
                        values[col.name] = None if parts[0] is None else parts
                    else:
                        values[col.name] = _stored(col.kind, r[col.name])
                got[(r["instance_id"], rid)] = values
            out[t.name] = got
            for col in t.columns:
                if col.link_table is None:
                    continue
                link = tables[col.link_table]
                seen: dict[tuple[str, str], list] = {}
                for r in c.execute(sa.select(link).order_by(link.c.position)).mappings():
                    seen.setdefault((r["instance_id"], r["row_id"]), []).append(r["value"])
                out[f"link:{col.link_table}"] = seen
    return out


def assert_store_values_equal_central(engine, xml_form_id: str, rows: dict[str, dict]) -> None:
    """Every answer Central serves (groups, repeats, select_multiple, geo, dates with their
    offsets) is in the store, the same; no stored row Central does not serve."""
    form_id = store.form_id_for(engine, xml_form_id)
    assert form_id is not None, f"form {xml_form_id!r} not in the store"
    shape = store.stored_form_shape(engine, form_id)
    assert shape is not None, f"no stored shape for {xml_form_id!r}"
    want, held = _expected_rows(shape, rows), _stored_rows(engine, shape)
    for table, expected in want.items():
        got = held.get(table, {})
        if table.startswith("link:"):
            got = {k: v for k, v in got.items() if k in expected or v}
            expected = {k: v for k, v in expected.items() if v}
        missing = set(expected) - set(got)
        extra = set(got) - set(expected)
        assert not missing, (
            f"{table}: {len(missing)} rows Central has are not stored, e.g. {sorted(missing)[:2]}"
        )
        assert not extra, (
            f"{table}: {len(extra)} stored rows Central does not have, e.g. {sorted(extra)[:2]}"
        )
        differ = [
            (key, col, got[key][col] if not table.startswith("link:") else got[key], val)
            for key, exp in expected.items()
            for col, val in (exp.items() if isinstance(exp, dict) else [("values", exp)])
            if (got[key][col] if isinstance(exp, dict) else got[key]) != val
        ]
        assert not differ, (
            f"{table}: {len(differ)} answers differ from Central's, e.g. "
            f"(row, column, stored, Central) {differ[:3]}"
        )


def assert_store_equals_truth(engine, project: Project, xml_form_id: str) -> int:
    """The store equals Central: 0 lost, 0 duplicated, the same review and delete states and
    edit counts, and every answer value the same (Central's OData is the truth, on the
    emulator and on a real Central alike); returns how many submissions there are."""
    rows = central_rows(project, xml_form_id)
    held, truth = store_view(engine, xml_form_id), truth_view(project, xml_form_id, rows)
    lost = set(truth) - set(held)
    extra = set(held) - set(truth)
    assert not lost, f"{len(lost)} submissions lost, e.g. {sorted(lost)[:3]}"
    assert not extra, f"{len(extra)} submissions stored that Central does not have"
    differ = {i: (held[i], truth[i]) for i in truth if held[i] != truth[i]}
    assert not differ, f"{len(differ)} differ, e.g. {list(differ.items())[:2]}"
    assert_store_values_equal_central(engine, xml_form_id, rows)
    return len(truth)
