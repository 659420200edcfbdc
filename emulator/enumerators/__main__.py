"""``python -m emulator.enumerators``: start simulated enumerators against a Central.

Prints one line per thing that happens (submission, edit, review, delete, error) and a
summary at the end. The password may come from ``--password`` or the environment
variable ``ENUMERATORS_PASSWORD``; it is never printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time

from emulator.enumerators.client import AppUserKey, DeviceError, WebUser
from emulator.enumerators.runner import Enumerators, Event


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emulator.enumerators",
        description="Simulated ODK Collect enumerators submitting to a Central.",
    )
    p.add_argument("--url", help="Central's URL, e.g. http://127.0.0.1:8383")
    p.add_argument("--email", help="web user's email (can also review and delete)")
    p.add_argument("--password", help="web user's password (or ENUMERATORS_PASSWORD)")
    p.add_argument("--key-url", help="app user's key URL <central>/v1/key/<token>/projects/<id>")
    p.add_argument("--project", type=int, help="project id (web user)")
    p.add_argument("--form", action="append", default=[], help="form id to fill (repeatable)")
    p.add_argument("--rate", type=float, default=None, help="submissions per second, all together")
    p.add_argument("--count", type=int, default=None, help="how many submissions to send")
    p.add_argument("--duration", type=float, default=None, help="or how many seconds to run")
    p.add_argument(
        "--seed",
        default=None,
        help="same seed, same submissions (default: a new one each run, printed)",
    )
    p.add_argument("--enumerators", type=int, default=4, help="devices sending in parallel")
    p.add_argument("--edit-share", type=float, default=0.05)
    p.add_argument("--review-share", type=float, default=0.1)
    p.add_argument("--delete-share", type=float, default=0.02)
    p.add_argument("--real-time", action="store_true", help="stamp start/end with the wall clock")
    p.add_argument(
        "--refresh",
        type=float,
        default=60.0,
        help="re-read the form list every so many seconds (0: never)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def _line(event: Event) -> None:
    clock = time.strftime("%H:%M:%S")
    status = event.status if event.status is not None else "---"
    print(
        f"{clock} {status} {event.kind:<10} #{event.enumerator + 1} {event.form_id} "
        f"{event.instance_id}  {event.summary}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.count is None and args.duration is None:
        print("give --count or --duration", file=sys.stderr)
        return 2
    password = args.password or os.environ.get("ENUMERATORS_PASSWORD")
    web = WebUser(args.email, password) if args.email and password else None
    if args.key_url:
        auth: WebUser | AppUserKey = AppUserKey(args.key_url)
        try:
            auth.parts()
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        url = args.url or auth.parts()[0]
    elif web is not None and args.url and args.project is not None:
        auth, url = web, args.url
    else:
        print("give --url, --email, --password and --project, or --key-url", file=sys.stderr)
        return 2
    # a fresh seed per run unless asked: a rerun against the same Central must not replay
    # the last run's instance ids (Central would take them as resubmissions or stale edits)
    seed = args.seed if args.seed is not None else str(secrets.randbelow(10**9))
    runner = Enumerators(
        url,
        auth,
        project_id=args.project,
        forms=args.form or None,
        seed=seed,
        rate=args.rate,
        enumerators=args.enumerators,
        edit_share=args.edit_share,
        review_share=args.review_share,
        delete_share=args.delete_share,
        reviewer=web,
        on_event=None if args.quiet else _line,
        clock="real" if args.real_time else "simulated",
        refresh=args.refresh or None,
    )

    def stop(_signum: int, _frame: object) -> None:
        runner.stop()  # finish the submission in flight, then print the summary

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        forms = runner.prepare()
        if not args.quiet:
            print(
                f"filling {', '.join(forms)} with {args.enumerators} enumerators (seed {seed})",
                flush=True,
            )
        result = runner.run(count=args.count, duration=args.duration)
    except DeviceError as exc:
        print(f"enumerators stopped: {exc}", file=sys.stderr)
        return 1
    print(
        f"sent {result.submitted} submissions ({result.rate:.1f}/s), {result.edits} edits, "
        f"{result.reviews} reviews, {result.deletions} deletions, {result.failures} failures"
    )
    # refusals while Central misbehaves are part of a run (the summary counts them); a run
    # in which nothing at all got through is a failure
    return 1 if result.failures and not result.submitted else 0


if __name__ == "__main__":
    sys.exit(main())
