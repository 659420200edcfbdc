"""How fast the emulator accepts and serves submissions, beside a real Central's figures.

    .venv/bin/python -m bench.emulator_bench [--n 20000] [--clients 4] [--page 1000]

Starts ``python -m emulator`` on a free loopback port with a fresh data directory, publishes
a household-sized form (about 30 questions, a group, a geopoint, a select_multiple and a
repeat of household members), then:

1. accepts ``--n`` submissions over OpenRosa from ``--clients`` threads (each a
   ``requests.Session``, as Collect-like clients would), and reports submissions/s;
2. serves all of them over OData with ``$expand=*`` in one response (time until the body is
   received and parsed), and
3. in pages of ``--page`` following ``@odata.nextLink``, with and without the ``$filter`` a
   sync sends; then times a filtered query that matches nothing and the REST list.

A real Central on this kind of machine (2 cores) accepted 120-200 submissions/s from 4
clients and served 20,000 household submissions with ``$expand=*`` at about 7,500/s in one
response and 3,500/s in pages of 1,000 (issue 3). The emulator must be at least that fast so
that it is never what a later benchmark measures.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
import requests
from openpyxl import Workbook

from emulator.control import start_emulator

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REFERENCE = {"accept": "120-200/s", "one": "7,500/s", "pages": "3,500/s"}
DISTRICTS = ["dushanbe", "vahdat", "rudaki", "hisor", "kulob", "khujand", "nurek", "rogun"]
NEEDS = ["legal", "psychosocial", "financial", "medical", "education", "housing"]
FIRST = ["Фарход", "Зарина", "Далер", "Мадина", "Рустам", "Нилуфар", "Ali", "Sitora"]


def household_form(form_id: str) -> bytes:
    wb = Workbook()
    s = wb.active
    s.title = "survey"
    s.append(["type", "name", "label"])
    rows = [
        ("start", "start"),
        ("end", "end"),
        ("deviceid", "deviceid"),
        ("text", "enumerator"),
        ("date", "visit_date"),
        ("begin_group", "location"),
        ("select_one district", "district"),
        ("text", "village"),
        ("geopoint", "gps"),
        ("end_group", ""),
        ("text", "head_name"),
        ("integer", "head_age"),
        ("select_one sex", "head_sex"),
        ("text", "phone"),
        ("integer", "hh_size"),
        ("integer", "migrants_abroad"),
        ("select_one country", "migrant_country"),
        ("decimal", "remittance_usd"),
        ("select_multiple need", "needs"),
        ("select_one yn", "has_debt"),
        ("decimal", "debt_usd"),
        ("select_one yn", "knows_hotline"),
        ("text", "notes"),
        ("begin_repeat", "member"),
        ("text", "m_name"),
        ("integer", "m_age"),
        ("select_one sex", "m_sex"),
        ("select_one yn", "m_in_school"),
        ("select_one yn", "m_abroad"),
        ("select_one country", "m_country"),
        ("text", "m_occupation"),
        ("end_repeat", ""),
        ("select_one yn", "consent_followup"),
    ]
    for kind, name in rows:
        s.append([kind, name, name.replace("_", " ").title() if name else ""])
    c = wb.create_sheet("choices")
    c.append(["list_name", "name", "label"])
    for d in DISTRICTS:
        c.append(["district", d, d.title()])
    for n in NEEDS:
        c.append(["need", n, n])
    for v in ("m", "f"):
        c.append(["sex", v, v])
    for v in ("yes", "no"):
        c.append(["yn", v, v])
    for v in ("russia", "kazakhstan", "turkey", "none"):
        c.append(["country", v, v])
    st = wb.create_sheet("settings")
    st.append(["form_id", "version"])
    st.append([form_id, "1"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def household_xml(form_id: str, rng: random.Random) -> bytes:
    iid = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    members = "".join(
        "<member>"
        f"<m_name>{rng.choice(FIRST)}</m_name><m_age>{rng.randint(0, 80)}</m_age>"
        f"<m_sex>{rng.choice('mf')}</m_sex><m_in_school>{rng.choice(['yes', 'no'])}</m_in_school>"
        f"<m_abroad>{rng.choice(['yes', 'no'])}</m_abroad><m_country>russia</m_country>"
        "<m_occupation>construction worker</m_occupation></member>"
        for _ in range(rng.randint(2, 6))
    )
    lat, lon = 38.5 + rng.random(), 68.7 + rng.random()
    needs = " ".join(rng.sample(NEEDS, rng.randint(1, 3)))
    return (
        f'<data id="{form_id}" version="1">'
        "<start>2026-11-20T09:00:00.000+05:00</start><end>2026-11-20T09:25:00.000+05:00</end>"
        f"<deviceid>collect:{rng.getrandbits(40):x}</deviceid><enumerator>enum {rng.randint(1, 40)}</enumerator>"
        "<visit_date>2026-11-20</visit_date>"
        f"<location><district>{rng.choice(DISTRICTS)}</district><village>Кишлак {rng.randint(1, 300)}</village>"
        f"<gps>{lat:.6f} {lon:.6f} {rng.randint(300, 2500)} {rng.randint(3, 20)}</gps></location>"
        f"<head_name>{rng.choice(FIRST)} {rng.choice(FIRST)}ов</head_name><head_age>{rng.randint(18, 90)}</head_age>"
        f"<head_sex>{rng.choice('mf')}</head_sex><phone>+99290{rng.randint(1000000, 9999999)}</phone>"
        f"<hh_size>{rng.randint(1, 12)}</hh_size><migrants_abroad>{rng.randint(0, 3)}</migrants_abroad>"
        f"<migrant_country>russia</migrant_country><remittance_usd>{rng.randint(0, 900)}.50</remittance_usd>"
        f"<needs>{needs}</needs><has_debt>yes</has_debt><debt_usd>{rng.randint(0, 5000)}</debt_usd>"
        "<knows_hotline>no</knows_hotline><notes>Семья нуждается в консультации юриста.</notes>"
        f"{members}<consent_followup>yes</consent_followup>"
        f"<meta><instanceID>{iid}</instanceID></meta></data>"
    ).encode()


def accept(url: str, pid: int, bodies: list[bytes], clients: int) -> float:
    """Submit ``bodies`` over OpenRosa from ``clients`` threads; seconds taken."""
    chunks = [bodies[i::clients] for i in range(clients)]
    failures: list[str] = []

    def work(chunk: list[bytes]) -> None:
        http = requests.Session()
        http.auth = None
        for body in chunk:
            r = http.post(
                f"{url}/v1/projects/{pid}/submission",
                files={"xml_submission_file": ("submission.xml", body, "text/xml")},
                headers={"X-OpenRosa-Version": "1.0", "Authorization": auth},
                timeout=60,
            )
            if r.status_code != 201:
                failures.append(r.text[:200])

    auth = AUTH["header"]
    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} submissions refused, e.g. {failures[0]}")
    return took


AUTH: dict[str, str] = {}


def fetch_all(http: requests.Session, first_url: str) -> tuple[int, float]:
    rows = 0
    url: str | None = first_url
    started = time.perf_counter()
    while url:
        r = http.get(url, timeout=600)
        r.raise_for_status()
        body = orjson.loads(r.content)
        rows += len(body["value"])
        url = body.get("@odata.nextLink")
    return rows, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=20_000, help="submissions to load and serve")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--page", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3, help="runs of each OData read (best kept)")
    args = p.parse_args(argv)

    email, password = "bench@example.org", "bench-password"
    with tempfile.TemporaryDirectory(prefix="emulator-bench-") as tmp:
        proc, url = start_emulator(Path(tmp), email, password)
        try:
            http = requests.Session()
            token = http.post(
                f"{url}/v1/sessions", json={"email": email, "password": password}, timeout=30
            ).json()["token"]
            AUTH["header"] = f"Bearer {token}"
            http.headers["Authorization"] = AUTH["header"]
            pid = http.post(f"{url}/v1/projects", json={"name": "bench"}, timeout=30).json()["id"]
            form_id = "household"
            r = http.post(
                f"{url}/v1/projects/{pid}/forms?publish=true&ignoreWarnings=true",
                data=household_form(form_id),
                headers={"Content-Type": XLSX, "X-XlsForm-FormId-Fallback": form_id},
                timeout=60,
            )
            r.raise_for_status()
            rng = random.Random(20261124)
            bodies = [household_xml(form_id, rng) for _ in range(args.n)]
            print(
                f"household submission: {sum(map(len, bodies)) // len(bodies)} bytes of XML on average"
            )

            took = accept(url, pid, bodies, args.clients)
            accept_rate = args.n / took
            print(f"accept over OpenRosa ({args.clients} clients): {args.n} in {took:.1f} s = "
                  f"{accept_rate:,.0f}/s   (real Central: {REFERENCE['accept']})")  # fmt: skip

            svc = f"{url}/v1/projects/{pid}/forms/{form_id}.svc/Submissions"
            one = min(fetch_all(http, f"{svc}?$expand=*")[1] for _ in range(args.repeat))
            rows, _ = fetch_all(http, f"{svc}?$expand=*")
            assert rows == args.n, rows
            print(f"OData $expand=* one response: {args.n} in {one:.2f} s = {args.n / one:,.0f}/s   "
                  f"(real Central: {REFERENCE['one']})")  # fmt: skip
            paged = min(
                fetch_all(http, f"{svc}?$expand=*&$top={args.page}")[1] for _ in range(args.repeat)
            )
            rows, _ = fetch_all(http, f"{svc}?$expand=*&$top={args.page}")
            assert rows == args.n, rows
            print(f"OData $expand=* pages of {args.page}: {args.n} in {paged:.2f} s = "
                  f"{args.n / paged:,.0f}/s   (real Central: {REFERENCE['pages']})")  # fmt: skip
            since = "2000-01-01T00:00:00.000Z"
            flt = f"__system/submissionDate ge {since} or __system/updatedAt ge {since}"
            synced = min(
                fetch_all(http, f"{svc}?$expand=*&$top={args.page}&$filter={flt}")[1]
                for _ in range(args.repeat)
            )
            print(f"OData $expand=* pages of {args.page} with a sync $filter: {args.n} in "
                  f"{synced:.2f} s = {args.n / synced:,.0f}/s   (no real-Central figure)")  # fmt: skip
            future = "2099-01-01T00:00:00.000Z"
            empty = f"__system/submissionDate gt {future} or __system/updatedAt gt {future}"
            started = time.perf_counter()
            for _ in range(10):
                assert fetch_all(http, f"{svc}?$expand=*&$top={args.page}&$filter={empty}")[0] == 0
            print(f"a filtered query matching nothing: {(time.perf_counter() - started) * 100:.0f} ms "
                  "(real Central: about 50 ms)")  # fmt: skip
            started = time.perf_counter()
            listed = http.get(f"{url}/v1/projects/{pid}/forms/{form_id}/submissions", timeout=600)
            assert len(orjson.loads(listed.content)) == args.n
            print(f"REST list of {args.n} submissions: {time.perf_counter() - started:.2f} s "
                  "(real Central: 0.6 s for 20,000)")  # fmt: skip
            load = (
                Path("/proc/loadavg").read_text().split()[:3]
                if Path("/proc/loadavg").exists()
                else []
            )
            print(
                f"(machine load average during the run: {' '.join(load)} on {os.cpu_count()} cores)"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
