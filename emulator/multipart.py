"""A fast path for the multipart bodies ODK Collect and requests send to ``/submission``.

Starlette's general parser (python-multipart, spooled temporary files) costs about as much
as storing the submission itself; Collect's bodies are plain: form-data parts with a quoted
``name``, maybe a quoted ``filename`` and a ``Content-Type``. This splits such a body on its
boundary; anything unusual (a preamble, ``filename*``, escaped quotes, a missing closing
delimiter) returns None and the caller falls back to Starlette's parser, so odd clients are
still served correctly, just slower.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"\\]*)"')
_FILENAME = re.compile(rb'\bfilename="([^"\\]*)"')


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def multipart_boundary(content_type: str) -> bytes | None:
    """The boundary a multipart Content-Type names, or None."""
    m = _BOUNDARY.search(content_type)
    return None if m is None else (m.group(1) or m.group(2)).encode("latin-1")


def split_multipart(body: bytes, content_type: str) -> list[Part] | None:
    """The parts of a plain multipart/form-data body, or None to use the general parser."""
    boundary = multipart_boundary(content_type)
    if boundary is None:
        return None
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    if len(chunks) < 3 or chunks[0] != b"" or not chunks[-1].startswith(b"--"):
        return None
    parts: list[Part] = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            return None
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            return None
        disposition = ctype = None
        for line in head.split(b"\r\n"):
            key, colon, value = line.partition(b":")
            if not colon:
                return None
            key = key.strip().lower()
            if key == b"content-disposition":
                disposition = value.strip()
            elif key == b"content-type":
                ctype = value.strip().decode("latin-1")
        if disposition is None or not disposition.lower().startswith(b"form-data"):
            return None
        if b"filename*" in disposition:
            return None
        name = _NAME.search(disposition)
        if name is None:
            return None
        filename = _FILENAME.search(disposition)
        parts.append(
            Part(
                name=name.group(1).decode("utf-8", "replace"),
                filename=filename.group(1).decode("utf-8", "replace") if filename else None,
                content_type=ctype,
                data=data,
            )
        )
    return parts
