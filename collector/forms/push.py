"""Plan and push the forms in ``forms/`` to Central, safely and repeatably.

``plan_forms`` compares each form with what Central has: the published definition (the
sha256 of our XForm, built with Central's current version, against Central's ``sha256``)
and each media file (its bytes against the published attachment's). It says what a push
would do: create, new version, media only, or nothing; it only reads.

``push_forms`` checks every form first and refuses on any error. Then, per changed form:
upload the definition as a draft (a new form is created with ``publish=false``), upload its
media to the draft, publish. Only the draft changes until the last call, so a failure
half-way leaves the published version as it was, and a rerun plans again and finishes.
A push with nothing changed makes no write to Central.

Versions: the designer's (settings sheet) or ``YYYYMMDD-<8 hex>`` of a hash over the
unversioned XForm and the media, written into the XForm before upload, because Central
refuses to publish a new definition under a version it already has (409.6, golden 18).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sqlalchemy.engine import Engine

from collector import store
from collector.central import Central, CentralError, CentralRejected
from collector.central import forms as central_forms
from collector.central import projects as central_projects
from collector.errors import FormsError
from collector.forms.check import CheckResult, check_manifest_forms
from collector.forms.diff import FieldChanges, field_changes, xform_fields
from collector.forms.entities import entries_in_push_order
from collector.forms.manifest import FormEntry, Manifest
from collector.forms.spec import FormSpec
from collector.forms.xlsform import convert_xlsform, form_spec, read_xlsform

Recorder = Callable[[FormSpec, list[dict], int], None]
"""Called after a push with a form's spec (version set), Central's /fields, project id."""


class Action(StrEnum):
    CREATE = "create"
    NEW_VERSION = "new version"
    MEDIA_ONLY = "media only"
    NOTHING = "nothing"
    BLOCKED = "blocked"  # the designer's pinned version is already published with other content


class FormsInvalid(FormsError):
    """``forms check`` found errors; nothing was sent to Central."""

    def __init__(self, results: list[CheckResult]) -> None:
        self.results = results
        bad = [r.path.name for r in results if not r.ok]
        count = sum(len(r.errors) for r in results)
        super().__init__(f"forms check found {count} error(s) in {', '.join(bad)}; nothing pushed")


class PushBlocked(FormsError):
    """A plan says a form cannot be pushed as it is (e.g. a pinned version is taken)."""


class PushFailed(FormsError):
    """Central failed during a push; the published version of ``form_id`` is unchanged."""

    def __init__(self, form_id: str, step: str, cause: CentralError, done: list[str]) -> None:
        self.form_id, self.step, self.cause, self.done = form_id, step, cause, done
        finished = f" (already pushed: {', '.join(done)})" if done else ""
        state = (
            "Central may have published it before the answer was lost"
            if step.startswith("publishing")
            else "Only its draft changed; the published version is as it was"
        )
        super().__init__(
            f"{form_id}: {step} failed: {cause}. {state}. {_next_step(cause)}{finished}."
        )


def _next_step(cause: CentralError) -> str:
    """What the designer should do next: a rerun only where a rerun can succeed.

    Central's refusals of the form itself answer the same way every time: 400.17
    (``fieldTypeConflict``, lib/util/problem.js) until the question is renamed, 400.16
    (``formWarnings``) until the warnings are accepted."""
    if not isinstance(cause, CentralRejected) or cause.status in (408, 409, 429):
        return "Run push again to finish"
    if cause.code == 400.17:
        return (
            "A push cannot succeed while a question changes type: keep its type, or ask "
            "the new question under a new name, then push"
        )
    if cause.code == 400.16:
        return (
            f"Central's warnings: {_warnings_text(cause.details)}. Push with "
            "--accept-warnings to publish anyway"
        )
    return "Fix what Central says, then push again"


def _warnings_text(details: object) -> str:
    """Central's 400.16 ``details.warnings`` (lib/model/query/forms.js rejectIfWarnings)
    as one line: each workflow warning's type and what it names."""
    warnings = details.get("warnings") if isinstance(details, dict) else None
    if not isinstance(warnings, dict):
        return str(details)
    parts = []
    for w in warnings.get("workflowWarnings") or []:
        if isinstance(w, dict):
            what = w.get("details")
            what = ", ".join(map(str, what)) if isinstance(what, list) else str(what)
            parts.append(f"{w.get('type')}: {what}")
    for w in warnings.get("xlsFormWarnings") or []:
        parts.append(str(w))
    return "; ".join(parts) or str(details)


@dataclass(frozen=True)
class LocalForm:
    """One manifest form as it is on disk, reduced to what a comparison needs."""

    entry: FormEntry
    xform: str  # pyxform's XForm without a version
    media: dict[str, bytes]  # file name -> bytes
    pinned_version: str | None  # the settings sheet's version, if the designer set one

    @property
    def content_hash(self) -> str:
        """sha256 over the definition and every media file (name and bytes)."""
        digest = hashlib.sha256(self.xform.encode())
        for name in sorted(self.media):
            digest.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(self.media[name]).digest())
        return digest.hexdigest()

    def xform_with(self, version: str | None) -> bytes:
        return convert_xlsform(self.entry.file, version=version).xform.encode()


@dataclass(frozen=True)
class FormPlan:
    form_id: str
    project: str
    project_id: int | None  # None: the project does not exist yet
    action: Action
    reason: str
    central_version: str | None = None
    version: str | None = None  # the version a push would publish
    media: tuple[str, ...] = ()  # media files that differ (all, for a new definition)
    exists: bool = False  # the form exists on Central (perhaps as a draft only)
    changes: FieldChanges = field(default_factory=FieldChanges)  # vs the published version

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a push publishes only when the designer accepts it (``--accept-warnings``)."""
        return (self.changes.removal_warning(),) if self.changes.removed else ()


@dataclass(frozen=True)
class PushResult:
    plan: FormPlan
    published_version: str | None  # None when nothing was pushed


def checked_forms(manifest: Manifest, entries: tuple[FormEntry, ...]) -> list[LocalForm]:
    """Run check on every form; raise ``FormsInvalid`` (before any Central call) on errors."""
    results = check_manifest_forms(manifest, entries)
    if any(not r.ok for r in results):
        raise FormsInvalid(results)
    local = []
    for entry, result in zip(entries, results, strict=True):
        assert result.conversion is not None  # check converted it, or it would have failed
        xlsform = read_xlsform(entry.file)
        local.append(
            LocalForm(
                entry=entry,
                xform=result.conversion.xform,
                media={m.name: m.read_bytes() for m in entry.media},
                pinned_version=xlsform.setting("version") or None,
            )
        )
    return local


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _changed_media(central: Central, form: LocalForm, project_id: int) -> list[str]:
    """Media whose published copy is missing or has other bytes (downloads each to compare:
    Central's attachment list carries no content hash)."""
    published = {
        a["name"]: a
        for a in central_forms.form_attachments(central, form.entry.form_id, project_id)
        if isinstance(a, dict) and "name" in a
    }
    changed = []
    for name, data in sorted(form.media.items()):
        attachment = published.get(name)
        if not attachment or not attachment.get("exists"):
            changed.append(name)
            continue
        remote = central_forms.form_attachment_bytes(central, form.entry.form_id, name, project_id)
        if sha256(remote) != sha256(data):
            changed.append(name)
    return changed


def new_version(form: LocalForm, taken: set[str], today: dt.date | None = None) -> str:
    """The designer's version, or ``YYYYMMDD-<8 hex of content hash>`` not yet taken."""
    if form.pinned_version:
        return form.pinned_version
    base = f"{(today or dt.datetime.now(dt.UTC).date()):%Y%m%d}-{form.content_hash[:8]}"
    version, n = base, 1
    while version in taken:  # the same content published earlier today, then changed back
        n += 1
        version = f"{base}.{n}"
    return version


def plan_form(central: Central, form: LocalForm, project_ids: dict[str, int | None]) -> FormPlan:
    """What a push would do for one form; only reads from Central."""
    entry = form.entry
    project = entry.project
    if project not in project_ids:
        project_ids[project] = central_projects.project_id_named(central, project)
    pid = project_ids[project]
    base = FormPlan(entry.form_id, project, pid, Action.NOTHING, "")
    all_media = tuple(sorted(form.media))

    def create(reason: str, exists: bool = False) -> FormPlan:
        """A form with no published version: create (or finish) it with all its media."""
        version = new_version(form, set())
        return replace(
            base,
            action=Action.CREATE,
            reason=reason,
            version=version,
            media=all_media,
            exists=exists,
        )

    if pid is None:
        return create(f"project '{project}' does not exist yet")
    remote = central_forms.form_or_none(central, entry.form_id, pid)
    if remote is None:
        return create("not on Central")
    if not remote.get("publishedAt"):
        return create("on Central as an unpublished draft", exists=True)
    current = remote.get("version")
    base = replace(base, central_version=current, exists=True)
    ours = form.xform_with(form.pinned_version or current)
    definition_changed = sha256(ours) != remote.get("sha256")
    media_changed = () if definition_changed else tuple(_changed_media(central, form, pid))
    if not definition_changed and not media_changed:
        return replace(base, reason=f"published version {current} is up to date")
    if form.pinned_version and form.pinned_version == current:
        what = "the definition" if definition_changed else "media " + ", ".join(media_changed)
        return replace(
            base,
            action=Action.BLOCKED,
            reason=f"{what} changed but the settings sheet pins version {current}, "
            "which Central already has: change the version",
        )
    taken = {v.get("version") for v in central_forms.form_versions(central, entry.form_id, pid)}
    if form.pinned_version and form.pinned_version in taken:
        return replace(
            base,
            action=Action.BLOCKED,
            reason=f"the settings sheet's version {form.pinned_version} was published before "
            "(Central refuses it again, 409.6): change the version",
        )
    version = new_version(form, {v for v in taken if v})
    if definition_changed:
        changes = field_changes(central.form_fields(entry.form_id, pid), xform_fields(form.xform))
        if changes.retyped:
            return replace(
                base,
                action=Action.BLOCKED,
                changes=changes,
                reason="; ".join(r.message() for r in changes.retyped),
            )
        return replace(
            base,
            action=Action.NEW_VERSION,
            version=version,
            media=all_media,
            changes=changes,
            reason=f"the definition differs from published version {current}",
        )
    return replace(
        base,
        action=Action.MEDIA_ONLY,
        version=version,
        media=media_changed,
        reason="media differ: " + ", ".join(media_changed),
    )


def plan_forms(
    central: Central, manifest: Manifest, names: list[str] | None = None
) -> list[FormPlan]:
    """Check the forms, then plan each; raises ``FormsInvalid`` if check finds errors."""
    local = checked_forms(manifest, manifest.select(names))
    project_ids: dict[str, int | None] = {}
    return [plan_form(central, form, project_ids) for form in local]


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class _Progress:
    """The step a push is at, so a failure can say where it stopped."""

    step: str = "starting"


def _push_one(
    central: Central,
    form: LocalForm,
    plan: FormPlan,
    pid: int,
    progress: _Progress,
    *,
    accept_warnings: bool = False,
) -> None:
    """Draft, media, publish: the published version changes only at the last call."""
    form_id = form.entry.form_id
    xform = form.xform_with(plan.version)
    progress.step = f"uploading version {plan.version}"
    created = False
    if not plan.exists:
        try:
            central_forms.create_form(central, form_id, xform, pid)
            created = True
        except CentralRejected as err:
            if err.status != 409:  # 409.3: it exists after all (an earlier answer was lost)
                raise
    if not created:
        # Central's own warnings (400.16: a question removed, ...) stop the push unless
        # the designer accepted them; the plan said so first.
        central_forms.open_draft(central, form_id, xform, pid, ignore_warnings=accept_warnings)
    for name in sorted(form.media):
        progress.step = f"uploading {name}"
        central_forms.upload_draft_attachment(
            central, form_id, name, form.media[name], pid, _content_type(name)
        )
    progress.step = f"publishing version {plan.version}"
    central_forms.publish_draft(central, form_id, pid)


def push_forms(
    central: Central,
    manifest: Manifest,
    names: list[str] | None = None,
    *,
    record: Recorder | None = None,
    accept_warnings: bool = False,
) -> list[PushResult]:
    """Check, plan, and push every form that changed; see the module docstring.

    ``record(form_spec, central_fields, project_id)`` is called for every form after the
    push (changed or not) so the store holds its fields, labels and sensitivity.
    A plan with warnings (a question removed) is pushed only with ``accept_warnings``.
    """
    # a form writing an entity list before the forms that read it (entityforms.push_order)
    local = checked_forms(manifest, entries_in_push_order(manifest.select(names)))
    project_ids: dict[str, int | None] = {}
    plans = [plan_form(central, form, project_ids) for form in local]
    blocked = [f"{p.form_id}: {p.reason}" for p in plans if p.action is Action.BLOCKED]
    if not accept_warnings:
        blocked += [f"{p.form_id}: {w}" for p in plans for w in p.warnings]
    if blocked:
        raise PushBlocked("; ".join(blocked))
    results: list[PushResult] = []
    done: list[str] = []
    for form, plan in zip(local, plans, strict=True):
        pid = plan.project_id
        progress = _Progress()
        try:
            if pid is None:
                progress.step = f"creating project '{plan.project}'"
                pid = project_ids.get(plan.project) or central_projects.project_id_named(
                    central, plan.project
                )
                if pid is None:
                    pid = central_projects.create_project(central, plan.project)
                project_ids[plan.project] = pid
            if plan.action is not Action.NOTHING:
                _push_one(central, form, plan, pid, progress, accept_warnings=accept_warnings)
                done.append(form.entry.form_id)
            published = plan.version if plan.action is not Action.NOTHING else None
            if record is not None:
                progress.step = "reading its fields for the store"
                fields = central.form_fields(form.entry.form_id, pid)
                spec = form_spec(read_xlsform(form.entry.file), form.entry.file.parent)
                version = published or plan.central_version
                record(replace(spec, version=version), fields, pid)
        except CentralError as err:
            raise PushFailed(form.entry.form_id, progress.step, err, done) from err
        results.append(PushResult(replace(plan, project_id=pid), published))
    return results


def store_recorder(engine: Engine) -> Recorder:
    """A ``record`` callback for ``push_forms`` that saves each form's spec in the store."""

    def record(spec: FormSpec, central_fields: list[dict], project_id: int) -> None:
        store.save_form_spec(engine, spec, central_fields, project_id=project_id)

    return record
