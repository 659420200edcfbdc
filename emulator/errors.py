"""Central's error answers: ``{"message", "code", "details"}`` and the OpenRosa XML twin.

Messages and codes are copied from central-backend ``lib/util/problem.js``; where the golden
exchanges (``shared/central-golden/``) show a different wording, the golden wins (it is what a
real Central of the recorded version answered).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import Response

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
OPENROSA_HEADERS = {
    "X-OpenRosa-Version": "1.0",
    "X-OpenRosa-Accept-Content-Length": "100000000",
}


class CentralError(Exception):
    """A problem Central would answer with; the HTTP status is the integer part of ``code``."""

    def __init__(
        self,
        code: float,
        message: str,
        details: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return math.floor(self.code)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out


def json_error(err: CentralError) -> Response:
    return Response(orjson.dumps(err.body()), err.status, err.headers or None, media_type=JSON_TYPE)


def xml_escape(text: str) -> str:
    """Escape as Central's mustache templates do for OpenRosa text (golden 26: ``&#39;``)."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def openrosa_message(text: str, nature: str = "") -> bytes:
    """The OpenRosaResponse envelope exactly as golden 20/24/25 show it."""
    return (
        '\n  <OpenRosaResponse xmlns="http://openrosa.org/http/response" items="0">\n'
        f'    <message nature="{nature}">{xml_escape(text)}</message>\n'
        "  </OpenRosaResponse>"
    ).encode()


def xml_error(err: CentralError, with_openrosa_headers: bool = True) -> Response:
    headers = dict(OPENROSA_HEADERS) if with_openrosa_headers else {}
    return Response(
        openrosa_message(err.message, "error"), err.status, headers, media_type=XML_TYPE
    )


# --- the problems, named as in lib/util/problem.js -------------------------------------------


def unparseable(fmt: str, raw_length: int) -> CentralError:
    return CentralError(
        400.1,
        f"Could not parse the given data ({raw_length} chars) as {fmt}.",
        {"format": fmt, "rawLength": raw_length},
    )


def missing_parameter(field: str) -> CentralError:
    return CentralError(400.2, f"Required parameter {field} missing.", {"field": field})


def missing_parameters(expected: list[str], got: dict[str, Any]) -> CentralError:
    # golden 02: "got (email: '', password: '')"
    pairs = ", ".join(f"{k}: {_js_repr(v)}" for k, v in got.items())
    return CentralError(
        400.3,
        f"Required parameters missing. Expected ({', '.join(expected)}), got ({pairs}).",
        # JSON drops undefined values: Central's details hold only what was given
        {"expected": expected, "got": {k: v for k, v in got.items() if v is not None}},
    )


def _js_repr(v: Any) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, str):
        return f"'{v}'"
    return str(v)


def invalid_data_type(value: str, expected: str) -> CentralError:
    """400.11: PostgreSQL could not read the value as the column's type (lib/util/db.js)."""
    return CentralError(
        400.11,
        f'Invalid input data type: expected "{value}" to be ({expected})',
        {"value": value, "expected": expected},
    )


def out_of_range(value: str, kind: str) -> CentralError:
    """400.22: a number beyond the column's type (lib/util/db.js, PostgreSQL 22003)."""
    return CentralError(
        400.22,
        f"Provided value '{value}' is out of range for type '{kind}'",
        {"value": value, "type": kind},
    )


def invalid_header(field: str) -> CentralError:
    # golden 25; problem.js invalidHeader called with the field name only.
    return CentralError(
        400.6,
        f"An expected header field ({field}) did not match the expected format.",
        {"field": field},
    )


def multipart_parsing_failed(detail: str | None = None) -> CentralError:
    """400.39 with busboy's message as details (lib/resources/submissions.js
    multipartErrorHandler); answered as JSON even on OpenRosa routes, since that handler runs
    before the OpenRosa endpoint wraps errors in XML."""
    return CentralError(400.39, "Multipart form content failed to parse.", detail)


def missing_multipart_field(field: str) -> CentralError:
    return CentralError(400.7, f"Required multipart POST field {field} missing.", {"field": field})


def unexpected_value(field: str, value: Any, reason: str) -> CentralError:
    # golden 47
    return CentralError(
        400.8,
        f"Unexpected {field} value {value}; {reason}",
        {"field": field, "value": value, "reason": reason},
    )


def xlsform_invalid(error: str, warnings: list[str] | None) -> CentralError:
    # golden 10
    return CentralError(
        400.15,
        "The given XLSForm file was not valid. Please see the error details for more information.",
        {"error": error, "warnings": warnings},
    )


def form_warnings(warnings: list[str]) -> CentralError:
    return CentralError(
        400.16,
        "The Form is valid, but with warnings. Please check the warnings and if they are "
        "acceptable resubmit with ?ignoreWarnings=true",
        {"warnings": {"xlsFormWarnings": warnings}},
    )


def structure_changed(removed: list[str]) -> CentralError:
    """400.16 for a new version that drops fields (lib/model/query/forms.js
    checkStructuralChange + rejectIfWarnings)."""
    return CentralError(
        400.16,
        "The Form is valid, but with warnings. Please check the warnings and if they are "
        "acceptable resubmit with ?ignoreWarnings=true",
        {"warnings": {"workflowWarnings": [{"type": "structureChanged", "details": removed}]}},
    )


def field_type_conflict(path: str, previous: str) -> CentralError:
    """400.17 (lib/util/problem.js fieldTypeConflict, raised by checkFieldDowncast)."""
    return CentralError(
        400.17,
        f"The form you have uploaded attempts to change the type of the field at {path}. In a "
        f'previous version, it had the type "{previous}". Please either return that field to '
        "its previous type, or rename the field so it lives at a new path.",
        {"path": path, "type": previous},
    )


def expected_deprecation() -> CentralError:
    return CentralError(
        400.19,
        "This PUT endpoint expects a deprecatedID metadata tag pointing at the current version "
        "instanceID. I cannot find that tag in your request.",
    )


def bad_skiptoken() -> CentralError:
    # golden 41
    return CentralError(400.35, "Invalid $skiptoken")


def authentication_failed() -> CentralError:
    # golden 01, 04
    return CentralError(401.2, "Could not authenticate with the provided credentials.")


def insufficient_rights() -> CentralError:
    # golden 64
    return CentralError(
        403.1, "The authentication you provided does not have rights to perform that action."
    )


def not_found() -> CentralError:
    # golden 13, 33
    return CentralError(404.1, "Could not find the resource you were looking for.")


def deprecated_id_not_found(deprecated_id: str) -> CentralError:
    return CentralError(
        404.5,
        "You tried to update an existing submission, but we can't find that submission to "
        f"update ({deprecated_id})",
        {"deprecatedId": deprecated_id},
    )


def form_version_not_found(version: str) -> CentralError:
    # golden 26 (the XML escapes the quotes as &#39;)
    return CentralError(
        404.6,
        f"The form version specified in this submission '{version}' does not exist.",
        {"formVersion": version},
    )


def xml_conflict() -> CentralError:
    # golden 24
    return CentralError(
        409.1,
        "A submission already exists with this ID, but with different XML. Resubmissions to "
        "attach additional multimedia must resubmit an identical xml_submission_file.",
    )


def not_accepting_submissions() -> CentralError:
    return CentralError(
        409.2,
        "This form is not currently accepting submissions. Please talk to your program staff "
        "if this is unexpected.",
    )


def uniqueness(fields: list[str], values: list[str], table: str) -> CentralError:
    # golden 09
    return CentralError(
        409.3,
        f"A resource already exists with {','.join(fields)} value(s) of {','.join(values)}.",
        {"fields": fields, "values": values, "table": table},
    )


def version_uniqueness(xml_form_id: str, version: str) -> CentralError:
    # golden 18
    return CentralError(
        409.6,
        f"You tried to publish the form '{xml_form_id}' with version '{version}', but a "
        "published form has already existed in this project with those identifiers.",
        {"xmlFormId": xml_form_id, "version": version},
    )


def no_published_version() -> CentralError:
    return CentralError(
        409.7,
        "Could not delete draft, because the form has not been published. Either delete the "
        "whole form, or replace the draft.",
    )


def deprecating_old_submission(deprecated_id: str) -> CentralError:
    return CentralError(
        409.9,
        f"You tried to update a submission, but the copy you were editing ({deprecated_id}) is "
        "now out of date. Please get the new version that has been submitted, and make your "
        "edits again.",
        {"deprecatedId": deprecated_id},
    )


def deleted_resubmission() -> CentralError:
    # central-api.md: resubmitting the instanceID of a deleted submission is refused 409.18.
    return CentralError(
        409.18,
        "This submission has been deleted. You may not resubmit it.",
    )


def unknown_internal() -> CentralError:
    return CentralError(500.1, "An unknown internal problem has occurred. Please try again later.")


def not_implemented(feature: str) -> CentralError:
    # golden 39
    return CentralError(
        501.1,
        f"The requested feature {feature} is not supported by this server.",
        {"feature": feature},
    )


def unsupported_expand(text: str) -> CentralError:
    return CentralError(
        501.6,
        f'The given OData expand expression is not supported by this server: "{text}". '
        'Currently, only "$expand=*" is supported.',
        {"text": text},
    )


def unsupported_select_expand() -> CentralError:
    return CentralError(501.11, "This server doesn't support $select query parameter with $expand.")
