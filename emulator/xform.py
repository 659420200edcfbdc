"""Read an XForm the way ODK Central does: its fields, media, encryption and identity.

Central keeps, per form version, a depth-first list of the primary instance's nodes with a
type each (``GET .../fields``); OData tables, submission parsing and the EDMX document are
all derived from that list, so the emulator derives them from the same list. The rules
below copy central-backend ``lib/data/schema.js`` (``getFormFields``,
``expectedFormAttachments``) and ``lib/util/util.js`` (``sanitizeOdataIdentifier``).
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class XFormError(ValueError):
    """The bytes are not an XForm Central would accept; ``code`` is Central's problem code."""

    def __init__(self, message: str, code: float = 400.1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class XFormField:
    """One node of the primary instance, as Central lists it in ``GET .../fields``."""

    name: str
    path: str
    type: str
    binary: bool | None = None
    select_multiple: bool | None = None

    @property
    def structural(self) -> bool:
        return self.type in ("structure", "repeat")

    def to_json(self, odata: bool = False) -> dict[str, Any]:
        """Central's field JSON; ``odata=True`` sanitizes name and path as
        ``sanitizeFieldsForOdata`` does (lib/resources/forms.js ``/fields``)."""
        name, path = self.name, self.path
        if odata:
            name = sanitize_odata_identifier(name)
            path = "/".join(sanitize_odata_identifier(p) for p in path.split("/"))
        return {
            "path": path,
            "name": name,
            "type": self.type,
            "binary": self.binary,
            "selectMultiple": self.select_multiple,
        }


@dataclass(frozen=True)
class XForm:
    """What the emulator needs to know about one form definition."""

    form_id: str
    version: str
    title: str
    fields: tuple[XFormField, ...]
    media: tuple[str, ...] = ()
    # (name, type) as Central's attachment list has them (schema.js expectedFormAttachments):
    # type is image|audio|video|file
    attachments: tuple[tuple[str, str], ...] = ()
    encrypted: bool = False
    repeats: tuple[str, ...] = ()
    instance_root: str = "data"
    # per-form caches other modules fill (odata lookup tables); not part of equality
    cache: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def fields_json(self, odata: bool = False) -> list[dict[str, Any]]:
        """Central's answer to ``GET .../fields[?odata=true]``."""
        return [f.to_json(odata) for f in self.fields]


_SANITIZE_FIRST = re.compile(r"^([^a-z_])", re.IGNORECASE)
_SANITIZE_REST = re.compile(r"([^a-z0-9_]+)", re.IGNORECASE)


def sanitize_odata_identifier(name: str) -> str:
    """central-backend lib/util/util.js ``sanitizeOdataIdentifier``."""
    return _SANITIZE_REST.sub("_", _SANITIZE_FIRST.sub(r"_\1", name))


def _local(tag: Any) -> str:
    """Element name without namespace (``{uri}name`` or ``prefix:name`` -> ``name``)."""
    if not isinstance(tag, str):
        return ""
    if tag[:1] == "{":
        return tag[tag.index("}") + 1 :]
    return tag.rsplit(":", 1)[-1]


def strip_namespaces_from_path(path: str) -> str:
    """central-backend lib/util/xml.js ``stripNamespacesFromPath``."""
    return "/".join(p.rsplit(":", 1)[-1] for p in path.split("/"))


def _attr(elem: ET.Element, name: str) -> str | None:
    """An attribute by local name, whatever its namespace."""
    value = elem.get(name)
    if value is not None:
        return value
    for key, val in elem.attrib.items():
        if _local(key) == name:
            return val
    return None


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _first(elem: ET.Element | None, name: str) -> ET.Element | None:
    if elem is None:
        return None
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _iter_local(elem: ET.Element, name: str) -> Iterator[ET.Element]:
    for e in elem.iter():
        if _local(e.tag) == name:
            yield e


def _absolutify(path: str, root_name: str) -> str:
    return path if path.startswith("/") else f"/{root_name}/{path}"


# Central reads the form id with a lenient streaming parser (lib/model/frames/form.js
# fromXml: html/head/model/instance/*[@id]); XML it cannot follow that far, or without the
# id, is Problem.user.missingParameter({ field: 'formId' }): 400.2, as the real Central
# answers broken XML.
_NO_FORM_ID = "Required parameter formId missing."


def parse_xform(xml: bytes) -> XForm:
    """Parse XForm XML into an :class:`XForm`, or raise :class:`XFormError`."""
    if b"<!DOCTYPE" in xml:
        # XForms need no DTD; refusing them rules out entity expansion and external entities
        raise XFormError(
            f"Could not parse the given data ({len(xml)} chars) as xforms xml: DTDs are not accepted.",
            400.1,
        )
    try:
        doc = ET.fromstring(xml)  # noqa: S314 - DTDs refused just above
    except ET.ParseError:
        raise XFormError(_NO_FORM_ID, 400.2) from None
    if _local(doc.tag) != "html":
        raise XFormError(_NO_FORM_ID, 400.2)
    head = _first(doc, "head")
    body = _first(doc, "body")
    model = _first(head, "model")
    if model is None:
        raise XFormError(_NO_FORM_ID, 400.2)
    instances = _children(model, "instance")
    primary = next(iter(instances[0]), None) if instances else None
    if primary is None:
        raise XFormError(_NO_FORM_ID, 400.2)
    form_id = _attr(primary, "id")
    if not form_id:
        raise XFormError(_NO_FORM_ID, 400.2)
    version = _attr(primary, "version") or ""
    title_elem = _first(head, "title")
    title = (title_elem.text or "").strip() if title_elem is not None else ""
    if not title:
        title = form_id

    root_name = _local(primary.tag)
    fields = _form_fields(primary, model, body)
    attachments = _expected_attachments(model, body, instances)
    submission = _first(model, "submission")
    encrypted = submission is not None and bool(_attr(submission, "base64RsaPublicKey"))
    return XForm(
        form_id=form_id,
        version=version,
        title=title,
        fields=tuple(fields),
        media=tuple(name for name, _ in attachments),
        attachments=tuple(attachments),
        encrypted=encrypted,
        repeats=tuple(f.path for f in fields if f.type == "repeat"),
        instance_root=root_name,
    )


def _form_fields(
    primary: ET.Element, model: ET.Element, body: ET.Element | None
) -> list[XFormField]:
    """central-backend lib/data/schema.js ``getFormFields``/``_recurseFormFields``:
    repeats come from the body's <repeat nodeset>, types from binds that have a type,
    select_multiple from the body's <select>; depth-first, a repeat's template and its
    instances in the model count once."""
    root_name = _local(primary.tag)
    bind_types: dict[str, str] = {}
    for bind in _children(model, "bind"):
        nodeset, btype = _attr(bind, "nodeset"), _attr(bind, "type")
        if nodeset is None or btype is None:
            continue
        path = strip_namespaces_from_path(_absolutify(nodeset, root_name))
        bind_types.setdefault(path, btype)  # the first matching bind wins (getFormFields)
    repeats: set[str] = set()
    select_multiples: set[str] = set()
    if body is not None:
        for rep in _iter_local(body, "repeat"):
            nodeset = _attr(rep, "nodeset")
            if nodeset:
                repeats.add(strip_namespaces_from_path(nodeset))
        for sel in _iter_local(body, "select"):
            ref = _attr(sel, "nodeset") or _attr(sel, "ref")
            if ref:
                select_multiples.add(strip_namespaces_from_path(_absolutify(ref, root_name)))

    out: list[XFormField] = []

    def recurse(node: ET.Element, base: str) -> None:
        seen_repeats: set[str] = set()
        for tag in node:
            if not isinstance(tag.tag, str):
                continue  # comments, processing instructions
            name = _local(tag.tag)
            path = f"{base}/{name}"
            binding_path = f"/{root_name}{path}"
            has_children = len(tag) > 0
            if binding_path in repeats:
                if binding_path in seen_repeats:
                    continue
                seen_repeats.add(binding_path)
                ftype = "repeat"
            elif binding_path in bind_types:
                ftype = bind_types[binding_path]
            elif has_children or (name == "entity" and "/meta/entity" in path):
                ftype = "structure"
            else:
                ftype = "unknown"
            out.append(
                XFormField(
                    name=name,
                    path=path,
                    type=ftype,
                    binary=True if (ftype == "binary" or path == "/meta/audit") else None,
                    select_multiple=True if binding_path in select_multiples else None,
                )
            )
            if ftype in ("repeat", "structure") and has_children:
                recurse(tag, path)

    recurse(primary, "")
    return out


_JR_PATH = re.compile(r"^jr://(?:images|audio|video|file|file-csv)/([^/]+)$")
_MEDIA_FORMS = {"image": "image", "audio": "audio", "video": "video", "big-image": "image"}
_SEARCH = re.compile(r"""^\s*(?:\w*\s+)?search\s*\(\s*("|')(.+)\)\s*$""")


def _jr_path_name(value: str) -> str | None:
    match = _JR_PATH.match(value.strip())
    return match.group(1) if match else None


def _search_csv(appearance: str) -> str | None:
    """The CSV a ``search('name', ...)`` appearance reads (schema.js ``getSearchAppearance``)."""
    match = _SEARCH.match(appearance)
    if match is None:
        return None
    quote, args = match.group(1), match.group(2)
    try:
        first = next(csv.reader([quote + args], quotechar=quote, skipinitialspace=True))[0]
    except (csv.Error, StopIteration, IndexError):
        return None
    basename = first.strip() if first.strip() == first else None
    if not basename:
        return None
    return basename if basename.endswith(".csv") else f"{basename}.csv"


def _expected_attachments(
    model: ET.Element, body: ET.Element | None, instances: list[ET.Element]
) -> list[tuple[str, str]]:
    """central-backend lib/data/schema.js ``expectedFormAttachments``: external instances,
    itext media, jr://images defaults, itemsets.csv for <input query>, search() CSVs;
    deduplicated on (name, type)."""
    found: list[tuple[str, str]] = []
    for inst in instances:
        src = _attr(inst, "src")
        if src is not None:
            name = _jr_path_name(src)
            if name:
                found.append((name, "file"))
    itext = _first(model, "itext")
    if itext is not None:
        for translation in _children(itext, "translation"):
            for text in _children(translation, "text"):
                for value in _children(text, "value"):
                    form = _attr(value, "form")
                    mtype = _MEDIA_FORMS.get(form or "")
                    name = _jr_path_name(value.text or "")
                    if mtype and name:
                        found.append((name, mtype))
    for inst in instances:
        for root in inst:
            for child in root:
                text = child.text or ""
                if re.match(r"^jr://images/.", text):
                    name = _jr_path_name(text)
                    if name:
                        found.append((name, "image"))
    if body is not None:
        if any(_attr(e, "query") is not None for e in _iter_local(body, "input")):
            found.append(("itemsets.csv", "file"))
        for e in body.iter():
            if _local(e.tag) in ("select", "select1"):
                appearance = _attr(e, "appearance")
                if appearance and "search" in appearance:
                    name = _search_csv(appearance)
                    if name:
                        found.append((name, "file"))
    seen: dict[str, str] = {}
    result: list[tuple[str, str]] = []
    for name, mtype in found:
        if seen.get(name) != mtype:
            result.append((name, mtype))
        seen[name] = mtype
    return result
