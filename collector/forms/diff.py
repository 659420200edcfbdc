"""What a new version of a form changes against the published one: questions added,
removed and retyped. Pure: no I/O.

Central decides the same from the XForm (central-backend lib/data/schema.js
``getFormFields``; lib/model/query/forms.js ``checkStructuralChange``, which warns
400.16 about removed fields, and ``checkFieldDowncast``, which refuses a type change
400.17). ``forms plan`` says it first, in words a designer can act on:

- a removed question stays in Central's XML and in collector's store, but leaves
  Central's OData (old rows come back without it), so it is a warning that a push
  publishes only when accepted explicitly;
- a changed type is an error: Central refuses most (400.17), and the store keeps a
  column's first type, so even a change Central allows (to text) would leave every new
  answer without a typed value. The fix is a new question name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from collector.central.xmlanswers import odata_name

_H = "{http://www.w3.org/1999/xhtml}"
_X = "{http://www.w3.org/2002/xforms}"

# Central does not warn about these going away (checkStructuralChange).
_SILENT_REMOVALS = ("/meta", "/meta/entity", "/meta/entity/label")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _strip_namespaces(path: str) -> str:
    return "/".join(part.split(":")[-1] for part in path.split("/"))


def xform_fields(xform: str) -> list[dict]:
    """``[{path, name, type}]`` of an XForm, as Central's ``/fields?odata=true`` gives
    them (getFormFields: bind types, repeats from the body, groups as ``structure``;
    names cleaned as OData cleans them)."""
    root = ET.fromstring(xform)  # noqa: S314 (our own pyxform output)
    model = root.find(f"{_H}head/{_X}model")
    body = root.find(f"{_H}body")
    if model is None or body is None:
        raise ValueError("not an XForm: no h:head/model or h:body")
    instance = model.find(f"{_X}instance")
    if instance is None or len(instance) == 0:
        raise ValueError("not an XForm: no primary instance")
    data = instance[0]
    envelope = _local(data.tag)
    binds = {}
    for b in model.iter(f"{_X}bind"):
        nodeset, kind = b.get("nodeset"), b.get("type")
        if nodeset and kind:
            binds[_strip_namespaces(nodeset)] = kind
    repeats = {_strip_namespaces(r.get("nodeset", "")) for r in body.iter(f"{_X}repeat")}
    out: list[dict] = []

    def walk(element: ET.Element, path: str, odata_path: str) -> None:
        seen_repeats: set[str] = set()
        for child in element:
            name = _local(child.tag)
            full = f"{path}/{name}"
            odata = f"{odata_path}/{odata_name(name)}"
            binding = f"/{envelope}{full}"
            if binding in repeats:
                if binding in seen_repeats:
                    continue  # a repeat's template and its first instance: one field
                seen_repeats.add(binding)
                kind = "repeat"
            elif binding in binds:
                kind = binds[binding]
            elif len(child):
                kind = "structure"
            else:
                kind = "unknown"
            out.append({"path": odata, "name": odata_name(name), "type": kind})
            if kind in ("repeat", "structure") and len(child):
                walk(child, full, odata)

    walk(data, "", "")
    return out


@dataclass(frozen=True)
class Retyped:
    path: str
    old: str
    new: str

    def message(self) -> str:
        return (
            f"question {self.path} changes type from {self.old!r} to {self.new!r}: Central "
            f"keeps every version's answers under one type and refuses this (400.17), and "
            f"the store's column stays {self.old!r}. Fix: keep the type, or ask the new "
            f"question under a new name (a new row in the survey sheet)"
        )


@dataclass(frozen=True)
class FieldChanges:
    """Questions a new version adds, removes and retypes (OData paths)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[Retyped, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def removal_warning(self) -> str:
        return (
            f"removes {', '.join(self.removed)}: their answers stay in Central's XML and "
            "in collector's store, but Central's OData (and so every sync) no longer "
            "serves them, old submissions included; push publishes this only with "
            "--accept-warnings"
        )


def field_changes(published: list[dict], local: list[dict]) -> FieldChanges:
    """Compare Central's fields of the published version with a new version's."""
    old = {f["path"]: f.get("type") or "unknown" for f in published}
    new = {f["path"]: f.get("type") or "unknown" for f in local}
    added = tuple(p for p in new if p not in old)
    removed = tuple(p for p in old if p not in new and not p.endswith(_SILENT_REMOVALS))
    retyped = tuple(Retyped(p, old[p], t) for p, t in new.items() if p in old and old[p] != t)
    return FieldChanges(added, removed, retyped)
