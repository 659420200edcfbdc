"""Central's session token, cached in ``data_dir`` and tied to the credentials it came from.

A token outlives a password change: Central keeps a session until it expires (24 h,
central-backend ``lib/model/frames.js`` sessionLifetime), and pyodk's cache holds the token
alone, checking it with ``GET users/current`` (``pyodk/_endpoints/auth.py``), which a
valid token passes whatever the password now is. So a mistyped or changed
``COLLECTOR_CENTRAL_PASSWORD`` went unnoticed for up to a day, then every night's sync
failed. Here the cache also holds a fingerprint of the URL, e-mail and password the token
was got with, and a token is used only by the same three: any change logs in again at
once, where Central refuses a wrong password (401.2).

The fingerprint is scrypt with a random salt, not a plain hash: the file lives next to the
token, and a plain hash would let whoever reads it try passwords at GPU speed. The token
itself is a bearer secret, so the file is 0600 (SEC-4) and written whole (rename).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from collector.private import private_file

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # ~30 ms, 16 MB: once per login


@dataclass(frozen=True)
class Credentials:
    """What a token is got with; the password never leaves memory."""

    url: str
    email: str
    password: str = field(repr=False)

    def fingerprint(self, salt: bytes) -> str:
        secret = "\0".join((self.url.rstrip("/"), self.email.casefold(), self.password))
        return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


@dataclass(frozen=True)
class TokenCache:
    """One JSON file: ``{"token", "expires_at", "salt", "fingerprint"}``."""

    path: Path

    def read(self, credentials: Credentials) -> str | None:
        """The cached token if these credentials got it and it has not expired, else None.

        A file in another format (pyodk's TOML from an older release) reads as no token."""
        try:
            body = orjson.loads(self.path.read_bytes())
            token, salt, expected = body["token"], body["salt"], body["fingerprint"]
            expires = body.get("expires_at")
            got = credentials.fingerprint(bytes.fromhex(salt))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if not isinstance(token, str) or not hmac.compare_digest(got, str(expected)):
            return None
        if isinstance(expires, str) and _expired(expires):
            return None
        return token

    def write(self, credentials: Credentials, token: str, expires_at: str | None) -> None:
        salt = secrets.token_bytes(16)
        body = {
            "token": token,
            "expires_at": expires_at,
            "salt": salt.hex(),
            "fingerprint": credentials.fingerprint(salt),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        private_file(tmp)  # 0600 before the token reaches it
        tmp.write_bytes(orjson.dumps(body))
        os.replace(tmp, self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def _expired(expires_at: str) -> bool:
    try:
        when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= datetime.now(UTC)
