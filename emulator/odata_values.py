"""XML answer text as Central's OData writes the value: numbers with JavaScript's
parseInt/parseFloat/JSON.stringify semantics, geo answers as GeoJSON, dateTimes as given.

Copied from central-backend lib/data/odata.js (the per-type conversions of
``submissionToOData``); golden 35/36 show the geo shapes.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

_INT_RE = re.compile(r"\s*([+-]?[0-9]+)")
_FLOAT_RE = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity)")


def js_number(value: float) -> int | float | None:
    """A double as JSON.stringify prints it: integral values without ".0"; NaN/inf null."""
    if math.isnan(value) or math.isinf(value):
        return None
    if value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def parse_int(text: str) -> int | None:
    """JavaScript ``parseInt(text, 10)``: the leading integer, else NaN (JSON null)."""
    match = _INT_RE.match(text)
    if not match:
        return None
    # parseInt yields a double: beyond 2**53 digits are lost, beyond ~1.8e308 it is Infinity
    # (JSON null); an answer beyond 64 bits is stored and served, never a 500 (the real Central
    # serves 123456789012345678901234567890 as 1.2345678901234568e+29).
    try:
        number = js_number(float(int(match.group(1))))
    except OverflowError:
        return None
    if isinstance(number, int) and not -(2**63) <= number < 2**63:
        return float(number)  # orjson writes 64-bit integers only
    return number


def parse_float(text: str) -> float | int | None:
    """JavaScript ``parseFloat``: the leading decimal literal, else NaN (JSON null)."""
    match = _FLOAT_RE.match(text)
    if not match:
        return None
    token = match.group(1)
    if token.endswith("Infinity"):
        return None
    return js_number(float(token))


def js_str(value: int | float) -> str:
    """JavaScript ``String(number)``, for WKT text."""
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exp = text.split("e")
    exponent = int(exp)
    if -7 < exponent < 21:  # JS prints 1e-6 .. 1e21 positionally, others as 1e-7
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def geopoint(text: str) -> dict[str, Any] | None:
    parts = re.split(r"\s+", text)
    if len(parts) < 2:
        return None
    lat, lon = parse_float(parts[0]), parse_float(parts[1])
    if lat is None or lon is None:
        return None
    coords: list[Any] = [lon, lat]
    if len(parts) > 2:
        alt = parse_float(parts[2])
        if alt is not None:
            coords.append(alt)
    point: dict[str, Any] = {"type": "Point", "coordinates": coords}
    if len(parts) > 3:
        acc = parse_float(parts[3])
        if acc is not None:
            point["properties"] = {"accuracy": acc}
    return point


def geoline(text: str, shape: bool) -> dict[str, Any] | None:
    pieces = re.split(r"; ?", text)
    coords: list[list[Any]] = []
    accuracies: list[Any] = []
    for piece in pieces:
        parts = re.split(r"\s+", piece)
        if len(parts) < 2:
            if len(pieces) == 1:
                return None
            continue
        lat, lon = parse_float(parts[0]), parse_float(parts[1])
        if lat is None or lon is None:
            continue
        point: list[Any] = [lon, lat]
        if len(parts) > 2:
            alt = parse_float(parts[2])
            if alt is not None:
                point.append(alt)
        coords.append(point)
        acc = parse_float(parts[3]) if len(parts) > 3 else None
        accuracies.append(acc or None)  # JS `accuracy || null`
    value: dict[str, Any] = (
        {"type": "Polygon", "coordinates": [coords]}
        if shape
        else {"type": "LineString", "coordinates": coords}
    )
    if any(a is not None for a in accuracies):
        value["properties"] = {"accuracies": accuracies}
    return value


def odata_datetime(text: str) -> str:
    trimmed = text.strip()
    # Collect writes "+07" where specs want "+07:00" (lib/data/odata.js)
    if re.search(r"[+-]\d\d$", trimmed):
        return trimmed + ":00"
    return trimmed
