"""/v1/reports/system-access and /v1/reports/actor-access: what one system,
or one user or service, accessed. The subject travels in the body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...domain.access_reports import (
    ActorAccessQuery,
    SystemAccessQuery,
    access_report,
    access_report_records,
    parse_access_query,
)
from ...domain.activity import ActivityQuery, activity_records, activity_report
from ...domain.tokens import Caller
from ...runtime import AuditLog
from ..csv_stream import csv_response, events_csv
from ..deps import AuditDep, EventReaderDep, PrivacyOfficerDep
from ..formats import FormatDep, ReportFormat, report_responses
from ..limits import BodyLimits, BodyLimitsDep, read_json_body
from ..schemas import PatientOut, request_body_schema
from .reports import MAX_REPORT_BODY_BYTES

router = APIRouter(prefix="/v1/reports", tags=["reports"])
REQUEST_MODELS = (SystemAccessQuery, ActorAccessQuery, ActivityQuery)  # bodies documented in components.schemas


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
    patient_count: int | None = Field(description="first page only (null on later pages), as the summary fields")
    counterparts: list[CounterpartOut] | None
    data_elements: list[str] | None
    summary: SummaryOut | None
    patients: list[PatientOut]
    events: list[dict[str, Any]]
    next_cursor: str | None


async def _answer(
    request: Request,
    audit: AuditLog,
    caller: Caller,
    limits: BodyLimits,
    fmt: ReportFormat,
    model: type[SystemAccessQuery] | type[ActorAccessQuery],
    filename: str,
) -> Any:
    """The by-system or by-actor report, as JSON or streamed CSV."""
    query = parse_access_query(model, await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is ReportFormat.CSV:
        return events_csv(await access_report_records(audit, query, caller, fmt.value), filename)
    return await access_report(audit, query, caller)


@router.post(
    "/system-access",
    response_model=AccessReport,
    response_model_exclude_unset=True,
    responses=report_responses(ReportFormat.CSV),
    openapi_extra=request_body_schema(SystemAccessQuery),
    summary="What one system sent or received: patients, counterparts, data elements, events",
)
async def system_access(
    request: Request,
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    limits: BodyLimitsDep,
    fmt: FormatDep = ReportFormat.JSON,
) -> Any:
    return await _answer(request, audit, caller, limits, fmt, SystemAccessQuery, "system-access.csv")


@router.post(
    "/actor-access",
    response_model=AccessReport,
    response_model_exclude_unset=True,
    responses=report_responses(ReportFormat.CSV),
    openapi_extra=request_body_schema(ActorAccessQuery),
    summary="What one user or service accessed: patients, systems, data elements, events",
)
async def actor_access(
    request: Request,
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    limits: BodyLimitsDep,
    fmt: FormatDep = ReportFormat.JSON,
) -> Any:
    return await _answer(request, audit, caller, limits, fmt, ActorAccessQuery, "actor-access.csv")


class ActivityOut(BaseModel):
    seq: int
    occurred_at: str
    event_id: str
    event_type: str
    activity: str
    actor: dict[str, Any]
    channel: str
    details: dict[str, Any]


class ActivityPeriod(BaseModel):
    from_: str = Field(alias="from")
    to: str


class ActivityReport(BaseModel):
    period: ActivityPeriod
    activity: list[ActivityOut]
    next_cursor: str | None


ACTIVITY_COLUMNS = (
    "seq",
    "occurred_at",
    "event_id",
    "event_type",
    "activity",
    "actor_id",
    "actor_role",
    "actor_name",
    "channel",
    "details",
)


def _activity_csv_row(row: dict[str, Any]) -> list[Any]:
    actor = row["actor"]
    details = " ".join(f"{k}={v}" for k, v in row["details"].items())
    return [
        row["seq"],
        row["occurred_at"],
        row["event_id"],
        row["event_type"],
        row["activity"],
        actor.get("id"),
        actor.get("role", ""),
        actor.get("name", ""),
        row["channel"],
        details,
    ]


@router.post(
    "/activity",
    response_model=ActivityReport,
    response_model_by_alias=True,
    responses=report_responses(ReportFormat.CSV),
    openapi_extra=request_body_schema(ActivityQuery),
    summary="Who ran which report, export or review, and when: the record that the log is examined",
)
async def activity(
    request: Request, audit: AuditDep, caller: EventReaderDep, limits: BodyLimitsDep, fmt: FormatDep = ReportFormat.JSON
) -> Any:
    query = parse_access_query(ActivityQuery, await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is ReportFormat.CSV:
        rows = await activity_records(audit, query, caller)
        return csv_response(ACTIVITY_COLUMNS, rows, _activity_csv_row, "activity.csv")
    return await activity_report(audit, query, caller)
