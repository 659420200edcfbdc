"""Child processes of the demo: started in their own session, logged to files, stopped in
order with SIGTERM (then SIGKILL if one will not stop).

Each child gets its own process session, so a Ctrl-C in the terminal reaches only the demo,
which then stops the children in the order that loses nothing: enumerators first (no new
submissions), then the scheduler (its page in flight finishes), the API, and Central last.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the demo dies, even by SIGKILL, so no server is
    left running behind a demo that was killed (prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(preferred: int = 0, host: str = "127.0.0.1") -> int:
    """``preferred`` if it is free (and not 0), else any free port the kernel gives."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Child:
    """One child process, its log file, and how to stop it."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)
    stop_timeout: float = 20.0

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops us in order
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def wait_until(
    ready: Callable[[], bool], *, seconds: float, child: Child | None = None, every: float = 0.2
) -> bool:
    """Poll ``ready`` until it is true, the child exits, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child is not None and not child.running:
            return False
        try:
            if ready():
                return True
        except requests.RequestException:
            pass
        time.sleep(every)
    return False


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: requests.get(url, timeout=2).ok


def stop_all(children: Sequence[Child]) -> dict[str, int | None]:
    """Stop children in the given order; their exit codes by name."""
    return {child.name: child.stop() for child in children}
