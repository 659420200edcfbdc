"""Form definitions: turning a create/draft request body into XForm XML (XLSForms through
pyxform, as Central's pyxform-http service converts them: getodk/pyxform-http app/main.py),
rewriting the version on publish, and storing a version with its expected attachments.

The file is named after ``X-XlsForm-FormId-Fallback`` so pyxform takes the form id and title
from it when the settings sheet gives none; warnings refuse the form (400.16) unless
``ignoreWarnings``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tempfile
import uuid
from pathlib import Path
from urllib.parse import unquote

from starlette.requests import Request

from emulator import errors
from emulator.common import is_true
from emulator.db import new_token, now_iso
from emulator.xform import XForm, XFormError, parse_xform

XLSX_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls",
}


def xlsform_to_xform(
    body: bytes, suffix: str, fallback_id: str, ignore_warnings: bool
) -> tuple[bytes, bytes | None]:
    """pyxform, as Central runs it; errors become 400.15 (golden 10), warnings 400.16.
    Also the ``itemsets.csv`` an ``external_choices`` sheet makes (pyxform-http returns it
    beside the XForm; Central stores it as that form attachment)."""
    from pyxform.errors import PyXFormError  # imported on first use: it is slow to import
    from pyxform.xls2xform import convert

    warnings: list[str] = []
    name = fallback_id
    try:
        with tempfile.TemporaryDirectory(prefix="emulator-xls-") as tmp:
            path = Path(tmp) / f"{name}{suffix}"
            path.write_bytes(body)
            try:
                result = convert(xlsform=path, warnings=warnings, validate=False)
            except PyXFormError as exc:
                if "not recognized as a supported type" in str(exc) or not body:
                    # golden 10: the message pyxform gives for bytes it cannot read at all.
                    raise errors.xlsform_invalid(
                        "Argument 'definition' was not recognized as a supported type. Must be "
                        "one of: .xlsx, .xlsm, .xls, .md, .csv",
                        None,
                    ) from None
                raise
    except PyXFormError as exc:
        raise errors.xlsform_invalid(str(exc), warnings or None) from None
    except errors.CentralError:
        raise
    except Exception as exc:  # openpyxl/xlrd raise many kinds for a corrupt workbook
        raise errors.xlsform_invalid(
            f"Argument 'definition' was not recognized as a supported type. ({type(exc).__name__}: {exc})",
            warnings or None,
        ) from None
    if warnings and not ignore_warnings:
        raise errors.form_warnings(warnings)
    itemsets = result.itemsets.encode() if result.itemsets else None
    return result.xform.encode(), itemsets


_MARKUPSAFE = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&#39;", '"': "&#34;"}


def formid_fallback(header: str | None) -> str:
    """The XLSForm's file name stem, as pyxform-http makes it from the header Central passes
    on (getodk/pyxform-http app/main.py: ``os.path.basename(escape(unquote(header)))`` with
    markupsafe's escape, else a random uuid); pyxform takes the form id from it when the
    settings sheet has none, so ``uuid:...`` stays ``uuid:...`` and an emoji stays itself."""
    if header is None:
        return str(uuid.uuid4())
    text = "".join(_MARKUPSAFE.get(ch, ch) for ch in unquote(header))
    return os.path.basename(text)


async def definition_from_request(
    request: Request,
) -> tuple[bytes, bytes | None, bytes | None]:
    """(XForm XML, original XLSX or None, itemsets.csv or None) from a form/draft body."""
    body = await request.body()
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    suffix = XLSX_TYPES.get(ctype)
    if suffix is not None:
        fallback = formid_fallback(request.headers.get("x-xlsform-formid-fallback"))
        ignore = is_true(request.query_params.get("ignoreWarnings"))
        xml, itemsets = xlsform_to_xform(body, suffix, fallback, ignore)
        return xml, body, itemsets
    if not body:
        raise errors.unparseable("xforms xml", 0)
    return body, None, None


def parsed(xml: bytes) -> XForm:
    """The definition's structure, or the 400 Central answers for XML it cannot read."""
    try:
        return parse_xform(xml)
    except XFormError as exc:
        if exc.code == 400.2:
            raise errors.missing_parameter("formId") from None
        raise errors.CentralError(exc.code, exc.message) from None


def set_version(xml: bytes, version: str) -> bytes:
    """Rewrite the primary instance's ``version`` attribute (lib/data/schema.js setVersion)."""
    m = re.search(rb"<instance(?:\s[^>]*)?>\s*<([A-Za-z_][\w.:-]*)([^>]*?)(/?)>", xml)
    if m is None:
        raise errors.unparseable("xforms xml", len(xml))
    attrs = m.group(2)
    quoted = version.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").encode()
    if re.search(rb'\sversion="[^"]*"', attrs):
        attrs = re.sub(rb'\sversion="[^"]*"', b' version="' + quoted + b'"', attrs, count=1)
    else:
        attrs = attrs + b' version="' + quoted + b'"'
    return xml[: m.start(2)] + attrs + xml[m.end(2) :]


def hashes(xml: bytes) -> tuple[str, str, str]:
    """(hash, sha, sha256) as the form JSON shows them (golden 08)."""
    return (
        hashlib.md5(xml).hexdigest(),  # noqa: S324 - Central's form hash is MD5 (golden 08, 27 md5:)
        hashlib.sha1(xml).hexdigest(),  # noqa: S324 - Central's "sha" field
        hashlib.sha256(xml).hexdigest(),
    )


def insert_def(
    conn: sqlite3.Connection,
    form_id: int,
    xml: bytes,
    xlsx: bytes | None,
    form: XForm,
    published: bool,
    carry_from: int | None,
    itemsets: bytes | None = None,
) -> int:
    """Store one form version and its expected attachments (contents carried over by name
    and type from ``carry_from``, as Central copies them into a new draft: central-backend
    lib/model/query/form-attachments.js)."""
    md5, sha1, sha256 = hashes(xml)
    now = now_iso()
    cur = conn.execute(
        "INSERT INTO form_defs (form_id, version, name, xml, hash, sha, sha256, created_at, "
        "published_at, draft_token, xlsx) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            form_id,
            form.version,
            form.title,
            xml,
            md5,
            sha1,
            sha256,
            now,
            now if published else None,
            None if published else new_token(),
            xlsx,
        ),
    )
    def_id = int(cur.lastrowid or 0)
    old: dict[tuple[str, str], tuple] = {}
    if carry_from is not None:
        for name, kind, content, ctype, updated in conn.execute(
            "SELECT name, type, content, content_type, updated_at FROM form_attachments "
            "WHERE def_id=?",
            (carry_from,),
        ):
            old[(name, kind)] = (content, ctype, updated)
    for name, kind in form.attachments:
        content, ctype, updated = old.get((name, kind), (None, None, None))
        if name == "itemsets.csv" and itemsets is not None:
            # lib/model/query/form-attachments.js itemsetsHack: the converter's itemsets
            # fill the slot, in a new form and in a new version alike
            content, ctype, updated = itemsets, "text/csv", now
        conn.execute(
            "INSERT OR REPLACE INTO form_attachments (def_id, name, type, content, content_type, "
            "updated_at) VALUES (?,?,?,?,?,?)",
            (def_id, name, kind, content, ctype, updated),
        )
    return def_id


def def_xml(conn: sqlite3.Connection, def_id: int) -> bytes:
    """The stored XML of one form version."""
    return bytes(conn.execute("SELECT xml FROM form_defs WHERE id=?", (def_id,)).fetchone()[0])
