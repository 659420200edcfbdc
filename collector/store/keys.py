"""API keys: create, list, revoke, verify; and the caller a verified key stands for.

A token is ``clk_<secret>``; only its SHA-256 is stored (``api_key.key_hash``, a unique
index that is also the lookup), so a copy of the database does not hand out working keys.
The secret is 256 random bits, so a fast hash is enough (slow hashes such as scrypt protect
low-entropy passwords, which these are not), and looking a hash up by index leaks nothing a
guesser can use. The plaintext is returned once, by :func:`create_key`, and never stored or
logged.

Reads are plain SQLAlchemy Core over the ``api_key`` table; writes go through
``collector.store`` (the only writer), which also takes the audit rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector import store
from collector.errors import CollectorError
from collector.store import models

TOKEN_SCHEME = "clk"  # noqa: S105 - the public prefix of every token, not a secret


class Role(IntEnum):
    """Roles in increasing power; a role may do everything the roles below it may.

    viewer: indicators and aggregates (small cells suppressed), form definitions.
    analyst: rows and exports, every sensitive value withheld.
    manager: everything, sensitive values (each read audited), review decisions.
    admin: a manager who also manages keys and triggers syncs.
    """

    viewer = 1
    analyst = 2
    manager = 3
    admin = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            allowed = ", ".join(r.name for r in cls)
            raise InvalidKeyRequest(f"unknown role {name!r}; expected one of: {allowed}") from None


@dataclass(frozen=True)
class Caller:
    """Who is asking: a verified, unrevoked key."""

    key_id: int
    name: str
    role: Role
    districts: frozenset[str] | None  # None: every district

    @property
    def sees_sensitive(self) -> bool:
        return self.role >= Role.manager


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    role: str
    districts: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    role: str
    districts: list[str] | None
    token: str  # the plaintext, shown once


class ApiKeyError(CollectorError):
    """Base of the key errors the CLI turns into one line."""


class DuplicateKeyName(ApiKeyError):
    pass


class InvalidKeyRequest(ApiKeyError, ValueError):
    """A key request that makes no sense (an empty name, an unknown role)."""


class UnknownKey(ApiKeyError):
    pass


_api_key = models.ApiKey.__table__  # typed: timestamps and the JSON list come back as such


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _districts(value: object) -> list[str] | None:
    """The JSON column comes back as a list (or, on some drivers, as its text).

    None means every district; an empty list (never written by :func:`create_key`) means
    none, so a damaged row fails closed.
    """
    if isinstance(value, str):
        value = json.loads(value) if value else None
    if value is None:
        return None
    if not isinstance(value, list):
        return []
    return [str(d) for d in value]


def _info(row: sa.Row) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        districts=_districts(row.districts),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_key(
    engine: Engine, *, name: str, role: str | Role, districts: list[str] | None = None
) -> CreatedKey:
    """Create a key and return it with its plaintext token, which is never shown again."""
    try:
        role_ = role if isinstance(role, Role) else Role.parse(role)
    except ValueError as err:
        raise InvalidKeyRequest(str(err)) from None
    name = name.strip()
    if not name or not name.isprintable():
        raise InvalidKeyRequest(f"a key needs a printable, non-empty name, not {name!r}")
    if name.isdigit():
        # `collector keys revoke 7` means key id 7: a key named "7" would be confused with it.
        raise InvalidKeyRequest(f"a key name cannot be all digits ({name!r} reads as a key id)")
    cleaned = None if districts is None else sorted({d.strip() for d in districts if d.strip()})
    if cleaned == []:
        # Only None means every district: an empty (or blank) list widening to all would let
        # a mistake, or a district-limited admin, mint a key for every district.
        raise InvalidKeyRequest(
            "districts is empty; name at least one district, or omit it for every district"
        )
    with engine.connect() as conn:
        if conn.execute(sa.select(_api_key.c.id).where(_api_key.c.name == name)).first():
            raise DuplicateKeyName(f"a key named {name!r} exists; choose another name")
    token = f"{TOKEN_SCHEME}_{secrets.token_urlsafe(32)}"
    key_id = store.insert_api_key(
        engine, name=name, role=role_.name, districts=cleaned, key_hash=hash_token(token)
    )
    return CreatedKey(
        id=key_id,
        name=name,
        role=role_.name,
        districts=cleaned,
        token=token,
    )


def list_keys(engine: Engine, *, include_revoked: bool = False) -> list[KeyInfo]:
    query = sa.select(_api_key).order_by(_api_key.c.id)
    if not include_revoked:
        query = query.where(_api_key.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_info(r) for r in conn.execute(query)]


def key_by_id(engine: Engine, key_id: int) -> KeyInfo | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(_api_key).where(_api_key.c.id == key_id)).first()
    return _info(row) if row else None


def key_by_name_or_id(engine: Engine, name_or_id: str) -> KeyInfo | None:
    """All digits is an id (names cannot be: :func:`create_key` refuses them), else a name."""
    if name_or_id.isdigit():
        return key_by_id(engine, int(name_or_id))
    with engine.connect() as conn:
        row = conn.execute(sa.select(_api_key).where(_api_key.c.name == name_or_id)).first()
    return _info(row) if row else None


def revoke_key(engine: Engine, key: int | str) -> KeyInfo:
    """Revoke a key by id (an int), or by name or id (text, as on the command line);
    revoking a revoked key is harmless."""
    info = key_by_id(engine, key) if isinstance(key, int) else key_by_name_or_id(engine, key)
    if info is None:
        raise UnknownKey(f"no key named or numbered {str(key)!r}")
    if info.revoked_at is None:
        store.revoke_api_key(engine, key_id=info.id, at=datetime.now(UTC))
    return key_by_id(engine, info.id) or info


def _well_formed(token: str) -> bool:
    return token.startswith(f"{TOKEN_SCHEME}_") and len(token) <= 200


def caller_for_token(engine: Engine, token: str) -> Caller | None:
    """The caller a bearer token stands for, or None if it is malformed, unknown or revoked."""
    if not _well_formed(token):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(_api_key).where(
                _api_key.c.key_hash == hash_token(token), _api_key.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    districts = _districts(row.districts)
    return Caller(
        key_id=row.id,
        name=row.name,
        role=Role.parse(row.role),
        districts=None if districts is None else frozenset(districts),
    )


class ActiveKeyHashes:
    """The hashes of the unrevoked keys, re-read at most every ``max_age`` seconds.

    Used by the API only for a client address that has spent its failed-login bucket
    (SEC-9, SEC-22): a token whose hash is here is then still looked up (so a revocation
    takes effect at once), any other token is refused without a query. A flood of bad
    tokens from a throttled address so costs at most one query every ``max_age`` seconds,
    while a valid key at the same address (a partner office's NAT, a carrier's CGNAT) is
    served. Keys are few (people, not devices), so holding every hash is cheap; a key
    created less than ``max_age`` ago is found by the next re-read.
    """

    def __init__(self, engine: Engine, *, max_age: float = 5.0) -> None:
        self._engine = engine
        self._max_age = max_age
        self._hashes: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def __contains__(self, token: object) -> bool:
        if not isinstance(token, str) or not _well_formed(token):
            return False
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            stale = self._read_at is None or now - self._read_at >= self._max_age
            if stale and digest not in self._hashes:
                with self._engine.connect() as conn:
                    self._hashes = frozenset(
                        conn.execute(
                            sa.select(_api_key.c.key_hash).where(_api_key.c.revoked_at.is_(None))
                        ).scalars()
                    )
                self._read_at = now
            return digest in self._hashes
