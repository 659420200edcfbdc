"""``EMULATOR_ADMIN_PASSWORD=P python -m emulator --host H --port P --data DIR --admin-email E``.

The admin password comes from the environment, not the command line, where ``ps`` shows it
to every user of the machine; ``--admin-password`` is still accepted (it wins) for old scripts.
Prints its URL, then serves until SIGINT/SIGTERM (uvicorn's handlers stop it cleanly).
uvicorn runs with httptools and uvloop, access log off (no app-user key in any log).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn

from emulator.app import build_app
from emulator.faults import FaultError, parse_config

PASSWORD_ENV = "EMULATOR_ADMIN_PASSWORD"  # noqa: S105 - a variable name, not a password
"""Where the admin password is read from when ``--admin-password`` is not given."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8383)
    p.add_argument("--data", type=Path, required=True, help="directory for the SQLite file")
    p.add_argument("--admin-email", required=True)
    p.add_argument(
        "--admin-password",
        default=None,
        help=f"deprecated: visible in ps; set {PASSWORD_ENV} in the environment instead",
    )
    p.add_argument(
        "--faults",
        default=None,
        help="fault settings as JSON (see emulator/faults.py), e.g. '{\"latency_ms\": 50}'",
    )
    args = p.parse_args(argv)
    if args.admin_password is None:
        args.admin_password = os.environ.get(PASSWORD_ENV) or None
    if args.admin_password is None:
        p.error(f"set the admin password in {PASSWORD_ENV} (or pass --admin-password)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    faults = None
    if args.faults:
        try:
            faults = parse_config(json.loads(args.faults))
        except (ValueError, FaultError) as exc:
            sys.exit(f"--faults: {exc}")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    app = build_app(args.data, args.admin_email, args.admin_password, faults)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
    print(f"ODK Central emulator at http://{shown}:{args.port}", flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; these
    # handlers turn that re-raise into a plain exit 0 (a clean stop for compose and tests).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
