"""Central's submissions over REST: attachments, review state and comments.

Reading submissions in bulk goes through OData (:mod:`collector.central.odata`).
central-backend docs/api.yaml "Submissions", "Updating Submission metadata", "Comments".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.central.forms import form_path

if TYPE_CHECKING:
    from collector.central.client import Central


@dataclass(frozen=True)
class URLs:
    # relative to the form's path
    get: str = "/submissions/{instance_id}"
    attachments: str = "/submissions/{instance_id}/attachments"
    attachment: str = "/submissions/{instance_id}/attachments/{name}"
    comments: str = "/submissions/{instance_id}/comments"


URLS = URLs()

REVIEW_STATES = ("approved", "hasIssues", "rejected")
"""The decisions a manager may set (Central also has null/received and edited, set by it)."""


def attachments(
    central: Central, form_id: str, instance_id: str, project_id: int | None = None
) -> list[dict]:
    """``[{name, exists}]`` for one submission (REST, ``submissions/{id}/attachments``)."""
    path = form_path(central, form_id, project_id) + central.session.urlformat(
        URLS.attachments, instance_id=instance_id
    )
    return central.json("GET", path)


def attachment_bytes(
    central: Central, form_id: str, instance_id: str, name: str, project_id: int | None = None
) -> bytes:
    path = form_path(central, form_id, project_id) + central.session.urlformat(
        URLS.attachment, instance_id=instance_id, name=name
    )
    return central.request("GET", path).content


def submission_xml(
    central: Central, form_id: str, instance_id: str, project_id: int | None = None
) -> bytes:
    """A submission's XML (REST ``submissions/{id}.xml``): every answer it was sent with,
    whichever version's fields OData renders it with."""
    path = form_path(central, form_id, project_id) + central.session.urlformat(
        "/submissions/{iid}.xml", iid=instance_id
    )
    return central.request("GET", path).content


def set_review_state(
    central: Central,
    form_id: str,
    instance_id: str,
    review_state: str,
    *,
    comment: str | None = None,
    project_id: int | None = None,
) -> dict:
    """Set a submission's review state in Central, then add the comment, if any.

    ``PATCH .../submissions/{instanceId}`` with ``{"reviewState": ...}`` and ``POST
    .../comments`` with ``{"body": ...}``. The PATCH moves ``updatedAt``, so the next sync
    brings the new state into the store. Returns Central's submission JSON.
    """
    if review_state not in REVIEW_STATES:
        raise ValueError(
            f"review state {review_state!r}: expected one of {', '.join(REVIEW_STATES)}"
        )
    base = form_path(central, form_id, project_id)
    fmt = central.session.urlformat
    body = central.json(
        "PATCH", base + fmt(URLS.get, instance_id=instance_id), json={"reviewState": review_state}
    )
    if comment:
        central.json(
            "POST", base + fmt(URLS.comments, instance_id=instance_id), json={"body": comment}
        )
    return body
