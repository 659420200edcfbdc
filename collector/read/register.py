"""The register, read: the women (entities) of a list with their current properties, their
visits in order, the conflicts to resolve, and the indicators that need identity.

Who sees what: below manager a woman is a pseudonymous case id (an HMAC of her entity id
with the store's secret, so it cannot be reversed or guessed from the id) and only the
properties no form saves from a sensitive question; her label (her name) is never shown
below manager. A key limited to districts sees only women whose ``district`` property is
one of them. Writing the audit rows of a manager's reads is the API's job (api/audit.py).

Visits are the entity versions made by a submission of a follow-up form (an update);
the registration is the version that created the entity. Times are Central's version
``createdAt`` (when Central applied the submission).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import statistics
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.read.indicators import ROUNDING_SECRET, Cell, cell_key_fraction, rounded, suppress
from collector.store import entities as es
from collector.store.engine import as_utc
from collector.store.secrets import store_secret

CASE_SECRET = "register_case_id"  # noqa: S105 - the NAME of the store_secret keying case ids


@dataclass(frozen=True)
class Visit:
    version: int
    at: datetime | None
    form_id: str | None
    instance_id: str | None
    action: str  # registration | visit | edit (a change not made by a submission)
    changed: dict[str, str]
    conflict: str | None


@dataclass
class Case:
    uuid: str
    case_id: str
    label: str | None
    district: str | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    deleted_at: datetime | None
    conflict: str | None
    properties: dict[str, str]
    hidden: list[str] = field(default_factory=list)  # sensitive properties left out
    visits: list[Visit] = field(default_factory=list)


def case_id(engine: Engine, uuid: str) -> str:
    key = store_secret(engine, CASE_SECRET)
    return "c-" + hmac.new(key, uuid.encode(), hashlib.sha256).hexdigest()[:16]


def sensitive_properties(engine: Engine, project_id: int | None, list_name: str) -> set[str]:
    with engine.connect() as conn:
        q = sa.select(es.entity_property.c.name).where(
            es.entity_property.c.list_name == list_name, es.entity_property.c.sensitive
        )
        if project_id is not None:
            q = q.where(es.entity_property.c.project_id == project_id)
        return set(conn.execute(q).scalars())


def _synced(engine: Engine) -> bool:
    """Whether an entity sync ever ran here (the API only reads: it creates no table)."""
    return sa.inspect(engine).has_table(es.entity_list.name)


def list_names(engine: Engine) -> list[str]:
    if not _synced(engine):
        return []
    with engine.connect() as conn:
        return sorted(set(conn.execute(sa.select(es.entity_list.c.name)).scalars()))


def _visible(
    data: dict[str, str], sensitive: set[str], sees_sensitive: bool
) -> tuple[dict[str, str], list[str]]:
    if sees_sensitive:
        return dict(data), []
    return (
        {k: v for k, v in data.items() if k not in sensitive},
        sorted(k for k in data if k in sensitive),
    )


def cases(
    engine: Engine,
    list_name: str,
    *,
    sees_sensitive: bool,
    districts: frozenset[str] | None,
    include_deleted: bool = False,
    with_visits: bool = False,
    uuids: set[str] | None = None,
) -> list[Case]:
    """The women of a list as this caller may see them, oldest registration first."""
    if not _synced(engine):
        return []
    sensitive = sensitive_properties(engine, None, list_name)
    e = es.entity
    q = sa.select(e).where(e.c.list_name == list_name).order_by(e.c.created_at, e.c.uuid)
    if not include_deleted:
        q = q.where(e.c.deleted_at.is_(None))
    if uuids is not None:
        q = q.where(e.c.uuid.in_(sorted(uuids)))
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
        versions: dict[str, list] = defaultdict(list)
        if with_visits and rows:
            v = es.entity_version
            for r in conn.execute(
                sa.select(v)
                .where(v.c.list_name == list_name, v.c.uuid.in_([r["uuid"] for r in rows]))
                .order_by(v.c.uuid, v.c.version)
            ).mappings():
                versions[r["uuid"]].append(r)
    out = []
    for r in rows:
        data = json.loads(r["data"])
        district = data.get("district")
        if districts is not None and district not in districts:
            continue
        props, hidden = _visible(data, sensitive, sees_sensitive)
        case = Case(
            uuid=r["uuid"],
            case_id=case_id(engine, r["uuid"]),
            label=r["label"] if sees_sensitive else None,
            district=district,
            version=r["version"],
            created_at=as_utc(r["created_at"]),
            updated_at=as_utc(r["updated_at"]),
            deleted_at=as_utc(r["deleted_at"]),
            conflict=r["conflict"],
            properties=props,
            hidden=hidden,
        )
        for v in versions.get(r["uuid"], []):
            changed, _ = _visible(json.loads(v["data_received"]), sensitive, sees_sensitive)
            if not sees_sensitive:
                changed.pop("label", None)
            action = (
                "registration" if v["version"] == 1 else ("visit" if v["instance_id"] else "edit")
            )
            case.visits.append(
                Visit(
                    version=v["version"],
                    at=as_utc(v["created_at"]),
                    form_id=v["form_id"],
                    instance_id=v["instance_id"],
                    action=action,
                    changed=changed,
                    conflict=v["conflict"],
                )
            )
        out.append(case)
    return out


def find_case(
    engine: Engine,
    list_name: str,
    ident: str,
    *,
    sees_sensitive: bool,
    districts: frozenset[str] | None,
) -> Case | None:
    """One woman by case id (any role) or, for managers, by her entity id."""
    for case in cases(
        engine,
        list_name,
        sees_sensitive=sees_sensitive,
        districts=districts,
        include_deleted=True,
        with_visits=True,
    ):
        if case.case_id == ident or (sees_sensitive and case.uuid == ident):
            return case
    return None


# --- identity indicators ------------------------------------------------------------------------

IDENTITY_INDICATORS = {
    "women_supported": "distinct women registered or visited in the period",
    "women_visited_twice": "distinct women with at least two visits in the period",
    "median_days_between_visits": "median days between a woman's consecutive contacts "
    "(registration or visit), the later one in the period",
    "women_without_visit_60_days": "women in the register whose last contact is more than "
    "60 days before the end of the period",
}
PEOPLE_COUNTS = {"women_supported", "women_visited_twice", "women_without_visit_60_days"}


def _contacts(c: Case) -> list[tuple[datetime, str]]:
    return [(v.at, v.action) for v in c.visits if v.at is not None and v.action != "edit"]


def identity_indicator(
    engine: Engine,
    list_name: str,
    indicator: str,
    *,
    date_from: date | None,
    date_to: date | None,
    districts: frozenset[str] | None,
    suppress_below: int | None,
    round_to: int | None,
) -> list[Cell]:
    """One cell per district; for roles below manager, small cells withheld (with their
    complements) and people counts rounded consistently, as every indicator is
    (``collector.read.indicators.suppress``, ``rounded``)."""
    start = datetime.combine(date_from, datetime.min.time(), UTC) if date_from else None
    end = (
        datetime.combine(date_to, datetime.min.time(), UTC) + timedelta(days=1) if date_to else None
    )

    def within(t: datetime) -> bool:
        return (start is None or t >= start) and (end is None or t < end)

    women = cases(engine, list_name, sees_sensitive=False, districts=districts, with_visits=True)
    by_district: dict[str | None, list[Case]] = defaultdict(list)
    for c in women:
        by_district[c.district].append(c)
    values: dict[str | None, tuple[float | int | None, list[str]]] = {}
    as_of = end or datetime.now(UTC)
    for district, members in sorted(by_district.items(), key=lambda kv: kv[0] or ""):
        counted: list[str] = []
        value: float | int | None
        if indicator == "women_supported":
            counted = [c.uuid for c in members if any(within(t) for t, _ in _contacts(c))]
            value = len(counted)
        elif indicator == "women_visited_twice":
            counted = [
                c.uuid
                for c in members
                if sum(1 for t, a in _contacts(c) if a == "visit" and within(t)) >= 2
            ]
            value = len(counted)
        elif indicator == "women_without_visit_60_days":
            counted = [
                c.uuid
                for c in members
                if (last := max((t for t, _ in _contacts(c) if t < as_of), default=None))
                is not None
                and last < as_of - timedelta(days=60)
            ]
            value = len(counted)
        elif indicator == "median_days_between_visits":
            gaps = []
            for c in members:
                times = sorted(t for t, _ in _contacts(c))
                for before, after in itertools.pairwise(times):
                    if within(after):
                        gaps.append((after - before).total_seconds() / 86400)
                        counted.append(c.uuid)
            value = round(statistics.median(gaps), 1) if gaps else None
        else:
            raise KeyError(indicator)
        values[district] = (value, sorted(set(counted)))
    cells = [Cell({"district": d}, v) for d, (v, _) in values.items()]
    if suppress_below is not None and indicator in PEOPLE_COUNTS:
        cells = suppress(cells, suppress_below)
    elif suppress_below is not None:
        # a median from fewer women than the threshold describes too few people
        cells = [
            Cell(c.keys, None, True) if len(values[c.keys["district"]][1]) < suppress_below else c
            for c in cells
        ]
    if round_to and indicator in PEOPLE_COUNTS:
        key = store_secret(engine, ROUNDING_SECRET)
        out = []
        for c in cells:
            if c.suppressed or c.value is None:
                out.append(c)
                continue
            record_sum = sum(zlib.crc32(u.encode()) for u in values[c.keys["district"]][1])
            u = cell_key_fraction(record_sum, key)
            out.append(Cell(c.keys, rounded(c.value, round_to, u)))
        cells = out
    return cells


def conflicts(
    engine: Engine, list_name: str, *, sees_sensitive: bool, districts: frozenset[str] | None
) -> list[Case]:
    """Women whose latest versions conflict (Central's ``conflict``: soft or hard)."""
    return [
        c
        for c in cases(
            engine, list_name, sees_sensitive=sees_sensitive, districts=districts, with_visits=True
        )
        if c.conflict
    ]
