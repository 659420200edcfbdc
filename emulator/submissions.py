"""Storing submissions: new ones, identical resubmissions, edits, attachments.

The rules copy central-backend lib/resources/submissions.js and lib/model/query/submissions.js:
the same instanceID with identical XML is accepted again (golden 23) and may bring more
attachments; with different XML it is 409.1 (golden 24); a deleted one is 409.18; an edit
names the current version in ``meta/deprecatedID``, keeps the logical instance id, counts
``edits`` up and sets reviewState ``edited`` (golden 50/51). A version unknown to the form is
404.6 (golden 26).

Each stored submission carries its OData row precomputed (``data`` plus the bytes before and
after ``"__system":`` with and without ``$expand=*``) so the OData routes only serialize
``__system`` per row.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import orjson

from emulator import errors
from emulator.auth import Actor
from emulator.common import Emulator, FormRow, may_use_form, published_def
from emulator.db import now_iso, transaction
from emulator.odata import entity_from_submission, without_expand
from emulator.xform import XForm

REVIEW_STATES = (None, "hasIssues", "edited", "rejected", "approved")


@dataclass(frozen=True)
class Incoming:
    """What Central reads from a submission's XML before storing it."""

    xml: bytes
    form_id: str
    version: str
    instance_id: str
    deprecated_id: str | None
    instance_name: str | None
    root: ET.Element


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def read_incoming(xml: bytes) -> Incoming:
    """Parse the submission envelope (lib/model/frames/submission.js fromXml)."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - expat >= 2.4 refuses entity bombs; no DTDs fetched
    except ET.ParseError:
        # Central finds the id with a lenient streaming parser; XML it cannot follow to the
        # root's id attribute answers as a missing id (the real Central, on "<broken")
        raise errors.missing_parameter("form ID xml attribute") from None
    form_id = root.get("id")
    if not form_id:
        raise errors.missing_parameter("form ID xml attribute")
    meta = next((c for c in root if _local(c.tag) == "meta"), None)
    values: dict[str, str] = {}
    if meta is not None:
        for child in meta:
            values[_local(child.tag)] = (child.text or "").strip()
    instance_id = values.get("instanceID") or f"uuid:{uuid.uuid4()}"
    return Incoming(
        xml=xml,
        form_id=form_id,
        version=root.get("version") or "",
        instance_id=instance_id,
        deprecated_id=values.get("deprecatedID") or None,
        instance_name=values.get("instanceName") or None,
        root=root,
    )


def expected_attachments(form: XForm, root: ET.Element) -> list[str]:
    """File names the XML names in binary fields (Central's attachmentsExpected)."""
    binary = {f.path for f in form.fields if f.binary}
    if not binary:
        return []
    names: list[str] = []

    def walk(elem: ET.Element, path: str) -> None:
        for child in elem:
            p = f"{path}/{_local(child.tag)}"
            if p in binary and (child.text or "").strip():
                names.append(child.text.strip())
            if len(child):
                walk(child, p)

    walk(root, "")
    return names


def odata_fragments(form: XForm, xml: bytes, logical_id: str) -> dict[str, bytes]:
    """The stored OData pieces of one submission version (see module docstring)."""
    try:
        entity = entity_from_submission(form, xml, logical_id)
    except ValueError:
        raise errors.unparseable("xml", len(xml)) from None
    out: dict[str, bytes] = {
        "data": orjson.dumps(entity.data),
        "repeats": orjson.dumps(entity.repeat_rows),
    }
    for prefix, data in (("exp", entity.data), ("nav", without_expand(entity.data))):
        keys = list(data)
        cut = keys.index("__system")
        head = orjson.dumps({k: data[k] for k in keys[:cut]})[:-1]
        rest = {k: data[k] for k in keys[cut + 1 :]}
        out[f"{prefix}_head"] = (head + b"," if head != b"{" else head) + b'"__system":'
        out[f"{prefix}_tail"] = (b"," + orjson.dumps(rest)[1:]) if rest else b"}"
    return out


@dataclass(frozen=True)
class Stored:
    submission_id: int
    created: bool  # False: an identical resubmission


def def_for_version(conn: sqlite3.Connection, form: FormRow, version: str) -> int:
    def_id = published_def(conn, form, version)
    if def_id is None:
        raise errors.form_version_not_found(version)  # golden 26
    return def_id


def check_may_submit(conn: sqlite3.Connection, actor: Actor, form: FormRow) -> None:
    if not may_use_form(conn, actor, form):
        raise errors.insufficient_rights()


def _save_attachments(
    conn: sqlite3.Connection,
    version_id: int,
    expected: list[str],
    files: dict[str, tuple[bytes, str]],
) -> None:
    for name in expected:
        if name in files:
            content, ctype = files[name]
            conn.execute(
                "INSERT OR REPLACE INTO submission_attachments (version_id, name, content, "
                "content_type) VALUES (?,?,?,?)",
                (version_id, name, content, ctype),
            )
        else:
            conn.execute(
                "INSERT OR IGNORE INTO submission_attachments (version_id, name, content, "
                "content_type) VALUES (?,?,NULL,NULL)",
                (version_id, name),
            )


def _present_count(conn: sqlite3.Connection, version_id: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM submission_attachments WHERE version_id=? AND content IS NOT NULL",
        (version_id,),
    ).fetchone()[0]


FRAGMENT_COLUMNS = ("data", "nav_head", "nav_tail", "exp_head", "exp_tail", "repeats")


@dataclass(frozen=True)
class _Version:
    """One incoming submission version and what storing it needs, resolved once."""

    form: FormRow
    incoming: Incoming
    actor: Actor
    device_id: str | None
    user_agent: str | None
    files: dict[str, tuple[bytes, str]]
    def_id: int
    xform: XForm
    xml_hash: str
    expected: list[str]
    shape: XForm  # the form's current version: OData shows every row in its fields

    def fragments(self, logical_id: str) -> tuple[bytes, ...]:
        """The OData pieces in FRAGMENT_COLUMNS order."""
        frags = odata_fragments(self.shape, self.incoming.xml, logical_id)
        return tuple(frags[c] for c in FRAGMENT_COLUMNS)


def rerender_submissions(e: Emulator, form_pk: int, def_id: int) -> None:
    """Re-render every submission's OData row in the fields of ``def_id``, the version just
    published.

    Central serves OData with the *current* version's fields, whatever version a submission
    was made with: ``lib/resources/odata.js`` reads ``Forms.getFields(form.def.id)`` and
    ``lib/data/odata.js`` (``submissionToOData``) walks each submission's XML against them,
    so a field a later version removed is absent from old rows and one it added is null.
    The emulator precomputes rows, so it redoes them when the current version changes.
    """
    shape = e.xform(def_id)
    rows = e.conn.execute(
        "SELECT s.id, s.instance_id, v.xml FROM submissions s "
        "JOIN submission_versions v ON v.id = s.current_version WHERE s.form_id=?",
        (form_pk,),
    ).fetchall()
    sets = ", ".join(f"{c}=?" for c in FRAGMENT_COLUMNS)
    for sub_id, logical_id, xml in rows:
        frags = odata_fragments(shape, bytes(xml), logical_id)
        e.conn.execute(
            f"UPDATE submissions SET {sets} WHERE id=?",
            (*(frags[c] for c in FRAGMENT_COLUMNS), sub_id),
        )


def store(
    e: Emulator,
    form: FormRow,
    incoming: Incoming,
    actor: Actor,
    device_id: str | None,
    user_agent: str | None,
    files: dict[str, tuple[bytes, str]] | None = None,
    created_at: str | None = None,
    allow_resubmit: bool = True,
) -> Stored:
    """Store a submission or an edit of one, atomically; raises Central's error where
    Central refuses."""
    with transaction(e.conn):
        if form.state == "closed":
            raise errors.not_accepting_submissions()
        def_id = def_for_version(e.conn, form, incoming.version)
        xform = e.xform(def_id)
        version = _Version(
            form,
            incoming,
            actor,
            device_id,
            user_agent,
            files or {},
            def_id,
            xform,
            hashlib.sha256(incoming.xml).hexdigest(),
            expected_attachments(xform, incoming.root),
            xform if form.current_def in (None, def_id) else e.xform(form.current_def),
        )
        existing = e.conn.execute(
            "SELECT v.id, v.submission_id, v.xml_hash, s.deleted_at FROM submission_versions v "
            "JOIN submissions s ON s.id=v.submission_id WHERE v.form_id=? AND v.instance_id=?",
            (form.id, incoming.instance_id),
        ).fetchone()
        if existing is not None:
            return _accept_identical(e.conn, version, existing, allow_resubmit)
        if incoming.deprecated_id:
            return _store_edit(e.conn, version)
        return _store_new(e.conn, version, created_at or now_iso())


def _accept_identical(
    conn: sqlite3.Connection, v: _Version, existing: tuple[Any, ...], allow_resubmit: bool
) -> Stored:
    """golden 23: identical XML is accepted again and may bring the missing attachments;
    different XML is 409.1 (golden 24), a deleted one 409.18."""
    version_id, submission_id, old_hash, deleted_at = existing
    if deleted_at is not None:
        raise errors.deleted_resubmission()
    if old_hash != v.xml_hash:
        raise errors.xml_conflict()
    if not allow_resubmit:
        raise errors.uniqueness(
            ["xmlFormId", "instanceId"],
            [v.form.xml_form_id, v.incoming.instance_id],
            "submissions",
        )
    _save_attachments(conn, version_id, v.expected, v.files)
    conn.execute(
        "UPDATE submissions SET att_present=? WHERE id=? AND current_version=?",
        (_present_count(conn, version_id), submission_id, version_id),
    )
    return Stored(submission_id, False)


def _store_new(conn: sqlite3.Connection, v: _Version, now: str) -> Stored:
    cur = conn.execute(
        "INSERT INTO submissions (form_id, instance_id, created_at, submitter_id, device_id, "
        f"user_agent, form_version, att_expected, {', '.join(FRAGMENT_COLUMNS)}) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            v.form.id,
            v.incoming.instance_id,
            now,
            v.actor.id,
            v.device_id,
            v.user_agent,
            v.incoming.version,
            len(v.expected),
            *v.fragments(v.incoming.instance_id),
        ),
    )
    submission_id = int(cur.lastrowid or 0)
    version_id = _insert_version(conn, submission_id, v, now)
    _save_attachments(conn, version_id, v.expected, v.files)
    conn.execute(
        "UPDATE submissions SET current_version=?, att_present=? WHERE id=?",
        (version_id, _present_count(conn, version_id), submission_id),
    )
    return Stored(submission_id, True)


def _insert_version(conn: sqlite3.Connection, submission_id: int, v: _Version, now: str) -> int:
    cur = conn.execute(
        "INSERT INTO submission_versions (submission_id, form_id, instance_id, instance_name, "
        "xml, xml_hash, created_at, submitter_id, device_id, user_agent, def_id) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            submission_id,
            v.form.id,
            v.incoming.instance_id,
            v.incoming.instance_name,
            v.incoming.xml,
            v.xml_hash,
            now,
            v.actor.id,
            v.device_id,
            v.user_agent,
            v.def_id,
        ),
    )
    return int(cur.lastrowid or 0)


def _store_edit(conn: sqlite3.Connection, v: _Version) -> Stored:
    """An edit names the current version in ``meta/deprecatedID`` (golden 50)."""
    deprecated = v.incoming.deprecated_id or ""
    row = conn.execute(
        "SELECT v.id, v.submission_id, s.current_version, s.instance_id, s.deleted_at "
        "FROM submission_versions v JOIN submissions s ON s.id=v.submission_id "
        "WHERE v.form_id=? AND v.instance_id=?",
        (v.form.id, deprecated),
    ).fetchone()
    if row is None or row[4] is not None:
        raise errors.deprecated_id_not_found(deprecated)
    version_id, submission_id, current_version, logical_id, _ = row
    if version_id != current_version:
        raise errors.deprecating_old_submission(deprecated)
    fragments = v.fragments(logical_id)
    now = now_iso()
    new_version = _insert_version(conn, submission_id, v, now)
    # attachments of the old version carry over by name (Central copies unchanged blobs:
    # central-backend lib/model/query/submission-attachments.js)
    files = dict(v.files)
    for name, content, ctype in conn.execute(
        "SELECT name, content, content_type FROM submission_attachments WHERE version_id=?",
        (version_id,),
    ).fetchall():
        if name in v.expected and name not in files and content is not None:
            files[name] = (bytes(content), ctype)
    _save_attachments(conn, new_version, v.expected, files)
    conn.execute(
        "UPDATE submissions SET current_version=?, edits=edits+1, review_state='edited', "
        "updated_at=?, form_version=?, att_expected=?, att_present=?, "
        + ", ".join(f"{c}=?" for c in FRAGMENT_COLUMNS)
        + " WHERE id=?",
        (
            new_version,
            now,
            v.incoming.version,
            len(v.expected),
            _present_count(conn, new_version),
            *fragments,
            submission_id,
        ),
    )
    return Stored(submission_id, True)


# --- REST shapes ----------------------------------------------------------------------------

SUBMISSION_COLUMNS = (
    "s.id, s.instance_id, s.submitter_id, s.device_id, s.created_at, s.updated_at, "
    "s.review_state, s.user_agent, s.deleted_at, v.submitter_id, v.created_at, v.instance_name, "
    "v.instance_id, v.device_id, v.user_agent"
)


def submission_json(row: tuple[Any, ...], with_version: bool = True) -> dict[str, Any]:
    """golden 28/29/50 key order; without the version, golden 46 (PATCH answer)."""
    head = {
        "instanceId": row[1],
        "submitterId": row[2],
        "deviceId": row[3],
        "createdAt": row[4],
        "updatedAt": row[5],
        "reviewState": row[6],
    }
    if not with_version:
        return {**head, "deletedAt": row[8]}
    return {
        **head,
        "userAgent": row[7],
        "deletedAt": row[8],
        "currentVersion": {
            "submitterId": row[9],
            "createdAt": row[10],
            "instanceName": row[11],
            "instanceId": row[12],
            "current": True,
            "deviceId": row[13],
            "userAgent": row[14],
        },
    }


def submission_row(
    conn: sqlite3.Connection, form: FormRow, instance_id: str, deleted: bool = False
) -> tuple[Any, ...]:
    row = conn.execute(
        f"SELECT {SUBMISSION_COLUMNS} FROM submissions s "
        "JOIN submission_versions v ON v.id = s.current_version "
        "WHERE s.form_id=? AND s.instance_id=? AND "
        + ("s.deleted_at IS NOT NULL" if deleted else "s.deleted_at IS NULL"),
        (form.id, instance_id),
    ).fetchone()
    if row is None:
        raise errors.not_found()
    return row
