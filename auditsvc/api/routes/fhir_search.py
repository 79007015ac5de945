"""/fhir: the FHIR R4 AuditEvent facade's reads (IHE RESTful ATNA, ITI-81):
the CapabilityStatement, search (GET, and POST ``_search`` so that PHI stays
out of the URL) and read. Errors are OperationOutcome resources
(api/fhir_http.py). Described by the CapabilityStatement, not OpenAPI."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request

from ...domain.fhir.bundle import page_url, searchset
from ...domain.fhir.capability import capability_statement
from ...domain.fhir.search import PageState, open_page, read_audit_event, seal_page, search_page
from ...domain.tokens import Caller
from ...runtime import AuditLog
from ..deps import AuditDep, EventReaderDep, read_body
from ..fhir_http import FHIR_PREFIX, FhirError, FhirFormatDep, FhirResponse, negotiate_format

router = APIRouter(prefix=FHIR_PREFIX, tags=["fhir"], include_in_schema=False)

MAX_SEARCH_BODY_BYTES = 16 * 1024
FORM = "application/x-www-form-urlencoded"


def fhir_base(request: Request) -> str:
    """The FHIR base URL the request came in on (links in Bundles start with it)."""
    return str(request.base_url).rstrip("/") + FHIR_PREFIX


@router.get("/metadata", response_class=FhirResponse, summary="CapabilityStatement (FHIR R4); no authentication")
async def metadata(request: Request, media_type: FhirFormatDep) -> FhirResponse:
    return FhirResponse(capability_statement(fhir_base(request)), media_type=media_type)


async def _search(
    request: Request, audit: AuditLog, caller: Caller, params: list[tuple[str, str]], media_type: str
) -> FhirResponse:
    state: PageState | None = None
    tokens = [v for n, v in params if n == "_page"]
    if tokens:
        if len(tokens) > 1 or any(n not in ("_page", "_format") for n, _ in params):
            raise FhirError(400, "invalid", "a _page link takes no other search parameter", ["_page"])
        state = open_page(audit, tokens[0])
    page = await search_page(audit, state, params, caller)
    base = fhir_base(request)
    next_url = page_url(base, seal_page(audit, page.next_state)) if page.next_state else None
    bundle = searchset(base, page.resources, self_url=page_url(base, seal_page(audit, page.state)), next_url=next_url)
    return FhirResponse(bundle, media_type=media_type)


@router.get("/AuditEvent", response_class=FhirResponse, summary="ITI-81: search AuditEvents (searchset Bundle)")
async def search_get(
    request: Request, audit: AuditDep, caller: EventReaderDep, media_type: FhirFormatDep
) -> FhirResponse:
    return await _search(request, audit, caller, list(request.query_params.multi_items()), media_type)


@router.post(
    "/AuditEvent/_search", response_class=FhirResponse, summary="ITI-81: search AuditEvents, parameters in the body"
)
async def search_post(request: Request, audit: AuditDep, caller: EventReaderDep) -> FhirResponse:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM:
        raise FhirError(415, "not-supported", f"a _search body must be {FORM}")
    body = await read_body(request, MAX_SEARCH_BODY_BYTES)
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise FhirError(400, "structure", f"the body is not valid {FORM}") from None
    params = [*request.query_params.multi_items(), *form]
    formats = [v for n, v in params if n == "_format"]
    media_type = negotiate_format(request, formats[-1] if formats else None)
    return await _search(request, audit, caller, params, media_type)


@router.get("/AuditEvent/{event_id}", response_class=FhirResponse, summary="Read one AuditEvent (its event_id)")
async def read(event_id: str, audit: AuditDep, caller: EventReaderDep, media_type: FhirFormatDep) -> FhirResponse:
    return FhirResponse(await read_audit_event(audit, event_id, caller), media_type=media_type)
