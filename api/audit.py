"""A manager's reads of sensitive values, written to ``audit_log`` through the store."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from collector import store
from collector.store.keys import Caller


def audit_reads(
    engine: Engine,
    caller: Caller,
    form: str,
    reads: list[tuple[str, list[str]]],
    *,
    action: str = "read",
) -> None:
    """One audit row per submission whose sensitive values this caller was sent."""
    if not reads or not caller.sees_sensitive:
        return
    rows = [
        {
            "key_id": caller.key_id,
            "form": form,
            "instance_id": iid,
            "fields": cols,
            "action": action,
        }
        for iid, cols in reads
    ]
    store.write_audit_rows(engine, rows)
