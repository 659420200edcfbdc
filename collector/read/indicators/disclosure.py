"""Disclosure control for the indicators below the manager role: what a viewer may learn.

Design (the README's "Who sees what" says the same for readers of the API). It follows
the OCHA Centre for Humanitarian Data's *Guidance Note: Statistical Disclosure Control*
(2019: withhold small cells, protect them from recovery by subtraction, perturb what is
published) and the *cell-key method* of national statistical offices (Australian Bureau
of Statistics' TableBuilder; Eurostat/ESS "cell key method" for the census): a published
cell's noise is a fixed function of the records in it, so asking again gives the same
answer.

1. **A fixed lattice.** Below manager, an answer is built only from *lattice cells*:
   (one district, one calendar unit, one value of each asked breakdown). The calendar unit
   is the day for ``period=day``, the ISO week for ``week``, the calendar month for
   ``month``, ``quarter``, ``year`` and ``none``. ``district`` names at most one district
   (the key's whole scope otherwise: no arbitrary unions of districts), and ``from``/``to``
   must start and end whole units (:func:`check_lattice_request`). The breakdowns are the
   indicator's documented ones.
2. **Each lattice cell is protected once, on its own records**: a cell counting 1 to
   ``threshold - 1`` people is withheld, with complementary suppression so a lone withheld
   cell cannot be recovered from its siblings (:func:`suppress`); every other cell is
   rounded to ``base`` by consistent random rounding keyed by the cell's records
   (:func:`rounded`, :func:`cell_key_fraction`): unbiased, and the same records always
   round the same way.
3. **Every larger figure is the sum of published lattice cells** (:func:`publish`): a
   quarter is its months' published values, all districts are the districts' published
   values; a withheld cell adds nothing (the answer says how many lattice cells were
   withheld in ``withheld_cells``). So the same cell has the same value whatever was
   asked, and any difference of two answers is a sum of published cells: nothing a
   viewer could not read directly.

Why not fresh rounding per answer (what this module did before): each differently
composed question (``district=S+D`` against ``district=S`` for many sets ``S``) drew new,
unbiased noise, and averaging about 380 differences recovered withheld cells exactly
(issue 15 item 1). Under the lattice those questions are refused (one district only), and
every question that is allowed is a sum of the same finite set of fixed published cells,
so there is nothing to average: the bounded attack in
``tests/test_indicator_lattice_attack.py`` estimates a withheld cell as 0, never within
±0.5 of its true count. The price is bias in totals (withheld cells count as nothing) and
coarser answers on sparse data; managers get exact numbers.

The hash of a cell's key is keyed by a secret only the store holds (``store_secret``),
because analysts see every instance id: an unkeyed hash would let them compute each cell's
``u`` and turn each rounded answer into a bound on the exact count.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collector.read.forminfo import InvalidValue

_MOD = 2**32
ROUNDING_SECRET = "indicator_rounding"  # noqa: S105 - the NAME of the store_secret keying cell_key_fraction
_RECORD_KEY_SQLITE = "collector_record_key"


@dataclass(frozen=True)
class Cell:
    keys: dict[str, str | None]
    value: int | float | None
    suppressed: bool = False


# --- the lattice ----------------------------------------------------------------------------


def lattice_unit(period: str) -> str:
    """The calendar unit of the lattice cells an answer for ``period`` is built from."""
    return period if period in ("day", "week") else "month"


def unit_start(day: date, unit: str) -> date:
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def unit_end(day: date, unit: str) -> date:
    """The unit's last day (``date.max`` ends its own unit: the calendar stops there)."""
    if unit == "day":
        return day
    try:
        if unit == "week":
            return unit_start(day, unit) + timedelta(days=6)
        nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    except OverflowError:
        return date.max
    return nxt - timedelta(days=1)


def check_lattice_request(
    period: str, districts: list[str], date_from: date | None, date_to: date | None
) -> None:
    """Refuse (422) a question below manager that is not a set of whole lattice cells."""
    if len(districts) > 1:
        raise InvalidValue(
            "district",
            ",".join(districts),
            "below the manager role, name one district or none (the key's whole scope)",
        )
    unit = lattice_unit(period)
    names = {"day": "day", "week": "ISO week (Monday)", "month": "month"}
    if date_from and unit_start(date_from, unit) != date_from:
        raise InvalidValue(
            "from", date_from.isoformat(), f"below the manager role, start a {names[unit]}"
        )
    if date_to and unit_end(date_to, unit) != date_to:
        raise InvalidValue(
            "to", date_to.isoformat(), f"below the manager role, end a {names[unit]}"
        )


# --- small cells ------------------------------------------------------------------------------


def suppress(cells: list[Cell], threshold: int) -> list[Cell]:
    """Withhold cells of 1..threshold-1 people; then, within every group of cells that
    differ in one key only, a lone withheld cell takes the next smallest with it
    (complementary suppression), so subtracting its siblings from their total fails."""
    hidden = {i for i, c in enumerate(cells) if c.value is not None and 0 < c.value < threshold}
    names = list(cells[0].keys) if cells else []
    changed = True
    while changed:
        changed = False
        for dim in names:
            groups: dict[tuple, list[int]] = defaultdict(list)
            for i, c in enumerate(cells):
                groups[tuple(v for n, v in c.keys.items() if n != dim)].append(i)
            for members in groups.values():
                lone = [i for i in members if i in hidden]
                if len(lone) != 1 or len(members) < 2:
                    continue
                candidates = [i for i in members if i not in hidden and (cells[i].value or 0) > 0]
                if candidates:
                    hidden.add(min(candidates, key=lambda i: cells[i].value or 0))
                    changed = True
    return [Cell(c.keys, None, True) if i in hidden else c for i, c in enumerate(cells)]


# --- consistent random rounding (the cell-key method) ----------------------------------------


def hash32(text: str) -> int:
    """A stable 32-bit hash (Python's ``hash`` changes with every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def record_key(dialect: str, instance_id: sa.ColumnElement) -> sa.ColumnElement:
    """A submission's record key in [0, 2**32), computed by the database.

    PostgreSQL's ``hashtext`` costs nothing per row; SQLite has no hash function, so
    :func:`register_record_key` gives each connection one."""
    if dialect == "postgresql":
        return sa.cast(sa.func.hashtext(instance_id), sa.BigInteger).op("&")(_MOD - 1)
    return getattr(sa.func, _RECORD_KEY_SQLITE)(instance_id)


def _sqlite_record_key(instance_id: str | None) -> int:
    # CRC-32: the cheapest stable hash from Python; it need not be strong, as the cell's
    # sum is hashed again, with the store's secret, by cell_key_fraction.
    return zlib.crc32(instance_id.encode()) if instance_id else 0


def register_record_key(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        raw.create_function(  # type: ignore[union-attr]
            _RECORD_KEY_SQLITE, 1, _sqlite_record_key, deterministic=True
        )


def cell_key_fraction(record_key_sum: int, key: bytes) -> float:
    """The cell's uniform number in [0, 1): its record keys' sum hashed again with ``key``
    (the store's secret), so knowing the records does not give the number."""
    digest = hashlib.blake2b(str(record_key_sum % _MOD).encode(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big") / 2**64


def rounded(value: int | float, base: int, u: float) -> int:
    """``value`` rounded to a multiple of ``base``: up with probability (remainder / base),
    ``u`` being the cell's uniform number (so the same cell always rounds the same way)."""
    floor = int(value // base) * base
    return floor + base if u * base < value - floor else floor


# --- publishing -------------------------------------------------------------------------------


def publish(
    lattice: dict[tuple, tuple[float, int]],
    lattice_names: list[str],
    answer_of: Callable[[tuple], tuple],
    *,
    threshold: int | None,
    base: int | None,
    secret: bytes | None,
) -> tuple[dict[tuple, float | None], dict[tuple, int]]:
    """The answer's cells from the lattice's: each lattice cell (key -> exact value, record
    key sum) is suppressed and rounded once, then added into the answer cell ``answer_of``
    maps it to. Returns the answer's values (None: every lattice cell in it was withheld)
    and how many lattice cells each answer cell lost to suppression."""
    order = sorted(lattice, key=lambda k: tuple("" if x is None else str(x) for x in k))
    cells = [Cell(dict(zip(lattice_names, k, strict=True)), lattice[k][0]) for k in order]
    if threshold is not None:
        cells = suppress(cells, threshold)
    values: dict[tuple, float | None] = {}
    withheld: dict[tuple, int] = defaultdict(int)
    for k, c in zip(order, cells, strict=True):
        target = answer_of(k)
        if c.suppressed:
            withheld[target] += 1
            values.setdefault(target, None)
            continue
        v = c.value or 0
        if base is not None and secret is not None:
            v = rounded(v, base, cell_key_fraction(lattice[k][1], secret))
        values[target] = (values.get(target) or 0) + v
    return values, dict(withheld)
