"""Sync against its baselines, on the same emulator data, in SQLite and PostgreSQL.

    .venv/bin/python -m bench.sync_bench [--sizes 2000,20000] [--with-100k] [--page 5000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--repeat 2]
        [--central-url http://127.0.0.1:8389 --central-email admin@example.org]

With ``--central-url`` it measures a real ODK Central instead of the emulator (the password
from ``COLLECTOR_TEST_CENTRAL_PASSWORD``, as ``../shared/real-central/build.sh env`` prints
it): submissions are loaded over OpenRosa (dated now: Central has no backdating), then
``--analyze`` runs (default ``bash ../shared/real-central/build.sh analyze``: that machine's
PostgreSQL runs without autovacuum, so its planner needs statistics after a bulk load), and
the paced rows are left out (they slow the emulator down to Central's pace).

Starts the emulator on loopback, publishes a household-visit form (about 30 questions, a
group, a geopoint, a select_multiple and a repeat of 2-6 household members), loads
submissions (their dates spread over the past 90 days, as months of field work leave
them), and at each size prints:

- **serve only**: the time the emulator takes just to serve every row with ``$expand=*``
  (one response, and in our pages) and a client to parse it: the floor of any sync;
- **naive**: pyodk ``get_table(expand="*")`` -> pandas ``json_normalize`` -> ``to_sql``
  (replace), the pipeline people write first; it re-pulls everything every time;
- **ours, first sync**: ``collector.sync.submissions.sync_forms`` into an empty store;
- **steady state**: 200 new or edited submissions on top, synced;
- **no-op**: a sync with nothing new;
- **normalize + store alone**, from pages already parsed: submissions/s (stored as sync
  stores them: in a writer thread on PostgreSQL, inline on SQLite), and each stage alone;
  on SQLite also **the engine's floor**: the same rows, their parameters built in advance,
  inserted by ``sqlite3`` ``executemany`` and committed a page at a time, with no Python
  work of ours at all (no store can go faster than that on this machine);
- **paced like Central**: serve-only, naive and our first sync again with the emulator's
  OData feed slowed to a real Central's measured pace (``emulator/faults.py``,
  ``odata_pace``: 135 us a row + 150 ms a page). The emulator alone serves several times
  faster than Central, so at full speed the first-sync ratio measures only the client's
  CPU on this shared 2-core machine; paced, it measures how much of our work hides behind
  Central's serving, which is what a deployment sees.

Loading goes through the emulator's backdated-submission control route from 4 threads
(the same code path as an OpenRosa POST), so loading 20,000 takes a minute or two.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd
import psycopg
import requests
import sqlalchemy as sa
from pydantic import SecretStr
from pyodk._utils import config as pyodk_config
from pyodk.client import Client

from bench.emulator_bench import XLSX, household_form, household_xml
from collector import store
from collector.central import Central
from collector.settings import Settings
from collector.store.batches import _param_builder, sqlite_insert_sql
from collector.sync import submissions as sync
from collector.sync.normalize import FormShape, rows_for_page
from collector.sync.pipeline import PageWriter, gc_paused
from emulator.control import EmulatorControl, start_emulator

EMAIL, PASSWORD = "bench@example.org", "bench-password"
FORM_ID = "household"
# issue 5: a real Central served 20,000 visits in 2.7 s in one response, 5.7 s in pages of 1,000
CENTRAL_PACE = {"row_us": 135, "page_ms": 150}


def compared(ours: float, other: float) -> str:
    """Comparison words from the numbers: "2.1x faster" or "1.3x slower" (ours vs other)."""
    if ours <= other:
        return f"{other / ours:.1f}x faster"
    return f"{ours / other:.1f}x slower"


class Bench:
    def __init__(
        self,
        url: str,
        data: Path,
        postgres: str | None,
        page: int,
        email: str = EMAIL,
        password: str = PASSWORD,
        emulator: bool = True,
    ) -> None:
        self.url, self.data, self.postgres, self.page = url, data, postgres, page
        self.email, self.password, self.emulator = email, password, emulator
        self.http = requests.Session()
        token = self.http.post(
            f"{url}/v1/sessions", json={"email": email, "password": password}, timeout=30
        ).json()["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        name = f"sync-bench-{uuid.uuid4().hex[:8]}"
        self.pid = self.http.post(f"{url}/v1/projects", json={"name": name}, timeout=30).json()[
            "id"
        ]
        r = self.http.post(
            f"{url}/v1/projects/{self.pid}/forms?publish=true&ignoreWarnings=true",
            data=household_form(FORM_ID),
            headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": FORM_ID},
            timeout=60,
        )
        r.raise_for_status()
        self.rng = random.Random(20261124)
        self.loaded: list[bytes] = []
        self.dbs = 0
        self.last_cpu = 0.0
        self.engines: dict[str, sa.Engine] = {}
        self.pg_dbs: list[str] = []
        self._parsed: tuple[int, tuple[dict, list[dict], list[dict]]] | None = None

    def drop_databases(self) -> None:
        """Dispose of the engines and drop the PostgreSQL databases this run made."""
        for engine in self.engines.values():
            engine.dispose()
        if not self.pg_dbs or not self.postgres:
            return
        admin = sa.make_url(self.postgres).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            for name in self.pg_dbs:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # --- data ---------------------------------------------------------------------------------

    def load(self, n: int, *, days: float = 90, clients: int = 4) -> float:
        """Add ``n`` submissions dated over the past ``days``; seconds taken."""
        now = datetime.now(UTC)
        bodies = [household_xml(FORM_ID, self.rng) for _ in range(n)]
        # oldest first, as they would have arrived
        dates = sorted(now - timedelta(seconds=self.rng.uniform(600, days * 86400)) for _ in bodies)
        if days == 0:
            dates = [now] * n
        work = list(zip(bodies, dates, strict=True))
        chunks = [work[i::clients] for i in range(clients)]
        errors: list[str] = []

        def send(chunk) -> None:
            http = requests.Session()
            for body, when in chunk:
                if days == 0 or not self.emulator:
                    r = http.post(
                        f"{self.url}/v1/projects/{self.pid}/submission",
                        files={"xml_submission_file": ("s.xml", body, "text/xml")},
                        headers={
                            "X-OpenRosa-Version": "1.0",
                            "Authorization": self.http.headers["Authorization"],
                        },
                        timeout=60,
                    )
                else:
                    r = http.post(
                        f"{self.url}/_emulator/projects/{self.pid}/forms/{FORM_ID}/backdated-submission",
                        json={"xml": body.decode(), "submissionDate": when.isoformat()},
                        timeout=60,
                    )
                if r.status_code not in (200, 201):
                    errors.append(r.text[:200])

        started = time.perf_counter()
        threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"{len(errors)} refused, e.g. {errors[0]}")
        self.loaded += bodies
        return time.perf_counter() - started

    def edit(self, n: int) -> None:
        """Edit ``n`` earlier submissions (a new version, deprecatedID the old one)."""
        for body in self.rng.sample(self.loaded[: len(self.loaded) // 2], n):
            text = body.decode()
            old = text.split("<instanceID>")[1].split("<")[0]
            new = f"uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"
            text = text.replace(
                f"<instanceID>{old}</instanceID>",
                f"<instanceID>{new}</instanceID><deprecatedID>{old}</deprecatedID>",
            ).replace("<hh_size>", "<hh_size>1")
            r = self.http.post(
                f"{self.url}/v1/projects/{self.pid}/submission",
                files={"xml_submission_file": ("s.xml", text.encode(), "text/xml")},
                headers={"X-OpenRosa-Version": "1.0"},
                timeout=60,
            )
            r.raise_for_status()
            self.loaded[self.loaded.index(body)] = text.replace(
                f"<deprecatedID>{old}</deprecatedID>", ""
            ).encode()

    # --- stores -------------------------------------------------------------------------------

    def fresh_db(self, kind: str) -> str:
        self.dbs += 1
        if kind == "sqlite":
            return f"sqlite:///{self.data / f'store{self.dbs}.db'}"
        assert self.postgres
        name = f"bench_sync_{self.dbs}_{uuid.uuid4().hex[:6]}"
        admin = sa.make_url(self.postgres).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        self.pg_dbs.append(name)
        return sa.make_url(self.postgres).set(database=name).render_as_string(hide_password=False)

    def settings(self, db: str) -> Settings:
        return Settings(
            central_url=self.url,
            central_email=self.email,
            central_password=SecretStr(self.password),
            central_project_id=self.pid,
            data_dir=self.data / "collector",
            database_url=db,
            sync_page_size=self.page,
        )

    # --- measures -------------------------------------------------------------------------------

    def serve_only(self, page: int | None) -> float:
        svc = f"{self.url}/v1/projects/{self.pid}/forms/{FORM_ID}.svc/Submissions?$expand=*"
        url: str | None = svc + (f"&$top={page}" if page else "")
        started = time.perf_counter()
        while url:
            body = orjson.loads(self.http.get(url, timeout=600).content)
            url = body.get("@odata.nextLink")
        return time.perf_counter() - started

    def server_noop_ms(self, db: str) -> float:
        """The server's time for the queries a no-op sync makes (median of 5, ms)."""
        settings = self.settings(db)
        engine = store.engine_for(db)
        state = store.sync_state(engine, store.form_id_for(engine, FORM_ID))
        engine.dispose()
        filter_ = sync.window_filter(
            state["watermark"],
            state["deleted_watermark"],
            timedelta(seconds=settings.sync_overlap_seconds),
        )
        svc = f"{self.url}/v1/projects/{self.pid}/forms/{FORM_ID}.svc/Submissions"
        queries = [
            f"{svc}?$expand=*&$top={self.page}&$count=true&$filter={filter_}",
            f"{svc}?$top=0&$count=true",  # the sync's count probe
            f"{self.url}/v1/projects/{self.pid}/forms",
        ]

        def once() -> float:
            started = time.perf_counter()
            for q in queries:
                orjson.loads(self.http.get(q, timeout=60).content)
            return time.perf_counter() - started

        return median_ms(once, 5)

    def naive(self, db: str) -> float:
        engine = store.engine_for(db)
        config = pyodk_config.Config(
            central=pyodk_config.CentralConfig(
                base_url=self.url,
                username=self.email,
                password=self.password,
                default_project_id=self.pid,
            )
        )
        started, cpu = time.perf_counter(), time.process_time()
        client = Client(config=config, cache_path=self.data / "naive_cache.toml")
        table = client.submissions.get_table(form_id=FORM_ID, expand="*")
        df = pd.json_normalize(table["value"])
        for col in df.columns:  # repeats come back as lists, which to_sql cannot bind
            if df[col].map(lambda v: isinstance(v, list | dict)).any():
                df[col] = df[col].map(json.dumps)
        df.to_sql("naive", engine, if_exists="replace", index=False)
        took = time.perf_counter() - started
        self.last_cpu = time.process_time() - cpu
        engine.dispose()
        return took

    def ours(self, db: str) -> tuple[float, sync.FormResult]:
        """One sync as the scheduler runs it: its engine (and pool) kept between runs."""
        settings = self.settings(db)
        if db not in self.engines:
            self.engines[db] = store.engine_for(db)
        started, cpu = time.perf_counter(), time.process_time()
        with Central(settings) as c:
            (r,) = sync.sync_forms(settings, [FORM_ID], engine=self.engines[db], central=c)
        took = time.perf_counter() - started
        self.last_cpu = time.process_time() - cpu
        assert r.status == "ok", r.error
        return took, r

    def parsed_pages(self) -> tuple[dict, list[dict], list[dict]]:
        """The form, its fields and every page of it, fetched and parsed once per size."""
        if self._parsed is None or self._parsed[0] != len(self.loaded):
            with Central(self.settings(self.fresh_db("sqlite"))) as c:
                form, fields = c.form(FORM_ID), c.form_fields(FORM_ID)
                pages = list(c.odata_pages(FORM_ID, {"$expand": "*", "$top": str(self.page)}))
            self._parsed = (len(self.loaded), (form, fields, pages))
        return self._parsed[1]

    def empty_store(self, kind: str) -> tuple[sa.Engine, int, FormShape, dict[str, sa.Table]]:
        """A fresh database holding the form and its tables, no submission yet."""
        form, fields, _ = self.parsed_pages()
        engine = store.engine_for(self.fresh_db(kind))
        store.create_schema(engine)
        form_id, shape = store.save_central_form(engine, form, fields)
        return engine, form_id, shape, store.ensure_form_tables(engine, shape)

    def normalize_store_alone(self, kind: str) -> tuple[float, float, float, float]:
        """submissions/s of normalize + store over pages already fetched and parsed, by the
        wall clock and by this process's CPU time (the machine is shared); then of
        normalize alone and of store alone (into another fresh database)."""
        _, _, pages = self.parsed_pages()
        n = sum(len(p["value"]) for p in pages)
        engine, form_id, shape, tables = self.empty_store(kind)
        started, cpu = time.perf_counter(), time.process_time()
        # as sync stores: in a writer thread on PostgreSQL, inline on SQLite, no cyclic GC
        with (
            gc_paused(),
            PageWriter(
                lambda rows: store.store_page(engine, form_id, shape, rows, tables),
                threaded=store.is_postgres(engine),
            ) as writer,
        ):
            for p in pages:
                writer.put(rows_for_page(shape, p["value"]))
            writer.finish()
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
        started = time.perf_counter()
        with gc_paused():
            normalized = [rows_for_page(shape, p["value"]) for p in pages]
        normalize_rate = n / (time.perf_counter() - started)
        engine, form_id, shape, tables = self.empty_store(kind)
        started = time.perf_counter()
        with gc_paused():
            for rows in normalized:
                store.store_page(engine, form_id, shape, rows, tables)
        store_rate = n / (time.perf_counter() - started)
        engine.dispose()
        return n / took, n / cpu, normalize_rate, store_rate

    def sqlite_floor(self) -> float:
        """submissions/s SQLite itself takes for the rows a first sync stores (see above)."""
        _, _, pages = self.parsed_pages()
        engine, form_id, shape, tables = self.empty_store("sqlite")
        tables = {**tables, "submission": store.T["submission"]}
        prepared = []  # per page: (insert statement, parameter tuples) per table
        for p in pages:
            rows = rows_for_page(shape, p["value"])
            by_table = {
                "submission": [{"form_id": form_id, **r, "synced_at": store.now()}
                               for r in rows.submissions],
                **rows.tables,
            }  # fmt: skip
            prepared.append(
                [
                    (sqlite_insert_sql(name, list(t_rows[0])),
                     _param_builder(tables[name], list(t_rows[0]))(t_rows))
                    for name, t_rows in by_table.items()
                ]
            )  # fmt: skip
        n = sum(len(p["value"]) for p in pages)
        raw = engine.raw_connection()
        try:
            started = time.perf_counter()
            for statements in prepared:
                cursor = raw.cursor()
                for sql, params in statements:
                    cursor.executemany(sql, params)
                raw.commit()
            took = time.perf_counter() - started
        finally:
            raw.close()
            engine.dispose()
        return n / took

    def paced(self, kinds: list[str], size: int) -> None:
        """First-sync figures again, the emulator's OData feed as slow as a real Central."""
        control = EmulatorControl(self.url)
        control.set_faults(odata_pace=CENTRAL_PACE)
        try:
            n = len(self.loaded)
            one, paged = self.serve_only(None), self.serve_only(self.page)
            print(f"paced like Central ({CENTRAL_PACE['row_us']} us a row + "
                  f"{CENTRAL_PACE['page_ms']} ms a page), {n:,} stored: serve only: one "
                  f"response {one:.2f} s; pages of {self.page} {paged:.2f} s")  # fmt: skip
            for kind in kinds:
                naive = self.naive(self.fresh_db(kind))
                first, r = self.ours(self.fresh_db(kind))
                assert r.written == n, (r.written, n)
                print(f"[{kind}, paced] first full sync (one run each): ours {first:.2f} s vs "
                      f"naive {naive:.2f} s ({compared(first, naive)}) vs serve-only "
                      f"{paged:.2f} s ({compared(first, paged)}; client CPU "
                      f"{self.last_cpu:.2f} s)")  # fmt: skip
        finally:
            control.clear()


def best(f: Callable[[], float], times: int) -> float:
    return min(f() for _ in range(times))


def median_ms(f: Callable[[], float], times: int) -> float:
    return statistics.median(f() for _ in range(times)) * 1000


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="2000,20000")
    p.add_argument("--with-100k", action="store_true", help="also measure at 100,000 stored")
    p.add_argument("--page", type=int, default=None, help="sync page size (default: Settings')")
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--repeat", type=int, default=2, help="best of N for ours, naive, serve-only")
    p.add_argument("--central-url", default=None, help="a real Central instead of the emulator")
    p.add_argument("--central-email", default="admin@example.org")
    p.add_argument(
        "--analyze", default="bash ../shared/real-central/build.sh analyze",
        help="run after loading a real Central ('' for none)",
    )  # fmt: skip
    p.add_argument(
        "--no-paced", dest="paced", action="store_false",
        help="skip the first-sync figures with the emulator paced like a real Central",
    )  # fmt: skip
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] + ([100_000] if args.with_100k else [])
    page = args.page or Settings.model_fields["sync_page_size"].default
    kinds = ["sqlite"] + ([] if args.no_postgres else ["postgres"])
    n = args.repeat
    postgres = None if args.no_postgres else args.postgres

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        data = Path(tmp)
        proc = None
        if args.central_url:
            password = os.environ.get("COLLECTOR_TEST_CENTRAL_PASSWORD", "")
            if not password:
                raise SystemExit("--central-url needs COLLECTOR_TEST_CENTRAL_PASSWORD set")
            url, who = args.central_url.rstrip("/"), f"real Central at {args.central_url}"
            make = lambda: Bench(url, data, postgres, page, args.central_email, password, False)  # noqa: E731
        else:
            proc, url = start_emulator(data, EMAIL, PASSWORD)
            who = "emulator"
            make = lambda: Bench(url, data, postgres, page)  # noqa: E731
        b = None
        try:
            b = make()
            print(f"{who}; sync page size {page}; each figure the best of {n} runs unless "
                  "marked; the machine is shared, so CPU times too")  # fmt: skip
            for size in sizes:
                took = b.load(size - len(b.loaded))
                if not b.emulator and args.analyze:
                    subprocess.run(shlex.split(args.analyze), check=True, capture_output=True)
                print(f"\n=== {size:,} household visits stored (loaded in {took:.0f} s) ===")
                one = best(lambda: b.serve_only(None), n)
                paged = best(lambda: b.serve_only(page), n)
                print(f"serve only: one response {one:.2f} s ({size / one:,.0f}/s); "
                      f"pages of {page} {paged:.2f} s ({size / paged:,.0f}/s)")  # fmt: skip
                for kind in kinds:
                    naive = best(lambda k=kind: b.naive(b.fresh_db(k)), n)
                    naive_cpu = b.last_cpu
                    firsts = []
                    for _ in range(n):
                        db = b.fresh_db(kind)
                        took_first, r = b.ours(db)
                        firsts.append((took_first, b.last_cpu, db))
                        assert r.written == len(b.loaded), (r.written, len(b.loaded))
                    first, first_cpu, db = min(firsts)
                    print(f"[{kind}] first full sync: ours {first:.2f} s vs naive {naive:.2f} s "
                          f"({compared(first, naive)}) vs serve-only {paged:.2f} s "
                          f"({compared(first, paged)}); client CPU: ours {first_cpu:.2f} s, "
                          f"naive {naive_cpu:.2f} s")  # fmt: skip
                    noop = median_ms(lambda d=db: b.ours(d)[0], 5)
                    server = b.server_noop_ms(db)
                    print(f"[{kind}] no-op sync: {noop:.0f} ms (median of 5), of which the "
                          f"server's own answers to the same queries: {server:.0f} ms")  # fmt: skip
                    b.load(150, days=0)
                    b.edit(50)
                    steady, r = b.ours(db)
                    # the naive pipeline again, at the size it is compared with now
                    naive_now = best(lambda k=kind: b.naive(b.fresh_db(k)), n)
                    print(f"[{kind}] 200 new/edited on {len(b.loaded):,}: ours {steady:.2f} s "
                          f"({r.written} written) vs naive full re-pull {naive_now:.2f} s "
                          f"({compared(steady, naive_now)})")  # fmt: skip
                    rate, cpu_rate, n_rate, s_rate = b.normalize_store_alone(kind)
                    print(f"[{kind}] normalize + store alone: {rate:,.0f} submissions/s "
                          f"(per second of this process's CPU: {cpu_rate:,.0f}/s); normalize "
                          f"alone {n_rate:,.0f}/s, store alone {s_rate:,.0f}/s")  # fmt: skip
                    if kind == "sqlite":
                        print(f"[sqlite] the engine's floor for the same rows (sqlite3 "
                              f"executemany of prepared parameters, no Python of ours): "
                              f"{b.sqlite_floor():,.0f} submissions/s")  # fmt: skip
                if args.paced and b.emulator:
                    b.paced(kinds, size)
        finally:
            if b is not None:
                b.drop_databases()
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
