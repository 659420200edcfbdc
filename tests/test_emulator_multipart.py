"""The fast multipart splitter reads what requests (and so pyodk and our enumerators) send,
and declines what it is not sure of, so Starlette's parser handles it instead."""

from __future__ import annotations

import requests

from emulator.multipart import split_multipart


def encoded(files: dict) -> tuple[bytes, str]:
    prepared = requests.Request("POST", "http://x/", files=files).prepare()
    return prepared.body, prepared.headers["Content-Type"]


def test_splits_what_requests_sends() -> None:
    xml = '<data id="f"><photo>фото 1.jpg</photo></data>'.encode()
    body, ctype = encoded(
        {
            "xml_submission_file": ("submission.xml", xml, "text/xml"),
            "фото 1.jpg": ("фото 1.jpg", b"\xff\xd8\r\n--not-a-boundary\r\n", "image/jpeg"),
            "b.csv": ("b.csv", b"", "text/csv"),
        }
    )
    parts = split_multipart(body, ctype)
    assert parts is not None
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("xml_submission_file", "submission.xml", "text/xml"),
        ("фото 1.jpg", "фото 1.jpg", "image/jpeg"),
        ("b.csv", "b.csv", "text/csv"),
    ]
    assert parts[0].data == xml
    assert parts[1].data == b"\xff\xd8\r\n--not-a-boundary\r\n"
    assert parts[2].data == b""


def test_declines_what_it_is_not_sure_of() -> None:
    body, ctype = encoded({"xml_submission_file": ("s.xml", b"<a/>", "text/xml")})
    assert split_multipart(b"preamble\r\n" + body, ctype) is None
    assert split_multipart(body[:-10], ctype) is None  # no closing delimiter
    assert split_multipart(body, "multipart/form-data") is None  # no boundary
    odd = body.replace(b'filename="s.xml"', b"filename*=UTF-8''s.xml")
    assert split_multipart(odd, ctype) is None
