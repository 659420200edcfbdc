"""Enumerators: one Central app user each, set up on a tablet with one scan.

An enumerator is an ODK Central *app user* (Central calls it a "field key"): a token that
ODK Collect carries in its server URL, ``<central>/v1/key/<token>/projects/<id>``. This
module creates or reuses those app users, gives them access to the project's forms, and
writes for each one the Collect settings QR code exactly as Central's own web page builds it
(see :func:`collect_settings`), plus one printable page for training days.

The token is a password: it lives only in Central and in the files written here (the PNG and
the printable page, created readable by their owner only). It is never logged, printed,
stored in our database, or put into an exception message. Our store keeps the app user's id,
display name and district, nothing more.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import segno
from sqlalchemy.engine import Engine

from collector import store
from collector.central import (
    AppUser,
    Central,
    app_users,
    assign_form_to_app_user,
    create_app_user,
    form_app_user_ids,
    project_name,
    revoke_app_user,
)
from collector.errors import CollectorError
from collector.transport import InsecureTransport, check_transport

log = logging.getLogger(__name__)

#: Collect's UI languages do not include Tajik (getodk/collect strings/src/main/res has
#: values-ru but no values-tg), so tablets default to Russian. The *form* language is not a
#: Collect setting at all (docs.getodk.org/collect-filling-forms: "separate from the Collect
#: application language"): it comes from the XLSForm's ``default_language``.
DEFAULT_APP_LANGUAGE = "ru"

#: Central's "Managed QR Code" settings (central-frontend
#: src/components/field-key/qr-panel.vue): Collect mirrors exactly the forms the app user
#: may see, applies updates itself, and sends finalized forms as soon as any network appears.
FORM_UPDATE_MODE = "match_exactly"
AUTOSEND = "wifi_and_cellular"


class EnumeratorError(CollectorError):
    """Something about an enumerator could not be done; the message says what and whom."""


class NoSuchEnumerator(EnumeratorError):
    """No active app user has that display name in the project."""


# --- the Collect settings QR code ---------------------------------------------------------


def app_user_server_url(central_url: str, token: str, project_id: int) -> str:
    """The server URL Collect uses for an app user, as Central builds it.

    central-frontend src/util/request.js ``apiPaths.serverUrlForFieldKey``:
    ``/v1/key/${token}/projects/${projectId}``, prefixed with the page's origin.
    """
    return f"{central_url.rstrip('/')}/v1/key/{token}/projects/{project_id}"


def collect_settings(
    server_url: str, project_name: str, *, app_language: str | None = DEFAULT_APP_LANGUAGE
) -> dict:
    """The settings JSON of a managed Collect QR code, in Central's key order.

    Copied from central-frontend src/components/field-key/qr-panel.vue (``settings()``):
    ``{general: {server_url, form_update_mode: 'match_exactly', autosend:
    'wifi_and_cellular'}, project: {name}, admin: {}}``; "Collect requires the settings to
    have an `admin` property". ``app_language`` (getodk/collect ProjectKeys.KEY_APP_LANGUAGE)
    is our one addition, so a new tablet starts in a language the enumerator reads.
    """
    general: dict[str, str] = {
        "server_url": server_url,
        "form_update_mode": FORM_UPDATE_MODE,
        "autosend": AUTOSEND,
    }
    if app_language:
        general["app_language"] = app_language
    return {"general": general, "project": {"name": project_name}, "admin": {}}


def collect_settings_payload(settings: dict) -> str:
    """The text inside the QR code: base64 of the zlib-deflated JSON.

    central-frontend src/components/collect-qr.vue:
    ``btoa(pako.deflate(JSON.stringify(settings), {to: 'string'}))``. ``JSON.stringify``
    writes no spaces and leaves non-ASCII as is (pako deflates its UTF-8); ``pako.deflate``
    writes a zlib stream (header + adler32), which is what :func:`zlib.compress` writes.
    """
    text = json.dumps(settings, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(zlib.compress(text.encode("utf-8"))).decode("ascii")


def settings_from_payload(payload: str) -> dict:
    """Read a QR code's text back into the settings (what Collect does when it scans)."""
    return json.loads(zlib.decompress(base64.b64decode(payload)).decode("utf-8"))


def qr_png_bytes(payload: str, *, scale: int = 6) -> bytes:
    """A PNG of the QR code, error correction L as Central uses (``error-correction-level="L"``).

    segno may raise the error correction level when that fits in the same symbol size,
    which only makes a printed code easier to scan.
    """
    import io

    buffer = io.BytesIO()
    segno.make(payload, error="l", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read: it carries an app user's token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC


def file_stem(name: str) -> str:
    """A file name for an enumerator: letters (any script), digits, '-' and '_' only."""
    stem = re.sub(r"[^\w-]+", "_", name.strip(), flags=re.UNICODE).strip("_")
    return stem or "enumerator"


# --- the printable page ---------------------------------------------------------------------


@dataclass(frozen=True)
class EnumeratorCode:
    """What goes on one enumerator's card of the printable page. Holds no token itself."""

    name: str
    app_user_id: int
    district: str | None
    forms: tuple[str, ...]
    png: bytes = field(repr=False)  # the QR code image: carries the token, never printed
    reused: bool = False


def training_page_html(codes: Sequence[EnumeratorCode], *, project_name: str) -> str:
    """One printable HTML page, a card per enumerator: name, district, forms, QR code.

    Self-contained (images inline), so it can be printed or copied to a training laptop
    as one file; A4 in print, two cards a row, no card split across pages.
    """
    today = datetime.now(UTC).date().isoformat()
    cards = []
    for code in codes:
        image = base64.b64encode(code.png).decode("ascii")
        district = f"<p class='district'>{html.escape(code.district)}</p>" if code.district else ""
        forms = ", ".join(html.escape(f) for f in code.forms) or "—"
        cards.append(
            "<section class='card'>"
            f"<h2>{html.escape(code.name)}</h2>{district}"
            f"<img alt='Collect settings QR code for {html.escape(code.name)}' "
            f"src='data:image/png;base64,{image}'>"
            f"<p class='forms'>Forms: {forms}</p>"
            "<p class='how'>ODK Collect → Configure with QR code → scan.</p>"
            "</section>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(project_name)}: enumerator codes {today}</title>
<style>
  @page {{ size: A4; margin: 12mm; }}
  body {{ font-family: sans-serif; margin: 0; }}
  header {{ margin-bottom: 6mm; }}
  .warning {{ color: #a00; font-weight: bold; }}
  .cards {{ display: grid; grid-template-columns: 1fr 1fr; gap: 6mm; }}
  .card {{ border: 1px solid #888; border-radius: 3mm; padding: 4mm; text-align: center;
           break-inside: avoid; page-break-inside: avoid; }}
  .card h2 {{ margin: 0 0 1mm; font-size: 14pt; }}
  .card img {{ width: 60mm; height: 60mm; image-rendering: pixelated; }}
  .district, .forms, .how {{ margin: 1mm 0; font-size: 10pt; }}
</style></head>
<body>
<header>
  <h1>{html.escape(project_name)}: tablet set-up codes</h1>
  <p>{len(codes)} enumerator(s), printed {today}.
  <span class="warning">Each code is a password to the project's forms: hand it only to its
  enumerator, and destroy this page after the training.</span></p>
</header>
<div class="cards">
{"".join(cards)}
</div>
</body></html>
"""


def write_enumerator_files(
    codes: Iterable[EnumeratorCode], out_dir: Path, *, project_name: str
) -> tuple[list[Path], Path]:
    """Write one PNG per enumerator and the printable page; return their paths."""
    codes = list(codes)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    pngs = []
    for code in codes:
        path = out_dir / f"{file_stem(code.name)}-{code.app_user_id}.png"
        _write_private(path, code.png)
        pngs.append(path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    page = out_dir / f"training-page-{stamp}.html"
    _write_private(page, training_page_html(codes, project_name=project_name).encode("utf-8"))
    return pngs, page


# --- add, list, revoke -----------------------------------------------------------------------


@dataclass(frozen=True)
class AddedEnumerators:
    """What ``add_enumerators`` did: a card per name, the files written."""

    codes: list[EnumeratorCode]
    pngs: list[Path]
    page: Path
    project_name: str


@dataclass(frozen=True)
class EnumeratorInfo:
    """One enumerator as ``collector enumerators list`` shows it (no token)."""

    app_user_id: int
    name: str
    district: str | None
    active: bool
    forms: tuple[str, ...]
    created_at: str


def published_form_ids(central: Central, project_id: int) -> list[str]:
    """The project's published forms (a draft-only form has ``publishedAt`` null)."""
    return sorted(f["xmlFormId"] for f in central.forms(project_id) if f.get("publishedAt"))


def _clean_names(names: Iterable[str]) -> list[str]:
    """Names stripped, blanks refused, duplicates within one command dropped (order kept)."""
    seen: dict[str, None] = {}
    for raw in names:
        name = " ".join(raw.split())
        if not name:
            raise EnumeratorError("an enumerator name is empty")
        seen.setdefault(name, None)
    if not seen:
        raise EnumeratorError("no enumerator names given")
    return list(seen)


def add_enumerators(
    central: Central,
    engine: Engine,
    names: Iterable[str],
    *,
    out_dir: Path,
    district: str | None = None,
    forms: Sequence[str] | None = None,
    project_id: int | None = None,
) -> AddedEnumerators:
    """Create (or reuse) one app user per name, give it the forms, write its QR code.

    An active app user with the same display name is reused, so running the command twice
    makes no second account (and re-prints the same code). ``forms`` defaults to every
    published form of the project; a named form that is not published is an error.
    """
    settings = central.settings
    pid = project_id or central.project_id
    wanted = _clean_names(names)
    base_url = settings.enumerator_server_url or settings.central_url
    try:  # before any app user exists: its token would go into the QR code, and over it
        check_transport(
            base_url,
            what="the app users' tokens and every submission from the tablets",
            setting="COLLECTOR_ENUMERATOR_SERVER_URL"
            if settings.enumerator_server_url
            else "COLLECTOR_CENTRAL_URL",
            allow_insecure=settings.allow_insecure_transport,
        )
    except InsecureTransport as err:
        raise EnumeratorError(str(err)) from None
    published = published_form_ids(central, pid)
    if forms:
        target = list(dict.fromkeys(f.strip() for f in forms if f.strip()))
        unknown = [f for f in target if f not in published]
        if unknown:
            raise EnumeratorError(
                f"not published in project {pid}: {', '.join(unknown)} "
                f"(published: {', '.join(published) or 'none'})"
            )
    else:
        target = published
    if not target:
        raise EnumeratorError(f"project {pid} has no published form to give enumerators")

    existing: dict[str, AppUser] = {}
    for user in sorted(app_users(central, pid), key=lambda u: u.id):
        if user.active:
            existing.setdefault(user.display_name, user)
    pname = project_name(central, pid)

    codes = []
    for name in wanted:
        user = existing.get(name)
        reused = user is not None
        if user is None:
            user = create_app_user(central, name, pid)
        if user.token is None:  # Central always answers a new app user with its token
            raise EnumeratorError(f"Central gave no token for app user {user.id} ({name!r})")
        for form_id in target:
            assign_form_to_app_user(central, form_id, user.id, pid)
        store.save_enumerator(
            engine, project_id=pid, app_user_id=user.id, display_name=name, district=district
        )
        settings_json = collect_settings(
            app_user_server_url(base_url, user.token, pid),
            pname,
            app_language=settings.enumerator_app_language or None,
        )
        png = qr_png_bytes(collect_settings_payload(settings_json))
        codes.append(EnumeratorCode(name, user.id, district, tuple(target), png, reused))
        log.info(
            "enumerator %r: app user %d %s, %d form(s)",
            name,
            user.id,
            "reused" if reused else "created",
            len(target),
        )
    pngs, page = write_enumerator_files(codes, out_dir, project_name=pname)
    return AddedEnumerators(codes=codes, pngs=pngs, page=page, project_name=pname)


def list_enumerators(
    central: Central, engine: Engine, *, project_id: int | None = None
) -> list[EnumeratorInfo]:
    """Every app user of the project, active or revoked, with its forms and our district."""
    pid = project_id or central.project_id
    users = app_users(central, pid)
    forms_of: dict[int, list[str]] = {u.id: [] for u in users}
    for form_id in published_form_ids(central, pid):
        for uid in form_app_user_ids(central, form_id, pid):
            forms_of.setdefault(uid, []).append(form_id)
    districts = {e.app_user_id: e.district for e in store.enumerators(engine, project_id=pid)}
    return [
        EnumeratorInfo(
            app_user_id=u.id,
            name=u.display_name,
            district=districts.get(u.id),
            active=u.active,
            forms=tuple(forms_of.get(u.id, ())),
            created_at=u.created_at,
        )
        for u in sorted(users, key=lambda u: (u.display_name.casefold(), u.id))
    ]


def revoke_enumerator(
    central: Central, engine: Engine, name: str, *, project_id: int | None = None
) -> list[int]:
    """Revoke every active app user with this display name; return their ids.

    Central stops accepting the token at once (its QR code stops working); submissions
    already sent stay, attributed to the enumerator.
    """
    pid = project_id or central.project_id
    wanted = " ".join(name.split())
    users = [u for u in app_users(central, pid) if u.active and u.display_name == wanted]
    if not users:
        raise NoSuchEnumerator(f"no active enumerator named {wanted!r} in project {pid}")
    now = datetime.now(UTC)
    for user in users:
        revoke_app_user(central, user)
        store.mark_enumerator_revoked(engine, project_id=pid, app_user_id=user.id, at=now)
        log.info("enumerator %r: app user %d revoked", wanted, user.id)
    return [u.id for u in users]
