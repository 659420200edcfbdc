"""What Central checks when a new version of a form arrives as a draft: a field whose type
changed is refused (400.17 ``fieldTypeConflict``), fields the new version drops are a
warning (400.16 ``structureChanged``) unless ``ignoreWarnings=true``.

Copied from central-backend ``lib/model/query/forms.js``: ``createVersion`` compares the new
fields with the published version's (``compare`` in ``lib/data/schema.js``: path, order, type,
selectMultiple); only when they differ does it run ``checkFieldDowncast`` against the fields
of every published version merged (``getMergedFields``: a later version's type wins) and then
``checkStructuralChange`` (skipped under ``ignoreWarnings``; ``meta`` and ``meta/entity``
paths are not warned about), and ``rejectIfWarnings`` turns collected warnings into 400.16.
"""

from __future__ import annotations

import sqlite3

from emulator import errors
from emulator.common import Emulator, FormRow
from emulator.xform import XForm, XFormField

_NOT_WARNED = ("/meta", "/meta/entity", "/meta/entity/label")


def _same(old: tuple[XFormField, ...], new: tuple[XFormField, ...]) -> bool:
    """``compare`` (lib/data/schema.js): same paths, order, types and selectMultiple."""
    return len(old) == len(new) and all(
        a.path == b.path
        and a.type == b.type
        and (a.select_multiple is True) == (b.select_multiple is True)
        for a, b in zip(old, new, strict=True)
    )


def _merged_types(e: Emulator, conn: sqlite3.Connection, form: FormRow) -> dict[str, str]:
    """path -> type over every published version, a later version's type winning."""
    types: dict[str, str] = {}
    for (def_id,) in conn.execute(
        "SELECT id FROM form_defs WHERE form_id=? AND published_at IS NOT NULL ORDER BY id",
        (form.id,),
    ):
        types.update({f.path: f.type for f in e.xform(def_id).fields})
    return types


def check_new_version(
    e: Emulator, conn: sqlite3.Connection, form: FormRow, new: XForm, ignore_warnings: bool
) -> None:
    """Raise what Central raises for ``new`` replacing the published version of ``form``."""
    if form.current_def is None:
        return  # no published version: nothing to compare with (createVersion)
    old = e.xform(form.current_def).fields
    if _same(old, new.fields):
        return
    lookup = _merged_types(e, conn, form)
    for f in new.fields:
        before = lookup.get(f.path)
        if before is None:
            continue
        if f.type != "string" and f.type != before:
            raise errors.field_type_conflict(f.path, before)
        if f.type == "string" and before in ("structure", "repeat"):
            raise errors.field_type_conflict(f.path, before)
    if ignore_warnings:
        return
    kept = {f.path for f in new.fields}
    removed = [f.name for f in old if f.path not in kept and not f.path.endswith(_NOT_WARNED)]
    if removed:
        raise errors.structure_changed(removed)
