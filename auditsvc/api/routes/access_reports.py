"""/v1/reports/system-access and /v1/reports/actor-access: what one system,
or one user or service, accessed. The subject travels in the body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ...domain.access_reports import (
    ActorAccessQuery,
    SystemAccessQuery,
    access_report,
    access_report_records,
    parse_access_query,
)
from ..csv_stream import events_csv
from ..deps import AuditDep, PrivacyOfficerDep
from ..formats import FormatDep, ReportFormat
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import PatientOut, request_body_schema
from .reports import MAX_REPORT_BODY_BYTES

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class CounterpartOut(BaseModel):
    system_id: str
    as_source: int
    as_destination: int
    count: int


class SummaryOut(BaseModel):
    """What the summary fields cover: the first ``events`` of the period
    (all of them when ``complete``), through ``through``."""

    events: int
    complete: bool
    through: str | None
    patient_count: int


class AccessReport(BaseModel):
    system: dict[str, Any] | None = None
    actor: dict[str, Any] | None = None
    patient_count: int
    counterparts: list[CounterpartOut]
    data_elements: list[str]
    summary: SummaryOut
    patients: list[PatientOut]
    events: list[dict[str, Any]]
    next_cursor: str | None


@router.post(
    "/system-access",
    response_model=AccessReport,
    response_model_exclude_unset=True,
    openapi_extra=request_body_schema(SystemAccessQuery),
    summary="What one system sent or received: patients, counterparts, data elements, events",
)
async def system_access(
    request: Request, audit: AuditDep, caller: PrivacyOfficerDep, limits: BodyLimitsDep, fmt: FormatDep
) -> Any:
    query = parse_access_query(SystemAccessQuery, await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is ReportFormat.CSV:
        return events_csv(await access_report_records(audit, query, caller, fmt.value), "system-access.csv")
    return await access_report(audit, query, caller)


@router.post(
    "/actor-access",
    response_model=AccessReport,
    response_model_exclude_unset=True,
    openapi_extra=request_body_schema(ActorAccessQuery),
    summary="What one user or service accessed: patients, systems, data elements, events",
)
async def actor_access(
    request: Request, audit: AuditDep, caller: PrivacyOfficerDep, limits: BodyLimitsDep, fmt: FormatDep
) -> Any:
    query = parse_access_query(ActorAccessQuery, await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is ReportFormat.CSV:
        return events_csv(await access_report_records(audit, query, caller, fmt.value), "actor-access.csv")
    return await access_report(audit, query, caller)
