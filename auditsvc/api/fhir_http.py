"""The FHIR HTTP layer shared by every ``/fhir`` route (ITI-81 search and
read, ITI-20 feed, metadata): the media type, OperationOutcome errors and
format negotiation.

Errors under ``/fhir`` are OperationOutcome resources whatever raised them:
a ``FhirError`` from a FHIR route, a domain error (401/403 from auth, 413
from the body limits, 422, 503), FastAPI's own 404/405/422 and the 429 of
the rate limits. ``install_fhir_errors`` wraps each installed handler: under
``/fhir`` the handler's answer (its status, headers and its ``detail``,
which never quotes a value) is re-shaped as an OperationOutcome; elsewhere
it is left as it is. The 500 of last resort (api/errors.py) asks
``unexpected_error_outcome`` for its body under ``/fhir``.

Only JSON is served. ``_format`` or ``Accept`` asking for XML (or anything
else with no JSON form) gets 406 with an OperationOutcome saying so. XML
could be written (fhir.resources 8 serializes XML through lxml), but that
would make the FHIR models and lxml runtime dependencies of the service for
a form that none of the clients of the IHE profiles here needs; the
CapabilityStatement declares JSON only.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..domain.fhir.outcome import FhirError, Issue, operation_outcome

__all__ = [
    "FHIR_JSON",
    "FHIR_PREFIX",
    "FhirError",
    "FhirFormatDep",
    "FhirResponse",
    "Issue",
    "install_fhir_errors",
    "is_fhir_path",
    "negotiate_format",
    "operation_outcome",
    "unexpected_error_outcome",
]

FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"

# The _format values and Accept media types answered with JSON, and those
# recognised as asking for XML (refused with 406, saying why).
JSON_FORMATS = frozenset({"json", "application/json", FHIR_JSON, "application/json+fhir"})
XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"})
_ANY = frozenset({"*/*", "application/*"})

# The HTTP statuses an error can carry to their FHIR issue-type code
# (http://hl7.org/fhir/ValueSet/issue-type).
ISSUE_CODE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    500: "exception",
    503: "transient",
}


class FhirResponse(JSONResponse):
    """A FHIR resource as ``application/fhir+json; charset=utf-8``, written
    by orjson (a page of 100 AuditEvents is ~400 KB: 1 ms against 6 ms)."""

    media_type = f"{FHIR_JSON}; charset=utf-8"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        if media_type is not None and "charset=" not in media_type:
            media_type = f"{media_type}; charset=utf-8"
        super().__init__(content, status_code, headers, media_type)

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def is_fhir_path(path: str) -> bool:
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")


def _media_types(accept: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in accept.split(",") if part.strip()]


def negotiate_format(request: Request, form_format: str | None = None) -> str:
    """The media type to answer ``request`` in (``_format`` from the query or
    the ``_search`` form, else ``Accept``), or 406 when only XML or another
    format with no JSON form is asked for. The answer names the JSON type the
    client asked for (``application/json`` or ``application/fhir+json``)."""
    fmt = form_format if form_format is not None else request.query_params.get("_format")
    if fmt is not None:
        wanted = fmt.split(";", 1)[0].strip().lower()
        if wanted in JSON_FORMATS:
            return "application/json" if wanted == "application/json" else FHIR_JSON
        raise _not_acceptable(wanted in XML_FORMATS, ["_format"])
    accept = request.headers.get("accept")
    if not accept:
        return FHIR_JSON
    types = _media_types(accept)
    if any(t in JSON_FORMATS or t in _ANY for t in types):
        return "application/json" if "application/json" in types and FHIR_JSON not in types else FHIR_JSON
    raise _not_acceptable(any(t in XML_FORMATS for t in types), None)


def _not_acceptable(xml: bool, expression: list[str] | None) -> FhirError:
    what = "XML is not supported" if xml else "that format is not supported"
    return FhirError(406, "not-supported", f"{what}; this server answers only JSON (application/fhir+json)", expression)


FhirFormatDep = Annotated[str, Depends(negotiate_format)]
"""A route's answer media type (406 OperationOutcome when it cannot be JSON)."""


def unexpected_error_outcome() -> FhirResponse:
    """The 500 of last resort under ``/fhir`` (no detail: nothing of the error may leak)."""
    return FhirResponse(operation_outcome([Issue("fatal", "exception", "internal error")]), status_code=500)


_PASSED_HEADERS = ("www-authenticate", "retry-after", "allow")


def _issues_from_body(status: int, body: dict[str, Any]) -> list[Issue]:
    code = ISSUE_CODE_BY_STATUS.get(status, "processing" if status < 500 else "exception")
    severity = "error" if status < 500 else "fatal"
    issues = [Issue(severity, code, str(body.get("detail") or "error"))]
    for err in body.get("errors") or []:
        loc = [str(part) for part in err.get("loc") or ()]
        if loc[:1] in (["query"], ["body"], ["path"], ["header"]):
            loc = loc[1:]
        issues.append(Issue(severity, code, str(err.get("msg") or "invalid"), [".".join(loc)] if loc else None))
    return issues


Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _fhir_aware(original: Handler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        answer = original(request, exc)
        if inspect.isawaitable(answer):
            answer = await answer
        if not is_fhir_path(request.url.path) or not isinstance(getattr(answer, "body", None), bytes):
            return answer
        try:
            body = json.loads(bytes(answer.body))
        except ValueError:
            body = {}
        headers = {k: v for k, v in answer.headers.items() if k.lower() in _PASSED_HEADERS}
        issues = _issues_from_body(answer.status_code, body if isinstance(body, dict) else {})
        return FhirResponse(operation_outcome(issues), status_code=answer.status_code, headers=headers)

    return handler


def install_fhir_errors(app: FastAPI) -> None:
    """Answer errors under ``/fhir`` as OperationOutcome. Call after every
    other exception handler is installed (it wraps the ones present)."""
    for key, original in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _fhir_aware(original)

    async def _fhir_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return FhirResponse(exc.outcome(), status_code=exc.status, headers=exc.headers)

    app.add_exception_handler(FhirError, _fhir_error)
