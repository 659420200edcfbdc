"""collector.central reads bodies as Central's nginx sends them: gzip, chunked, cut short.

Central's nginx (getodk/central files/nginx/odk.conf.template) has ``gzip on`` for
``application/json`` bodies of 1,280 bytes or more and ``proxy_buffering off``, so OData
pages reach a client gzip-compressed in chunked transfer encoding. The emulator answers
plainly, so this server (the standard library's, on loopback) answers as nginx does.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from collector.central import Central, CentralUnavailable
from collector.settings import Settings

ROWS = [{"__id": f"uuid:{i}", "name": "Зарина " * 20, "age": i} for i in range(300)]


@dataclass
class Plan:
    """What the server does to the next Submissions answers (popped one per request)."""

    cut_short: list[bool] = field(default_factory=list)
    served: int = 0
    get_ports: set[int] = field(default_factory=set)  # client ports the GETs came from


def _handler(plan: Plan) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _chunked_gzip(self, body: bytes, *, cut: bool) -> None:
            data = gzip.compress(body, compresslevel=1)
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Vary", "Accept-Encoding")
            self.end_headers()
            pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]
            if cut:  # half the chunks, then the connection goes
                for piece in pieces[: len(pieces) // 2]:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                self.close_connection = True
                return
            for piece in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

        def do_POST(self) -> None:  # /v1/sessions: pyodk's login
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"token": "t" * 64, "expiresAt": "2099-01-01T00:00:00.000Z"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self) -> None:
            assert "gzip" in (self.headers.get("Accept-Encoding") or "")
            plan.get_ports.add(self.client_address[1])
            cut = plan.cut_short.pop(0) if plan.cut_short else False
            if not cut:
                plan.served += 1
            body = {"@odata.context": "x", "value": ROWS}
            self._chunked_gzip(json.dumps(body, ensure_ascii=False).encode(), cut=cut)

    return Handler


@pytest.fixture
def nginx_like() -> Iterator[tuple[str, Plan]]:
    plan = Plan()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(plan))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", plan
    server.shutdown()
    server.server_close()


def settings_for(url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        central_url=url,
        central_email="a@example.org",
        central_password=SecretStr("secret-password"),
        central_project_id=1,
        data_dir=tmp_path / "data",
        central_timeout=5,
        central_retries=2,
        **extra,
    )


def test_gzip_chunked_page_is_read_whole_and_decoded(nginx_like, tmp_path) -> None:
    url, plan = nginx_like
    with Central(settings_for(url, tmp_path)) as c:
        (page,) = list(c.odata_pages("f", {"$top": "1000"}))
        again = c.odata_page("projects/1/forms/f.svc/Submissions", {})
    assert page["value"] == ROWS and again["value"] == ROWS
    assert plan.served == 2 and len(plan.get_ports) == 1  # one connection, kept and reused


def test_gzip_body_cut_mid_stream_is_retried(nginx_like, tmp_path) -> None:
    url, plan = nginx_like
    plan.cut_short = [True]
    with Central(settings_for(url, tmp_path)) as c:
        (page,) = list(c.odata_pages("f", {}))
    assert page["value"] == ROWS and plan.served == 1


def test_gzip_body_cut_every_time_is_unavailable(nginx_like, tmp_path) -> None:
    url, plan = nginx_like
    plan.cut_short = [True] * 3
    with Central(settings_for(url, tmp_path)) as c, pytest.raises(CentralUnavailable) as err:
        list(c.odata_pages("f", {}))
    assert "connection failed" in str(err.value)
