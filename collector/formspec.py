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
