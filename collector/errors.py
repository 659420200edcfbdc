"""Every error collector raises on purpose, as one tree (as ``httpx/_exceptions.py`` does).

::

    CollectorError                  something collector refuses or cannot do; the message
    │                               says what and where, in one line, free of secrets
    ├── SettingsError               a setting is missing or wrong (it names the setting)
    │   ├── InsecureTransport         http:// beyond this machine (collector.transport)
    │   └── UnsupportedDatabase       a database URL other than SQLite/PostgreSQL
    ├── CentralError                talking to ODK Central (collector.central.errors)
    │   ├── CentralUnavailable        timeout, dropped connection, 5xx, 429 after retries
    │   ├── CentralRejected           Central said no (4xx), with its code and message
    │   └── CentralGarbage            a 2xx body that is not what it should be
    ├── FormsError                  the XLSForms and their manifest
    │   ├── ManifestError             forms/manifest.toml (collector.forms.manifest)
    │   ├── FormsInvalid              ``forms check`` found errors (collector.forms.push)
    │   ├── PushBlocked               a plan cannot be pushed as it is
    │   └── PushFailed                Central failed mid-push; published versions unchanged
    ├── CatalogueError              the indicator catalogue file (collector.read.indicators)
    ├── SyncError                   a form that cannot be synced (collector.sync.submissions)
    ├── SyncStopped                 asked to stop between pages (not a failure)
    ├── StoreError                  the store as a whole (collector.store)
    │   ├── StoreBehind               its schema is older than this release: upgrade it
    │   └── SqlRoleError              an analysts' database role that cannot be made as asked
    ├── EnumeratorError             an enumerator (app user) task (collector.forms.enumerators)
    │   └── NoSuchEnumerator
    ├── ApiKeyError                 API keys (collector.store.keys)
    │   ├── DuplicateKeyName
    │   ├── InvalidKeyRequest
    │   └── UnknownKey
    ├── QueryError                  a reader's request the store cannot answer (forminfo)
    │   ├── UnknownName               no such form, field, submission, indicator (404)
    │   ├── InvalidValue              a parameter whose value makes no sense (422)
    │   └── Withheld                  a sensitive field for a role that may not see it (403)
    └── SchedulerSetupError         the scheduler cannot start (scheduler.wiring)

The classes stay in the modules that raise them (their names and import paths unchanged);
only their roots are here. Classes that were a ``ValueError``, ``LookupError`` or
``PermissionError`` stay so too, for the callers that catch those.

Two places turn the tree into words: the ``collector`` command prints ``error: <message>``
and exits with :attr:`CollectorError.exit_code` (``collector.cli.errors``); the API answers
the class's status and a ``{"detail": message}`` body (``api/errors.py``). Errors that are
not in this tree (a bug, a driver's own error) are not turned into one line: the CLI shows
their traceback, the API logs them and answers 500.

This module imports nothing of ours: every other module may import it.
"""

from __future__ import annotations

from typing import ClassVar


class CollectorError(Exception):
    """The root. ``exit_code`` is what the ``collector`` command exits with."""

    exit_code: ClassVar[int] = 1


class SettingsError(CollectorError):
    """A setting is missing or wrong; the message names the ``COLLECTOR_*`` variable."""

    exit_code: ClassVar[int] = 2


class FormsError(CollectorError):
    """Something about the XLSForms or their manifest."""


class StoreError(CollectorError):
    """The store as a whole cannot be used as it is."""


class StoreBehind(StoreError):
    """The store's schema is older than this release's; ``collector store upgrade`` moves it."""

    exit_code: ClassVar[int] = 3


class QueryError(CollectorError):
    """A request for data that the store cannot answer as asked."""


def one_line(err: BaseException) -> str:
    """The error's message on one line (a message never needs a second one)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__
