"""Exports of a form's submissions (or of one repeat's rows): CSV, XLSX and GeoJSON.

Each export reads :func:`collector.queries.stream_rows`, so the rows a caller may see are
decided there, once, for the API's pages and the exports alike; this module only writes
them out. CSV and GeoJSON are generators of byte chunks, flat in memory whatever the size.
XLSX cannot be sent before its zip is closed, so it is written with xlsxwriter's
``constant_memory`` mode to an anonymous temporary file (rows go to disk as they come), then
streamed.

Choice values are written as stored (``lang=None``) or as their labels in English, Tajik
or Russian. ``on_sensitive`` is called with each batch of (instance id, sensitive columns
read) so that the API can write a manager's reads to the audit log, always before the
chunk holding those rows is handed out.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, BinaryIO

import orjson
import sqlalchemy as sa
import xlsxwriter

from collector.forminfo import SYSTEM_REPEAT, FieldInfo, FormInfo, Scope
from collector.queries import SubmissionFilter, stream_rows, value_key

META_EXPORT = (
    "instance_id",
    "submitted_at",
    "updated_at",
    "review_state",
    "district",
    "submitter_id",
    "submitter_name",
    "form_version",
)
REPEAT_EXPORT = ("instance_id", "row_id", "parent_row_id", "position", "district")
XLSX_MAX_ROWS = 1_048_576
AuditHook = Callable[[list[tuple[str, list[str]]]], None]


@dataclass(frozen=True)
class ExportSpec:
    form: FormInfo
    flt: SubmissionFilter
    scope: Scope
    fields: list[FieldInfo]
    repeat: FieldInfo | None = None
    lang: str | None = None
    read_by_filter: tuple[FieldInfo, ...] = ()
    """Sensitive fields the filter reads for every row (``where=`` on them): audited for
    each row exported, whether or not their columns are in the file."""

    @property
    def meta(self) -> tuple[str, ...]:
        return META_EXPORT if self.repeat is None else REPEAT_EXPORT

    def header(self) -> list[str]:
        return [*self.meta, *(c for f in self.fields for c in f.value_columns())]


def _display(form: FormInfo, f: FieldInfo, value: Any, lang: str | None) -> Any:
    if value is None or lang is None or not f.choice_list:
        return value
    if f.select_multiple:
        return " ".join(form.choice_label(f, v, lang) for v in str(value).split())
    return form.choice_label(f, str(value), lang)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_META_TIMES = {"submitted_at", "updated_at", "deleted_at"}
Convert = Callable[[Any], Any]


def _guard(text: str) -> str:
    """Text typed in the field could start a spreadsheet formula: such a cell gets a
    leading apostrophe (OWASP "CSV injection"). Numbers are not text and are left alone."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date | time) else value


def _plan(spec: ExportSpec, *, csv_text: bool) -> list[tuple[str, Convert | None]]:
    """Per output column: the result key and how its value is written (None: as it is).

    Built once per export, so the per-row work is a lookup and, where needed, one call.
    """
    plan: list[tuple[str, Convert | None]] = []
    for m in spec.meta:
        if m in _META_TIMES:
            plan.append((m, _iso))
        elif csv_text:
            plan.append((m, lambda v: _guard(v) if isinstance(v, str) else v))
        else:
            plan.append((m, None))
    for f in spec.fields:
        labels: dict[str, str] | None = None
        if spec.lang and f.choice_list:
            labels = {
                v: spec.form.choice_label(f, v, spec.lang)
                for v in spec.form.choices.get(f.choice_list, {})
            }
        for c in f.value_columns():
            conv: Convert | None
            if labels is not None and f.select_multiple:
                conv = lambda v, lab=labels: " ".join(lab.get(x, x) for x in str(v).split())  # noqa: E731
            elif labels is not None:
                conv = lambda v, lab=labels: lab.get(str(v), str(v))  # noqa: E731
            elif f.type in ("date", "dateTime", "time"):
                conv = _iso
            elif f.type in ("int", "decimal", "boolean", "geopoint"):
                conv = None
            else:
                conv = str
            if csv_text and conv is not None and conv is not _iso:
                inner = conv
                conv = lambda v, inner=inner: _guard(inner(v))  # noqa: E731
            plan.append((value_key(c), conv))
    return plan


def _indexed(
    plan: list[tuple[str, Convert | None]], row: sa.Row
) -> list[tuple[int, Convert | None]]:
    """The plan with result positions instead of keys (looked up once, on the first row)."""
    position = {name: i for i, name in enumerate(row._fields)}
    return [(position[key], conv) for key, conv in plan]


def _cells(plan: list[tuple[int, Convert | None]], row: sa.Row) -> list[Any]:
    out = []
    for i, conv in plan:
        v = row[i]
        out.append(v if v is None or conv is None else conv(v))
    return out


class _AuditedRows:
    """The rows of an export, with the audit hook fed before any of them leaves.

    Iterating reads the rows and notes which sensitive columns each one carries;
    :meth:`flush` hands the noted reads to the hook. The chunk writers call it right before
    each ``yield``, so no row is sent before its audit row is committed (a client that stops
    reading mid-export has been audited for what it got, no less); reads are also handed
    over every 1,000 rows, so memory stays flat for XLSX, which sends nothing until the end.
    """

    def __init__(self, engine: Any, spec: ExportSpec, on_sensitive: AuditHook | None) -> None:
        self._engine = engine
        self._spec = spec
        self._on_sensitive = on_sensitive
        self._pending: list[tuple[str, list[str]]] = []

    def flush(self) -> None:
        if self._pending and self._on_sensitive is not None:
            pending, self._pending = self._pending, []
            self._on_sensitive(pending)

    def __iter__(self) -> Iterator[sa.Row]:
        spec = self._spec
        rows = stream_rows(
            self._engine,
            spec.form,
            flt=spec.flt,
            scope=spec.scope,
            fields=spec.fields,
            repeat=spec.repeat,
        )
        watched = [(value_key(c), c) for f in spec.fields if f.sensitive for c in f.value_columns()]
        always = [c for f in spec.read_by_filter for c in f.value_columns()]
        if self._on_sensitive is None or not (watched or always):
            yield from rows
            return
        where: list[tuple[int, str]] = []
        iid_at = -1
        for row in rows:
            if iid_at < 0:
                position = {name: i for i, name in enumerate(row._fields)}
                where = [(position[key], column) for key, column in watched]
                iid_at = position["instance_id"]
            read = [c for i, c in where if row[i] is not None]
            read += [c for c in always if c not in read]
            if read:
                self._pending.append((row[iid_at], read))
                if len(self._pending) >= 1000:
                    self.flush()
            yield row
        self.flush()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def csv_chunks(
    engine: Any, spec: ExportSpec, *, on_sensitive: AuditHook | None = None, chunk_rows: int = 500
) -> Iterator[bytes]:
    """CSV in UTF-8 with a byte-order mark (so Excel reads Tajik and Russian right)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")
    writer.writerow(spec.header())
    plan = _plan(spec, csv_text=True)
    indexed: list[tuple[int, Convert | None]] = []
    rows = _AuditedRows(engine, spec, on_sensitive)
    for n, row in enumerate(rows, start=1):
        indexed = indexed or _indexed(plan, row)
        writer.writerow(_cells(indexed, row))
        if n % chunk_rows == 0:
            rows.flush()  # audited before the chunk leaves
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    rows.flush()
    yield buf.getvalue().encode()


def xlsx_file(
    engine: Any,
    spec: ExportSpec,
    *,
    on_sensitive: AuditHook | None = None,
    directory: str | None = None,
) -> BinaryIO:
    """Write the XLSX to an anonymous temporary file and return it open, at its start.

    The file has no name (``TemporaryFile``: unlinked at once, ``O_TMPFILE`` on Linux), so
    closing it frees it whatever happens: a client that gives up before the stream starts,
    a crash while writing, a killed process. A named file, deleted only by a stream that
    started, stayed in ``data_dir`` with every sensitive value of a manager's export.
    """
    fh = tempfile.TemporaryFile(suffix=".xlsx", dir=directory)  # noqa: SIM115 - returned open
    try:
        _write_xlsx(fh, engine, spec, on_sensitive)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh


def _write_xlsx(
    fh: BinaryIO, engine: Any, spec: ExportSpec, on_sensitive: AuditHook | None
) -> None:
    wb = xlsxwriter.Workbook(
        fh,
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "strings_to_formulas": False,
        },
    )
    try:
        name = spec.form.xml_form_id if spec.repeat is None else spec.repeat.name
        header = spec.header()
        bold = wb.add_format({"bold": True})
        sheet_no, r = 1, 0
        ws = wb.add_worksheet(name[:31])
        ws.write_row(0, 0, header, bold)
        plan = _plan(spec, csv_text=False)
        indexed: list[tuple[int, Convert | None]] = []
        for row in _AuditedRows(engine, spec, on_sensitive):
            indexed = indexed or _indexed(plan, row)
            r += 1
            if r >= XLSX_MAX_ROWS:
                sheet_no += 1
                ws = wb.add_worksheet(f"{name[:27]} ({sheet_no})")
                ws.write_row(0, 0, header, bold)
                r = 1
            for c, value in enumerate(_cells(indexed, row)):
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float):
                    ws.write_string(r, c, _text(value))
                else:
                    ws.write_number(r, c, value)
        _fields_sheet(wb, spec, bold)
    finally:
        wb.close()


def _fields_sheet(wb: xlsxwriter.Workbook, spec: ExportSpec, bold: Any) -> None:
    """A second sheet naming each column's question in the three languages."""
    ws = wb.add_worksheet("fields")
    ws.write_row(0, 0, ["column", "path", "type", "label (en)", "label (tg)", "label (ru)"], bold)
    r = 0
    for f in spec.fields:
        for c in f.value_columns():
            r += 1
            ws.write_row(
                r,
                0,
                [
                    c,
                    f.path,
                    f.type,
                    f.labels.get("en") or "",
                    f.labels.get("tg") or "",
                    f.labels.get("ru") or "",
                ],
            )


def file_chunks(fh: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    """Stream an open file, closing it afterwards (also when the client goes away).

    An anonymous file from :func:`xlsx_file` that is never streamed is freed when the
    response holding this generator is dropped and the file object with it.
    """
    with fh:
        while chunk := fh.read(size):
            yield chunk


def geojson_chunks(
    engine: Any,
    spec: ExportSpec,
    geopoint: FieldInfo,
    *,
    on_sensitive: AuditHook | None = None,
    chunk_rows: int = 500,
) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection of the rows with a value in ``geopoint`` (RFC 7946:
    coordinates are longitude, latitude, altitude)."""
    lat_c, lon_c, alt_c, acc_c = geopoint.value_columns()
    others = [m for m in spec.meta]
    props_fields = [f for f in spec.fields if f.path != geopoint.path]
    yield b'{"type":"FeatureCollection","features":['
    first = True
    parts: list[bytes] = []
    rows = _AuditedRows(engine, spec, on_sensitive)
    for full in rows:
        row = full._mapping
        lat, lon = row.get(value_key(lat_c)), row.get(value_key(lon_c))
        if lat is None or lon is None:
            continue
        alt = row.get(value_key(alt_c))
        coords = [lon, lat] if alt is None else [lon, lat, alt]
        props: dict[str, Any] = {m: _json_value(row.get(m)) for m in others}
        props["accuracy"] = row.get(value_key(acc_c))
        for f in props_fields:
            for c in f.value_columns():
                props[c] = _json_value(_display(spec.form, f, row.get(value_key(c)), spec.lang))
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": coords},
            "properties": props,
        }
        parts.append((b"" if first else b",") + orjson.dumps(feature))
        first = False
        if len(parts) >= chunk_rows:
            rows.flush()  # audited before the chunk leaves
            yield b"".join(parts)
            parts = []
    rows.flush()
    parts.append(b"]}")
    yield b"".join(parts)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


__all__ = [
    "SYSTEM_REPEAT",
    "ExportSpec",
    "csv_chunks",
    "file_chunks",
    "geojson_chunks",
    "xlsx_file",
]
