"""The programme's indicators, defined in one place, each with its formula.

An indicator is a count or a sum over one form's live (not deleted) submissions, cut by
period (of the date named in ``date_field``, else the submission date), by district
(``submission.district``) and by the breakdowns it declares. ``INDICATORS`` is the whole
list; the API serves it as it is, so the formulas a data manager reads are the ones the
code runs.

Small cells: for roles below manager, a cell of an indicator that counts people is
withheld when it holds fewer than ``threshold`` people (``settings.suppression_threshold``,
default 5) and more than none, so that a count by village and answer cannot single out a
woman. Then, within every group of cells that differ in one breakdown only, a lone
withheld cell is joined by the next smallest, so that it cannot be recovered by
subtracting its visible siblings from a coarser total (complementary suppression; see
the OCHA Centre for Humanitarian Data's guidance note on statistical disclosure control).

Differencing: suppression alone guards one answer only. A caller may ask two questions
whose answers differ by exactly a withheld cell (every district, then every district but
one; a total, then a breakdown; ``to=D`` against ``to=D-1``) and subtract. So for the same
roles every published people count -- cells, subtotals and totals alike -- is also rounded
to a base (``settings.indicator_rounding_base``, default 5) by *consistent random
rounding*, keyed per cell as in the Australian Bureau of Statistics' cell key method: each
submission has a pseudo-random record key (a hash of its instance id, computed in SQL),
a cell's key is the sum of its records' keys, hashed again to a number ``u`` in [0, 1)
with a key only the store holds (``store_secret``), and a value ``b*q + r`` is published
as ``b*(q+1)`` when ``u < r/b``, else as ``b*q``. The rounding is unbiased, any difference of two answers is a multiple of
the base (never the exact small count), and the same set of submissions always rounds the
same way, so repeating a query cannot average the noise away; whereas plain rounding to
the nearest multiple would give the exact count away where a series of ``to=`` days makes
the rounded total step. Zeros stay zeros (an empty cell has nothing to round), and a cell
that is already a multiple of the base is published as it is. Managers get exact numbers.
The hash of the cell's key is keyed because analysts see every instance id: with an
unkeyed hash they could compute each cell's ``u``, and knowing on which side of it the
remainder fell turns each rounded answer into a bound on the exact count, which a few
differences then pin down. Residual risk, as with any perturbation: averaging many
*different* differences that all contain the same few women narrows the estimate, which
the API's rate limit slows.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collector.forminfo import (
    FormInfo,
    InvalidValue,
    Scope,
    UnknownName,
    form_info,
    link_table_for,
    submission_t,
    table_for,
)
from collector.store import store_secret

PERIODS = ("none", "day", "month", "quarter", "year")


@dataclass(frozen=True)
class Part:
    """One column of a sum, and the breakdown values its number belongs to."""

    field: str
    values: Mapping[str, str]  # breakdown name -> value, e.g. {"sex": "female"}


@dataclass(frozen=True)
class Count:
    """How many submissions (with ``link_field``: how many values chosen in it)."""

    link_field: str | None = None  # a select_multiple: count its chosen values
    link_breakdown: str | None = None  # the breakdown those values form

    def describe(self) -> str:
        if self.link_field:
            return f"number of answers chosen in `{self.link_field}`"
        return "number of submissions"


@dataclass(frozen=True)
class Sum:
    """The sum of integer questions; ``parts`` say which breakdown each one is."""

    parts: tuple[Part, ...]

    def describe(self) -> str:
        return "sum of " + " + ".join(f"`{p.field}`" for p in self.parts)


@dataclass(frozen=True)
class Indicator:
    id: str
    title: str
    form: str
    unit: str
    measure: Count | Sum
    counts_people: bool
    date_field: str | None = None
    breakdowns: Mapping[str, str] = field(default_factory=dict)  # name -> field (select)
    conditions: tuple[tuple[str, str], ...] = ()  # (field, value) that must hold
    note: str = ""

    @property
    def part_breakdowns(self) -> list[str]:
        if isinstance(self.measure, Sum):
            return sorted({k for p in self.measure.parts for k in p.values})
        if self.measure.link_breakdown:
            return [self.measure.link_breakdown]
        return []

    def breakdown_names(self) -> list[str]:
        return ["district", *self.breakdowns, *self.part_breakdowns]

    @property
    def formula(self) -> str:
        when = (
            f"`{self.date_field}` (else the submission date)"
            if self.date_field
            else ("the submission date")
        )
        where = "".join(f" where `{f}` = '{v}'" for f, v in self.conditions)
        text = f"{self.measure.describe()} in `{self.form}`{where}, deleted submissions left out; period by {when}"
        return f"{text}. {self.note}".strip() if self.note else text + "."


_SEX_AGE = {
    "audience_girls": {"sex": "female", "age_group": "child"},
    "audience_women": {"sex": "female", "age_group": "adult"},
    "audience_boys": {"sex": "male", "age_group": "child"},
    "audience_men": {"sex": "male", "age_group": "adult"},
}
_ORG_KINDS = (
    "hrc_office",
    "migration_service",
    "women_committee",
    "child_rights_centre",
    "local_government",
    "community",
    "international",
    "ngo",
    "media",
)

INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        id="ic_people_reached",
        title="People reached by information centres",
        form="info_centre_consultation",
        unit="people",
        measure=Count(),
        counts_people=True,
        date_field="consultation_date",
        breakdowns={
            "info_centre": "info_centre",
            "sex": "visitor_sex",
            "age_band": "age_band",
            "visitor_kind": "visitor_kind",
            "topic": "topics",
        },
        note="One consultation is one person; by `topic`, a person is counted under each topic they asked about.",
    ),
    Indicator(
        id="ic_booklets_distributed",
        title="Booklets distributed by information centres",
        form="info_centre_consultation",
        unit="booklets",
        measure=Sum((Part("booklets_given", {}),)),
        counts_people=False,
        date_field="consultation_date",
        breakdowns={"info_centre": "info_centre"},
    ),
    Indicator(
        id="roundtables_held",
        title="Roundtables held",
        form="roundtable",
        unit="roundtables",
        measure=Count(),
        counts_people=False,
        date_field="event_date",
    ),
    Indicator(
        id="roundtable_participants",
        title="Roundtable participants by sex",
        form="roundtable",
        unit="people",
        measure=Sum(
            (
                Part("participants_women", {"sex": "female"}),
                Part("participants_men", {"sex": "male"}),
            )
        ),
        counts_people=True,
        date_field="event_date",
    ),
    Indicator(
        id="roundtable_participants_by_organisation",
        title="Roundtable participants by kind of organisation",
        form="roundtable",
        unit="people",
        measure=Sum(tuple(Part(f"from_{k}", {"organisation_kind": k}) for k in _ORG_KINDS)),
        counts_people=True,
        date_field="event_date",
    ),
    Indicator(
        id="awareness_events_held",
        title="Awareness events held",
        form="awareness_event",
        unit="events",
        measure=Count(),
        counts_people=False,
        date_field="event_date",
        breakdowns={"event_kind": "event_kind"},
    ),
    Indicator(
        id="awareness_audience",
        title="Awareness events' audience by sex and age group",
        form="awareness_event",
        unit="people",
        measure=Sum(tuple(Part(f, v) for f, v in _SEX_AGE.items())),
        counts_people=True,
        date_field="event_date",
        breakdowns={"event_kind": "event_kind"},
    ),
    Indicator(
        id="women_visited",
        title="Women visited at home",
        form="household_visit",
        unit="people",
        measure=Count(),
        counts_people=True,
        conditions=(("consent", "yes"),),
        breakdowns={"husband_situation": "husband_situation"},
        note="One household visit with consent is one woman visited.",
    ),
    Indicator(
        id="referrals_made",
        title="Referrals made for women visited, by kind",
        form="household_visit",
        unit="people",
        measure=Count(link_field="referrals", link_breakdown="kind"),
        counts_people=True,
        conditions=(("consent", "yes"),),
        note="A woman referred to two services counts once under each kind.",
    ),
    Indicator(
        id="follow_ups_due",
        title="Follow-up visits due",
        form="household_visit",
        unit="people",
        measure=Count(),
        counts_people=True,
        date_field="follow_up_date",
        conditions=(("consent", "yes"),),
        note="Only visits with a follow-up date count; `from`/`to` select the due dates.",
    ),
)

INDICATORS_BY_ID: dict[str, Indicator] = {i.id: i for i in INDICATORS}


@dataclass(frozen=True)
class Cell:
    keys: dict[str, str | None]
    value: int | float | None
    suppressed: bool = False


@dataclass(frozen=True)
class IndicatorResult:
    indicator: Indicator
    period: str
    by: list[str]
    cells: list[Cell]
    threshold: int | None  # None when nothing was suppressible for this caller
    form_known: bool
    rounding_base: int | None = None  # None when every value is exact for this caller


def _period_expr(dialect: str, expr: sa.ColumnElement, period: str) -> sa.ColumnElement:
    if dialect == "postgresql":
        fmt = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}
        return sa.func.to_char(expr, fmt[period])
    if period == "quarter":
        month = sa.cast(sa.func.strftime("%m", expr), sa.Integer)
        return sa.func.strftime("%Y", expr) + "-Q" + sa.cast((month + 2) / 3, sa.String)
    fmt = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[period]
    return sa.func.strftime(fmt, expr)


def _column(form: FormInfo, table: sa.TableClause, name: str) -> sa.ColumnElement:
    f = form.field_named(name)
    if f is None or not f.column_name or f.repeat_path is not None:
        raise UnknownName("field", name, form.xml_form_id)
    return table.c[f.column_name]


def compute(
    engine: Engine,
    indicator: Indicator,
    *,
    scope: Scope,
    period: str = "month",
    by: Iterable[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
    districts: Iterable[str] = (),
    suppress_below: int | None,
    round_to: int | None = None,
) -> IndicatorResult:
    """The indicator's cells for this caller; ``suppress_below`` None shows every cell,
    ``round_to`` None (or 1) leaves every value exact (see the module doc)."""
    by = list(dict.fromkeys(by))
    if period not in PERIODS:
        raise InvalidValue("period", period, f"expected one of {', '.join(PERIODS)}")
    allowed = indicator.breakdown_names()
    for b in by:
        if b not in allowed:
            raise InvalidValue("by", b, f"{indicator.id} breaks down by {', '.join(allowed)}")
    if date_from and date_to and date_from > date_to:
        raise InvalidValue("from", date_from.isoformat(), "is after `to`")
    form = form_info(engine, indicator.form)
    threshold = suppress_below if indicator.counts_people else None
    base = round_to if indicator.counts_people and round_to and round_to > 1 else None
    if form is None:
        return IndicatorResult(indicator, period, by, [], threshold, False, base)

    wide = table_for(form)
    # The wide table carries the submission's dates and deletion, and the district question
    # that ``submission.district`` is copied from: with it, no join to ``submission`` (a
    # join costs an index lookup per row). Without a district question, join.
    district_q = next(
        (f for f in form.fields_of(None) if f.name == "district" and not f.select_multiple),
        None,
    )
    joined: sa.FromClause
    if district_q is not None and district_q.column_name:
        joined = wide
        district_col: sa.ColumnElement = wide.c[district_q.column_name]
        deleted_col, submitted_col = wide.c.deleted_at, wide.c.submitted_at
    else:
        s = submission_t
        joined = wide.join(
            s, sa.and_(s.c.form_id == form.id, s.c.instance_id == wide.c.instance_id)
        )
        district_col, deleted_col, submitted_col = s.c.district, s.c.deleted_at, s.c.submitted_at
    conds: list[sa.ColumnElement[bool]] = [
        deleted_col.is_(None),
        scope.district_condition(district_col),
    ]
    wanted = [d for d in dict.fromkeys(districts) if d]
    if wanted:
        conds.append(district_col.in_(wanted))
    for name, value in indicator.conditions:
        conds.append(_column(form, wide, name) == value)

    if indicator.date_field:
        date_expr: sa.ColumnElement = sa.func.coalesce(
            _column(form, wide, indicator.date_field), submitted_col
        )
        if indicator.date_field == "follow_up_date":
            date_expr = _column(form, wide, indicator.date_field)
            conds.append(date_expr.is_not(None))
    else:
        date_expr = submitted_col
    if date_from:
        conds.append(date_expr >= date_from)
    if date_to:
        conds.append(date_expr < date_to + timedelta(days=1))

    group: list[tuple[str, sa.ColumnElement]] = []
    if period != "none":
        group.append(("period", _period_expr(engine.dialect.name, date_expr, period)))
    link_n = 0
    for b in by:
        if b == "district":
            group.append((b, district_col))
        elif b in indicator.breakdowns:
            f = form.field_named(indicator.breakdowns[b])
            if f is None:
                raise UnknownName("field", indicator.breakdowns[b], form.xml_form_id)
            if f.select_multiple and f.link_table:
                link_n += 1
                link = link_table_for(f).alias(f"l{link_n}")
                joined = joined.join(
                    link,
                    sa.and_(
                        link.c.instance_id == wide.c.instance_id,
                        link.c.row_id == wide.c.instance_id,
                    ),
                )
                group.append((b, link.c.value))
            else:
                group.append((b, _column(form, wide, indicator.breakdowns[b])))

    measure = indicator.measure
    aggs: list[sa.ColumnElement] = []
    if isinstance(measure, Count) and measure.link_field:
        f = form.field_named(measure.link_field)
        if f is None or not f.link_table:
            raise UnknownName("field", measure.link_field, form.xml_form_id)
        link = link_table_for(f).alias("lm")
        joined = joined.join(
            link,
            sa.and_(link.c.instance_id == wide.c.instance_id, link.c.row_id == wide.c.instance_id),
        )
        if measure.link_breakdown in by:
            group.append((measure.link_breakdown, link.c.value))
        aggs.append(sa.func.count())
    elif isinstance(measure, Count):
        # One wide row per submission: count(*) is exact unless a link table was joined
        # for a breakdown (then a value chosen twice must not count the woman twice).
        aggs.append(sa.func.count(sa.distinct(wide.c.instance_id)) if link_n else sa.func.count())
    else:
        aggs.extend(sa.func.sum(_column(form, wide, p.field)) for p in measure.parts)
    if base is not None:  # the sum of the cell's record keys (only when rounding)
        aggs.append(sa.func.sum(_record_key(engine.dialect.name, wide.c.instance_id)))

    query = (
        sa.select(
            *(expr.label(f"k{i}") for i, (_, expr) in enumerate(group)),
            *(a.label(f"a{i}") for i, a in enumerate(aggs)),
        )
        .select_from(joined)
        .where(*conds)
    )
    if group:
        query = query.group_by(*(expr for _, expr in group))
    names = [n for n, _ in group]
    part_by = [b for b in by if isinstance(measure, Sum) and b in indicator.part_breakdowns]

    totals: dict[tuple, float] = defaultdict(float)
    cell_keys: dict[tuple, int] = defaultdict(int)  # sum of record keys, mod 2**32
    key_agg = f"a{len(aggs) - 1}"
    with engine.connect() as conn:
        if base is not None:
            _register_record_key(conn)
        for row in conn.execute(query):
            m = row._mapping
            grouped = tuple(_key(m[f"k{i}"]) for i in range(len(group)))
            records = int(m[key_agg] or 0) if base is not None else 0
            if isinstance(measure, Sum):
                for i, part in enumerate(measure.parts):
                    key = grouped + tuple(part.values.get(b) for b in part_by)
                    totals[key] += float(m[f"a{i}"] or 0)
                    # each part of the same rows gets its own noise: add the part's name
                    cell_keys[key] = (cell_keys[key] + records + _hash32(part.field)) % _MOD
            else:
                totals[grouped] += float(m["a0"] or 0)
                cell_keys[grouped] = (cell_keys[grouped] + records) % _MOD

    key_names = names + part_by
    order = ["period", *[b for b in by]]
    ordered = sorted(totals, key=lambda k: tuple("" if x is None else str(x) for x in k))
    cells = [
        Cell(
            keys={n: k[key_names.index(n)] for n in order if n in key_names},
            value=_number(totals[k]),
        )
        for k in ordered
    ]
    if threshold is not None:
        cells = suppress(cells, threshold)  # on the exact values, before any rounding
    if base is not None:
        key = store_secret(engine, ROUNDING_SECRET)
        cells = [
            c
            if c.suppressed or c.value is None
            else Cell(c.keys, rounded(c.value, base, cell_key_fraction(cell_keys[k], key)))
            for c, k in zip(cells, ordered, strict=True)
        ]
    return IndicatorResult(indicator, period, by, cells, threshold, True, base)


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def suppress(cells: list[Cell], threshold: int) -> list[Cell]:
    """Withhold cells of 1..threshold-1 people, then complementary cells (see module doc)."""
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


# --- consistent random rounding (the cell key method; see the module doc) --------------------

_MOD = 2**32
ROUNDING_SECRET = "indicator_rounding"  # noqa: S105 - the NAME of the store_secret keying cell_key_fraction
_RECORD_KEY_SQLITE = "collector_record_key"


def _hash32(text: str) -> int:
    """A stable 32-bit hash (Python's ``hash`` changes with every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def _record_key(dialect: str, instance_id: sa.ColumnElement) -> sa.ColumnElement:
    """A submission's record key in [0, 2**32), computed by the database.

    PostgreSQL's ``hashtext`` (its built-in string hash) costs nothing per row; SQLite has no
    hash function, so :func:`_register_record_key` gives each connection one."""
    if dialect == "postgresql":
        return sa.cast(sa.func.hashtext(instance_id), sa.BigInteger).op("&")(_MOD - 1)
    return getattr(sa.func, _RECORD_KEY_SQLITE)(instance_id)


def _sqlite_record_key(instance_id: str | None) -> int:
    # CRC-32: the cheapest stable hash from Python (0.8 against 1.3 us a row for blake2b);
    # it need not be strong, as the cell's sum is hashed again by cell_key_fraction.
    return zlib.crc32(instance_id.encode()) if instance_id else 0


def _register_record_key(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        raw.create_function(  # type: ignore[union-attr]
            _RECORD_KEY_SQLITE, 1, _sqlite_record_key, deterministic=True
        )


def cell_key_fraction(record_key_sum: int, key: bytes) -> float:
    """The cell's uniform number in [0, 1): its record keys' sum, hashed again, so that
    cells sharing records (a total and its breakdown) do not get related noise, with
    ``key`` (the store's secret), so that knowing the records does not give the number."""
    digest = hashlib.blake2b(str(record_key_sum % _MOD).encode(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big") / 2**64


def rounded(value: int | float, base: int, u: float) -> int:
    """``value`` rounded to a multiple of ``base``: up with probability (remainder / base),
    ``u`` being the cell's uniform number (so the same cell always rounds the same way)."""
    floor = int(value // base) * base
    return floor + base if u * base < value - floor else floor
