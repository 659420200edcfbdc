"""An indicator's cells from the store: one SQL query, then periods and protection in Python.

The query groups a form's live submissions by *day* (the first of the indicator's
``dated_by`` dates that is set, as ``YYYY-MM-DD`` text, the same on SQLite and PostgreSQL),
district and the asked breakdowns, and returns each group's exact value and the sum of its
records' keys. Periods (day, ISO week, month, quarter, year) are made from the day here, in
Python, so both databases label them the same way (SQLite has no quarter or ISO week in
``strftime`` before 3.46). Managers get the groups added up exactly; below manager the
groups become lattice cells that ``disclosure.publish`` protects and adds up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.read.forminfo import (
    FormInfo,
    InvalidValue,
    Scope,
    UnknownName,
    form_info,
    link_table_for,
    submission_t,
    table_for,
)
from collector.read.indicators.catalogue import SUBMITTED, Condition, Count, Indicator, Sum
from collector.read.indicators.disclosure import (
    ROUNDING_SECRET,
    Cell,
    check_lattice_request,
    hash32,
    lattice_unit,
    publish,
    record_key,
    register_record_key,
)
from collector.store import store_secret

PERIODS = ("none", "day", "week", "month", "quarter", "year")
_MOD = 2**32


@dataclass(frozen=True)
class IndicatorResult:
    indicator: Indicator
    period: str
    by: list[str]
    cells: list[Cell]
    threshold: int | None  # None when nothing was suppressible for this caller
    form_known: bool
    rounding_base: int | None = None  # None when every value is exact for this caller
    withheld_cells: int = 0  # lattice cells withheld inside the answer (below manager)


def period_label(day: str, period: str) -> str:
    """The period a ``YYYY-MM-DD`` day falls in: ``2026-12-03``, ``2026-W49``, ``2026-12``,
    ``2026-Q4``, ``2026``."""
    if period == "day":
        return day
    if period == "week":
        iso = date.fromisoformat(day).isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period == "month":
        return day[:7]
    if period == "quarter":
        return f"{day[:4]}-Q{(int(day[5:7]) + 2) // 3}"
    return day[:4]


def _column(form: FormInfo, table: sa.TableClause, name: str) -> sa.ColumnElement:
    f = form.field_named(name)
    if f is None or not f.column_name or f.repeat_path is not None:
        raise UnknownName("field", name, form.xml_form_id)
    return table.c[f.column_name]


def _day_text(dialect: str, column: sa.ColumnElement, is_date: bool) -> sa.ColumnElement:
    """A date or a UTC timestamp as ``YYYY-MM-DD`` text (comparable as text)."""
    if dialect == "postgresql":
        if is_date:
            return sa.func.to_char(column, "YYYY-MM-DD")
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", column)


def _condition(
    form: FormInfo, wide: sa.TableClause, c: Condition, dialect: str
) -> sa.ColumnElement[bool]:
    f = form.field_named(c.field)
    if f is None:
        raise UnknownName("field", c.field, form.xml_form_id)
    if c.op == "has":
        if not f.link_table:
            raise UnknownName("field", c.field, form.xml_form_id)
        link = link_table_for(f).alias(f"w_{f.column_name}")
        return sa.exists().where(
            link.c.instance_id == wide.c.instance_id,
            link.c.row_id == wide.c.instance_id,
            link.c.value == c.value,
        )
    col = _column(form, wide, c.field)
    if c.op == "equals":
        return col == c.value
    return sa.or_(col.is_(None), col != c.value)  # not_equals: an empty answer is not 'none'


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
    lattice: bool | None = None,
) -> IndicatorResult:
    """The indicator's cells for this caller. ``suppress_below``/``round_to`` None: exact
    (a manager). ``lattice`` (default: whenever suppression or rounding applies) builds the
    answer from protected lattice cells (``collector.read.indicators.disclosure``)."""
    by = list(dict.fromkeys(by))
    if period not in PERIODS:
        raise InvalidValue("period", period, f"expected one of {', '.join(PERIODS)}")
    allowed = indicator.breakdown_names()
    for b in by:
        if b not in allowed:
            raise InvalidValue("by", b, f"{indicator.id} breaks down by {', '.join(allowed)}")
    if date_from and date_to and date_from > date_to:
        raise InvalidValue("from", date_from.isoformat(), "is after `to`")
    wanted = [d for d in dict.fromkeys(districts) if d]
    threshold = suppress_below if indicator.counts_people else None
    base = round_to if indicator.counts_people and round_to and round_to > 1 else None
    if lattice is None:
        lattice = suppress_below is not None or (round_to is not None and round_to > 1)
    if lattice:
        check_lattice_request(period, wanted, date_from, date_to)
    form = form_info(engine, indicator.form)
    if form is None:
        return IndicatorResult(indicator, period, by, [], threshold, False, base)
    dialect = engine.dialect.name

    wide = table_for(form)
    # The wide table carries the submission's dates and deletion, and the district question
    # that ``submission.district`` is copied from: with it, no join to ``submission``.
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
    if wanted:
        conds.append(district_col.in_(wanted))
    conds.extend(_condition(form, wide, c, dialect) for c in indicator.conditions)

    days: list[sa.ColumnElement] = []
    for name in indicator.dated_by:
        if name == SUBMITTED:
            days.append(_day_text(dialect, submitted_col, is_date=False))
            continue
        f = form.field_named(name)
        if f is None or not f.column_name:
            raise UnknownName("field", name, form.xml_form_id)
        days.append(_day_text(dialect, wide.c[f.column_name], is_date=f.type == "date"))
    day_expr = sa.func.coalesce(*days) if len(days) > 1 else days[0]
    conds.append(day_expr.is_not(None))  # a submission no date dates is left out
    if date_from:
        conds.append(day_expr >= date_from.isoformat())
    if date_to:
        conds.append(day_expr <= date_to.isoformat())

    group: list[tuple[str, sa.ColumnElement]] = [("day", day_expr), ("district", district_col)]
    link_n = 0
    for b in by:
        if b == "district" or b not in indicator.breakdowns:
            continue
        f = form.field_named(indicator.breakdowns[b])
        if f is None:
            raise UnknownName("field", indicator.breakdowns[b], form.xml_form_id)
        if f.select_multiple and f.link_table:
            link_n += 1
            link = link_table_for(f).alias(f"l{link_n}")
            joined = joined.join(
                link,
                sa.and_(
                    link.c.instance_id == wide.c.instance_id, link.c.row_id == wide.c.instance_id
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
        # for a breakdown (then a value chosen twice must not count the submission twice).
        aggs.append(sa.func.count(sa.distinct(wide.c.instance_id)) if link_n else sa.func.count())
    else:
        aggs.extend(sa.func.sum(_column(form, wide, p.field)) for p in measure.parts)
    protect = threshold is not None or base is not None
    if protect and base is not None:
        aggs.append(sa.func.sum(record_key(dialect, wide.c.instance_id)))

    query = (
        sa.select(
            *(expr.label(f"k{i}") for i, (_, expr) in enumerate(group)),
            *(a.label(f"a{i}") for i, a in enumerate(aggs)),
        )
        .select_from(joined)
        .where(*conds)
        .group_by(*(expr for _, expr in group))
    )
    names = [n for n, _ in group]
    part_by = [b for b in by if isinstance(measure, Sum) and b in indicator.part_breakdowns]
    answer_names = [*(["period"] if period != "none" else []), *by]
    unit = lattice_unit(period) if lattice else "day"

    # lattice key: (unit label, district, breakdowns..., parts...) -> [exact value, key sum]
    cells: dict[tuple, list] = defaultdict(lambda: [0.0, 0])
    key_agg = f"a{len(aggs) - 1}"
    with engine.connect() as conn:
        if base is not None:
            register_record_key(conn)
        for row in conn.execute(query):
            m = row._mapping
            grouped = tuple(
                None if m[f"k{i}"] is None else str(m[f"k{i}"]) for i in range(len(group))
            )
            grouped = (period_label(grouped[0], unit), *grouped[1:])
            records = int(m[key_agg] or 0) if base is not None else 0
            if isinstance(measure, Sum):
                for i, part in enumerate(measure.parts):
                    key = grouped + tuple(part.values.get(b) for b in part_by)
                    cells[key][0] += float(m[f"a{i}"] or 0)
                    # each part of the same rows gets its own noise: add the part's name
                    cells[key][1] = (cells[key][1] + records + hash32(part.field)) % _MOD
            else:
                cells[grouped][0] += float(m["a0"] or 0)
                cells[grouped][1] = (cells[grouped][1] + records) % _MOD
    lattice_names = ["unit", *names[1:], *part_by]

    def answer_of(k: tuple) -> tuple:
        named = dict(zip(lattice_names, k, strict=True))
        if period != "none":
            named["period"] = _relabel(k[0], period)
        return tuple(named[n] for n in answer_names)

    if lattice and protect:
        secret = store_secret(engine, ROUNDING_SECRET) if base is not None else None
        values, withheld = publish(
            {k: (v[0], v[1]) for k, v in cells.items()},
            lattice_names,
            answer_of,
            threshold=threshold,
            base=base,
            secret=secret,
        )
    else:
        values, withheld = {}, {}
        for k, v in cells.items():
            target = answer_of(k)
            values[target] = (values.get(target) or 0) + v[0]
    ordered = sorted(values, key=lambda k: tuple("" if x is None else str(x) for x in k))
    out = [
        Cell(
            keys=dict(zip(answer_names, k, strict=True)),
            value=None if values[k] is None else _number(values[k]),
            suppressed=values[k] is None,
        )
        for k in ordered
    ]
    return IndicatorResult(
        indicator, period, by, out, threshold, True, base, sum(withheld.values())
    )


def _relabel(unit_label: str, period: str) -> str:
    """A lattice cell's period from its unit's label (a day, ``YYYY-Www`` or ``YYYY-MM``)."""
    if len(unit_label) == 10:
        return period_label(unit_label, period)
    if "-W" in unit_label:  # only asked for period=week
        return unit_label
    return period_label(unit_label + "-01", period)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def published_submission_counts(
    engine: Engine, scope: Scope, *, threshold: int, base: int | None
) -> dict[int, int | None]:
    """Live submissions per form id as a viewer may read them (issue 15 item 2): the same
    lattice as the indicators, one cell per (form, district), each withheld below
    ``threshold`` and rounded to ``base``; a form's count is the sum of its published
    cells, None when every one was withheld."""
    s = submission_t
    dialect = engine.dialect.name
    query = (
        sa.select(
            s.c.form_id,
            s.c.district,
            sa.func.count(),
            sa.func.sum(record_key(dialect, s.c.instance_id)),
        )
        .where(s.c.deleted_at.is_(None), scope.district_condition(s.c.district))
        .group_by(s.c.form_id, s.c.district)
    )
    with engine.connect() as conn:
        register_record_key(conn)
        rows = conn.execute(query).all()
    lattice = {(f, d): (float(n), int(k or 0) % _MOD) for f, d, n, k in rows}
    secret = store_secret(engine, ROUNDING_SECRET) if base and base > 1 else None
    values, _ = publish(
        lattice,
        ["form", "district"],
        lambda k: (k[0],),
        threshold=threshold,
        base=base if secret else None,
        secret=secret,
    )
    return {k[0]: None if v is None else int(v) for k, v in values.items()}
