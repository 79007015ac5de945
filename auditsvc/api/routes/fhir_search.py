"""/fhir: the FHIR R4 AuditEvent facade's reads (IHE RESTful ATNA): the
CapabilityStatement. Errors are OperationOutcome resources (api/fhir_http.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...domain.fhir.capability import capability_statement
from ..fhir_http import FHIR_PREFIX, FhirFormatDep, FhirResponse

router = APIRouter(prefix=FHIR_PREFIX, tags=["fhir"])


def fhir_base(request: Request) -> str:
    """The FHIR base URL the request came in on (links in Bundles start with it)."""
    return str(request.base_url).rstrip("/") + FHIR_PREFIX


@router.get(
    "/metadata",
    response_class=FhirResponse,
    summary="CapabilityStatement (FHIR R4): what the AuditEvent facade serves; no authentication",
    include_in_schema=False,  # the FHIR surface is described by its CapabilityStatement
)
async def metadata(request: Request, media_type: FhirFormatDep) -> FhirResponse:
    return FhirResponse(capability_statement(fhir_base(request)), media_type=media_type)
