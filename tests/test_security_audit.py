"""Adversarial checks beyond ``test_api_leaks``: ways a key or a log learns what it may not.

Each test plays an attacker (or an operator reading logs) against the real path: forms
published to the emulator, submissions sent over OpenRosa, ``collector.sync.submissions`` into SQLite
and PostgreSQL, the API in a real uvicorn server (``tests/api_fixtures.py``). Findings and
their suggested fixes are written up in /work/notes/security-findings.md.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import random
import re
import stat
import subprocess
import sys
import time
import uuid

import orjson
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from collector import store
from collector.read.forminfo import form_info
from collector.store.keys import create_key, revoke_key
from collector.sync import submissions as sync
from emulator.control import free_port
from tests.api_fixtures import (
    HOME_DISTRICT,
    PLANTED_SENSITIVE,
    RARE_DISTRICT,
    SENSITIVE_NEEDLES,
    LiveApi,
    api_fixture,  # noqa: F401 - fixture "api"
    instance_xml,
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)
from tests.conftest import REPO

INDICATOR = "/v1/indicators/home_visits"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _one_value(api: LiveApi, key: str, **params) -> int | None:
    """The single cell of an indicator asked with ``period=none`` and no breakdown."""
    r = api.get(INDICATOR, key, period="none", **params)
    assert r.status_code == 200, r.text
    cells = r.json()["cells"]
    assert len(cells) == 1, cells
    return None if cells[0]["suppressed"] else cells[0]["value"]


# --- indicators: small cells recovered by differencing ---------------------------------------


def test_security__suppressed_cell_not_recovered_by_district_differencing(api):
    """A viewer must not learn a suppressed cell by asking for every district and for every
    district but the rare one, and subtracting: the ``district`` filter takes any set, both
    answers are above the threshold, and their difference is the small count suppression
    hides (two women visited in the rare district)."""
    manager = api.get(INDICATOR, "manager", period="none", by="district").json()
    true = {c["keys"]["district"]: c["value"] for c in manager["cells"]}
    assert 0 < true[RARE_DISTRICT] < api.synced.settings.suppression_threshold

    viewer = api.get(INDICATOR, "viewer", period="none", by="district").json()
    rare = next(c for c in viewer["cells"] if c["keys"]["district"] == RARE_DISTRICT)
    assert rare["suppressed"], "the small cell itself must be suppressed"
    # Every district the form offers (public: GET /v1/forms/household_visit), but the rare one.
    choices = api.get("/v1/forms/household_visit", "viewer").json()["choices"]["district"]
    others = [c["value"] for c in choices if c["value"] != RARE_DISTRICT]

    everyone = _one_value(api, "viewer")
    union = api.get(INDICATOR, "viewer", period="none", district=others)
    # below manager a question names one district or none (collector.read.indicators.disclosure)
    assert union.status_code == 422 and "district" in union.text, union.text
    all_but_rare = sum(
        c["value"] or 0 for c in viewer["cells"] if c["keys"]["district"] != RARE_DISTRICT
    )
    recovered = None if everyone is None or all_but_rare is None else everyone - all_but_rare
    assert recovered != true[RARE_DISTRICT], (
        f"viewer recovered the suppressed cell {RARE_DISTRICT}={true[RARE_DISTRICT]} as "
        f"(all districts) {everyone} - (all but {RARE_DISTRICT}) {all_but_rare}"
    )


# --- keys: a district-limited admin ------------------------------------------------------------


def test_security__district_limited_admin_cannot_mint_a_wider_key(api):
    """An admin key limited to one district (a partner organisation's admin) must not create
    a key that reaches other districts (no districts = every district)."""
    engine = api.synced.engine
    name = f"admin-home-{uuid.uuid4().hex[:6]}"
    limited_admin = create_key(engine, name=name, role="admin", districts=[HOME_DISTRICT])
    minted: list[str] = []
    other_iid = api.synced.planted["household_visit"][1]  # planted in the other district
    try:
        for body in (
            {"name": f"{name}-wide", "role": "analyst"},
            {"name": f"{name}-empty", "role": "analyst", "districts": []},
            {"name": f"{name}-other", "role": "analyst", "districts": ["khujand"]},
        ):
            r = requests.post(
                api.url + "/v1/keys", json=body, headers=_auth(limited_admin.token), timeout=30
            )
            if r.status_code == 201:
                minted.append(r.json()["name"])
                districts = r.json()["districts"]
                seen = requests.get(
                    api.url + "/v1/forms/household_visit/submissions",
                    params={"fields": "visit/respondent_age", "limit": 500},
                    headers=_auth(r.json()["token"]),
                    timeout=30,
                ).text
                assert districts is not None and set(districts) <= {HOME_DISTRICT}, (
                    f"a {HOME_DISTRICT}-only admin minted {body} -> districts={districts}; "
                    f"the new key sees the other district's row: {other_iid in seen}"
                )
            else:
                assert r.status_code in (403, 422), (r.status_code, r.text)
    finally:
        for n in (name, *minted):
            revoke_key(engine, n)


# --- sync status: a database error's parameters ------------------------------------------------


def _install_insert_fault(engine: sa.Engine, table: str) -> None:
    """Make every insert into ``table`` fail, as a full disk, a lock timeout or a constraint
    would: the database refuses the statement that carries the submission's values."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION audit_fault() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'simulated storage failure'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                f'CREATE TRIGGER audit_fault BEFORE INSERT OR UPDATE ON "{table}" '
                "FOR EACH ROW EXECUTE FUNCTION audit_fault()"
            )
        else:
            conn.exec_driver_sql(
                f'CREATE TRIGGER audit_fault BEFORE INSERT ON "{table}" '
                "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
            )
            conn.exec_driver_sql(
                f'CREATE TRIGGER audit_fault_u BEFORE UPDATE ON "{table}" '
                "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
            )


def _remove_insert_fault(engine: sa.Engine, table: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS audit_fault ON "{table}"')
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS audit_fault()")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_fault")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_fault_u")


def test_security__failed_sync_keeps_submission_values_out_of_status_and_logs(api, caplog):
    """A sync that fails in the database records its error in ``sync_run``; any role reads
    it at ``/v1/sync/status``. It must not carry the statement's parameters (the very
    submission values being written), nor may the log."""
    s = api.synced
    form = form_info(s.engine, "household_visit")
    assert form is not None
    spec = s.specs["household_visit"]
    version = form.version or ""
    xml, _iid = instance_xml(
        spec,
        version,
        random.Random(7),
        overrides={
            **PLANTED_SENSITIVE["household_visit"],
            "/consent": "yes",
            "/visit/district": HOME_DISTRICT,
        },
    )
    s.project.submit(xml)
    _install_insert_fault(s.engine, form.table_name)
    try:
        with caplog.at_level(logging.INFO):
            results = sync.sync_forms(s.settings, ["household_visit"], engine=s.engine)
    finally:
        _remove_insert_fault(s.engine, form.table_name)
    assert [r.status for r in results] == ["failed"], results
    status = api.get("/v1/sync/status", "viewer")
    assert status.status_code == 200
    body = status.text
    leaked = [n for n in SENSITIVE_NEEDLES if n in body]
    assert not leaked, f"/v1/sync/status shows a viewer {leaked}: {body[:600]}"
    logged = [n for n in SENSITIVE_NEEDLES if n in caplog.text]
    assert not logged, f"the sync log holds {logged}"
    # the store catches up once the fault is gone
    assert [
        r.status for r in sync.sync_forms(s.settings, ["household_visit"], engine=s.engine)
    ] == ["ok"]


# --- logs of `collector api`: values in query strings and cursors ------------------------------


def _cursor_values(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def test_security__api_log_holds_no_sensitive_query_values(api, tmp_path):
    """``collector api`` as deployed: a manager filters by a phone number (in a URL, refused,
    then in a body) and pages a list sorted by name. Neither the phone number nor the cursor
    may reach the server's log."""
    s = api.synced
    port = free_port()
    env = {
        **os.environ,
        "COLLECTOR_DATABASE_URL": s.settings.resolved_database_url,
        "COLLECTOR_DATA_DIR": str(tmp_path),
        "COLLECTOR_CENTRAL_URL": s.settings.central_url,
    }
    out = (tmp_path / "api.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "api", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, "collector api exited"
            assert time.monotonic() < deadline, "collector api did not start"
            time.sleep(0.2)
        manager = _auth(s.tokens["manager"])
        phone = PLANTED_SENSITIVE["household_visit"]["/visit/respondent_phone"]
        where = f"visit/respondent_phone:eq:{phone}"
        r = requests.get(
            base + "/v1/forms/household_visit/submissions",
            params={"where": where},
            headers=manager,
            timeout=30,
        )
        assert r.status_code == 400, r.text  # SEC-21: such a value goes in a body
        r = requests.post(
            base + "/v1/forms/household_visit/submissions/query",
            json={"where": [where]},
            headers=manager,
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["items"], r.text
        r = requests.get(
            base + "/v1/forms/household_visit/submissions",
            params={"sort": "visit/respondent_name", "limit": 1},
            headers=manager,
            timeout=30,
        )
        cursor = r.json()["next_cursor"]
        assert cursor
        name = orjson.loads(_cursor_values(cursor))["v"]
        requests.get(
            base + "/v1/forms/household_visit/submissions",
            params={"sort": "visit/respondent_name", "limit": 1, "cursor": cursor},
            headers=manager,
            timeout=30,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    out.seek(0)
    log = out.read()
    out.close()
    encoded = requests.utils.quote(phone, safe="")
    found = [
        what
        for what, text in (
            ("phone", phone),
            ("url-encoded phone", encoded),
            ("phone (form-encoded)", phone.replace(" ", "+").replace("+992", "%2B992")),
            ("cursor holding a respondent's name", cursor),
        )
        if text in log
    ]
    assert not found, f"`collector api` logged {found} (respondent name {name!r}):\n{log[-800:]}"


# --- files on disk ------------------------------------------------------------------------------


def test_security__store_and_token_cache_readable_by_owner_only(api):
    """The SQLite store holds every sensitive answer; ``pyodk_cache.toml`` holds a bearer
    token for Central's admin account. Neither may be readable by other users of the host."""
    s = api.synced
    paths = [s.settings.pyodk_cache_path]
    url = make_url(s.settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        paths.append(REPO / url.database if not os.path.isabs(url.database) else url.database)
    open_to_others = {}
    for p in paths:
        assert os.path.exists(p), p
        mode = stat.S_IMODE(os.stat(p).st_mode)
        if mode & 0o077:
            open_to_others[str(p)] = oct(mode)
    assert not open_to_others, f"readable by group/others: {open_to_others}"


# --- XLSX exports: the temporary file ------------------------------------------------------------


def test_security__aborted_xlsx_export_leaves_no_file_with_values(api):
    """An XLSX export is written to a temporary file in ``data_dir`` first (a manager's
    holds every sensitive value), then streamed and deleted. A client that gives up before
    the stream starts (a read timeout, a closed laptop) must not leave that file behind."""
    data_dir = api.synced.settings.data_dir
    before = set(data_dir.glob("*.xlsx"))
    for _ in range(5):
        with contextlib.suppress(requests.exceptions.ReadTimeout):
            requests.get(
                api.url + "/v1/forms/household_visit/export.xlsx",
                headers=_auth(api.synced.tokens["manager"]),
                timeout=(5, 0.001),
            )
    time.sleep(2)
    left = sorted(str(p) for p in set(data_dir.glob("*.xlsx")) - before)
    assert not left, f"aborted exports left {len(left)} file(s) with sensitive values: {left}"


# --- a question added in Central, outside `collector forms push` ------------------------------

NEW_QUESTION_VALUE = "SURVIVOR-SHELTER-ADDRESS-Qx7"


def test_security__question_added_outside_push_is_withheld_until_described(api):
    """A new form version published straight in Central (its web UI, bypassing `collector
    forms push`) brings a question the store has no XLSForm for, so nobody has said whether it
    is sensitive. It must be withheld from analysts (fail closed) until the XLSForm is
    recorded, as a form never recorded at all already is."""
    s = api.synced
    p = s.project
    r = requests.get(
        p.v1(f"projects/{p.project_id}/forms/household_visit.xml"), headers=p.headers(), timeout=30
    )
    r.raise_for_status()
    xml = r.text
    new_version = f"sec-{uuid.uuid4().hex[:6]}"
    head = re.search(r'<data id="household_visit"[^>]*>', xml)
    assert head and "</visit>" in xml and "</model>" in xml
    opening = re.sub(r'\s+version="[^"]*"', "", head.group(0))
    xml = xml.replace(head.group(0), opening[:-1] + f' version="{new_version}">', 1)
    xml = xml.replace("</visit>", "<shelter_address/></visit>", 1).replace(
        "</model>", '<bind nodeset="/data/visit/shelter_address" type="string"/></model>', 1
    )
    p.publish_new_version(xml, "household_visit")
    spec = s.specs["household_visit"]
    sub, iid = instance_xml(
        spec,
        new_version,
        random.Random(11),
        overrides={"/consent": "yes", "/visit/district": HOME_DISTRICT},
    )
    sub = sub.replace(
        "</visit>", f"<shelter_address>{NEW_QUESTION_VALUE}</shelter_address></visit>"
    )
    p.submit(sub)
    results = sync.sync_forms(s.settings, ["household_visit"], engine=s.engine)
    assert [r.status for r in results] == ["ok"], results
    manager = api.get(f"/v1/forms/household_visit/submissions/{iid}", "manager")
    assert NEW_QUESTION_VALUE in manager.text, "the new question must reach the store"
    for key in ("analyst", "analyst-home"):
        seen = api.get(f"/v1/forms/household_visit/submissions/{iid}", key)
        assert NEW_QUESTION_VALUE not in seen.text, (
            f"{key} reads a question no XLSForm described: {seen.text[:400]}"
        )


# --- audit: a sensitive value read through a filter ---------------------------------------------


def test_security__manager_filter_on_a_sensitive_answer_is_audited(api):
    """``where=visit/safety/violence_experienced:eq:yes`` with only non-sensitive fields
    returns exactly the households whose woman answered yes: every row read is a read of a
    sensitive answer, so each must be in ``audit_log`` like any other read of one."""
    audit = store.T["audit_log"]
    with api.synced.engine.connect() as c:
        last = c.execute(sa.select(sa.func.coalesce(sa.func.max(audit.c.id), 0))).scalar_one()
    r = api.post(
        "/v1/forms/household_visit/submissions/query",
        "manager",
        json={
            "where": ["visit/safety/violence_experienced:eq:yes"],
            "fields": ["visit/respondent_age"],
            "limit": 500,
        },
    )
    assert r.status_code == 200, r.text
    revealed = {item["instance_id"] for item in r.json()["items"]}
    assert revealed, "some woman must have answered yes in the synced data"
    with api.synced.engine.connect() as c:
        audited = set(c.execute(sa.select(audit.c.instance_id).where(audit.c.id > last)).scalars())
    missing = revealed - audited
    assert not missing, (
        f"{len(missing)} of {len(revealed)} violence answers revealed by a filter, not audited"
    )


# --- forms: values derived from a sensitive answer ------------------------------------------------


def _with_rows(tmp_path, rows: list[dict[str, str]]):
    """household_visit.xlsx with ``rows`` appended to its survey sheet."""
    import shutil

    import openpyxl

    path = tmp_path / "household_visit.xlsx"
    shutil.copy(REPO / "forms" / "household_visit.xlsx", path)
    for media in (REPO / "forms").glob("*.csv"):
        shutil.copy(media, tmp_path / media.name)
    wb = openpyxl.load_workbook(path)
    ws = wb["survey"]
    header = [c.value for c in ws[1]]
    for row in rows:
        ws.append([row.get(h or "", None) for h in header])
    wb.save(path)
    return path


def _labels(text: str) -> dict[str, str]:
    return {
        "label::English (en)": text,
        "label::Tajik (tg)": text + " (tg)",
        "label::Russian (ru)": text + " (ru)",
    }


def test_security__question_derived_from_a_sensitive_answer_must_be_marked(tmp_path):
    """A calculate that copies a sensitive answer, or a question asked only when the woman
    said yes to violence, gives that answer away to analysts (the copy, or the mere presence
    of a value). ``collector forms check`` must flag such a row unless it is marked
    sensitive (or the spec must mark it so), as it flags an unmarked name or phone."""
    from collector.forms.check import check_form
    from collector.forms.xlsform import form_spec, read_xlsform

    path = _with_rows(
        tmp_path,
        [
            {"type": "calculate", "name": "contact_copy", "calculation": "${respondent_phone}"},
            # staff identity metadata is the manager's whatever the form marks (SEC-18)
            {"type": "calculate", "name": "tablet_copy", "calculation": "${deviceid}"},
            {
                "type": "text",
                "name": "support_note",
                "relevant": "${violence_experienced} = 'yes'",
                **_labels("What support did she ask for?"),
            },
        ],
    )
    result = check_form(path)
    spec = {f.name: f for f in form_spec(read_xlsform(path), tmp_path).fields}
    unguarded = [
        name
        for name in ("contact_copy", "support_note", "tablet_copy")
        if not spec[name].sensitive and not any(name in f.message for f in result.findings)
    ]
    assert not unguarded, (
        f"{unguarded} derive from a sensitive answer, yet are neither sensitive nor flagged: "
        f"{[f.message for f in result.findings]}"
    )


# --- rate limits: one address's bad keys must not lock out the good ones ------------------------


def test_security__bad_keys_from_an_address_do_not_lock_out_valid_keys_there(api):
    """Behind one address sit many people (a partner office's NAT, a mobile carrier's
    CGNAT, the gateway itself if misconfigured). A client there that keeps sending a revoked
    or wrong key must be slowed down, but a manager at the same address with a valid key
    must still be served: otherwise anyone can lock the programme out of its own data."""
    from api.app import create_app
    from tests.api_fixtures import serving

    settings = api.synced.settings.model_copy(update={"api_auth_failures_per_minute": 5})
    with serving(create_app(settings, engine=api.synced.engine)) as url:
        statuses = [
            requests.get(
                url + "/v1/forms", headers=_auth("clk_revoked-or-wrong"), timeout=30
            ).status_code
            for _ in range(20)
        ]
        assert 429 in statuses, f"bad keys must be limited: {statuses}"
        ok = requests.get(
            url + "/v1/forms", headers=_auth(api.synced.tokens["manager"]), timeout=30
        )
        assert ok.status_code == 200, (
            f"a valid key from the same address got {ok.status_code}: {ok.text[:200]}"
        )


# --- erasure: a purged submission's bytes on disk ----------------------------------------------------

PURGED_NAME = "PURGED-ON-DISK-Qx7"


def test_security__purged_values_do_not_survive_in_the_sqlite_file(central, tmp_path, fresh_name):
    """SEC-6 erases a purged submission's rows; the erasure is for a woman who asked to be
    forgotten, so her answers must not stay readable in the SQLite file's free pages or its
    WAL either (``strings collector.db`` after the purge). As in tests/test_purge.py, the
    purged submission is a synced row stored again under a new id (the emulator has no purge)."""
    from collector.central import Central
    from collector.sync.normalize import rows_for_page
    from tests.test_sync_support import new_project, submit_many

    project = new_project(central, tmp_path, fresh_name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", "household_visit")
    sent = submit_many(project, form, project.fields("household_visit"), 3, seed=67)
    settings = project.settings()
    db = tmp_path / "erase.db"
    engine = store.engine_for(f"sqlite:///{db}")

    def run() -> None:
        with Central(settings, backoff=0.02, backoff_max=0.2) as c:
            (r,) = sync.sync_forms(
                settings, ["household_visit"], engine=engine, central=c, reconcile=True
            )
        assert r.status == "ok", r.error

    try:
        run()
        form_id = store.form_id_for(engine, "household_visit")
        shape = store.stored_form_shape(engine, form_id)
        sub = store.T["submission"]
        with engine.connect() as c:
            row = orjson.loads(
                c.execute(sa.select(sub.c.raw).where(sub.c.instance_id == sent[0][0])).scalar_one()
            )
        row["__id"] = f"uuid:{uuid.uuid4()}"
        row["visit"]["respondent_name"] = PURGED_NAME
        row["visit"]["children"] = []
        page = rows_for_page(shape, [row])
        assert store.store_page(engine, form_id, shape, page, store.form_tables(shape)).inserted
        on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("erase.db*") if p.is_file())
        assert PURGED_NAME.encode() in on_disk, "the planted name must reach the file first"
        run()  # reconciliation: Central does not have it, so it is erased
        with engine.connect() as c:
            assert not c.execute(
                sa.select(sa.func.count()).select_from(sub).where(sub.c.raw.contains(PURGED_NAME))
            ).scalar_one()
    finally:
        engine.dispose()
    files = [p for p in tmp_path.glob("erase.db*") if p.is_file()]
    holding = [p.name for p in files if PURGED_NAME.encode() in p.read_bytes()]
    assert not holding, f"the purged name is still on disk in {holding} (free pages / WAL)"
