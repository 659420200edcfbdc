"""How long the XLSX writer takes for 50,000 rows (issue 18: "a 50,000-row XLSX sends
nothing for 11.4 s"), and its peak memory, against the CSV writer on the same cells.

An XLSX is a zip whose sheets must be complete before the workbook closes, so its first
byte leaves when the writer is done: this measures that wait without the database (the
rows are made here, 40 columns like household_visit's: text, numbers, dates, timestamps).
Run: ``.venv/bin/python bench/xlsx_bench.py [ROWS]``.
"""

from __future__ import annotations

import csv
import io
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import xlsxwriter

from collector.read.exportguard import guard_csv, needs_guard


def rows(n: int):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        yield [
            f"uuid:{i:032x}",
            (t0 + timedelta(minutes=i)).replace(tzinfo=None),
            "kulob",
            *(f"Зарина {i % 97} ответ {j}" for j in range(15)),
            *(float(i % 3000) + j / 10 for j in range(12)),
            *(date(2026, 1, 1) + timedelta(days=(i + j) % 300) for j in range(10)),
        ]


def xlsx(n: int) -> None:
    with tempfile.TemporaryFile() as fh:
        wb = xlsxwriter.Workbook(fh, {"constant_memory": True, "strings_to_formulas": False})
        ws = wb.add_worksheet("data")
        f_date = wb.add_format({"num_format": "yyyy-mm-dd"})
        f_quoted = wb.add_format({"quote_prefix": True})
        for r, row in enumerate(rows(n), start=1):
            for c, v in enumerate(row):
                if isinstance(v, float):
                    ws.write_number(r, c, v)
                elif isinstance(v, date):
                    ws.write_datetime(r, c, v, f_date)
                else:
                    ws.write_string(r, c, v, f_quoted if needs_guard(v) else None)
        wb.close()


def csv_text(n: int) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC)
    for row in rows(n):
        w.writerow([guard_csv(v) if isinstance(v, str) else v for v in row])
        if buf.tell() > 1 << 16:
            buf.seek(0)
            buf.truncate()


def measure(name: str, fn, n: int) -> None:
    """Wall time, and the growth of the process's peak RSS (tracemalloc would slow the
    writers tenfold)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    fn(n)
    took = time.perf_counter() - t
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"{name}: {n} rows in {took:.2f} s, peak RSS +{grew / 1024:.1f} MiB", flush=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    measure("xlsx (constant_memory)", xlsx, n)
    measure("csv", csv_text, n)
