"""Refuse to send passwords, tokens and answers in clear over a network (SEC-16).

Central's password, its session token, an app user's token (inside every enumerator's QR
code) and every submission (violence and trafficking answers among them) travel between
collector, Central and the tablets. Over ``http://`` to a host beyond this machine they can
be read on the way: over a mobile network, a hotel Wi-Fi, a partner office's LAN. So a
Central URL or an enumerator server URL that is not ``https://`` is refused unless its host
is loopback (the emulator, a tunnel, a reverse proxy on the same machine), or the operator
said so explicitly with ``COLLECTOR_ALLOW_INSECURE_TRANSPORT=true`` (a closed test
network, the Compose demo profile).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from collector.errors import SettingsError

ALLOW_SETTING = "COLLECTOR_ALLOW_INSECURE_TRANSPORT"


class InsecureTransport(SettingsError, ValueError):
    """A URL that would carry secrets in clear to another machine."""


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: traffic that never leaves this machine."""
    if not host:
        return False
    host = host.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_reason(url: str) -> str | None:
    """Why ``url`` would carry secrets in clear, or None when it is safe."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "https":
        return None
    if scheme == "http" and is_loopback_host(parts.hostname):
        return None
    if scheme not in ("http", "https"):
        return f"{scheme or 'no'} scheme (want https://)"
    return f"http:// to {parts.hostname or 'no host'}, which is not this machine"


def check_transport(url: str, *, what: str, setting: str, allow_insecure: bool) -> None:
    """Raise :class:`InsecureTransport` naming ``setting`` if ``url`` is not safe.

    The message never repeats the URL's path (an app user URL carries its token there).
    """
    reason = insecure_reason(url)
    if reason is None or allow_insecure:
        return
    raise InsecureTransport(
        f"{setting}: {what} would travel in clear ({reason}); use https://, or set "
        f"{ALLOW_SETTING}=true for a closed test network"
    )
