"""What a simulated enumerator needs from an XForm beyond Central's field list: binds
(required, constraint, relevant, calculate, preloads), body controls with their choices,
repeat counts and secondary instances. Collect reads the same parts of the form.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from emulator.enumerators.xpath import local
from emulator.xform import XForm, parse_xform, strip_namespaces_from_path


@dataclass(frozen=True)
class Bind:
    type: str = "string"
    required: str | None = None
    constraint: str | None = None
    relevant: str | None = None
    readonly: str | None = None
    calculate: str | None = None
    preload: str | None = None
    preload_params: str | None = None


@dataclass(frozen=True)
class Itemset:
    nodeset: str  # e.g. instance('district')/root/item[region = /data/region]
    value_ref: str
    label_ref: str


@dataclass(frozen=True)
class Control:
    kind: str  # input | select1 | select | upload | range | trigger | odk:rank
    appearance: str = ""
    items: tuple[tuple[str, str], ...] = ()  # inline (value, label)
    itemset: Itemset | None = None
    mediatype: str = ""
    range: tuple[float, float, float] | None = None  # start, end, step


@dataclass
class FormModel:
    """An XForm as a filler sees it. Paths are absolute and namespace-free
    (``/data/place/gps``)."""

    xform: XForm
    root: ET.Element  # the primary instance template (first <instance>'s child)
    binds: dict[str, Bind]
    controls: dict[str, Control]
    repeat_counts: dict[str, str | None]  # repeat path -> jr:count expression
    instances: dict[str, ET.Element]  # secondary <instance> elements by id
    external: dict[str, str]  # instance id -> media file name (jr://file/x.csv)
    labels: dict[str, str]  # itext id -> label in the default language
    names: dict[str, str] = field(default_factory=dict)  # field name -> absolute path
    # <setvalue event="odk-instance-first-load" ref=... value=...>: dynamic defaults
    first_load: dict[str, str] = field(default_factory=dict)

    @property
    def root_name(self) -> str:
        return local(self.root.tag)

    def add_csv_instance(self, instance_id: str, data: bytes) -> None:
        """Make an external CSV (from the form's manifest) usable as an itemset source,
        the way Collect exposes it: <root><item><col>value</col>...</item></root>."""
        text = data.decode("utf-8-sig", errors="replace")
        wrapper = ET.Element("instance")
        root = ET.SubElement(wrapper, "root")
        for row in csv.DictReader(io.StringIO(text)):
            item = ET.SubElement(root, "item")
            for key, value in row.items():
                if key:
                    ET.SubElement(item, key.strip()).text = value or ""
        self.instances[instance_id] = wrapper


def _attr(elem: ET.Element, name: str) -> str | None:
    value = elem.get(name)
    if value is not None:
        return value
    for key, val in elem.attrib.items():
        if local(key) == name:
            return val
    return None


def _abs(path: str, root_name: str) -> str:
    path = path.strip()
    return strip_namespaces_from_path(path if path.startswith("/") else f"/{root_name}/{path}")


def parse_form_model(xml: bytes) -> FormModel:
    """Parse an XForm (validated first with Central's rules) into a :class:`FormModel`."""
    xform = parse_xform(xml)
    doc = ET.fromstring(xml)  # noqa: S314 - parse_xform refused DTDs already
    head = next(c for c in doc if local(c.tag) == "head")
    body = next((c for c in doc if local(c.tag) == "body"), None)
    model = next(c for c in head if local(c.tag) == "model")
    instances = [c for c in model if local(c.tag) == "instance"]
    root = next(iter(instances[0]))
    root_name = local(root.tag)

    binds: dict[str, Bind] = {}
    for b in model:
        if local(b.tag) != "bind" or _attr(b, "nodeset") is None:
            continue
        path = _abs(_attr(b, "nodeset") or "", root_name)
        if path in binds:
            continue
        binds[path] = Bind(
            type=_attr(b, "type") or "string",
            required=_attr(b, "required"),
            constraint=_attr(b, "constraint"),
            relevant=_attr(b, "relevant"),
            readonly=_attr(b, "readonly"),
            calculate=_attr(b, "calculate"),
            preload=_attr(b, "preload"),
            preload_params=_attr(b, "preloadParams"),
        )

    controls: dict[str, Control] = {}
    repeat_counts: dict[str, str | None] = {}
    if body is not None:
        _read_body(body, root_name, controls, repeat_counts)

    secondary: dict[str, ET.Element] = {}
    external: dict[str, str] = {}
    for inst in instances[1:]:
        inst_id = _attr(inst, "id")
        if not inst_id:
            continue
        src = _attr(inst, "src")
        if src:
            external[inst_id] = src.rsplit("/", 1)[-1]
            continue
        # instance('id') is the <instance> element itself: its path goes on /root/item
        secondary[inst_id] = inst

    labels: dict[str, str] = {}
    itext = next((c for c in model if local(c.tag) == "itext"), None)
    if itext is not None:
        translations = [t for t in itext if local(t.tag) == "translation"]
        chosen = next(
            (t for t in translations if (_attr(t, "default") or "").startswith("true")),
            translations[0] if translations else None,
        )
        if chosen is not None:
            for text in chosen:
                value = next(
                    (v for v in text if local(v.tag) == "value" and not _attr(v, "form")), None
                )
                if value is not None and _attr(text, "id"):
                    labels[_attr(text, "id") or ""] = "".join(value.itertext()).strip()

    first_load: dict[str, str] = {}
    for elem in doc.iter():
        if local(elem.tag) != "setvalue" or "odk-instance-first-load" not in (
            _attr(elem, "event") or ""
        ):
            continue
        ref, value = _attr(elem, "ref"), _attr(elem, "value")
        if ref and value is not None:
            first_load.setdefault(_abs(ref, root_name), value)

    names: dict[str, str] = {}
    for f in xform.fields:
        names.setdefault(f.name, f"/{root_name}{f.path}")
    return FormModel(
        xform=xform,
        root=root,
        binds=binds,
        controls=controls,
        repeat_counts=repeat_counts,
        instances=secondary,
        external=external,
        labels=labels,
        names=names,
        first_load=first_load,
    )


_CONTROL_TAGS = {"input", "select1", "select", "upload", "range", "trigger", "rank"}


def _read_body(
    elem: ET.Element,
    root_name: str,
    controls: dict[str, Control],
    repeat_counts: dict[str, str | None],
) -> None:
    for child in elem:
        tag = local(child.tag)
        if tag == "repeat":
            nodeset = _attr(child, "nodeset")
            if nodeset:
                repeat_counts[_abs(nodeset, root_name)] = _attr(child, "count")
            _read_body(child, root_name, controls, repeat_counts)
        elif tag == "group":
            _read_body(child, root_name, controls, repeat_counts)
        elif tag in _CONTROL_TAGS:
            ref = _attr(child, "ref") or _attr(child, "bind")
            if not ref:
                continue
            items: list[tuple[str, str]] = []
            itemset = None
            for sub in child:
                stag = local(sub.tag)
                if stag == "item":
                    value = next((v for v in sub if local(v.tag) == "value"), None)
                    label = next((v for v in sub if local(v.tag) == "label"), None)
                    if value is not None and value.text is not None:
                        items.append((value.text.strip(), _label_text(label)))
                elif stag == "itemset":
                    value = next((v for v in sub if local(v.tag) == "value"), None)
                    label = next((v for v in sub if local(v.tag) == "label"), None)
                    itemset = Itemset(
                        nodeset=_attr(sub, "nodeset") or "",
                        value_ref=(_attr(value, "ref") if value is not None else None) or "name",
                        label_ref=(_attr(label, "ref") if label is not None else None) or "label",
                    )
            rng = None
            if tag == "range":
                try:
                    rng = (
                        float(_attr(child, "start") or 0),
                        float(_attr(child, "end") or 10),
                        float(_attr(child, "step") or 1),
                    )
                except ValueError:
                    rng = (0.0, 10.0, 1.0)
            controls[_abs(ref, root_name)] = Control(
                kind="odk:rank" if tag == "rank" else tag,
                appearance=_attr(child, "appearance") or "",
                items=tuple(items),
                itemset=itemset,
                mediatype=_attr(child, "mediatype") or "",
                range=rng,
            )


def _label_text(label: ET.Element | None) -> str:
    if label is None:
        return ""
    return "".join(label.itertext()).strip()


_ABS_PATH = re.compile(r"/[A-Za-z_][\w.-]*(?:/[A-Za-z_][\w.-]*)+")


def referenced_paths(model: FormModel) -> set[str]:
    """Fields named in relevant/constraint/calculate/required/repeat-count/choice-filter
    expressions."""
    exprs: list[str] = []
    for bind in model.binds.values():
        exprs += [e for e in (bind.relevant, bind.constraint, bind.calculate, bind.required) if e]
    exprs += [e for e in model.repeat_counts.values() if e]
    exprs += [c.itemset.nodeset for c in model.controls.values() if c.itemset is not None]
    found: set[str] = set()
    for expr in exprs:
        found.update(_ABS_PATH.findall(expr))
        for name in re.findall(r"\$\{([^}]+)\}", expr):
            if name in model.names:
                found.add(model.names[name])
    return found


def itemset_dependents(model: FormModel) -> dict[str, list[Control]]:
    """field path -> the select controls whose choice filter reads that field."""
    out: dict[str, list[Control]] = {}
    for control in model.controls.values():
        if control.itemset is None or "[" not in control.itemset.nodeset:
            continue
        nodeset = control.itemset.nodeset
        paths = set(_ABS_PATH.findall(nodeset))
        paths.update(
            model.names[n] for n in re.findall(r"\$\{([^}]+)\}", nodeset) if n in model.names
        )
        for path in paths:
            out.setdefault(path, []).append(control)
    return out
