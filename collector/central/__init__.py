"""The Central client: the one door to ODK Central (every HTTP call collector makes).

In pyodk's shape (``pyodk/_endpoints/*``, ``pyodk/_utils/session.py``):

- :mod:`~collector.central.client`: :class:`Central`, the choke point (timeout, retries,
  login and re-login, whole-body reads, errors);
- :mod:`~collector.central.session`: requests' Session bound to ``/v1/``; :class:`Reply`;
- :mod:`~collector.central.tokens`: the token cache, tied to the credentials it came from;
- :mod:`~collector.central.errors`: the ``CentralError`` family;
- one module per Central resource, each with its URLs in one ``URLs`` dataclass:
  :mod:`~collector.central.projects`, :mod:`~collector.central.forms`,
  :mod:`~collector.central.app_users`, :mod:`~collector.central.submissions` and
  :mod:`~collector.central.odata` (with the ``$filter`` builders the sync asks with).

May import: settings, private, transport (and requests, tenacity, orjson); nothing of the
sync, the store, the API or the scheduler. The names below are re-exported so that
``from collector.central import X`` keeps working for every earlier caller.
"""

from collector.central.app_users import (
    AppUser,
    app_users,
    assign_form_to_app_user,
    create_app_user,
    form_app_user_ids,
    guard_token_logs,
    redact_tokens,
    revoke_app_user,
)
from collector.central.client import Central
from collector.central.errors import (
    CentralError,
    CentralGarbage,
    CentralRejected,
    CentralUnavailable,
)
from collector.central.forms import (
    XFORM_CONTENT_TYPE,
    create_form,
    form_attachment_bytes,
    form_attachments,
    form_or_none,
    form_versions,
    open_draft,
    publish_draft,
    upload_draft_attachment,
)
from collector.central.projects import (
    create_project,
    project_id_named,
    project_name,
)
from collector.central.session import Reply
from collector.central.submissions import REVIEW_STATES, set_review_state

__all__ = [
    "REVIEW_STATES",
    "XFORM_CONTENT_TYPE",
    "AppUser",
    "Central",
    "CentralError",
    "CentralGarbage",
    "CentralRejected",
    "CentralUnavailable",
    "Reply",
    "app_users",
    "assign_form_to_app_user",
    "create_app_user",
    "create_form",
    "create_project",
    "form_app_user_ids",
    "form_attachment_bytes",
    "form_attachments",
    "form_or_none",
    "form_versions",
    "guard_token_logs",
    "open_draft",
    "project_id_named",
    "project_name",
    "publish_draft",
    "redact_tokens",
    "revoke_app_user",
    "set_review_state",
    "upload_draft_attachment",
]
