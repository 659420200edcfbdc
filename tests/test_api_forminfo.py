"""What the API takes as sensitive when the store's description of a form has gaps,
against a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

from collector import store
from collector.forms.xlsform import form_spec, read_xlsform
from collector.read.forminfo import Scope, form_info
from collector.store import models
from collector.sync.normalize import fields_from_spec
from tests.conftest import REPO

NEW_PATH = "/visit/shelter_address"


def test_forminfo__a_question_no_xlsform_described_is_sensitive_even_if_stored_as_not(
    database_url,
):
    """F2 / SEC-14 for stores made before the store's fail-closed fix: a question added in
    Central's UI (outside `forms push`) was recorded with `sensitive = false`, no label and
    no XLSForm type. The API must still withhold it from analysts; described questions keep
    their flags, labelled or not (`start`, a calculate), and Central's instanceID stays public."""
    spec = form_spec(
        read_xlsform(REPO / "forms" / "household_visit.xlsx"), media_dir=REPO / "forms"
    )
    central = [{k: v for k, v in f.items() if k != "xls_type"} for f in fields_from_spec(spec)]
    central.append({"path": NEW_PATH, "name": "shelter_address", "type": "string"})
    central.append({"path": "/meta/instanceID", "name": "instanceID", "type": "string"})
    engine = store.engine_for(database_url)
    try:
        store.create_schema(engine)
        store.save_form_spec(engine, spec, central)
        ff = models.FormField.__table__
        with engine.begin() as conn:  # as a store made before the fix recorded it
            conn.execute(ff.update().where(ff.c.path == NEW_PATH).values(sensitive=False))
        form = form_info(engine, "household_visit")
        assert form is not None
        by_path = {f.path: f for f in form.fields}
        assert by_path[NEW_PATH].sensitive
        assert by_path["/visit/respondent_phone"].sensitive
        assert by_path["/visit/household_id"].sensitive  # SEC-13
        described_public = ["/visit/respondent_age", "/start", "/meta/instanceID"]
        assert [p for p in described_public if by_path[p].sensitive] == []
        analyst = {
            f.path for f in form.visible_fields(None, Scope(sensitive=False, districts=None))
        }
        assert NEW_PATH not in analyst and "/start" in analyst
    finally:
        engine.dispose()
