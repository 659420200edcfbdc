"""How long the entity sync takes for a register of the programme's size, beside the time
Central takes only to serve the same rows.

    .venv/bin/python -m bench.entity_bench [--n 700] [--updated 100] [--url URL --email E]

Against a fresh emulator (or, with ``--url``, a real Central; password from
``BENCH_CENTRAL_PASSWORD``): an entity list with 8 properties and ``--n`` entities
(create_many), then prints

1. the baseline: Central serving the whole ``.svc/Entities`` feed in pages of 500;
2. the first ``sync_entities`` into a fresh SQLite store (feed + one versions request per
   entity + the deleted list + the store's writes);
3. a sync with nothing new (the incremental filter; no versions read);
4. a sync after ``--updated`` entities changed (only their versions read again).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests

from collector.central import Central
from collector.settings import Settings
from collector.store import engine_for
from collector.sync.entities import sync_entities
from emulator.control import start_emulator

PROPS = ["district", "jamoat", "village", "birth_year", "household_size", "children_count",
         "husband_situation", "last_visit"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=700)
    ap.add_argument("--updated", type=int, default=100)
    ap.add_argument("--url")
    ap.add_argument("--email", default="admin@example.org")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = None
        url, password = args.url, os.environ.get("BENCH_CENTRAL_PASSWORD", "bench-password")
        if url is None:
            (Path(tmp) / "emu").mkdir()
            proc, url = start_emulator(Path(tmp) / "emu", args.email, password)
        try:
            run(url, args.email, password, args.n, args.updated, Path(tmp))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)


def run(url: str, email: str, password: str, n: int, updated: int, tmp: Path) -> None:
    http = requests.Session()
    token = http.post(f"{url}/v1/sessions", json={"email": email, "password": password}).json()
    http.headers["Authorization"] = f"Bearer {token['token']}"
    pid = http.post(f"{url}/v1/projects", json={"name": f"bench {uuid.uuid4().hex[:8]}"}).json()[
        "id"
    ]
    base = f"{url}/v1/projects/{pid}/datasets"
    http.post(base, json={"name": "women"}).raise_for_status()
    for p in PROPS:
        http.post(f"{base}/women/properties", json={"name": p}).raise_for_status()
    rows = [{"label": f"Woman {i}", "data": {p: str(i % 17) for p in PROPS}} for i in range(n)]
    for start in range(0, n, 500):
        http.post(
            f"{base}/women/entities",
            json={"entities": rows[start : start + 500], "source": {"name": "bench"}},
        ).raise_for_status()
    t = time.perf_counter()
    link = f"{base}/women.svc/Entities?$top=500"
    while link:
        link = http.get(link).json().get("@odata.nextLink")
    serve = time.perf_counter() - t
    settings = Settings(
        central_url=url, central_email=email, central_password=password,
        central_project_id=pid, data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'store.db'}",
    )  # fmt: skip
    engine = engine_for(settings)
    with Central(settings) as central:
        t = time.perf_counter()
        sync_entities(central, engine, pid, {}, overlap=timedelta(0))
        first = time.perf_counter() - t
        t = time.perf_counter()
        sync_entities(central, engine, pid, {}, overlap=timedelta(0))
        nothing = time.perf_counter() - t
        uuids = [e["uuid"] for e in http.get(f"{base}/women/entities").json()][:updated]
        for u in uuids:
            http.patch(
                f"{base}/women/entities/{u}", params={"force": "true"},
                json={"data": {"last_visit": "2026-05-01"}},
            ).raise_for_status()  # fmt: skip
        t = time.perf_counter()
        sync_entities(central, engine, pid, {}, overlap=timedelta(0))
        changed = time.perf_counter() - t
    print(f"{n} entities, {len(PROPS)} properties ({url})")
    print(f"  Central serving the feed (baseline): {serve:6.2f} s")
    print(f"  first sync (feed + {n} version reads): {first:6.2f} s")
    print(f"  sync with nothing new:               {nothing:6.2f} s")
    print(f"  sync after {updated} updates:            {changed:6.2f} s")


if __name__ == "__main__":
    main()
