"""The accounting of disclosures (§164.528) and the suspensions it honours.
PHI travels in the body, never the URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.disclosures import DisclosureQuery, disclosure_accounting, parse_disclosure_query
from ...domain.suspensions import SuspensionIn, parse_suspension, record_suspension
from ...domain.tokens import Caller, Role
from ...reports_pdf.make import PDF_MEDIA_TYPE, accounting_pdf
from ..deps import AuditDep, PrivacyOfficerDep, require
from ..disclosure_schemas import DisclosureAccounting, SuspensionRecorded
from ..formats import AccountingFormat, AccountingFormatDep, report_responses
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import request_body_schema

MAX_BODY_BYTES = 16 * 1024

router = APIRouter(prefix="/v1", tags=["privacy office"])


SuspenderDep = Annotated[Caller, Depends(require(Role.PRIVACY_OFFICER, Role.ADMIN))]


@router.post(
    "/reports/disclosures",
    response_model=DisclosureAccounting,
    openapi_extra=request_body_schema(DisclosureQuery),
    summary="The accounting of disclosures of one patient's PHI (45 CFR 164.528), as of the request date",
    responses=report_responses(AccountingFormat.PDF),
)
async def disclosures(
    request: Request,
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    limits: BodyLimitsDep,
    fmt: AccountingFormatDep = AccountingFormat.JSON,
) -> Any:
    query = parse_disclosure_query(await read_json_body(request, MAX_BODY_BYTES, limits.json))
    if fmt is AccountingFormat.PDF:
        return Response(await accounting_pdf(audit, query, caller), media_type=PDF_MEDIA_TYPE)
    return (await disclosure_accounting(audit, query, caller)).report


@router.post(
    "/disclosure-suspensions",
    status_code=201,
    response_model=SuspensionRecorded,
    openapi_extra=request_body_schema(SuspensionIn),
    summary="Record an agency's request to suspend a patient's right to an accounting of disclosures to it",
)
async def disclosure_suspension(
    request: Request, audit: AuditDep, caller: SuspenderDep, limits: BodyLimitsDep
) -> dict[str, Any]:
    suspension = parse_suspension(await read_json_body(request, MAX_BODY_BYTES, limits.json))
    return await record_suspension(audit, suspension, caller)
