"""Try a form on a tablet before publishing it: Central's draft testing.

``push_draft`` uploads the checked form (with its media) as the form's draft on Central,
which leaves the published version and the enumerators' tablets untouched, and writes the
draft's test QR code and a printable page. Collect configured with that code talks to the
draft's own routes, ``/v1/test/{draftToken}/projects/{id}/forms/{xmlFormId}/draft/...``
(central-backend docs/api.yaml "Draft Testing"; lib/resources/forms.js and
submissions.js), so its test submissions stay with the draft: Central never lists them with
the form's submissions (``submissions.draft = true``) and deletes them when the draft is
published, so no sync ever stores them. ``publish_draft_of`` then publishes the tested
draft and records the form's fields, as ``forms push`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from collector import central as api
from collector.central import Central, CentralRejected
from collector.forms.enumerators import (
    EnumeratorCode,
    collect_settings,
    collect_settings_payload,
    qr_png_bytes,
    write_enumerator_files,
)
from collector.forms.manifest import Manifest
from collector.forms.push import (
    Action,
    PushBlocked,
    Recorder,
    _content_type,
    checked_forms,
    plan_form,
)
from collector.forms.xlsform import form_spec, read_xlsform


@dataclass(frozen=True)
class DraftPushed:
    form_id: str
    project_id: int
    version: str
    test_url: str  # carries the draft token: a password to the draft, never printed
    png: Path
    page: Path


def draft_test_url(central_url: str, token: str, project_id: int, form_id: str) -> str:
    """The server URL Collect uses to test a draft (central-backend lib/model/query/forms.js
    builds the same path for Enketo: ``/v1/test/{draftToken}/projects/{id}/forms/{id}/draft``)."""
    return (
        f"{central_url.rstrip('/')}/v1/test/{token}/projects/{project_id}"
        f"/forms/{quote(form_id, safe='')}/draft"
    )


def push_draft(central: Central, manifest: Manifest, form_id: str, out_dir: Path) -> DraftPushed:
    """Check, then upload ``form_id`` as its draft (definition and media); write the test
    QR code and page into ``out_dir``. Nothing published changes."""
    (form,) = checked_forms(manifest, manifest.select([form_id]))
    project_ids: dict[str, int | None] = {}
    plan = plan_form(central, form, project_ids)
    if plan.action is Action.BLOCKED:
        raise PushBlocked(f"{form_id}: {plan.reason}")
    if plan.action is Action.NOTHING:
        raise PushBlocked(
            f"{form_id}: nothing to test: the published version {plan.central_version} is the "
            "form as it is in the forms folder"
        )
    pid = plan.project_id
    if pid is None:
        pid = api.project_id_named(central, plan.project) or api.create_project(
            central, plan.project
        )
    xform = form.xform_with(plan.version)
    if plan.exists:
        api.open_draft(central, form_id, xform, pid)
    else:
        api.create_form(central, form_id, xform, pid)
    for name in sorted(form.media):
        api.upload_draft_attachment(
            central, form_id, name, form.media[name], pid, _content_type(name)
        )
    draft = central.json("GET", central.form_path(form_id, pid) + "/draft")
    token = draft.get("draftToken")
    if not token:
        raise PushBlocked(f"{form_id}: Central gave the draft no test token")
    title = draft.get("name") or form_id
    url = draft_test_url(central.settings.central_url, token, pid, form_id)
    settings = collect_settings(url, f"[Draft] {title}", app_language=None)
    png = qr_png_bytes(collect_settings_payload(settings))
    card = EnumeratorCode(
        name=f"Draft test: {title} ({plan.version})",
        app_user_id=0,
        district=None,
        forms=(form_id,),
        png=png,
        form_titles=(title,),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (pngs, page) = write_enumerator_files([card], out_dir, project_name=f"[Draft] {title}")
    stable = out_dir / f"draft-{form_id}-{plan.version}.png"
    pngs[0].replace(stable)
    return DraftPushed(form_id, pid, str(plan.version), url, stable, page)


def publish_draft_of(
    central: Central, manifest: Manifest, form_id: str, *, record: Recorder | None = None
) -> str:
    """Publish the form's tested draft (its test submissions go with it); its version."""
    (entry,) = manifest.select([form_id])
    pid = api.project_id_named(central, entry.project)
    if pid is None:
        raise PushBlocked(f"{form_id}: Central has no project named {entry.project!r}")
    try:
        draft = central.json("GET", central.form_path(form_id, pid) + "/draft")
    except CentralRejected as err:
        if err.status != 404:
            raise
        raise PushBlocked(
            f"{form_id}: no draft to publish; run forms push --draft {form_id} first"
        ) from None
    api.publish_draft(central, form_id, pid)
    version = str(draft.get("version"))
    if record is not None:
        fields = central.form_fields(form_id, pid)
        spec = form_spec(read_xlsform(entry.file), entry.file.parent)
        record(replace(spec, version=version), fields, pid)
    return version
