"""Central's app users ("field keys"): list, create, assign to a form, revoke.

central-backend docs/api.yaml "App Users", golden exchanges 56-64. An app user's token is a
password that Collect carries in its URL (/v1/key/<token>/...), and revoking it needs it in
our URL (DELETE /v1/sessions/<token>, what central-frontend
src/components/field-key/revoke.vue sends). So: tokens are kept out of repr, out of every
error message we raise, and out of urllib3's debug log lines.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.central.errors import CentralError, CentralGarbage, CentralRejected
from collector.central.forms import form_path

if TYPE_CHECKING:
    from collector.central.client import Central


@dataclass(frozen=True)
class URLs:
    list: str = "projects/{project_id}/app-users"
    session: str = "sessions/{token}"
    # relative to the form's path
    assignments: str = "/assignments/app-user"
    assign: str = "/assignments/app-user/{app_user_id}"


URLS = URLs()

_KEY_IN_PATH = r"(/v1/(?:key|sessions)/)(?!current(?:[/?#\s\"']|$))[^/?#\s\"']+"


def redact_tokens(text: str) -> str:
    """``text`` with the token after ``/v1/key/`` or ``/v1/sessions/`` replaced by ``***``."""
    return re.sub(_KEY_IN_PATH, r"\1***", text)


class _RedactTokens(logging.Filter):
    """Rewrites a log record whose text holds an app-user token in a URL path."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = redact_tokens(text)
        if redacted != text:
            record.msg, record.args = redacted, ()
        return True


def guard_token_logs() -> None:
    """Redact token paths in urllib3's request log (it logs each path at DEBUG level)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())


@dataclass(frozen=True)
class AppUser:
    """One Central app user. ``token`` is None once revoked (Central lists it so)."""

    id: int
    project_id: int
    display_name: str
    created_at: str
    token: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.token is not None


def _app_user(body: dict) -> AppUser:
    try:
        return AppUser(
            id=int(body["id"]),
            project_id=int(body["projectId"]),
            display_name=str(body["displayName"]),
            created_at=str(body["createdAt"]),
            token=body.get("token"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CentralGarbage(f"Central's app user JSON lacks {err}") from None


def app_users(central: Central, project_id: int | None = None) -> list[AppUser]:
    """Every app user of the project, revoked ones included (token None)."""
    guard_token_logs()
    pid = project_id or central.project_id
    body = central.json("GET", central.session.urlformat(URLS.list, project_id=pid))
    if not isinstance(body, list):
        raise CentralGarbage(f"Central's app-user list for project {pid} is not a list")
    return [_app_user(item) for item in body]


def create_app_user(central: Central, display_name: str, project_id: int | None = None) -> AppUser:
    """Create an app user (``POST projects/{pid}/app-users``, golden 56). Not retried on a
    lost answer: a retry could create a second one; the caller lists first instead."""
    guard_token_logs()
    pid = project_id or central.project_id
    body = central.json(
        "POST",
        central.session.urlformat(URLS.list, project_id=pid),
        json={"displayName": display_name},
        retry=False,
    )
    if not isinstance(body, dict):
        raise CentralGarbage(f"Central's answer to creating app user {display_name!r} is not JSON")
    return _app_user(body)


def assign_form_to_app_user(
    central: Central, form_id: str, app_user_id: int, project_id: int | None = None
) -> None:
    """Let an app user download and submit one form (golden 58). Already assigned is fine:
    Central refuses a second identical assignment with 409.3, which means done."""
    path = form_path(central, form_id, project_id) + central.session.urlformat(
        URLS.assign, app_user_id=int(app_user_id)
    )
    try:
        central.request("POST", path)
    except CentralRejected as err:
        if err.status != 409:
            raise


def form_app_user_ids(central: Central, form_id: str, project_id: int | None = None) -> set[int]:
    """Ids of the app users assigned to one form (golden 59)."""
    body = central.json("GET", form_path(central, form_id, project_id) + URLS.assignments)
    if not isinstance(body, list):
        raise CentralGarbage(f"Central's app-user assignments of form {form_id} are not a list")
    return {int(item["id"]) for item in body if isinstance(item, dict) and "id" in item}


def revoke_app_user(central: Central, user: AppUser) -> None:
    """End an app user's access: ``DELETE /v1/sessions/<token>`` (golden 63); from then on
    Central answers 403 to its ``/v1/key/<token>/...`` URLs (golden 64). The user stays in
    Central's list with token null, and its submissions stay attributed to it."""
    guard_token_logs()
    if user.token is None:
        return  # already revoked
    path = central.session.urlformat(URLS.session, token=user.token)
    try:
        central.request("DELETE", path)
    except CentralRejected as err:  # messages carry the URL, i.e. the token: rebuild them
        # A retried DELETE whose first answer was lost finds the session gone (404/403):
        # that is success if Central now lists the app user without a token.
        if err.status in (403, 404) and not any(
            u.id == user.id and u.active for u in app_users(central, user.project_id)
        ):
            return
        raise CentralRejected(
            f"Central refused to revoke app user {user.id} ({user.display_name!r}): "
            f"{err.status} ({err.code}) {err.message}",
            status=err.status,
            code=err.code,
        ) from None
    except CentralError as err:
        raise type(err)(
            f"Central failed while revoking app user {user.id} ({user.display_name!r}): "
            f"status {err.status}",
            status=err.status,
        ) from None
