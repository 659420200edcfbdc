"""Fill an XForm the way an enumerator with ODK Collect would, and write the submission
XML Collect sends: the primary instance with answers, repeats expanded, ``meta/instanceID``
as ``uuid:...``, preloads (start, end, today, deviceid, username) filled, and binary
answers as attachment files.

Everything random comes from the ``random.Random`` passed in, so the same seed gives the
same XML byte for byte.
"""

from __future__ import annotations

import copy
import math
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from xml.etree.ElementTree import Element

from emulator.enumerators import answers, tajik
from emulator.enumerators.answers import collect_time
from emulator.enumerators.formmodel import (
    Bind,
    Control,
    FormModel,
    itemset_dependents,
    referenced_paths,
)
from emulator.enumerators.xpath import Context, NodeSet, XPathError, evaluate, local, to_bool
from emulator.enumerators.xpath import to_string as xpath_string

_NO_BIND = Bind()
_GATE_WORDS = ("consent", "agree", "available", "present", "permission")


def deterministic_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (not uuid4(): runs must repeat for a seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Submission:
    """One submission as Collect would send it."""

    form_id: str
    instance_id: str
    xml: bytes
    attachments: list[tuple[str, bytes, str]]  # (file name, content, content type)
    summary: str
    deprecated_id: str | None = None
    tree: Element | None = field(default=None, repr=False)


class _Fill:
    """State of filling one instance."""

    def __init__(
        self,
        model: FormModel,
        rng: random.Random,
        root: Element,
        times: tuple[datetime, datetime],
    ) -> None:
        self.model = model
        self.times = times
        now = times[1]
        self.rng = rng
        self.root = root
        self.now = now
        self.parents: dict[int, Element] = {}
        self.centre: tuple[float, float, float] | None = None
        self.district: str | None = None
        self.attachments: list[tuple[str, bytes, str]] = []
        self.repeat_counts: dict[str, int] = {}

    def context(self, node: Element) -> Context:
        return Context(
            root=self.root,
            node=node,
            current=node,
            instances=self.model.instances,
            parents=self.parents,
            names=self.model.names,
            now=self.now,
            rng=self.rng,
        )

    def check(self, expr: str | None, node: Element) -> bool | None:
        """True/False, or None when the expression cannot be evaluated here."""
        if not expr:
            return None
        try:
            return to_bool(evaluate(expr, self.context(node)))
        except (XPathError, ValueError, TypeError, ZeroDivisionError, OverflowError):
            return None


class SubmissionFactory:
    """Builds submissions for one form on behalf of one device."""

    def __init__(self, model: FormModel, device_id: str, username: str) -> None:
        self.model = model
        self.device_id = device_id
        self.username = username
        self.repeats = set(model.xform.repeats)
        self.prefix = f"/{model.root_name}"
        self.referenced = referenced_paths(model)
        self._static_choices: dict[str, list[tuple[str, str]]] = {}
        self.dependents = itemset_dependents(model)

    # --- public ---------------------------------------------------------------------------

    def build(self, rng: random.Random, started: datetime, finished: datetime) -> Submission:
        instance_id = "uuid:" + deterministic_uuid(rng)
        template = self.model.root
        root = Element(local(template.tag), self._root_attrs(template))
        fill = _Fill(self.model, rng, root, (started, finished))
        self._fill_children(template, root, "", fill, relevant=True)
        self._set_meta(root, instance_id, None, fill)
        return Submission(
            form_id=self.model.xform.form_id,
            instance_id=instance_id,
            xml=serialize(root),
            attachments=fill.attachments,
            summary=self._summary(fill),
            tree=root,
        )

    def edit(self, previous: Submission, rng: random.Random, finished: datetime) -> Submission:
        """Collect's edit: the same instance with an answer changed, a new instanceID and
        ``meta/deprecatedID`` naming the version it replaces."""
        assert previous.tree is not None
        root = copy.deepcopy(previous.tree)
        fill = _Fill(self.model, rng, root, (finished, finished))
        leaves: list[tuple[Element, str]] = []
        for elem, path, parent in _walk(root, ""):
            if parent is not None:
                fill.parents[id(elem)] = parent
            full = self.prefix + path
            control = self.model.controls.get(full)
            # an answer other questions depend on stays: the rest of the form fits it
            if (
                len(elem) == 0
                and control is not None
                and control.kind in ("input", "select1", "select")
                and elem.text
                and "/meta/" not in path
                and full not in self.referenced
            ):
                leaves.append((elem, full))
        for elem, full in rng.sample(leaves, k=min(len(leaves), rng.randint(1, 2))):
            bind = self.model.binds.get(full, _NO_BIND)
            value = self._generate(full, bind, self.model.controls[full], elem, fill)
            if value:
                elem.text = value
        instance_id = "uuid:" + deterministic_uuid(rng)
        self._set_meta(root, instance_id, previous.instance_id, fill)
        for elem, path, _ in _walk(root, ""):
            bind = self.model.binds.get(self.prefix + path)
            if bind is not None and bind.preload == "timestamp" and bind.preload_params == "end":
                elem.text = collect_time(finished)
        return Submission(
            form_id=previous.form_id,
            instance_id=instance_id,
            xml=serialize(root),
            attachments=list(previous.attachments),  # Collect sends every media file again
            summary=previous.summary + " (edited)",
            deprecated_id=previous.instance_id,
            tree=root,
        )

    # --- filling ---------------------------------------------------------------------------

    def _root_attrs(self, template: Element) -> dict[str, str]:
        attrs = {
            "xmlns:jr": "http://openrosa.org/javarosa",
            "xmlns:orx": "http://openrosa.org/xforms",
        }
        for key, value in template.attrib.items():
            attrs[local(key)] = value
        return attrs

    def _fill_children(
        self, template: Element, out: Element, path: str, fill: _Fill, relevant: bool
    ) -> None:
        seen_repeats: set[str] = set()
        for child in template:
            if not isinstance(child.tag, str):
                continue
            name = local(child.tag)
            cpath = f"{path}/{name}"
            full = self.prefix + cpath
            if cpath in self.repeats:
                if cpath in seen_repeats:
                    continue
                seen_repeats.add(cpath)
                self._fill_repeat(child, out, cpath, fill, relevant)
                continue
            elem = Element(name, _attrs(child))
            out.append(elem)
            fill.parents[id(elem)] = out
            bind = self.model.binds.get(full, _NO_BIND)
            here = relevant and fill.check(bind.relevant, elem) is not False
            if len(child) > 0:
                self._fill_children(child, elem, cpath, fill, here)
            else:
                self._fill_leaf(child, elem, full, bind, fill, here)
            if elem.attrib:
                self._fill_attributes(elem, full, fill, here)

    def _fill_repeat(
        self, template: Element, out: Element, path: str, fill: _Fill, relevant: bool
    ) -> None:
        full = self.prefix + path
        bind = self.model.binds.get(full, _NO_BIND)
        probe = Element(local(template.tag))
        out.append(probe)
        fill.parents[id(probe)] = out
        if not relevant or fill.check(bind.relevant, probe) is False:
            out.remove(probe)
            return
        count = None
        count_expr = self.model.repeat_counts.get(full)
        if count_expr:
            try:
                value = evaluate(count_expr, fill.context(probe))
                number = float(xpath_string(value)) if isinstance(value, NodeSet) else float(value)
                if not math.isnan(number):
                    count = max(0, min(int(number), 20))
            except (XPathError, ValueError, TypeError):
                count = None
        out.remove(probe)
        if count is None:
            nested = path.count("/") > 1 and any(path.startswith(r + "/") for r in self.repeats)
            count = fill.rng.randint(1, 3) if nested else fill.rng.randint(1, 5)
        fill.repeat_counts[path] = fill.repeat_counts.get(path, 0) + count
        for _ in range(count):
            elem = Element(local(template.tag), _attrs(template))
            out.append(elem)
            fill.parents[id(elem)] = out
            self._fill_children(template, elem, path, fill, relevant=True)

    def _fill_leaf(
        self,
        template: Element,
        elem: Element,
        full: str,
        bind: Bind,
        fill: _Fill,
        relevant: bool,
    ) -> None:
        default = (template.text or "").strip()
        first_load = self.model.first_load.get(full)
        if first_load is not None:  # a dynamic default, computed when the form opens
            try:
                default = xpath_string(evaluate(first_load, fill.context(elem)))
            except (XPathError, ValueError, TypeError, ZeroDivisionError, OverflowError):
                default = ""
        rel_path = full[len(self.prefix) :]
        if rel_path in ("/meta/instanceID", "/meta/deprecatedID"):
            return  # set at the end
        preload = self._preload(bind, fill)
        if preload is not None:
            elem.text = preload
            return
        if not relevant:
            return  # Collect leaves non-relevant questions empty
        if bind.calculate:
            try:
                elem.text = xpath_string(evaluate(bind.calculate, fill.context(elem))) or None
            except (XPathError, ValueError, TypeError, ZeroDivisionError, OverflowError):
                elem.text = None
            return
        control = self.model.controls.get(full)
        if control is None or (control.kind == "input" and _true(bind.readonly)):
            elem.text = default or None  # hidden or a note: keep the default
            return
        required = fill.check(bind.required, elem) is True
        if not required and fill.rng.random() < 0.08:
            return  # the enumerator skipped an optional question
        if default and fill.rng.random() < 0.5:
            elem.text = default
            return
        value = ""
        for _attempt in range(25):
            value = self._generate(full, bind, control, elem, fill)
            elem.text = value or None
            if fill.check(bind.constraint, elem) is not False:
                break
        else:
            if not required:  # Collect would not accept it; the enumerator leaves it blank
                elem.text = value = ""
        if control.kind in ("select1", "select") and value:
            self._note_district(control, value, elem, fill)

    def _fill_attributes(self, elem: Element, full: str, fill: _Fill, relevant: bool) -> None:
        """Attributes with a bind of their own, as Collect fills them: a first-load
        setvalue once (pyxform's ``meta/entity/@id`` = ``uuid()``, so each registration
        names a new entity), then a calculate (``meta/entity/@create`` from the form's
        create_if). Without this an entity form would send ``id=""`` and Central would
        reject the entity (central-backend lib/data/entity.js: id must be a UUID)."""
        for name in list(elem.attrib):
            path = f"{full}/@{name}"
            first_load = self.model.first_load.get(path)
            if first_load is not None:
                try:
                    elem.set(name, xpath_string(evaluate(first_load, fill.context(elem))))
                except (XPathError, ValueError, TypeError, ZeroDivisionError, OverflowError):
                    elem.set(name, "")
            bind = self.model.binds.get(path)
            if bind is not None and bind.calculate and relevant:
                try:
                    value = evaluate(bind.calculate, fill.context(elem))
                except (XPathError, ValueError, TypeError, ZeroDivisionError, OverflowError):
                    continue
                elem.set(name, xpath_string(value))

    def _preload(self, bind: Bind, fill: _Fill) -> str | None:
        kind, param = bind.preload, (bind.preload_params or "").lower()
        if not kind:
            return None
        started, finished = fill.times
        if kind == "timestamp":
            return collect_time(started if param == "start" else finished)
        if kind == "date" and param == "today":
            return finished.date().isoformat()
        if kind == "property":
            if param == "deviceid":
                return self.device_id
            if param in ("username", "uri:username"):
                return self.username
            return ""
        if kind == "uid":
            return None  # instanceID, set in _set_meta
        return ""

    def _set_meta(
        self, root: Element, instance_id: str, deprecated_id: str | None, fill: _Fill
    ) -> None:
        meta = next((c for c in root if local(c.tag) == "meta"), None)
        if meta is None:
            meta = Element("meta")
            root.append(meta)
        iid = next((c for c in meta if local(c.tag) == "instanceID"), None)
        if iid is None:
            iid = Element("instanceID")
            meta.insert(0, iid)
        iid.text = instance_id
        old = next((c for c in meta if local(c.tag) == "deprecatedID"), None)
        if deprecated_id is not None:
            if old is None:
                old = Element("deprecatedID")
                meta.insert(list(meta).index(iid) + 1, old)
            old.text = deprecated_id
        elif old is not None:
            meta.remove(old)

    # --- answers ---------------------------------------------------------------------------

    def _generate(self, full: str, bind: Bind, control: Control, elem: Element, fill: _Fill) -> str:
        rng = fill.rng
        kind = control.kind
        if kind in ("select1", "select", "odk:rank"):
            choices = self._choices(control, elem, fill)
            if not choices:
                return ""
            values = [v for v, _ in choices]
            if kind == "select1":
                gate = any(w in full.rsplit("/", 1)[-1].lower() for w in _GATE_WORDS)
                if gate and "yes" in values and rng.random() < 0.9:
                    return "yes"  # consent: most people agree to the interview
                sex = self._sex_of_named_person(full, values, elem, fill)
                if sex is not None:
                    return sex
                deps = self.dependents.get(full)
                if not deps:
                    return rng.choice(values)
                # a district with no jamoats listed would leave the next question without
                # choices; the enumerator is somewhere the lists cover
                order = rng.sample(values, k=len(values))
                for value in order:
                    elem.text = value
                    if all(self._evaluate_itemset(dep, elem, fill) for dep in deps):
                        return value
                return order[0]
            if kind == "odk:rank":
                return " ".join(rng.sample(values, k=len(values)))
            picked = set(rng.sample(values, k=rng.randint(1, min(3, len(values)))))
            return " ".join(v for v in values if v in picked)
        if kind == "trigger":
            return "OK"
        if kind == "range" and control.range is not None:
            start, end, step = control.range
            steps = int(abs(end - start) / step) if step else 0
            value = start + step * rng.randint(0, max(steps, 0)) * (1 if end >= start else -1)
            return answers.number_text(value)
        if kind == "upload":
            name, data, ctype = answers.media_file(rng, control.mediatype, fill.now)
            fill.attachments.append((name, data, ctype))
            return name
        field_name = full.rsplit("/", 1)[-1].lower()
        value = answers.typed_answer(
            rng,
            field_name,
            bind.type.split(":")[-1],
            bind.constraint,
            fill.now,
            fill.centre,
            fill.district,
        )
        return value

    def _sex_of_named_person(
        self, full: str, values: list[str], elem: Element, fill: _Fill
    ) -> str | None:
        """A sex/gender question next to a name answers for that name's person."""
        name = full.rsplit("/", 1)[-1].lower()
        if not ("sex" in name or "gender" in name) or not {"female", "male"} <= set(values):
            return None
        parent = fill.parents.get(id(elem))
        for sibling in parent if parent is not None else ():
            if "name" in sibling.tag and sibling.text:
                return tajik.gender_of(sibling.text)
        return None

    def _choices(self, control: Control, elem: Element, fill: _Fill) -> list[tuple[str, str]]:
        if control.items:
            return list(control.items)
        if control.itemset is None:
            return []
        static = "[" not in control.itemset.nodeset  # no choice filter: the same every time
        if static and control.itemset.nodeset in self._static_choices:
            return self._static_choices[control.itemset.nodeset]
        out = self._evaluate_itemset(control, elem, fill)
        if static:
            self._static_choices[control.itemset.nodeset] = out
        return out

    def _evaluate_itemset(
        self, control: Control, elem: Element, fill: _Fill
    ) -> list[tuple[str, str]]:
        assert control.itemset is not None
        try:
            nodes = evaluate(control.itemset.nodeset, fill.context(elem))
        except (XPathError, ValueError, TypeError):
            return []
        if not isinstance(nodes, NodeSet):
            return []
        out: list[tuple[str, str]] = []
        for node in nodes:
            ctx = fill.context(node)
            ctx.current = elem
            try:
                value = xpath_string(evaluate(control.itemset.value_ref, ctx))
                label_ref = control.itemset.label_ref
                match = re.fullmatch(r"jr:itext\((.*)\)", label_ref.strip())
                if match:
                    label = self.model.labels.get(xpath_string(evaluate(match.group(1), ctx)), "")
                else:
                    label = xpath_string(evaluate(label_ref, ctx))
            except (XPathError, ValueError, TypeError):
                continue
            if value:
                out.append((value, label))
        return out

    def _note_district(self, control: Control, value: str, elem: Element, fill: _Fill) -> None:
        """A chosen district steers later geopoints towards its centre."""
        labels = dict(self._choices(control, elem, fill))
        for picked in value.split():
            centre = tajik.district_centre(picked) or tajik.district_centre(labels.get(picked, ""))
            if centre is not None:
                fill.centre = centre
                fill.district = picked
                return

    def _summary(self, fill: _Fill) -> str:
        """A log line's worth: form, district, repeat counts. No names, phones or places
        below the district: the project treats those as sensitive even when simulated."""
        parts = [self.model.xform.form_id]
        if fill.district:
            parts.append(fill.district)
        for path, count in fill.repeat_counts.items():
            parts.append(f"{count}× {path.rsplit('/', 1)[-1]}")
        return ", ".join(parts)


# --- helpers -------------------------------------------------------------------------------------


def _attrs(template: Element) -> dict[str, str]:
    return {local(k): v for k, v in template.attrib.items() if local(k) != "template"}


def _walk(
    elem: Element, path: str, parent: Element | None = None
) -> Iterator[tuple[Element, str, Element]]:
    """(element, path without the root name, parent) for every element under ``elem``."""
    for child in elem:
        cpath = f"{path}/{local(child.tag)}"
        yield child, cpath, elem
        yield from _walk(child, cpath, child)


def _true(expr: str | None) -> bool:
    return (expr or "").strip() in ("true()", "true", "1")


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def serialize(root: Element) -> bytes:
    """The instance as Collect writes it: an XML declaration, then compact XML."""
    parts: list[str] = ["<?xml version='1.0' ?>"]

    def write(elem: Element) -> None:
        attrs = "".join(f' {k}="{str(v).translate(_ESCAPES)}"' for k, v in elem.attrib.items())
        if len(elem) == 0 and not elem.text:
            parts.append(f"<{elem.tag}{attrs}/>")
            return
        parts.append(f"<{elem.tag}{attrs}>")
        if elem.text:
            parts.append(elem.text.translate(_ESCAPES))
        for child in elem:
            write(child)
        parts.append(f"</{elem.tag}>")

    write(root)
    return "".join(parts).encode("utf-8")
