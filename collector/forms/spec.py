"""What an XLSForm says about its questions, beyond what Central's ``/fields`` says.

Central knows a field's path and type; only the XLSForm knows its labels in English, Tajik
and Russian, its choices, and whether the designer marked it sensitive. ``xlsform`` builds
these from ``forms/*.xlsx``; the store keeps them; the API and exports read them. Plain
frozen dataclasses, so every layer can share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LANGUAGES: tuple[str, ...] = ("en", "tg", "ru")
"""The programme's languages, in the order forms and the API list them."""


@dataclass(frozen=True)
class ChoiceSpec:
    list_name: str
    value: str
    labels: dict[str, str]  # language code -> label


@dataclass(frozen=True)
class FieldSpec:
    """One question or group/repeat, as the XLSForm declares it.

    ``path`` is Central's: ``/group/question`` (leading slash, no ``data`` root), so it
    joins with ``/fields``'s ``path``. ``type`` is the XLSForm type without its list
    (``select_one``, ``integer``, ``geopoint``, ``begin_repeat`` ...).
    """

    name: str
    path: str
    type: str
    labels: dict[str, str] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    choice_list: str | None = None
    sensitive: bool = False
    required: bool = False
    repeat_path: str | None = None  # the innermost repeat holding this field, if any


@dataclass(frozen=True)
class FormSpec:
    form_id: str
    title: str
    version: str | None
    fields: tuple[FieldSpec, ...]
    choices: tuple[ChoiceSpec, ...]
    default_language: str = "en"

    def field_by_path(self) -> dict[str, FieldSpec]:
        return {f.path: f for f in self.fields}

    def sensitive_paths(self) -> frozenset[str]:
        return frozenset(f.path for f in self.fields if f.sensitive)


# XLSForm metadata that Collect fills with who or what collected the answers, not with an
# answer: the tablet's id (the same as the deviceID in the submission's metadata), its SIM,
# the enumerator's phone number, user name and e-mail. Like ``submitter_name`` and
# ``device_id`` (SEC-18) these point at people, so they are the manager's whatever the
# form says (``collector.read.forminfo``), and what is computed from them must be marked
# (``collector.forms.expr``): Collect's forms mark them nowhere, and a ``deviceid`` question
# left unmarked handed analysts the device id the metadata columns withhold.
# Every spelling pyxform accepts (pyxform/question_type_dictionary.py: the types whose
# jr:preloadParams is one of these), and the first word of each, which is what a spec keeps
# as a field's type; tests/test_api_data_issues.py checks the list against pyxform's.
STAFF_IDENTITY_XLS_TYPES = frozenset(
    {
        "deviceid", "device id", "get device id", "imei", "uri:deviceid",
        "simserial", "sim id", "get sim id", "uri:simserial",
        "subscriberid", "subscriber id", "get subscriber id", "uri:subscriberid",
        "phonenumber", "get phone number", "uri:phonenumber",
        "username", "uri:username", "email", "uri:email",
        "device", "sim", "subscriber", "get",
    }
)  # fmt: skip


def is_staff_identity_type(xls_type: str | None) -> bool:
    """Whether an XLSForm type (or its first word, as a spec keeps it) is one Collect fills
    with the tablet's or the enumerator's identity (see STAFF_IDENTITY_XLS_TYPES)."""
    return xls_type is not None and xls_type.split(" ", 1)[0] in STAFF_IDENTITY_XLS_TYPES
