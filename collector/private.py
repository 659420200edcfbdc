"""Files and directories readable by their owner only (SEC-4).

``data_dir`` holds the SQLite store (every sensitive answer) and pyodk's token cache (a
bearer token of Central's admin user). Under the usual umask 022 both would be created
0644, in a 0755 directory: readable by every local user. They are created here with
their final mode *before* anything is written to them (a chmod after the first write
would leave a window in which another user can open them), and an older file or directory
left open by an earlier version is narrowed. SQLite gives its ``-wal`` and ``-shm`` files
the main file's mode, so the store's companions follow.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; the directory itself gets mode 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _narrow(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing (never truncates), else narrow it.

    A path that exists but is no regular file (a directory named by mistake) is left to
    whoever opens it, which reports the error where it happens (a 503 from the store)."""
    if path.exists() and not path.is_file():
        return path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _narrow(path, FILE_MODE)
    return path


def _narrow(path: Path, mode: int) -> None:
    """chmod to ``mode`` unless already so; a path we do not own (a mounted volume) is
    left as it is with a warning, not an error: the service can still run."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except PermissionError as err:
        log.warning("%s could not be made private (mode %o): %s", path, mode, err.strerror)


_WARNED: set[tuple[str, int]] = set()


def warn_if_readable_by_others(path: Path, what: str) -> bool:
    """Log a warning (once per file and mode) if ``path`` exists and its group or others
    may read or write it; True when it did. A warning, not an error: the file is the
    operator's, and refusing to start would not close it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return False
    if not mode & 0o077:
        return False
    key = (str(path.resolve()), mode)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(
            "%s holds %s and is readable by others (mode %o): chmod 600 %s",
            path, what, mode, path,
        )  # fmt: skip
    return True
