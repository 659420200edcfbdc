"""What a published form offers for its ``district`` question, read from Central's XForm.

``enumerators add`` checks ``--district`` against it and prints district and form names,
not codes, in the language the page is for. The XForm is the one Central serves
(``GET /v1/projects/{id}/forms/{xmlFormId}.xml``), so the check holds for forms pushed by
anyone, however they were written. pyxform writes a select's choices either inline
(``<item>``) or, for translated lists, as a secondary instance (``<instance id="list">``
with ``<itextId>`` per item) read through an ``<itemset>``; labels are ``jr:itext`` ids
resolved per ``<translation lang="Tajik (tg)">``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import fromstring

_LANG_CODE = re.compile(r"\((?P<code>[A-Za-z-]+)\)\s*$")
_ITEXT = re.compile(r"jr:itext\(\s*'([^']+)'\s*\)")
_INSTANCE = re.compile(r"instance\(\s*'([^']+)'\s*\)")


@dataclass(frozen=True)
class FormChoices:
    """A form's title, default language (a code: "en") and district choices."""

    title: str
    default_language: str | None
    districts: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> lang -> label


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _code(lang: str) -> str:
    match = _LANG_CODE.search(lang)
    return match["code"].lower() if match else lang


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _first(el: Element, name: str) -> Element | None:
    return next((c for c in el.iter() if _local(c.tag) == name), None)


def _itext(root: Element) -> tuple[dict[str, dict[str, str]], str | None]:
    """itext id -> language code -> text; and the default language's code (the
    translation pyxform marks ``default="true()"``, else the first)."""
    texts: dict[str, dict[str, str]] = {}
    itext = _first(root, "itext")
    translations = _children(itext, "translation") if itext is not None else []
    for translation in translations:
        lang = _code(translation.get("lang", ""))
        for text in _children(translation, "text"):
            values = [v for v in _children(text, "value") if not v.get("form")]
            if values:
                texts.setdefault(text.get("id", ""), {})[lang] = "".join(values[0].itertext())
    marked = [_code(t.get("lang", "")) for t in translations if t.get("default")]
    every = [_code(t.get("lang", "")) for t in translations]
    return texts, (marked or every or [None])[0]


def _labels(label: Element | None, texts: dict[str, dict[str, str]]) -> dict[str, str]:
    if label is None:
        return {}
    ref = _ITEXT.search(label.get("ref", ""))
    if ref:
        return dict(texts.get(ref[1], {}))
    text = "".join(label.itertext()).strip()
    return {"": text} if text else {}


def form_choices(xform: bytes | str, question: str = "district") -> FormChoices:
    """The title, default language and the choices of ``question`` of one XForm."""
    root = fromstring(xform)
    title_el = _first(root, "title")
    title = "".join(title_el.itertext()).strip() if title_el is not None else ""
    texts, default = _itext(root)
    control = next(
        (
            el
            for el in root.iter()
            if _local(el.tag) in ("select1", "select")
            and el.get("ref", "").rstrip("/").rsplit("/", 1)[-1] == question
        ),
        None,
    )
    districts: dict[str, dict[str, str]] = {}
    if control is not None:
        for item in _children(control, "item"):
            value = _first(item, "value")
            if value is not None and (code := "".join(value.itertext()).strip()):
                districts[code] = _labels(_first(item, "label"), texts)
        itemset = next(iter(_children(control, "itemset")), None)
        if itemset is not None and (match := _INSTANCE.search(itemset.get("nodeset", ""))):
            instance = next(
                (
                    el
                    for el in root.iter()
                    if _local(el.tag) == "instance" and el.get("id") == match[1]
                ),
                None,
            )
            for item in instance.iter() if instance is not None else []:
                if _local(item.tag) != "item":
                    continue
                fields = {_local(c.tag): "".join(c.itertext()).strip() for c in item}
                if not fields.get("name"):
                    continue
                if fields.get("itextId"):
                    districts[fields["name"]] = dict(texts.get(fields["itextId"], {}))
                else:
                    districts[fields["name"]] = {"": fields.get("label", "")}
    return FormChoices(title, default, districts)


def label_in(labels: dict[str, str], language: str, fallback: str) -> str:
    """The label in ``language``, else the untranslated one, else ``fallback`` (the code)."""
    return labels.get(language) or labels.get("") or next(iter(labels.values()), "") or fallback
