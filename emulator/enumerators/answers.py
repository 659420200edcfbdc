"""Answers of the right type for one question, as an enumerator in Tajikistan would give
them: numbers inside the constraint's bounds (and plausible for the question's name),
dates on the right side of today, geopoints near the chosen district, names, phones and
codes that pass ``regex()`` constraints, and small real media files for uploads.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import struct
import zlib
from datetime import datetime, timedelta

from emulator.enumerators import tajik
from emulator.enumerators.regexgen import constraint_pattern, string_matching


def collect_time(moment: datetime) -> str:
    """Collect's timestamp format: ``2026-03-02T08:15:23.412+05:00``."""
    return moment.isoformat(timespec="milliseconds")


def typed_answer(
    rng: random.Random,
    name: str,
    btype: str,
    constraint: str | None,
    now: datetime,
    centre: tuple[float, float, float] | None,
    district: str | None,
) -> str:
    """An answer for a question of bind type ``btype`` named ``name`` (lower case)."""
    if btype == "int":
        lo, hi = _bounds(constraint, _int_range(name))
        low, high = math.ceil(lo), math.floor(hi)
        if low > high:
            return str(int(lo))
        if "age" in name:  # more young people than old, as in Tajikistan
            return str(round(rng.triangular(low, high, low + (high - low) * 0.25)))
        return str(rng.randint(low, high))
    if btype == "decimal":
        lo, hi = _bounds(constraint, _decimal_range(name))
        return number_text(round(rng.uniform(lo, hi), 2))
    if btype == "date":
        compact = re.sub(r"\s+", "", constraint or "")
        if ">=today()" in compact or ">today()" in compact or "follow" in name:
            day = now.date() + timedelta(days=rng.randint(1, 60))
        elif "birth" in name or "dob" in name:
            day = now.date() - timedelta(days=rng.randint(365, 365 * 80))
        else:
            day = now.date() - timedelta(days=rng.randint(0, 365))
        return day.isoformat()
    if btype == "dateTime":
        return collect_time(now - timedelta(minutes=rng.randint(0, 60 * 24 * 30)))
    if btype == "time":
        return f"{rng.randint(7, 19):02d}:{rng.randint(0, 59):02d}:00.000{_offset(now)}"
    if btype == "geopoint":
        return "{} {} {} {}".format(*tajik.point_near(rng, centre))
    if btype in ("geotrace", "geoshape"):
        start = tajik.point_near(rng, centre)
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
    pattern = constraint_pattern(constraint)
    if btype == "barcode":
        text = "".join(rng.choice("0123456789") for _ in range(12))
    else:
        text = text_answer(rng, name, district)
    if pattern is not None and not re.search(pattern, text):
        digits = re.sub(r"\D", "", text)
        for candidate in (digits, digits[-9:]):  # "+992 93 123 4567" typed as the form wants
            if candidate and re.search(pattern, candidate):
                return candidate
        with contextlib.suppress(ValueError, re.error):
            text = string_matching(pattern, rng)  # what the constraint lets through
    return text


def text_answer(rng: random.Random, name: str, district: str | None) -> str:
    """Free text chosen by what the question's name suggests."""
    if "name" in name or name in ("respondent", "head", "interviewee"):
        return tajik.full_name(rng)
    if "phone" in name or "tel" in name or "mobile" in name:
        return tajik.phone(rng)
    if name.endswith("_id") or "code" in name:
        return f"{rng.choice(['HH', 'DU', 'KH', 'SU'])}-{rng.randint(1000, 99999):05d}"
    if "email" in name:
        return f"user{rng.randint(1, 999)}@example.org"
    if any(k in name for k in ("village", "city", "address", "town", "place")):
        return tajik.village(rng, district)
    return tajik.phrase(rng)


def media_file(rng: random.Random, mediatype: str, now: datetime) -> tuple[str, bytes, str]:
    """(file name, content, content type) of what the device's camera/recorder made;
    Collect names files by the time in milliseconds."""
    stamp = int(now.timestamp() * 1000) + rng.randint(0, 999_999)
    media = mediatype or "image/*"
    if media.startswith("image"):
        return f"{stamp}.png", _png(rng), "image/png"
    if media.startswith("audio"):
        return f"{stamp}.m4a", rng.randbytes(256), "audio/mp4"
    if media.startswith("video"):
        return f"{stamp}.mp4", rng.randbytes(512), "video/mp4"
    return f"{stamp}.bin", rng.randbytes(128), "application/octet-stream"


def number_text(value: float) -> str:
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
_FLIPPED = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}


def _bounds(constraint: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """Numeric bounds written as ``. >= 0 and . <= 120`` (the common XLSForm idiom)."""
    lo, hi = default
    if not constraint or " or " in constraint:
        return lo, hi
    found_lo = found_hi = None
    # ". >= 5" and "5 <= ." say the same: read the reversed form with its operator flipped
    bounds = _BOUND.findall(constraint) + [
        (_FLIPPED[op], num) for num, op in _BOUND_REVERSED.findall(constraint)
    ]
    for op, num in bounds:
        value = float(num)
        if op in (">=", ">"):
            found_lo = value + (1 if op == ">" else 0)
        else:
            found_hi = value - (1 if op == "<" else 0)
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
