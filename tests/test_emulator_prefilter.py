"""The SQL narrowing of ``$filter`` (emulator/routes_odata.py ``sql_prefilter``) may only let
extra rows through, never drop one the exact filter keeps: checked on seeded random times
(with NULLs, equal milliseconds, offsets and sub-millisecond literals) in a real SQLite table."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

from emulator.db import iso
from emulator.odata import parse_filter
from emulator.routes_odata import sql_prefilter

FIELDS = ["__system/submissionDate", "__system/updatedAt", "__system/deletedAt"]
KEYS = {"__system/submissionDate": "submissionDate", "__system/updatedAt": "updatedAt",
        "__system/deletedAt": "deletedAt"}  # fmt: skip
BASE = datetime(2026, 11, 24, 2, 42, 54, 583000, tzinfo=UTC)


def random_time(rng: random.Random) -> str:
    return iso(BASE + timedelta(milliseconds=rng.randint(-3000, 3000)))


def literal(rng: random.Random) -> str:
    moment = BASE + timedelta(microseconds=rng.randint(-3_000_000, 3_000_000))
    style = rng.randrange(4)
    if style == 0:
        return iso(moment)
    if style == 1:
        return moment.isoformat().replace("+00:00", "Z")  # microseconds
    if style == 2:
        return moment.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + "+05:00"  # a Tajikistan offset, no fraction


def test_prefilter_never_drops_a_row_the_filter_keeps() -> None:
    rng = random.Random(1615)
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE submissions (id INTEGER PRIMARY KEY, created_at, updated_at, deleted_at)"
    )
    rows = []
    for i in range(400):
        created = random_time(rng)
        updated = random_time(rng) if rng.random() < 0.6 else None
        deleted = random_time(rng) if rng.random() < 0.2 else None
        db.execute("INSERT INTO submissions VALUES (?,?,?,?)", (i, created, updated, deleted))
        rows.append((i, {"submissionDate": created, "updatedAt": updated, "deletedAt": deleted}))
    narrowed_somewhere = False
    for _ in range(300):
        join = rng.choice([" or ", " and "])
        atoms = [
            f"{rng.choice(FIELDS)} {rng.choice(['gt', 'ge', 'lt', 'le'])} {literal(rng)}"
            for _ in range(rng.randint(1, 3))
        ]
        text = join.join(atoms)
        pre = sql_prefilter(text)
        assert pre is not None, text
        flt = parse_filter(text)
        kept = {i for i, system in rows if flt.matches(f"uuid:{i}", system)}
        passed = {r[0] for r in db.execute(f"SELECT id FROM submissions s WHERE {pre[0]}", pre[1])}
        assert kept <= passed, (text, sorted(kept - passed))
        narrowed_somewhere |= len(passed) < len(rows)
    assert narrowed_somewhere


def test_shapes_it_does_not_narrow() -> None:
    for text in [
        "__system/reviewState eq 'approved'",
        "not __system/updatedAt gt 2020-01-01T00:00:00Z",
        "(__system/updatedAt gt 2020-01-01T00:00:00Z)",
        "__system/updatedAt gt 2020-01-01T00:00:00Z or __system/submissionDate gt 2020-01-01T00:00:00Z and __system/updatedAt lt 2021-01-01T00:00:00Z",
        "__system/updatedAt gt 2020-01-01",
        "year(__system/submissionDate) eq 2026",
        "__system/updatedAt eq null",
    ]:
        assert sql_prefilter(text) is None, text
