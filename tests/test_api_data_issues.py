"""``/v1/data-issues`` withholds what the rows withhold: values of every field the form
treats as sensitive (its fail-closed rules included), and deleted submissions' issues."""

from __future__ import annotations

import sqlalchemy as sa

from collector import store
from tests.api_fixtures import (
    PLANTED_DEVICE,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

UNKNOWN_VALUE = "UNKNOWN-PATH-Qx7"
DELETED_VALUE = "DELETED-ISSUE-Qx7"


def test_data_issues__withheld_as_the_rows_are(api):
    engine = api.synced.engine
    visit, other = api.synced.planted["household_visit"][:2]
    issue_t, sub_t, form_t = store.T["data_issue"], store.T["submission"], store.T["form"]
    with engine.begin() as conn:
        form_id = conn.execute(
            sa.select(form_t.c.id).where(form_t.c.xml_form_id == "household_visit")
        ).scalar_one()
        # As a store holds them: a staff-identity question (sensitive whatever its mark, as
        # in the rows), a path no field describes (fail closed), and one of a submission
        # that has since been deleted in Central (for managers only, as its rows are).
        conn.execute(
            issue_t.insert(),
            [
                {"form_id": form_id, "instance_id": visit, "path": "/deviceid",
                 "value": PLANTED_DEVICE, "reason": "planted", "found_at": store.now()},
                {"form_id": form_id, "instance_id": visit, "path": "/no/such/question",
                 "value": UNKNOWN_VALUE, "reason": "planted", "found_at": store.now()},
                {"form_id": form_id, "instance_id": other, "path": "/visit/respondent_age",
                 "value": DELETED_VALUE, "reason": "planted", "found_at": store.now()},
            ],
        )  # fmt: skip
        conn.execute(
            sub_t.update()
            .where(sub_t.c.form_id == form_id, sub_t.c.instance_id == other)
            .values(deleted_at=store.now())
        )

    def issues(key: str) -> list[dict]:
        r = api.get("/v1/data-issues", key, form="household_visit", limit=500)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    seen = issues("analyst")
    by_path = {(i["instance_id"], i["path"]): i for i in seen}
    for path in ("/deviceid", "/no/such/question"):
        issue = by_path[(visit, path)]
        assert issue["withheld"] and issue["sensitive"] and issue["value"] is None, issue
    assert not any(i["instance_id"] == other for i in seen)
    text = str(seen)
    assert PLANTED_DEVICE not in text and UNKNOWN_VALUE not in text and DELETED_VALUE not in text
    managed = {i["value"] for i in issues("manager")}
    assert {PLANTED_DEVICE, UNKNOWN_VALUE, DELETED_VALUE} <= managed


def test_sync_status__an_old_runs_error_text_is_the_managers(api):
    """Runs recorded before errors were written without values (``collector.sync.failures``) may
    hold a refused row in their text; below manager only the error's first clause shows."""
    engine = api.synced.engine
    form_id = store.form_id_for(engine, "roundtable")
    run_id = store.start_run(engine, "roundtable", form_id, "an older collector")
    old = (
        "IntegrityError: (psycopg.errors.CheckViolation) new row for relation violates "
        "check constraint\nDETAIL:  Failing row contains (uuid:1, PLANTSPEAKER-OLD-Qx7)."
    )
    store.finish_run(engine, run_id, error=old, status="failed")

    def status(key: str) -> dict:
        r = api.get("/v1/sync/status", key)
        assert r.status_code == 200, r.text
        return next(f for f in r.json() if f["form_id"] == "roundtable")

    for key in ("viewer", "analyst"):
        seen = status(key)
        assert seen["last_run"]["error"] == "IntegrityError" == seen["last_error"], seen
        assert "PLANTSPEAKER-OLD-Qx7" not in str(seen)
    assert status("manager")["last_run"]["error"] == old


def test_staff_identity_types__every_spelling_pyxform_knows():
    """Each XLSForm type pyxform fills with the device's or the enumerator's identity, and
    the first word a form spec keeps of it, is treated as the manager's."""
    from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

    from collector.forms.spec import STAFF_IDENTITY_XLS_TYPES

    identity = {"deviceid", "simserial", "subscriberid", "phonenumber", "username", "email"}
    names = {
        name
        for name, spec in QUESTION_TYPE_DICT.items()
        if str(spec.get("bind", {}).get("jr:preloadParams", "")).removeprefix("uri:") in identity
    }
    assert {"deviceid", "imei", "device id", "uri:deviceid"} <= names
    assert {n for name in names for n in (name, name.split()[0])} <= STAFF_IDENTITY_XLS_TYPES
