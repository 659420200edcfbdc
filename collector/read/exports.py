"""Exports of a form's submissions (and its repeats' rows): CSV, a zip of CSVs, XLSX, GeoJSON.

Each export reads :func:`collector.read.queries.stream_rows`, so the rows a caller may see are
decided there, once, for the API's pages and the exports alike; the columns come from the
fields the scope allowed (:func:`collector.read.queries.select_fields`), planned by
:mod:`collector.read.exportcols`; this module only writes them out.

- CSV and GeoJSON are generators of byte chunks, flat in memory whatever the size. CSV is
  UTF-8 with a byte-order mark (Excel reads Tajik and Russian right), every text cell
  quoted and guarded (:mod:`collector.read.exportguard`); ``sep=";"`` writes ``;`` between cells
  and a decimal comma, as Excel with a Russian or Tajik locale expects.
- The zip holds the main table and every repeat's table as CSVs (each repeat row carries
  ``instance_id`` and ``parent_row_id``), streamed entry by entry (zip data descriptors: no
  seeking back), as ODK Central's CSV zip does.
- XLSX is one workbook: the main table, a sheet per repeat (with the keys), and a
  ``fields`` sheet; real date, time and number cells, the header frozen and filtered.
  A zip cannot be finished before its last sheet, so it is written with xlsxwriter's
  ``constant_memory`` mode to an anonymous temporary file (rows go to disk as they come),
  then streamed.

``on_sensitive`` is called with each batch of (instance id, sensitive columns read) so that
the API can write a manager's reads to the audit log, always before the chunk holding those
rows is handed out.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Any, BinaryIO, Literal

import orjson
import sqlalchemy as sa
import xlsxwriter

from collector.read.exportcols import (
    META_MAIN,
    META_REPEAT,
    Column,
    Header,
    header_of,
    is_geoline,
    naive_utc,
    odk_geometry,
    offset_positions,
    plan_columns,
    positions,
)
from collector.read.exportguard import guard_csv, needs_guard
from collector.read.forminfo import SYSTEM_REPEAT, FieldInfo, FormInfo, Scope
from collector.read.queries import SubmissionFilter, stream_rows, value_key
from collector.times import RecordedTime, value_text

META_EXPORT = META_MAIN
REPEAT_EXPORT = META_REPEAT
XLSX_MAX_ROWS = 1_048_576
AuditHook = Callable[[list[tuple[str, list[str]]]], None]
Separator = Literal[",", ";"]


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
    header_style: Header = "name"
    choice_columns: bool = False
    sep: Separator = ","

    @property
    def meta(self) -> tuple[str, ...]:
        return META_EXPORT if self.repeat is None else REPEAT_EXPORT

    def columns(self) -> list[Column]:
        return plan_columns(
            self.form,
            self.fields,
            repeat=self.repeat is not None,
            lang=self.lang,
            choice_columns=self.choice_columns,
        )

    def header(self) -> list[str]:
        return header_of(self.columns(), self.header_style)

    @property
    def table_name(self) -> str:
        return self.form.xml_form_id if self.repeat is None else self.repeat.name

    def with_repeats(self) -> list[ExportSpec]:
        """This table and, for the main table, every repeat's table that exists (with the
        fields the scope may see: the same rule as the main table's)."""
        if self.repeat is not None:
            return [self]
        out = [self]
        for rep in self.form.repeats():
            if not any(f.table_name for f in self.form.fields if f.repeat_path == rep.path):
                continue  # no table yet: no row was ever synced into it
            fields = self.form.visible_fields(rep.path, self.scope)
            out.append(replace(self, repeat=rep, fields=fields))
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


# --- CSV ---------------------------------------------------------------------------------


def _csv_cell(col: Column, raw: Any, offset: int | None, decimal_comma: bool) -> Any:
    value = col.value(raw, offset)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value).replace(".", ",") if decimal_comma else value
    if isinstance(value, datetime | date | time):
        return value_text(value)  # collector.times: UTC with Z, dates as dates
    return guard_csv(str(value))


def _csv_text(engine: Any, spec: ExportSpec, rows: _AuditedRows, chunk_rows: int) -> Iterator[str]:
    """A table as CSV text (with the byte-order mark), in chunks; audited before each."""
    buf = io.StringIO()
    # Every text cell quoted (numbers not): a separator inside a value never splits it,
    # whichever separator the reader picks (OWASP CSV Injection).
    writer = csv.writer(
        buf, delimiter=spec.sep, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC
    )
    buf.write("\ufeff")
    columns = spec.columns()
    writer.writerow([guard_csv(h) for h in header_of(columns, spec.header_style)])
    comma = spec.sep == ";"
    at: list[int] = []
    tz: list[int | None] = []
    for n, row in enumerate(rows, start=1):
        if not at:
            at, tz = positions(columns, row._fields), offset_positions(columns, row._fields)
        writer.writerow(
            [
                _csv_cell(c, row[i], None if o is None else row[o], comma)
                for c, i, o in zip(columns, at, tz, strict=True)
            ]
        )
        if n % chunk_rows == 0:
            rows.flush()  # audited before the chunk leaves
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    rows.flush()
    yield buf.getvalue()


def csv_chunks(
    engine: Any, spec: ExportSpec, *, on_sensitive: AuditHook | None = None, chunk_rows: int = 500
) -> Iterator[bytes]:
    """One table as CSV in UTF-8 with a byte-order mark."""
    rows = _AuditedRows(engine, spec, on_sensitive)
    for text in _csv_text(engine, spec, rows, chunk_rows):
        yield text.encode()


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken out as they come: zipfile then
    writes data descriptors after each entry instead of seeking back."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        self._parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def csv_zip_chunks(
    engine: Any, spec: ExportSpec, *, on_sensitive: AuditHook | None = None, chunk_rows: int = 500
) -> Iterator[bytes]:
    """The main table and every repeat's table as CSVs in one zip, streamed."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for table in spec.with_repeats():
            name = (
                f"{spec.form.xml_form_id}.csv"
                if table.repeat is None
                else f"{spec.form.xml_form_id}-{table.repeat.name}.csv"
            )
            rows = _AuditedRows(engine, table, on_sensitive)
            with zf.open(name, "w", force_zip64=True) as entry:
                for text in _csv_text(engine, table, rows, chunk_rows):
                    entry.write(text.encode())
                    if out := sink.take():
                        yield out  # the rows in it were audited before _csv_text yielded
    yield sink.take()


# --- XLSX --------------------------------------------------------------------------------


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


_WIDTH = {"date": 11, "datetime": 19, "time": 9, "number": 10, "bool": 7, "flag": 6, "text": 14}


class _Formats:
    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        self.header = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "text_wrap": False})
        self.date = wb.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self._wb = wb
        self._zoned: dict[str, Any] = {}
        self.time = wb.add_format({"num_format": "hh:mm:ss"})
        self.quoted = wb.add_format({"quote_prefix": True})

    def zoned(self, offset: str) -> Any:
        """A date-time format ending in a dateTime answer's recorded offset (``+05:00``):
        the cell holds the wall-clock time Collect recorded, typed, and shows its zone."""
        fmt = self._zoned.get(offset)
        if fmt is None:
            fmt = self._zoned[offset] = self._wb.add_format(
                {"num_format": f'yyyy-mm-dd hh:mm:ss"{offset}"'}
            )
        return fmt


def _sheet_name(name: str, taken: set[str]) -> str:
    """Excel's rules: at most 31 characters, none of ``[]:*?/\\``, unique ignoring case."""
    clean = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)[:31] or "sheet"
    out, n = clean, 1
    while out.lower() in taken:
        n += 1
        out = f"{clean[: 31 - len(str(n)) - 3]} ({n})"
    taken.add(out.lower())
    return out


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
        fmt = _Formats(wb)
        taken = {"fields"}
        tables = spec.with_repeats()
        for table in tables:
            _write_sheet(wb, fmt, engine, table, on_sensitive, taken)
        _fields_sheet(wb, fmt, tables)
    finally:
        wb.close()


def _new_sheet(
    wb: xlsxwriter.Workbook, fmt: _Formats, name: str, columns: list[Column], header: list[str]
) -> Any:
    ws = wb.add_worksheet(name)
    for c, (col, text) in enumerate(zip(columns, header, strict=True)):
        width = max(_WIDTH[col.kind], min(len(text) + 2, 45))
        ws.set_column(c, c, width)
    ws.write_row(0, 0, header, fmt.header)
    ws.freeze_panes(1, 0)
    return ws


def _write_sheet(
    wb: xlsxwriter.Workbook,
    fmt: _Formats,
    engine: Any,
    spec: ExportSpec,
    on_sensitive: AuditHook | None,
    taken: set[str],
) -> None:
    columns = spec.columns()
    header = header_of(columns, spec.header_style)
    base = spec.table_name
    ws = _new_sheet(wb, fmt, _sheet_name(base, taken), columns, header)
    r = 0
    at: list[int] = []
    tz: list[int | None] = []
    for row in _AuditedRows(engine, spec, on_sensitive):
        if not at:
            at, tz = positions(columns, row._fields), offset_positions(columns, row._fields)
        r += 1
        if r >= XLSX_MAX_ROWS:
            ws.autofilter(0, 0, r - 1, len(columns) - 1)
            ws = _new_sheet(wb, fmt, _sheet_name(base, taken), columns, header)
            r = 1
        for c, (col, i, o) in enumerate(zip(columns, at, tz, strict=True)):
            _write_cell(ws, fmt, r, c, col.value(row[i], None if o is None else row[o]))
    ws.autofilter(0, 0, max(r, 1), len(columns) - 1)


def _write_cell(ws: Any, fmt: _Formats, r: int, c: int, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        ws.write_boolean(r, c, value)
    elif isinstance(value, int | float):
        ws.write_number(r, c, value)
    elif isinstance(value, RecordedTime):  # a dateTime answer, as recorded (fields sheet)
        local = value.replace(tzinfo=None)
        if local.year < 1900:
            ws.write_string(r, c, value_text(value))
        else:
            text = value_text(value)
            zone = "Z" if text.endswith("Z") else text[-6:]  # +05:00
            ws.write_datetime(r, c, local, fmt.zoned(zone))
    elif isinstance(value, datetime):
        value = naive_utc(value)
        if value.year < 1900:  # before Excel's calendar: kept as text
            ws.write_string(r, c, value.isoformat(sep=" "))
        else:
            ws.write_datetime(r, c, value, fmt.datetime)
    elif isinstance(value, date):
        if value.year < 1900:
            ws.write_string(r, c, value.isoformat())
        else:
            ws.write_datetime(r, c, value, fmt.date)
    elif isinstance(value, time):
        ws.write_datetime(r, c, value.replace(tzinfo=None), fmt.time)
    else:
        text = str(value)
        if needs_guard(text):
            ws.write_string(r, c, text, fmt.quoted)  # edited in Excel, it stays text
        else:
            ws.write_string(r, c, text)


def _fields_sheet(wb: xlsxwriter.Workbook, fmt: _Formats, tables: list[ExportSpec]) -> None:
    """A sheet naming each column: its sheet, question, type and labels in three languages."""
    ws = wb.add_worksheet("fields")
    head = ["sheet", "column", "header", "path", "type", "label (en)", "label (tg)", "label (ru)"]
    ws.write_row(0, 0, head, fmt.header)
    ws.freeze_panes(1, 0)
    for c, width in enumerate((18, 28, 32, 34, 10, 36, 36, 36)):
        ws.set_column(c, c, width)
    r = 0
    for table in tables:
        columns = table.columns()
        for col, text in zip(columns, header_of(columns, table.header_style), strict=True):
            r += 1
            f = col.field
            kind = (
                "dateTime (as recorded; offset shown)"
                if col.offset_key is not None
                else "dateTime (UTC)"
                if col.kind == "datetime"
                else (f.type if f is not None else col.kind)
            )
            row = [
                table.table_name,
                col.name,
                text,
                f.path if f is not None else "",
                kind,
                *(
                    (f.labels.get(lang) or "") if f is not None else ""
                    for lang in ("en", "tg", "ru")
                ),
            ]
            for c, value in enumerate(row):
                _write_cell(ws, fmt, r, c, value)
    ws.autofilter(0, 0, max(r, 1), len(head) - 1)


def file_chunks(fh: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    """Stream an open file, closing it afterwards (also when the client goes away).

    An anonymous file from :func:`xlsx_file` that is never streamed is freed when the
    response holding this generator is dropped and the file object with it.
    """
    with fh:
        while chunk := fh.read(size):
            yield chunk


# --- GeoJSON -----------------------------------------------------------------------------


def geojson_chunks(
    engine: Any,
    spec: ExportSpec,
    geofield: FieldInfo,
    *,
    on_sensitive: AuditHook | None = None,
    chunk_rows: int = 500,
) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection of the rows with a value in ``geofield`` (RFC 7946:
    coordinates are longitude, latitude, altitude): Points for a geopoint, LineStrings for a
    geotrace, Polygons for a geoshape."""
    columns = spec.columns()
    geo_keys = {value_key(c) for c in geofield.value_columns()}
    props_cols = [c for c in columns if c.key not in geo_keys]
    yield b'{"type":"FeatureCollection","features":['
    first = True
    parts: list[bytes] = []
    rows = _AuditedRows(engine, spec, on_sensitive)
    at: list[int] = []
    tz: list[int | None] = []
    geo_at: list[int] = []
    for row in rows:
        if not at:
            at, tz = positions(props_cols, row._fields), offset_positions(props_cols, row._fields)
            where = {name: i for i, name in enumerate(row._fields)}
            geo_at = [where[value_key(c)] for c in geofield.value_columns()]
        geometry = _geometry(geofield, [row[i] for i in geo_at])
        if geometry is None:
            continue
        props: dict[str, Any] = {}
        for col, i, o in zip(props_cols, at, tz, strict=True):
            props[col.name] = _json_value(col.value(row[i], None if o is None else row[o]))
        if geofield.is_geopoint:
            props["accuracy"] = row[geo_at[3]]
        feature = {"type": "Feature", "geometry": geometry, "properties": props}
        parts.append((b"" if first else b",") + orjson.dumps(feature))
        first = False
        if len(parts) >= chunk_rows:
            rows.flush()  # audited before the chunk leaves
            yield b"".join(parts)
            parts = []
    rows.flush()
    parts.append(b"]}")
    yield b"".join(parts)


def _geometry(f: FieldInfo, values: list[Any]) -> dict[str, Any] | None:
    if f.is_geopoint:
        lat, lon, alt = values[0], values[1], values[2]
        if lat is None or lon is None:
            return None
        return {"type": "Point", "coordinates": [lon, lat] if alt is None else [lon, lat, alt]}
    if is_geoline(f):
        return odk_geometry(f, values[0])
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value_text(value)  # collector.times: UTC with Z, dates as dates
    return value


__all__ = [
    "SYSTEM_REPEAT",
    "ExportSpec",
    "csv_chunks",
    "csv_zip_chunks",
    "file_chunks",
    "geojson_chunks",
    "xlsx_file",
]
