"""Fill an XForm the way an enumerator with ODK Collect would, and write the submission
XML Collect sends: the primary instance with answers, repeats expanded, ``meta/instanceID``
as ``uuid:...``, preloads (start, end, today, deviceid, username) filled, and binary
answers as attachment files.

Everything random comes from the ``random.Random`` passed in, so the same seed gives the
same XML byte for byte.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import re
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from xml.etree.ElementTree import Element

from emulator.enumerators import tajik
from emulator.enumerators.formmodel import Bind, Control, FormModel
from emulator.enumerators.regexgen import constraint_pattern, string_matching
from emulator.enumerators.xpath import Context, NodeSet, XPathError, evaluate, local, to_bool
from emulator.enumerators.xpath import to_string as xpath_string

_NO_BIND = Bind()


def deterministic_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (not uuid4(): runs must repeat for a seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def collect_time(moment: datetime) -> str:
    """Collect's timestamp format: ``2026-03-02T08:15:23.412+05:00``."""
    return moment.isoformat(timespec="milliseconds")


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
        self.first_name: str | None = None
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
        self.referenced = _referenced_paths(model)
        self._static_choices: dict[str, list[tuple[str, str]]] = {}
        self.dependents = _itemset_dependents(model)

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
            attachments=[],
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
                if full in self.referenced and "yes" in values and rng.random() < 0.85:
                    return "yes"  # consent and gate questions: most people say yes
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
            return _num(value)
        if kind == "upload":
            return self._attachment(control, fill)
        return self._typed(full, bind, fill)

    def _typed(self, full: str, bind: Bind, fill: _Fill) -> str:
        rng = fill.rng
        name = full.rsplit("/", 1)[-1].lower()
        btype = bind.type.split(":")[-1]
        if btype == "int":
            lo, hi = _bounds(bind.constraint, _int_range(name))
            return str(
                rng.randint(math.ceil(lo), math.floor(hi))
                if math.ceil(lo) <= math.floor(hi)
                else int(lo)
            )
        if btype == "decimal":
            lo, hi = _bounds(bind.constraint, _decimal_range(name))
            return _num(round(rng.uniform(lo, hi), 2))
        if btype == "date":
            constraint = re.sub(r"\s+", "", bind.constraint or "")
            if ">=today()" in constraint or ">today()" in constraint or "follow" in name:
                day = fill.now.date() + timedelta(days=rng.randint(1, 60))
            elif "birth" in name or "dob" in name:
                day = fill.now.date() - timedelta(days=rng.randint(365, 365 * 80))
            else:
                day = fill.now.date() - timedelta(days=rng.randint(0, 365))
            return day.isoformat()
        if btype == "dateTime":
            return collect_time(fill.now - timedelta(minutes=rng.randint(0, 60 * 24 * 30)))
        if btype == "time":
            return f"{rng.randint(7, 19):02d}:{rng.randint(0, 59):02d}:00.000{_offset(fill.now)}"
        if btype == "geopoint":
            return "{} {} {} {}".format(*tajik.point_near(rng, fill.centre))
        if btype in ("geotrace", "geoshape"):
            start = tajik.point_near(rng, fill.centre)
            points = [start]
            for _ in range(rng.randint(2, 5)):
                lat, lon, alt, acc = points[-1]
                points.append(
                    (
                        round(lat + rng.uniform(-0.01, 0.01), 6),
                        round(lon + rng.uniform(-0.01, 0.01), 6),
                        alt,
                        acc,
                    )
                )
            if btype == "geoshape":
                points.append(points[0])
            return ";".join("{} {} {} {}".format(*p) for p in points)
        if btype == "boolean":
            return rng.choice(["true", "false"])
        pattern = constraint_pattern(bind.constraint)
        if btype == "barcode":
            text = "".join(rng.choice("0123456789") for _ in range(12))
        else:
            text = self._text(name, fill)
        if pattern is not None and not re.search(pattern, text):
            digits = re.sub(r"\D", "", text)
            for candidate in (digits, digits[-9:]):  # "+992 93 123 4567" typed as the form wants
                if candidate and re.search(pattern, candidate):
                    return candidate
            with contextlib.suppress(ValueError, re.error):
                text = string_matching(pattern, rng)  # what the constraint lets through
        return text

    def _text(self, name: str, fill: _Fill) -> str:
        rng = fill.rng
        if "name" in name or name in ("respondent", "head", "interviewee"):
            value = tajik.full_name(rng)
            if fill.first_name is None:
                fill.first_name = value
            return value
        if "phone" in name or "tel" in name or "mobile" in name:
            return tajik.phone(rng)
        if name.endswith("_id") or "code" in name:
            return f"{rng.choice(['HH', 'DU', 'KH', 'SU'])}-{rng.randint(1000, 99999):05d}"
        if "email" in name:
            return f"user{rng.randint(1, 999)}@example.org"
        if any(k in name for k in ("village", "city", "address", "town", "place")):
            return tajik.village(rng, fill.district)
        return tajik.phrase(rng)

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

    def _attachment(self, control: Control, fill: _Fill) -> str:
        rng = fill.rng
        stamp = int(fill.now.timestamp() * 1000) + rng.randint(0, 999_999)
        media = control.mediatype or "image/*"
        if media.startswith("image"):
            name, ctype, data = f"{stamp}.png", "image/png", _png(rng)
        elif media.startswith("audio"):
            name, ctype, data = f"{stamp}.m4a", "audio/mp4", rng.randbytes(256)
        elif media.startswith("video"):
            name, ctype, data = f"{stamp}.mp4", "video/mp4", rng.randbytes(512)
        else:
            name, ctype, data = f"{stamp}.bin", "application/octet-stream", rng.randbytes(128)
        fill.attachments.append((name, data, ctype))
        return name

    def _summary(self, fill: _Fill) -> str:
        parts = [self.model.xform.form_id]
        if fill.first_name:
            parts.append(fill.first_name)
        for path, count in fill.repeat_counts.items():
            parts.append(f"{count}× {path.rsplit('/', 1)[-1]}")
        if fill.district:
            parts.append(fill.district)
        return ", ".join(parts)


# --- helpers -------------------------------------------------------------------------------------


def _attrs(template: Element) -> dict[str, str]:
    return {local(k): v for k, v in template.attrib.items() if local(k) != "template"}


def _walk(elem: Element, path: str, parent: Element | None = None):
    """(element, path without the root name, parent) for every element under ``elem``."""
    for child in elem:
        cpath = f"{path}/{local(child.tag)}"
        yield child, cpath, elem
        yield from _walk(child, cpath, child)


_ABS_PATH = re.compile(r"/[A-Za-z_][\w.-]*(?:/[A-Za-z_][\w.-]*)+")


def _referenced_paths(model: FormModel) -> set[str]:
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


def _itemset_dependents(model: FormModel) -> dict[str, list[Control]]:
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


def _true(expr: str | None) -> bool:
    return (expr or "").strip() in ("true()", "true", "1")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _offset(moment: datetime) -> str:
    text = moment.isoformat()
    match = re.search(r"[+-]\d\d:\d\d$", text)
    return match.group(0) if match else "Z"


def _int_range(name: str) -> tuple[float, float]:
    if "age" in name:
        return 0, 85
    if "year" in name:
        return 1950, 2026
    if any(k in name for k in ("count", "num", "size", "member", "child", "people", "person")):
        return 0, 8
    if any(k in name for k in ("month",)):
        return 0, 36
    return 0, 50


def _decimal_range(name: str) -> tuple[float, float]:
    if any(k in name for k in ("income", "amount", "wage", "salary", "remit", "sum", "cost")):
        return 100, 5000
    return 0, 100


_BOUND = re.compile(r"\.\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)")
_BOUND_REVERSED = re.compile(r"(-?\d+(?:\.\d+)?)\s*(>=|<=|>|<)\s*\.(?![\w/])")


def _bounds(constraint: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """Numeric bounds written as ``. >= 0 and . <= 120`` (the common XLSForm idiom)."""
    lo, hi = default
    if not constraint or " or " in constraint:
        return lo, hi
    found_lo = found_hi = None
    for op, num in _BOUND.findall(constraint):
        value = float(num)
        if op in (">=", ">"):
            found_lo = value + (1 if op == ">" else 0)
        else:
            found_hi = value - (1 if op == "<" else 0)
    for num, op in _BOUND_REVERSED.findall(constraint):
        value = float(num)
        if op in ("<=", "<"):
            found_lo = value + (1 if op == "<" else 0)
        else:
            found_hi = value - (1 if op == ">" else 0)
    # keep the plausible default inside the allowed range (an age of 0-85 within 0-120)
    allowed_lo = found_lo if found_lo is not None else -math.inf
    allowed_hi = found_hi if found_hi is not None else math.inf
    if allowed_lo <= hi and lo <= allowed_hi:
        return max(lo, allowed_lo), min(hi, allowed_hi)
    if found_lo is not None and found_hi is not None:
        return (found_lo, found_hi) if found_lo <= found_hi else (found_hi, found_lo)
    if found_lo is not None:
        return found_lo, found_lo + 50
    return allowed_hi - 50, allowed_hi


def _png(rng: random.Random) -> bytes:
    """A valid 4x4 PNG of one random colour: a real picture in a few dozen bytes."""
    colour = bytes(rng.randrange(256) for _ in range(3))
    raw = b"".join(b"\x00" + colour * 4 for _ in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


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
