"""Simulated enumerators: devices that behave like ODK Collect against a Central.

Library use::

    from emulator.enumerators import Enumerators, WebUser
    run = Enumerators(url, WebUser(email, password), project_id=1, seed=7, rate=5)
    result = run.run(count=100)

Command: ``python -m emulator.enumerators --url URL --email E --password P --project ID
[--form F ...] --rate R --count N --seed S``.
"""

from emulator.enumerators.client import AppUserKey, DeviceError, WebUser
from emulator.enumerators.filler import Submission, SubmissionFactory
from emulator.enumerators.formmodel import FormModel, parse_form_model
from emulator.enumerators.runner import Enumerators, Event, RunResult, device_id

__all__ = [
    "AppUserKey",
    "DeviceError",
    "Enumerators",
    "Event",
    "FormModel",
    "RunResult",
    "Submission",
    "SubmissionFactory",
    "WebUser",
    "device_id",
    "parse_form_model",
]
