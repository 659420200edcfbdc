"""The data managers' API on a large store: page and indicator latency, export throughput
and memory, beside pandas ``read_sql`` + ``to_csv`` in the same run, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.api_bench [--rows 20000] [--postgres URL | --no-postgres]
    .venv/bin/python -m bench.api_bench --rows 100000        # the issue's scale

The store is generated, not synced: household visits shaped like Central's OData rows
(groups nested, geopoints as GeoJSON, a children repeat, select_multiple text) go through
``collector.sync.normalize`` and ``collector.store.store_page``, the same path sync takes, only
without HTTP (syncing 100,000 from the emulator measures the sync, which bench/sync_bench.py
does). The API then runs in uvicorn on loopback and is called over real HTTP:

- a filtered page: ``district=kulob``, ``respondent_age >= 30``, 100 rows, newest first,
  and the same following cursors 20 pages deep: p50/p95 over ``--repeat`` calls;
- an indicator: women visited by district and month, as a viewer (suppression on): p50/p95;
- CSV and XLSX exports of every visit as an analyst, fetched by curl: rows/s, and the
  server's peak Python memory (tracemalloc, in a second pass so that tracing does not slow
  the timed one); and the CSV writer alone, without HTTP;
- the baseline: ``pandas.read_sql`` of the same rows + ``DataFrame.to_csv``, timed and traced.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import requests
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine, make_url

from api.app import create_app
from collector import store
from collector.forms.spec import FormSpec
from collector.forms.xlsform import form_spec, read_xlsform
from collector.read.exports import ExportSpec, csv_chunks
from collector.read.forminfo import Scope, form_info, table_for
from collector.read.queries import SubmissionFilter, select_fields
from collector.settings import Settings
from collector.store.keys import create_key
from collector.sync import normalize

REPO = Path(__file__).resolve().parent.parent
FORM = "household_visit"
CURL = shutil.which("curl") or "/usr/bin/curl"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- a large store, through normalize and store_page ----------------------------------------


def _choices(spec: FormSpec, name: str | None) -> list[str]:
    return [c.value for c in spec.choices if c.list_name == name] or ["other"]


def _value(spec: FormSpec, f: Any, rng: random.Random, when: datetime) -> Any:
    t = f.type
    if t in ("select_one", "select_one_from_file"):
        return rng.choice(_choices(spec, f.choice_list))
    if t == "select_multiple":
        options = _choices(spec, f.choice_list)
        return " ".join(rng.sample(options, rng.randint(1, min(3, len(options)))))
    if t == "integer":
        return rng.randint(15, 75)
    if t == "decimal":
        return round(rng.uniform(0, 3000), 2)
    if t in ("date", "today"):
        return (when - timedelta(days=rng.randint(0, 60))).date().isoformat()
    if t in ("start", "end"):
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if t == "geopoint":
        lon, lat = rng.uniform(67.5, 74.5), rng.uniform(37, 40.5)
        return {
            "type": "Point",
            "coordinates": [lon, lat, rng.randint(300, 3000)],
            "properties": {"accuracy": 5.0},
        }
    if t in ("text", "deviceid"):
        return (
            rng.choice(["Зарина", "Мадина", "Нигина", "Гулноз", "Фотима"])
            + f" {rng.randint(1, 999)}"
        )
    return None


def odata_row(spec: FormSpec, rng: random.Random, when: datetime) -> dict:
    """One submission as Central's OData serves it with ``$expand=*``."""
    iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"

    def fill(prefix: str, obj: dict, row_id: str) -> None:
        for f in spec.fields:
            if f.path.rsplit("/", 1)[0] != prefix or f.type in ("note", "end_group", "end_repeat"):
                continue
            if f.type == "begin_group":
                obj[f.name] = {}
                fill(f.path, obj[f.name], row_id)
            elif f.type == "begin_repeat":
                items = []
                for i in range(rng.randint(0, 4)):
                    item: dict = {"__id": f"{row_id}{f.path}[{i + 1}]"}
                    fill(f.path, item, item["__id"])
                    items.append(item)
                obj[f.name] = items
            else:
                obj[f.name] = _value(spec, f, rng, when)

    row: dict = {"__id": iid}
    fill("", row, iid)
    row["meta"] = {"instanceID": iid}
    row["__system"] = {
        "submissionDate": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "updatedAt": None,
        "submitterId": str(rng.randint(5, 40)),
        "submitterName": f"enumerator {rng.randint(1, 30)}",
        "attachmentsPresent": 0,
        "attachmentsExpected": 0,
        "status": None,
        "reviewState": rng.choice([None, None, "approved", "hasIssues"]),
        "deviceId": f"collect:{rng.getrandbits(40):010x}",
        "edits": 0,
        "formVersion": "bench",
    }
    return row


def build_store(engine: Engine, rows: int, batch: int = 2000) -> float:
    """Fill the store with ``rows`` household visits; returns the seconds it took."""
    store.create_schema(engine)
    path = REPO / "forms" / f"{FORM}.xlsx"
    spec = form_spec(read_xlsform(path), media_dir=REPO / "forms")
    form_id = store.save_form_spec(engine, spec)
    shape = store.stored_form_shape(engine, form_id)
    assert shape is not None
    tables = store.form_tables(shape)
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    for first in range(0, rows, batch):
        page_rows = [
            odata_row(spec, rng, start + timedelta(minutes=7 * (first + i)))
            for i in range(min(batch, rows - first))
        ]
        store.store_page(engine, form_id, shape, normalize.rows_for_page(shape, page_rows), tables)
    # Planner statistics, as autovacuum (PostgreSQL) would gather them after a bulk load;
    # without them PostgreSQL guesses 1 row per index and picks slow plans.
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


# --- measuring ------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def traced_peak(fn: Callable[[], Any]) -> float:
    """Peak Python memory (MiB) allocated while ``fn`` ran (tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@dataclass
class Api:
    url: str
    tokens: dict[str, str]

    def get(self, path: str, key: str, **params: Any) -> requests.Response:
        r = requests.get(
            self.url + path,
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[key]}"},
            timeout=600,
        )
        r.raise_for_status()
        return r

    def download(self, path: str, key: str, **params: Any) -> int:
        """Fetch an export with curl in its own process (a Python client in this process
        would compete with the server for the GIL and slow what we measure)."""
        url = requests.Request("GET", self.url + path, params=params).prepare().url
        with tempfile.NamedTemporaryFile() as out:
            subprocess.run(
                [CURL, "-sSf", "-o", out.name, "-H", "@-", url],
                input=f"Authorization: Bearer {self.tokens[key]}\n",
                text=True,
                check=True,
                timeout=1800,
            )
            return os.path.getsize(out.name)


def serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def measure(
    engine: Engine, database_url: str, rows: int, repeat: int, data_dir: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows}
    out["build_s"] = build_store(engine, rows)
    tokens = {r: create_key(engine, name=f"bench-{r}", role=r).token for r in ("viewer", "analyst")}
    settings = Settings(
        database_url=database_url, data_dir=data_dir, api_rate_limit_per_minute=10**6
    )
    server, thread, url = serve(create_app(settings, engine=engine))
    api = Api(url, tokens)
    try:
        page = {"district": "kulob", "where": "visit__respondent_age:gte:30", "limit": 100}
        path = f"/v1/forms/{FORM}/submissions"
        api.get(path, "analyst", **page)  # warm up
        out["page_ms"] = timed(lambda: api.get(path, "analyst", **page), repeat)

        deep_page = {"where": "visit__respondent_age:gte:30", "limit": 100}
        per_page: list[float] = []
        for _ in range(max(3, repeat // 10)):
            cursor = None
            for _ in range(20):
                t0 = time.perf_counter()
                params = {**deep_page, **({"cursor": cursor} if cursor else {})}
                cursor = api.get(path, "analyst", **params).json()["next_cursor"]
                per_page.append((time.perf_counter() - t0) * 1000)
                if not cursor:
                    break
        out["page20_ms"] = per_page
        ind = {"by": "district", "period": "month"}
        api.get("/v1/indicators/home_visits", "viewer", **ind)
        out["indicator_ms"] = timed(
            lambda: api.get("/v1/indicators/home_visits", "viewer", **ind), repeat
        )

        live = _live(engine)
        out["live"] = live
        for fmt in ("csv", "xlsx"):
            export = f"/v1/forms/{FORM}/export.{fmt}"
            t0 = time.perf_counter()
            size = api.download(export, "analyst")
            secs = time.perf_counter() - t0
            out[f"{fmt}_rows_s"] = live / secs
            out[f"{fmt}_mb"] = size / 2**20
            out[f"{fmt}_peak_mib"] = traced_peak(lambda e=export: api.download(e, "analyst"))
        form = form_info(engine, FORM)
        assert form is not None
        scope = Scope(sensitive=False, districts=None)
        spec = ExportSpec(form, SubmissionFilter(), scope, select_fields(form, [], scope))
        t0 = time.perf_counter()
        for _chunk in csv_chunks(engine, spec):
            pass
        out["csv_inproc_rows_s"] = live / (time.perf_counter() - t0)
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    sql = _baseline_sql(engine)
    target = data_dir / "pandas.csv"

    def pandas_csv() -> None:
        df = pd.read_sql(sql, engine)
        df.to_csv(target, index=False)

    t0 = time.perf_counter()
    pandas_csv()
    out["pandas_rows_s"] = out["live"] / (time.perf_counter() - t0)
    out["pandas_peak_mib"] = traced_peak(pandas_csv)
    return out


def _live(engine: Engine) -> int:
    sub = store.T["submission"]
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).where(sub.c.deleted_at.is_(None))).scalar_one()


def _baseline_sql(engine: Engine) -> sa.Select:
    """The same rows and columns an analyst's export has (metadata + non-sensitive fields)."""
    form = form_info(engine, FORM)
    assert form is not None
    wide = table_for(form)
    s = store.T["submission"]
    cols = [c for f in form.fields_of(None) if not f.sensitive for c in f.value_columns()]
    return (
        sa.select(
            s.c.instance_id,
            s.c.submitted_at,
            s.c.review_state,
            s.c.district,
            *(wide.c[c] for c in cols),
        )
        .select_from(wide.join(s, s.c.instance_id == wide.c.instance_id))
        .where(s.c.deleted_at.is_(None))
        .order_by(s.c.submitted_at, s.c.id)
    )


# --- the two databases ------------------------------------------------------------------------


def fresh_postgres(server_url: str) -> tuple[str, Callable[[], None]]:
    name = f"collector_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


def report(name: str, r: dict[str, Any]) -> None:
    def lat(key: str) -> str:
        return f"p50 {statistics.median(r[key]):7.1f} ms   p95 {pct(r[key], 95):7.1f} ms"

    print(
        f"\n== {name}: {r['rows']:,} household visits (built in {r['build_s']:.1f} s through normalize + store_page)"
    )
    print(f"  filtered page (100 rows, district + age)  {lat('page_ms')}")
    print(f"  age filter only, pages 1-20 by cursor     {lat('page20_ms')}  (per page)")
    print(f"  indicator home_visits by district/month {lat('indicator_ms')}")
    print(f"  {'export':<12}{'rows/s':>12}{'peak MiB':>12}{'size MiB':>12}")
    for fmt in ("csv", "xlsx"):
        print(
            f"  {'API ' + fmt:<12}{r[fmt + '_rows_s']:>12,.0f}{r[fmt + '_peak_mib']:>12.1f}{r[fmt + '_mb']:>12.1f}"
        )
    print(
        f"  {'csv writer':<12}{r['csv_inproc_rows_s']:>12,.0f}   (collector.read.exports alone, no HTTP)"
    )
    print(
        f"  {'pandas csv':<12}{r['pandas_rows_s']:>12,.0f}{r['pandas_peak_mib']:>12.1f}   (read_sql + to_csv, baseline)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.api_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--rows", type=int, default=20_000, help="household visits (the issue's scale: 100000)"
    )
    p.add_argument("--repeat", type=int, default=40, help="calls per latency figure")
    p.add_argument("--postgres", default=os.environ.get("COLLECTOR_TEST_POSTGRES_URL", DEFAULT_PG))
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--no-sqlite", action="store_true")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if not args.no_sqlite:
            url = f"sqlite:///{data_dir / 'bench.db'}"
            engine = store.engine_for(url)
            results["SQLite"] = measure(engine, url, args.rows, args.repeat, data_dir)
            engine.dispose()
            report("SQLite", results["SQLite"])
        if not args.no_postgres:
            try:
                pg_url, drop = fresh_postgres(args.postgres)
            except psycopg.OperationalError as err:
                print(
                    f"\nPostgreSQL skipped: cannot reach {make_url(args.postgres).host}: {type(err).__name__}"
                )
                return 0
            try:
                engine = store.engine_for(pg_url)
                results["PostgreSQL"] = measure(engine, pg_url, args.rows, args.repeat, data_dir)
                engine.dispose()
                report("PostgreSQL", results["PostgreSQL"])
            finally:
                drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
