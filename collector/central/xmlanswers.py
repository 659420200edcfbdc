"""A submission's XML as the object Central's OData would make of it. Pure: no I/O.

Central's OData renders every submission with its form's *current* fields
(central-backend lib/resources/odata.js reads ``form.def``'s fields; lib/data/odata.js
``generateDataFrame``), so an answer to a question a later version removed is missing
from the row, while the submission's XML (``GET .../submissions/{id}.xml``) keeps every
answer it was sent with. :func:`answers_from_xml` reads that XML into the same nested
shape (groups as objects, repeats as lists, names cleaned as OData cleans them), and
:func:`fill_missing` adds to an OData row only what the row lacks: a key present, null
or not, is Central's word and stays.

Values stay text, as in the XML; the store's converters read numbers, booleans, dates
and ODK's ``lat lon alt acc`` geopoints from text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from typing import Any


def odata_name(name: str) -> str:
    """A name as Central's OData cleans it (central-backend lib/util/util.js
    ``sanitizeOdataIdentifier``): a leading character other than a letter or ``_``
    gets ``_`` before it, then every run of other characters becomes one ``_``."""
    name = re.sub(r"^([^a-zA-Z_])", r"_\1", name)
    return re.sub(r"[^a-zA-Z0-9_]+", "_", name)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def answers_from_xml(xml: str | bytes, repeat_paths: Collection[str]) -> dict[str, Any]:
    """The answers of a submission's XML, shaped as an OData row's (no ``__id``/``__system``).

    ``repeat_paths`` are the OData paths (``/group/repeat``) of repeats: their elements
    become lists of objects, as ``$expand=*`` gives them."""
    root = ET.fromstring(xml)  # noqa: S314 (expat >= 2.4.1 refuses entity bombs; no DTD fetch)
    return _element_object(root, "", set(repeat_paths))


def _element_object(element: ET.Element, path: str, repeats: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = odata_name(_local(child.tag))
        child_path = f"{path}/{name}"
        if len(child):
            value: Any = _element_object(child, child_path, repeats)
        else:
            value = child.text if child.text else None
        if child_path in repeats:
            if not isinstance(value, dict):
                value = {}
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def fill_missing(row: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with what ``answers`` holds that the row lacks (never replacing)."""
    out = dict(row)
    for key, value in answers.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = fill_missing(out[key], value)
        elif isinstance(out[key], list) and isinstance(value, list):
            out[key] = [
                fill_missing(a, b) if isinstance(a, dict) and isinstance(b, dict) else a
                for a, b in zip(out[key], value, strict=False)
            ] + out[key][len(value) :]
    return out
