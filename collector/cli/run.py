"""``collector scheduler`` and ``collector demo``: the long-running commands.

Both build Settings once, install SIGTERM/SIGINT handlers that ask for a clean stop (a
second signal exits at once: the open page's transaction then rolls back in the database),
and turn a missing part or a bad setting into one clear line and exit code 2.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler

from collector.cli.settings import settings_from_env

err = Console(stderr=True, soft_wrap=True)  # an error line stays one line, paths whole


def install_stop_signals(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: ``stop`` is set (clean stop). Second: exit now."""

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            # A second signal: the operator will not wait. Exiting drops the database
            # connection, so the page in flight rolls back; nothing half-written stays.
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def setup_logging(verbose: bool = False) -> None:
    """Log lines on stderr with times: rich on a terminal, one plain line each otherwise
    (a log file or ``docker logs`` must not get wrapped, boxed lines)."""
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s", datefmt="%H:%M:%S"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
    for noisy in ("apscheduler", "urllib3", "httpx", "requests", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def scheduler(
    form: list[str] = typer.Option(
        [], "--form", "-f", help="Only these forms (repeatable); default: all in the manifest."
    ),
    every: int | None = typer.Option(
        None,
        "--every",
        min=1,
        help="Sync every form every SECONDS, ignoring the manifest's schedule "
        "(COLLECTOR_SCHEDULER_EVERY_SECONDS).",
    ),
    lead_poll: float | None = typer.Option(
        None,
        "--lead-poll",
        min=0.1,
        help="Seconds between a standby's tries to take the lead "
        "(COLLECTOR_SCHEDULER_LEAD_POLL_SECONDS).",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Forms synced at the same time."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Pull every form from Central on its schedule, until SIGTERM or Ctrl-C.

    Run several for availability: one leads (PostgreSQL advisory lock, or a file lock in
    COLLECTOR_DATA_DIR on SQLite) and pulls; the others stand by and take over if it dies.
    """
    from scheduler.wiring import build_service

    setup_logging(verbose)
    update: dict[str, object] = {}
    if every is not None:
        update["scheduler_every_seconds"] = every
    if lead_poll is not None:
        update["scheduler_lead_poll_seconds"] = lead_poll
    settings = settings_from_env().model_copy(update=update)
    service = build_service(settings, forms=form, workers=workers)
    stop = threading.Event()
    install_stop_signals(stop)
    service.run(stop)


def demo(
    duration: float | None = typer.Option(
        None,
        "--duration",
        min=1,
        envvar="COLLECTOR_DEMO_DURATION",
        help="Stop by itself after SECONDS (headless runs); default: until Ctrl-C.",
    ),
    every: int = typer.Option(10, "--every", min=1, help="Sync every form every SECONDS."),
    rate: float = typer.Option(
        2.0, "--rate", min=0.01, help="Submissions per second from the simulated enumerators."
    ),
    emulator_port: int = typer.Option(
        8383, "--emulator-port", min=0, help="Central emulator's port (0: any free port)."
    ),
    api_port: int = typer.Option(8000, "--api-port", min=0, help="API's port (0: any free port)."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Start from an empty data/demo (emulator and SQLite store)."
    ),
) -> None:
    """The whole system on loopback: Central emulator, forms, enumerators, scheduler, API.

    Data lives in COLLECTOR_DATA_DIR/demo (default data/demo). The store is an SQLite file
    there unless COLLECTOR_DATABASE_URL names another (e.g. PostgreSQL).
    """
    from collector.demo import DemoOptions, run_demo

    settings = settings_from_env()
    options = DemoOptions(
        data_dir=Path(settings.data_dir) / "demo",
        duration=duration,
        every=every,
        rate=rate,
        emulator_port=emulator_port,
        api_port=api_port,
        fresh=fresh,
    )
    stop = threading.Event()
    install_stop_signals(stop)
    sys.exit(run_demo(settings, options, stop))


def register(app: typer.Typer) -> None:
    """Add the long-running commands to the ``collector`` app."""
    app.command("scheduler")(scheduler)
    app.command("demo")(demo)
