"""Attachments: which are missing, and what was fetched (checksum, path).

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.store.engine import T, now

# --- attachments -----------------------------------------------------------------------------


def submissions_missing_attachments(engine: Engine, form_id: int, limit: int = 500) -> list[str]:
    """Instance ids whose expected attachments are not all fetched yet.

    Reads only submissions that expect attachments (index on form_id,
    attachments_expected), so a form without any costs nothing however big it grows.
    """
    sub, att = T["submission"], T["attachment"]
    fetched = (
        sa.select(sa.func.count())
        .select_from(att)
        .where(
            att.c.form_id == sub.c.form_id,
            att.c.instance_id == sub.c.instance_id,
            sa.or_(att.c.sha256.is_not(None), att.c.refused.is_(True)),
        )
        .scalar_subquery()
    )
    q = (
        sa.select(sub.c.instance_id)
        .where(
            sub.c.form_id == form_id,
            sub.c.attachments_expected > 0,
            sub.c.deleted_at.is_(None),
            sub.c.attachments_expected > fetched,
        )
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(q).scalars())


def fetched_attachment_names(engine: Engine, form_id: int, instance_id: str) -> set[str]:
    """Names done with: fetched, or refused (a name no file may carry)."""
    att = T["attachment"]
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(att.c.name).where(
                    att.c.form_id == form_id,
                    att.c.instance_id == instance_id,
                    sa.or_(att.c.sha256.is_not(None), att.c.refused.is_(True)),
                )
            ).scalars()
        )


def save_attachment(
    engine: Engine,
    form_id: int,
    instance_id: str,
    name: str,
    *,
    present: bool,
    sha256: str | None = None,
    size: int | None = None,
    path: str | None = None,
    error: str | None = None,
    refused: bool = False,
) -> None:
    """Record one attachment: fetched (``sha256``), missing in Central, failed (``error``,
    tried again next run) or refused (``refused``, never tried again)."""
    att = T["attachment"]
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(att.c.id, att.c.tries).where(
                att.c.form_id == form_id, att.c.instance_id == instance_id, att.c.name == name
            )
        ).first()
        values = {"present": present, "sha256": sha256, "size": size, "path": path,
                  "fetched_at": now() if sha256 else None, "error": error,
                  "refused": refused}  # fmt: skip
        if row:
            conn.execute(
                att.update().where(att.c.id == row.id).values(tries=row.tries + 1, **values)
            )
        else:
            conn.execute(
                att.insert().values(
                    form_id=form_id, instance_id=instance_id, name=name, tries=1, **values
                )
            )
