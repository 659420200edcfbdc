"""Fixtures for the API tests: a store SYNCED from the emulator, and the API on loopback.

The path is the real one: the four XLSForms are published to a fresh Central project (a
fresh one per module, so modules never share submissions; ``collector forms push`` would
use the manifest's one project), their specs (labels, sensitivity) recorded with the push's
own recorder (``formpush.store_recorder``), submissions sent over OpenRosa as ODK Collect
sends them (realistic values from the forms' own choices, plus a few planted ones the tests
look for), then ``collector.sync.submissions`` pulls them into the store, on SQLite and on PostgreSQL. The API runs in a real uvicorn server on a free loopback port.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import psycopg
import pytest
import requests
import uvicorn
from sqlalchemy.engine import Engine, make_url

from api.app import create_app
from collector import store
from collector.forms.push import store_recorder
from collector.forms.spec import FieldSpec, FormSpec
from collector.forms.xlsform import form_spec, read_xlsform
from collector.settings import Settings
from collector.store.keys import create_key
from collector.sync import submissions as sync
from emulator.control import free_port
from tests.conftest import REPO
from tests.test_sync_support import Project, new_project

FORMS = ("household_visit", "info_centre_consultation", "roundtable", "awareness_event")
SKIP_TYPES = {"note", "end_group", "end_repeat", "begin_group", "begin_repeat", "calculate"}
RARE_DISTRICT = "khorog"  # only planted submissions use it: its cells are small on purpose
HOME_DISTRICT = "kulob"  # the district-limited key's district
OTHER_DISTRICT = "khujand"

# Sensitive values planted through OpenRosa; no role below manager may ever see them.
PLANTED_SENSITIVE = {
    "household_visit": {
        "/visit/village": "PLANTVILLAGE-Qx7",
        "/visit/respondent_name": "PLANTNAME Зарина Qx7",
        "/visit/respondent_phone": "+992 900 77 71 23",
        "/visit/gps": "38.5612345 68.7712345 800 5",
    },
    "roundtable": {},
    "awareness_event": {"/gps": "39.9876543 69.1234567 900 4"},
    "info_centre_consultation": {},
}
PLANTED_SPEAKER = "PLANTSPEAKER Фарход Qx7"
PLANTED_DEVICE = "collect:Qx7planted"  # the deviceID the planted visits are sent with
SENSITIVE_NEEDLES = (
    "PLANTVILLAGE-Qx7",
    "PLANTNAME",
    "+992 900 77 71 23",
    "38.5612345",
    "68.7712345",
    "39.9876543",
    "69.1234567",
    "PLANTSPEAKER",
    PLANTED_DEVICE,  # staff identity, the manager's (SEC-18), in metadata and a question
)
MARK_HOME = "HH-MARK-HOME-Qx7"  # household_id of a planted visit in HOME_DISTRICT
MARK_OTHER = "HH-MARK-OTHER-Qx7"  # household_id of a planted visit in OTHER_DISTRICT
# household_id is sensitive (SEC-13): a non-sensitive answer marks the planted visits for
# analysts; random ages are 0..40, so these two belong to the planted visits alone.
MARK_AGE_HOME = 97  # respondent_age of the planted visit in HOME_DISTRICT
MARK_AGE_OTHER = 98  # respondent_age of the planted visit in OTHER_DISTRICT


@dataclass
class Synced:
    settings: Settings
    engine: Engine
    project: Project
    specs: dict[str, FormSpec]
    planted: dict[str, list[str]] = field(default_factory=dict)  # form -> instance ids
    tokens: dict[str, str] = field(default_factory=dict)  # key name -> token


# --- realistic submissions ------------------------------------------------------------------


def _choices(spec: FormSpec, list_name: str | None) -> list[str]:
    return [c.value for c in spec.choices if c.list_name == list_name] or ["other"]


def _value(spec: FormSpec, f: FieldSpec, rng: random.Random, today: date) -> str | None:
    t = f.type
    if f.name == "district":
        return rng.choice([d for d in _choices(spec, "district") if d != RARE_DISTRICT])
    if f.name == "consent":
        return "yes" if rng.random() < 0.9 else "no"
    if t in ("select_one", "select_one_from_file"):
        return rng.choice(_choices(spec, f.choice_list))
    if t == "select_multiple":
        options = _choices(spec, f.choice_list)
        return " ".join(rng.sample(options, rng.randint(1, min(3, len(options)))))
    if t == "integer":
        return str(rng.randint(0, 40))
    if t == "decimal":
        return f"{rng.uniform(0, 3000):.2f}"
    if t in ("date", "today"):
        return (today - timedelta(days=rng.randint(0, 120))).isoformat()
    if t in ("start", "end", "datetime"):
        return (datetime.now(UTC) - timedelta(minutes=rng.randint(0, 600))).isoformat(
            timespec="milliseconds"
        )
    if t == "deviceid":
        return f"collect:{rng.getrandbits(48):012x}"
    if t == "geopoint":
        return f"{rng.uniform(37, 40.5):.6f} {rng.uniform(67.5, 74.5):.6f} {rng.randint(300, 3000)} {rng.randint(3, 20)}"
    if t == "text":
        return (
            rng.choice(["Зарина", "Мадина", "Нигина", "Гулноз", "Фотима"])
            + f" {rng.randint(1, 99)}"
        )
    return None


def instance_xml(
    spec: FormSpec,
    version: str,
    rng: random.Random,
    *,
    overrides: dict[str, str] | None = None,
    repeat_rows: dict[str, list[dict[str, str]]] | None = None,
    drawn_then: dict[str, str] | None = None,
) -> tuple[str, str]:
    """An instance as ODK Collect sends it; ``overrides`` by path, repeats by repeat path.

    ``drawn_then`` replaces values after they are drawn, so the random stream (and every
    other submission the seed makes) stays as it was without them."""
    overrides = overrides or {}
    drawn_then = drawn_then or {}
    repeat_rows = repeat_rows or {}
    today = datetime.now(UTC).date()
    iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"

    def build(prefix: str, values: dict[str, str]) -> str:
        out = []
        for f in spec.fields:
            if f.path.rsplit("/", 1)[0] != prefix:
                continue
            if f.type == "begin_group":
                out.append(f"<{f.name}>{build(f.path, values)}</{f.name}>")
            elif f.type == "begin_repeat":
                rows = repeat_rows.get(f.path)
                if rows is None:
                    rows = [{} for _ in range(rng.randint(0, 3))]
                out.extend(f"<{f.name}>{build(f.path, row)}</{f.name}>" for row in rows)
            elif f.type in SKIP_TYPES:
                out.append(f"<{f.name}/>")
            else:
                v = values.get(f.path) or overrides.get(f.path) or _value(spec, f, rng, today)
                v = drawn_then.get(f.path, v)
                out.append(f"<{f.name}>{escape(v)}</{f.name}>" if v is not None else f"<{f.name}/>")
        return "".join(out)

    body = build("", {})
    ver = escape(version, {'"': "&quot;"})
    xml = (
        f'<?xml version="1.0"?><data id="{spec.form_id}" version="{ver}" '
        f'xmlns:orx="http://openrosa.org/xforms">{body}<meta><instanceID>{iid}</instanceID></meta></data>'
    )
    return xml, iid


# --- the synced store ---------------------------------------------------------------------


def _publish(project: Project, engine: Engine) -> tuple[dict[str, FormSpec], dict[str, dict]]:
    specs, forms = {}, {}
    record = store_recorder(engine)  # what `collector forms push` records after a push
    for fid in FORMS:
        path = REPO / "forms" / f"{fid}.xlsx"
        forms[fid] = project.publish_xlsx(path, fid)
        spec = form_spec(read_xlsform(path), media_dir=REPO / "forms")
        specs[fid] = spec
        record(spec, project.fields(fid), project.project_id)
    return specs, forms


def _submit_all(
    project: Project, specs: dict[str, FormSpec], forms: dict[str, dict], n: int
) -> dict[str, list[str]]:
    rng = random.Random(20261124)
    planted: dict[str, list[str]] = {fid: [] for fid in FORMS}
    for fid in FORMS:
        spec, version = specs[fid], forms[fid].get("version") or ""
        for _ in range(n):
            xml, _iid = instance_xml(spec, version, rng)
            project.submit(xml)
    hv, hv_version = specs["household_visit"], forms["household_visit"].get("version") or ""
    plant = PLANTED_SENSITIVE["household_visit"]
    for district, mark, age in (
        (HOME_DISTRICT, MARK_HOME, MARK_AGE_HOME),
        (OTHER_DISTRICT, MARK_OTHER, MARK_AGE_OTHER),
    ):
        xml, iid = instance_xml(
            hv,
            hv_version,
            rng,
            overrides={
                **plant,
                "/consent": "yes",
                "/visit/district": district,
                "/visit/household_id": mark,
                "/visit/last_remittance": mark,  # not a date: a data_issue that names the mark
            },
            # the deviceid question holds what Collect also sends as deviceID
            drawn_then={"/visit/respondent_age": str(age), "/deviceid": PLANTED_DEVICE},
        )
        project.submit(xml, device_id=PLANTED_DEVICE)
        planted["household_visit"].append(iid)
    for _ in range(2):  # two women visited in the rare district: a cell below the threshold
        xml, iid = instance_xml(
            hv, hv_version, rng, overrides={"/consent": "yes", "/visit/district": RARE_DISTRICT}
        )
        project.submit(xml)
        planted["household_visit"].append(iid)
    rt, rt_version = specs["roundtable"], forms["roundtable"].get("version") or ""
    xml, iid = instance_xml(
        rt,
        rt_version,
        rng,
        overrides={"/district": HOME_DISTRICT},
        repeat_rows={"/speakers": [{"/speakers/speaker_name": PLANTED_SPEAKER}]},
    )
    project.submit(xml)
    planted["roundtable"].append(iid)
    ae, ae_version = specs["awareness_event"], forms["awareness_event"].get("version") or ""
    xml, iid = instance_xml(
        ae,
        ae_version,
        rng,
        overrides={**PLANTED_SENSITIVE["awareness_event"], "/district": HOME_DISTRICT},
    )
    project.submit(xml)
    planted["awareness_event"].append(iid)
    return planted


def build_synced(central, data_dir: Path, database_url: str, *, per_form: int = 25) -> Synced:
    data_dir.mkdir(parents=True, exist_ok=True)
    project = new_project(central, data_dir, f"api-{uuid.uuid4().hex[:8]}")
    settings = project.settings(database_url=database_url, api_rate_limit_per_minute=100_000)
    engine = store.engine_for(settings)
    store.create_schema(engine)
    specs, forms = _publish(project, engine)
    planted = _submit_all(project, specs, forms, per_form)
    results = sync.sync_forms(settings, engine=engine)
    failed = [r for r in results if r.status != "ok"]
    assert not failed, f"sync failed: {[(r.xml_form_id, r.error) for r in failed]}"
    synced = Synced(settings, engine, project, specs, planted)
    for name, role, districts in (
        ("viewer", "viewer", None),
        ("analyst", "analyst", None),
        ("manager", "manager", None),
        ("admin", "admin", None),
        ("analyst-home", "analyst", [HOME_DISTRICT]),
        ("viewer-home", "viewer", [HOME_DISTRICT]),
    ):
        synced.tokens[name] = create_key(engine, name=name, role=role, districts=districts).token
    return synced


@pytest.fixture(
    scope="module",
    name="module_database_url",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def module_database_url_fixture(request, tmp_path_factory) -> Iterator[str]:
    """One database for a whole test module (syncing is the slow part), on both engines."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('api') / 'store.db'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    name = f"collector_api_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", name="synced")
def synced_fixture(central, module_database_url, tmp_path_factory) -> Iterator[Synced]:
    s = build_synced(central, tmp_path_factory.mktemp("apidata"), module_database_url)
    try:
        yield s
    finally:
        s.engine.dispose()


# --- the API on loopback ----------------------------------------------------------------------


@dataclass
class LiveApi:
    url: str
    app: object
    synced: Synced

    def get(self, path: str, key: str | None, **params) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.synced.tokens[key]}"} if key else {}
        return requests.get(self.url + path, params=params, headers=headers, timeout=60)

    def request(
        self, method: str, path: str, key: str | None, json: dict | None = None, **params
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.synced.tokens[key]}"} if key else {}
        return requests.request(
            method, self.url + path, params=params, json=json, headers=headers, timeout=60
        )

    def post(
        self, path: str, key: str | None, json: dict | None = None, **params
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.synced.tokens[key]}"} if key else {}
        return requests.post(self.url + path, params=params, json=json, headers=headers, timeout=60)


def all_pages(api: LiveApi, key: str, form: str, **params) -> list[dict]:
    """Every item of a form's submissions list (GET), following ``next_cursor``."""
    url = f"/v1/forms/{form}/submissions"
    return _followed(lambda cursor: api.get(url, key, **params, **_cursor(cursor)))


def all_pages_by_body(api: LiveApi, key: str, form: str, body: dict) -> list[dict]:
    """The same from ``POST .../submissions/query``, the cursor in the body."""
    url = f"/v1/forms/{form}/submissions/query"
    return _followed(lambda cursor: api.post(url, key, json={**body, **_cursor(cursor)}))


def _cursor(cursor: str | None) -> dict[str, str]:
    return {"cursor": cursor} if cursor else {}


def _followed(fetch: Callable[[str | None], requests.Response]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        r = fetch(cursor)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


@contextmanager
def serving(app) -> Iterator[str]:
    """The API as a real uvicorn server on loopback, in a thread, for the block; its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start in 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module", name="api")
def api_fixture(synced: Synced) -> Iterator[LiveApi]:
    app = create_app(synced.settings, engine=synced.engine)
    with serving(app) as url:
        yield LiveApi(url, app, synced)
