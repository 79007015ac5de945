"""/fhir: the ITI-20 FHIR feed. ``POST /fhir/AuditEvent`` (one AuditEvent)
and ``POST /fhir`` (a batch, transaction or collection Bundle of them), from
an emitter token. docs/fhir.md, "Feed", says how each is mapped and answered.

Not in the OpenAPI document: the FHIR surface is described by its
CapabilityStatement (``GET /fhir/metadata``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response

from ...domain.fhir.feed import FeedContext, FeedRefusal
from ...domain.fhir.feed_ingest import CREATED, EntryOutcome, FeedAnswer, feed_bundle, feed_resource
from ..deps import AuditDep, EmitterDep
from ..fhir_http import FHIR_JSON, FHIR_PREFIX, FhirError, FhirFormatDep, FhirResponse, Issue, operation_outcome
from ..limits import BodyLimits, BodyLimitsDep, read_json_body

router = APIRouter(prefix=FHIR_PREFIX, tags=["fhir"])

ACCEPTED_MEDIA_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
}
PREFER_RETURNS = frozenset({"minimal", "representation", "OperationOutcome"})


def _content_type(request: Request) -> None:
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media not in ACCEPTED_MEDIA_TYPES:
        raise FhirError(415, "not-supported", "the body must be FHIR JSON (Content-Type: application/fhir+json)")


async def _resource(request: Request, limits: BodyLimits) -> Any:
    """The body as JSON, within the API's body limits (413, 422)."""
    _content_type(request)
    body = await read_json_body(request, limits.max_body_bytes, limits.json)
    try:
        return orjson.loads(body.removeprefix(b"\xef\xbb\xbf"))  # some FHIR clients write a BOM
    except orjson.JSONDecodeError:
        raise FhirError(400, "structure", "the request body is not valid JSON (nothing was stored)") from None


def _refused(refusal: FeedRefusal) -> FhirError:
    said = refusal.message if "nothing was stored" in refusal.message else f"{refusal.message}; nothing was stored"
    return FhirError(refusal.status, refusal.code, said, [refusal.path])


def _prefer_return(request: Request) -> str:
    """``Prefer: return=...`` (RFC 7240, FHIR's three values); representation when absent."""
    for part in (request.headers.get("prefer") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"') in PREFER_RETURNS:
            return value.strip().strip('"')
    return "representation"


def _location(event_id: UUID) -> str:
    return f"AuditEvent/{event_id}"


def _stored_outcome(outcome: EntryOutcome) -> dict[str, Any]:
    n = len(outcome.event_ids)
    said = (
        f"stored as {n} event(s), one per patient"
        if outcome.status == CREATED
        else "already stored: nothing was stored again"
    )
    return operation_outcome([Issue("information", "informational", said)])


@router.post("/AuditEvent", include_in_schema=False)
async def create_audit_event(
    request: Request, audit: AuditDep, caller: EmitterDep, limits: BodyLimitsDep, media: FhirFormatDep
) -> Response:
    """ITI-20: store one AuditEvent's events. 201 (or 200 for a resend) with
    ``Location: /fhir/AuditEvent/<event id>`` (the first patient's event)."""
    resource = await _resource(request, limits)
    try:
        outcome = await feed_resource(audit, resource, caller, FeedContext(caller.systems), limits.max_batch_events)
    except FeedRefusal as refusal:
        raise _refused(refusal) from None
    headers = {"Location": f"{FHIR_PREFIX}/{_location(outcome.event_ids[0])}"}
    wanted = _prefer_return(request)
    if wanted == "minimal":
        return Response(status_code=outcome.status, headers=headers)
    if wanted == "OperationOutcome":
        return FhirResponse(_stored_outcome(outcome), outcome.status, headers, media)
    # The resource as this server keeps it: its id is the (first) event's.
    kept = {**resource, "id": str(outcome.event_ids[0])}
    return FhirResponse(kept, outcome.status, headers, media)


def _response_entry(outcome: EntryOutcome) -> dict[str, Any]:
    response: dict[str, Any] = {"status": f"{outcome.status} {REASONS.get(outcome.status, '')}".strip()}
    if outcome.refusal is not None:
        refusal = outcome.refusal
        response["outcome"] = operation_outcome([Issue("error", refusal.code, refusal.message, [refusal.path])])
    else:
        response["location"] = _location(outcome.event_ids[0])
    return {"response": response}


def _response_bundle(answer: FeedAnswer) -> dict[str, Any]:
    kind = "transaction-response" if answer.bundle_type == "transaction" else "batch-response"
    return {"resourceType": "Bundle", "type": kind, "entry": [_response_entry(o) for o in answer.outcomes]}


@router.post("", include_in_schema=False)
@router.post("/", include_in_schema=False)  # the base as clients write it (fhirclient: with its slash)
async def post_bundle(
    request: Request, audit: AuditDep, caller: EmitterDep, limits: BodyLimitsDep, media: FhirFormatDep
) -> Response:
    """ITI-20: a ``batch`` or ``collection`` Bundle (each entry on its own;
    a ``batch-response`` with every entry's outcome) or a ``transaction``
    (all stored, or nothing and an OperationOutcome naming the entry)."""
    bundle = await _resource(request, limits)
    try:
        answer = await feed_bundle(audit, bundle, caller, FeedContext(caller.systems), limits.max_batch_events)
    except FeedRefusal as refusal:
        raise _refused(refusal) from None
    return FhirResponse(_response_bundle(answer), 200, None, media)
