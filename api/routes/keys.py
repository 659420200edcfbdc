"""API keys, for admins: list, create (the token is shown once), revoke."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from api.deps import AdminDep, EngineDep
from collector.store import keys
from collector.store.keys import Caller
from collector.times import UtcTime

router = APIRouter(tags=["keys"])


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    districts: list[str] | None
    created_at: UtcTime | None
    revoked_at: UtcTime | None


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["viewer", "analyst", "manager", "admin"]
    districts: list[str] | None = Field(default=None, max_length=100)


class KeyCreatedOut(BaseModel):
    id: int
    name: str
    role: str
    districts: list[str] | None
    token: str = Field(description="Shown once; only its hash is stored.")


def _out(k: keys.KeyInfo) -> KeyOut:
    return KeyOut(
        id=k.id,
        name=k.name,
        role=k.role,
        districts=k.districts,
        created_at=k.created_at,
        revoked_at=k.revoked_at,
    )


def _within(caller: Caller, districts: list[str] | frozenset[str] | None) -> bool:
    """Whether keys with these districts stay inside the caller's reach: a district-limited
    admin (a partner organisation's) manages only keys limited to some of its districts,
    never a key for every district nor one reaching another district."""
    if caller.districts is None:
        return True
    return bool(districts) and set(districts) <= caller.districts


@router.get("/keys", response_model=list[KeyOut])
def list_keys(caller: AdminDep, engine: EngineDep, include_revoked: bool = False) -> list[KeyOut]:
    return [
        _out(k)
        for k in keys.list_keys(engine, include_revoked=include_revoked)
        if _within(caller, k.districts)
    ]


@router.post("/keys", response_model=KeyCreatedOut, status_code=201)
def create_key(body: KeyIn, caller: AdminDep, engine: EngineDep) -> KeyCreatedOut:
    cleaned = None if body.districts is None else {d.strip() for d in body.districts} - {""}
    if not _within(caller, cleaned):
        raise HTTPException(
            403,
            f"the key {caller.name!r} is limited to {', '.join(sorted(caller.districts or ()))}: "
            "a key it creates must name districts, all among those",
        )
    created = keys.create_key(engine, name=body.name, role=body.role, districts=body.districts)
    return KeyCreatedOut(
        id=created.id,
        name=created.name,
        role=created.role,
        districts=created.districts,
        token=created.token,
    )


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: int, caller: AdminDep, engine: EngineDep) -> KeyOut:
    if key_id == caller.key_id:
        raise HTTPException(409, "a key cannot revoke itself; use another admin key or the CLI")
    target = keys.key_by_id(engine, key_id)  # by id only: never a key NAMED "7" (SEC-19)
    if target is None or not _within(caller, target.districts):
        # 404 as for a key that does not exist: a limited admin learns nothing of the others.
        raise keys.UnknownKey(f"no key numbered {key_id}")
    return _out(keys.revoke_key(engine, key_id))
