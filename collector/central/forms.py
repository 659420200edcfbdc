"""Central's forms: list, read, create, draft, media, publish.

central-backend docs/api.yaml "Forms", "Draft Form", "Draft Form Attachments"; golden
05-08, 12, 14, 16-19. Definitions go up as XForm XML (pyodk form_drafts.CONTENT_TYPES
".xml"), so Central keeps exactly the bytes we hashed and its ``sha256`` compares with
ours. The version is already in that XML, so publish needs no ``?version=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.central.errors import CentralRejected

if TYPE_CHECKING:
    from collector.central.client import Central

XFORM_CONTENT_TYPE = "application/xml"


@dataclass(frozen=True)
class URLs:
    list: str = "projects/{project_id}/forms"
    get: str = "projects/{project_id}/forms/{form_id}"
    # the rest are relative to ``get``
    fields: str = "/fields"
    versions: str = "/versions"
    draft: str = "/draft"
    publish: str = "/draft/publish"
    attachments: str = "/attachments"
    draft_attachments: str = "/draft/attachments"
    attachment: str = "/attachments/{name}"
    draft_attachment: str = "/draft/attachments/{name}"


URLS = URLs()


def form_path(central: Central, form_id: str, project_id: int | None = None) -> str:
    """``projects/{pid}/forms/{form_id}``, the id quoted as one path segment."""
    pid = project_id or central.project_id
    return central.session.urlformat(URLS.get, project_id=pid, form_id=form_id)


def forms(central: Central, project_id: int | None = None) -> list[dict]:
    """The project's forms (Central's Form JSON, ``keyId`` set when encrypted)."""
    pid = project_id or central.project_id
    return central.json("GET", central.session.urlformat(URLS.list, project_id=pid))


def submission_counts(central: Central, project_id: int | None = None) -> dict[str, int]:
    """Submissions per form id, as Central counts them (``X-Extended-Metadata: true``)."""
    pid = project_id or central.project_id
    listed = central.json(
        "GET",
        central.session.urlformat(URLS.list, project_id=pid),
        headers={"X-Extended-Metadata": "true"},
    )
    return {f["xmlFormId"]: int(f.get("submissions") or 0) for f in listed}


def form(central: Central, form_id: str, project_id: int | None = None) -> dict:
    return central.json("GET", form_path(central, form_id, project_id))


def form_fields(central: Central, form_id: str, project_id: int | None = None) -> list[dict]:
    """``/fields?odata=true``: ``[{name, path, type, binary, selectMultiple}]``."""
    return central.json(
        "GET", form_path(central, form_id, project_id) + URLS.fields, params={"odata": "true"}
    )


def version_fields(
    central: Central, form_id: str, version: str, project_id: int | None = None
) -> list[dict]:
    """``/versions/{version}/fields?odata=true``: an earlier version's fields."""
    path = form_path(central, form_id, project_id) + central.session.urlformat(
        "/versions/{v}/fields", v=version
    )
    return central.json("GET", path, params={"odata": "true"})


def form_or_none(central: Central, form_id: str, project_id: int) -> dict | None:
    """The Form JSON (``publishedAt`` null when only a draft exists), or None on 404."""
    try:
        return form(central, form_id, project_id)
    except CentralRejected as err:
        if err.status == 404:
            return None
        raise


def form_versions(central: Central, form_id: str, project_id: int) -> list[dict]:
    """Every published version, newest first (golden 14)."""
    return central.json("GET", form_path(central, form_id, project_id) + URLS.versions)


def _xform_headers(central: Central, form_id: str) -> dict[str, str]:
    return {
        "Content-Type": XFORM_CONTENT_TYPE,
        "X-XlsForm-FormId-Fallback": central.session.urlquote(form_id),
    }


def create_form(central: Central, form_id: str, xform: bytes, project_id: int) -> dict:
    """A new form holding only a draft (``publish=false``): publish it after its media."""
    return central.json(
        "POST",
        central.session.urlformat(URLS.list, project_id=project_id),
        params={"ignoreWarnings": "true", "publish": "false"},
        data=xform,
        headers=_xform_headers(central, form_id),
    )


def open_draft(
    central: Central, form_id: str, xform: bytes, project_id: int, *, ignore_warnings: bool = True
) -> None:
    """Replace the form's draft with this definition; the published version is untouched.

    Without ``ignore_warnings`` Central answers 400.16 with its warnings (a question
    removed: lib/model/query/forms.js checkStructuralChange) and changes nothing."""
    central.json(
        "POST",
        form_path(central, form_id, project_id) + URLS.draft,
        params={"ignoreWarnings": "true"} if ignore_warnings else None,
        data=xform,
        headers=_xform_headers(central, form_id),
    )


def form_attachments(
    central: Central, form_id: str, project_id: int, *, draft: bool = False
) -> list[dict]:
    """``[{name, type, exists, ...}]`` of the published definition (or the draft)."""
    suffix = URLS.draft_attachments if draft else URLS.attachments
    return central.json("GET", form_path(central, form_id, project_id) + suffix)


def form_attachment_bytes(
    central: Central, form_id: str, name: str, project_id: int, *, draft: bool = False
) -> bytes:
    """One media file of the published definition (or the draft)."""
    template = URLS.draft_attachment if draft else URLS.attachment
    path = form_path(central, form_id, project_id) + central.session.urlformat(template, name=name)
    return central.request("GET", path).content


def upload_draft_attachment(
    central: Central, form_id: str, name: str, data: bytes, project_id: int, content_type: str
) -> None:
    """Upload one media file to the draft; a name the form does not expect is 404.1."""
    path = form_path(central, form_id, project_id) + central.session.urlformat(
        URLS.draft_attachment, name=name
    )
    # Uploading the same bytes twice is harmless, so a retry after a lost answer is safe.
    central.request("POST", path, data=data, headers={"Content-Type": content_type})


def publish_draft(central: Central, form_id: str, project_id: int) -> None:
    """Publish the draft under the version its XML carries; 409.6 if that one exists."""
    central.json("POST", form_path(central, form_id, project_id) + URLS.publish, retry=False)
