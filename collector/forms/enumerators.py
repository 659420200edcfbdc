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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

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
from collector.forms.choices import FormChoices, form_choices, label_in
from collector.transport import InsecureTransport, check_transport, is_loopback_host

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
    district_label: str | None = None  # the district's name in the page's language
    form_titles: tuple[str, ...] = ()  # the forms' titles, in the order of ``forms``


PAGE_LANGUAGES = ("en", "tg", "ru")
"""The languages the printable page is written in (the programme's)."""

# What the page says, per language. Tajik and Russian as the programme's trainers write
# them; "ODK Collect" and the menu names are Collect's own (its Russian interface; Collect
# has no Tajik one, so the Tajik page names the Russian menu items).
PAGE_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "tablet set-up codes",
        "count": "{n} enumerator(s), printed {date}.",
        "warning": "Each code is a password to the project's forms: hand it only to its "
        "enumerator, and destroy this page after the training.",
        "district": "District",
        "forms": "Forms",
        "how": "ODK Collect → Configure with QR code → scan.",
        "local": "These codes point to {host}, which only this computer can reach: "
        "no tablet can send with them. For a test on this machine only.",
    },
    "tg": {
        "title": "рамзҳои танзими планшет",
        "count": "{n} пурсишгар, чоп шуд {date}.",
        "warning": "Ҳар рамз рамзи махфӣ ба шаклҳои лоиҳа аст: онро танҳо ба пурсишгари худаш "
        "диҳед ва пас аз омӯзиш ин саҳифаро нест кунед.",
        "district": "Ноҳия",
        "forms": "Шаклҳо",
        "how": "ODK Collect → «Настроить с помощью QR-кода» → скан кунед.",
        "local": "Ин рамзҳо ба {host} ишора мекунанд, ки танҳо ин компютер ба он дастрас "
        "аст: ҳеҷ планшет бо онҳо фиристода наметавонад. Танҳо барои санҷиш.",
    },
    "ru": {
        "title": "коды настройки планшетов",
        "count": "Счётчиков: {n}, напечатано {date}.",
        "warning": "Каждый код — это пароль к формам проекта: отдавайте его только его "
        "счётчику и уничтожьте эту страницу после обучения.",
        "district": "Район",
        "forms": "Формы",
        "how": "ODK Collect → «Настроить с помощью QR-кода» → сканировать.",
        "local": "Эти коды указывают на {host}, доступный только с этого компьютера: "
        "планшеты не смогут отправлять данные. Только для проверки.",
    },
}


def training_page_html(
    codes: Sequence[EnumeratorCode],
    *,
    project_name: str,
    language: str = "en",
    local_host: str | None = None,
) -> str:
    """One printable HTML page, a card per enumerator: name, district, forms, QR code.

    Written in ``language`` (en, tg or ru), with district and form names in it, not codes.
    Self-contained (images inline), so it can be printed or copied to a training laptop
    as one file; A4 in print, two cards a row, no card split across pages. ``local_host``:
    the codes point at this machine (``--allow-local``), which the page says loudly.
    """
    t = PAGE_TEXTS.get(language, PAGE_TEXTS["en"])
    today = datetime.now(UTC).date().isoformat()
    cards = []
    for code in codes:
        image = base64.b64encode(code.png).decode("ascii")
        district_name = code.district_label or code.district
        district = (
            f"<p class='district'>{html.escape(t['district'])}: {html.escape(district_name)}</p>"
            if district_name
            else ""
        )
        names = code.form_titles or code.forms
        forms = ", ".join(html.escape(f) for f in names) or "—"
        cards.append(
            "<section class='card'>"
            f"<h2>{html.escape(code.name)}</h2>{district}"
            f"<img alt='QR: {html.escape(code.name)}' "
            f"src='data:image/png;base64,{image}'>"
            f"<p class='forms'>{html.escape(t['forms'])}: {forms}</p>"
            f"<p class='how'>{html.escape(t['how'])}</p>"
            "</section>"
        )
    local = (
        f"<p class='local'>{html.escape(t['local'].format(host=local_host))}</p>"
        if local_host
        else ""
    )
    count = html.escape(t["count"].format(n=len(codes), date=today))
    return f"""<!doctype html>
<html lang="{html.escape(language)}"><head><meta charset="utf-8">
<title>{html.escape(project_name)}: {html.escape(t["title"])} {today}</title>
<style>
  @page {{ size: A4; margin: 12mm; }}
  body {{ font-family: sans-serif; margin: 0; }}
  header {{ margin-bottom: 6mm; }}
  .warning {{ color: #a00; font-weight: bold; }}
  .local {{ color: #fff; background: #a00; font-size: 16pt; padding: 3mm; }}
  .cards {{ display: grid; grid-template-columns: 1fr 1fr; gap: 6mm; }}
  .card {{ border: 1px solid #888; border-radius: 3mm; padding: 4mm; text-align: center;
           break-inside: avoid; page-break-inside: avoid; }}
  .card h2 {{ margin: 0 0 1mm; font-size: 14pt; }}
  .card img {{ width: 60mm; height: 60mm; image-rendering: pixelated; }}
  .district, .forms, .how {{ margin: 1mm 0; font-size: 10pt; }}
</style></head>
<body>
<header>
  <h1>{html.escape(project_name)}: {html.escape(t["title"])}</h1>
  {local}
  <p>{count}
  <span class="warning">{html.escape(t["warning"])}</span></p>
</header>
<div class="cards">
{"".join(cards)}
</div>
</body></html>
"""


def write_enumerator_files(
    codes: Iterable[EnumeratorCode],
    out_dir: Path,
    *,
    project_name: str,
    language: str = "en",
    local_host: str | None = None,
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
    text = training_page_html(
        codes, project_name=project_name, language=language, local_host=local_host
    )
    _write_private(page, text.encode("utf-8"))
    return pngs, page


# --- add, list, revoke -----------------------------------------------------------------------


@dataclass(frozen=True)
class AddedEnumerators:
    """What ``add_enumerators`` did: a card per name, the files written."""

    codes: list[EnumeratorCode]
    pngs: list[Path]
    page: Path
    project_name: str
    language: str = "en"
    warnings: tuple[str, ...] = ()  # said loudly by the command (a code tablets cannot use)


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
    allow_local: bool = False,
    language: str | None = None,
) -> AddedEnumerators:
    """Create (or reuse) one app user per name, give it the forms, write its QR code.

    An active app user with the same display name is reused, so running the command twice
    makes no second account (and re-prints the same code). ``forms`` defaults to every
    published form of the project; a named form that is not published is an error.
    A server URL only this machine reaches (loopback, ``localhost``) is refused, since no
    tablet could use the code, unless ``allow_local`` (then a warning, on the page too).
    ``district`` must be a choice (code or name) of the forms' ``district`` question. The
    page is in ``language`` (en, tg, ru; default the first form's default language).
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
    if language is not None and language not in PAGE_LANGUAGES:
        raise EnumeratorError(
            f"no page in language {language!r}: use one of {', '.join(PAGE_LANGUAGES)}"
        )
    local_host = _local_host(base_url)
    warnings: list[str] = []
    if local_host:
        setting = (
            "COLLECTOR_ENUMERATOR_SERVER_URL"
            if settings.enumerator_server_url
            else "COLLECTOR_CENTRAL_URL"
        )
        problem = (
            f"the QR codes would point at {local_host} ({setting}), which only this machine "
            "can reach: no tablet could send with them"
        )
        if not allow_local:
            raise EnumeratorError(
                f"{problem}. Set COLLECTOR_ENUMERATOR_SERVER_URL to Central's address as "
                "tablets reach it (e.g. https://central.example.org), or pass --allow-local "
                "for a test on this machine"
            )
        warnings.append(f"WARNING: {problem} (--allow-local)")
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

    about = {form_id: _form_choices(central, pid, form_id) for form_id in target}
    district = _checked_district(district, about)
    page_language = language or next(
        (c.default_language for c in about.values() if c.default_language in PAGE_LANGUAGES),
        "en",
    )
    district_label = _district_label(district, about, page_language)
    titles = tuple(about[f].title or f for f in target)

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
        codes.append(
            EnumeratorCode(
                name, user.id, district, tuple(target), png, reused, district_label, titles
            )
        )
        log.info(
            "enumerator %r: app user %d %s, %d form(s)",
            name,
            user.id,
            "reused" if reused else "created",
            len(target),
        )
    pngs, page = write_enumerator_files(
        codes, out_dir, project_name=pname, language=page_language, local_host=local_host
    )
    return AddedEnumerators(
        codes=codes,
        pngs=pngs,
        page=page,
        project_name=pname,
        language=page_language,
        warnings=tuple(warnings),
    )


def _local_host(url: str) -> str | None:
    """The host of ``url`` if only this machine can reach it (loopback, localhost, or
    the any-address a server listens on), else None."""
    host = urlsplit(url.strip()).hostname
    if host and (is_loopback_host(host) or host in ("0.0.0.0", "::")):  # noqa: S104
        return host
    return None


def _form_choices(central: Central, pid: int, form_id: str) -> FormChoices:
    """The published XForm's title, default language and district choices."""
    xml = central.request("GET", f"projects/{pid}/forms/{quote(form_id, safe='')}.xml")
    return form_choices(xml.content)


def _checked_district(district: str | None, about: Mapping[str, FormChoices]) -> str | None:
    """The district's code: ``district`` as a code, or as a name in any language, of the
    forms' ``district`` choices; anything else is refused, naming the choices."""
    if district is None:
        return None
    wanted = " ".join(district.split())
    choices: dict[str, dict[str, str]] = {}
    for c in about.values():
        for code, labels in c.districts.items():
            choices.setdefault(code, labels)
    if wanted in choices:
        return wanted
    for code, labels in choices.items():
        if any(wanted.casefold() == label.casefold() for label in labels.values() if label):
            return code
    offered = ", ".join(sorted(choices)) or "none: the forms have no district question"
    raise EnumeratorError(
        f"district {wanted!r} is not a choice of the forms' district question (choices: {offered})"
    )


def _district_label(
    district: str | None, about: Mapping[str, FormChoices], language: str
) -> str | None:
    if district is None:
        return None
    for c in about.values():
        if district in c.districts:
            return label_in(c.districts[district], language, district)
    return district


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
