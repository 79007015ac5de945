"""/v1/reviews: the break-glass queue and the privacy officer's verdicts
(domain/reviews.py). Notes and patients travel in bodies, never the URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...domain.reviews import (
    MAX_PAGE,
    QueueStatus,
    ReviewConfig,
    ReviewRequest,
    break_glass_queue,
    parse_queue_query,
    parse_review,
    record_review,
    whole_queue,
)
from ...domain.reviews_csv import COLUMNS, csv_row
from ..csv_stream import csv_response
from ..deps import AuditDep, PrivacyOfficerDep
from ..formats import FormatDep, ReportFormat, report_responses
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import ErrorOut

MAX_REVIEW_BODY_BYTES = 16 * 1024

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


@router.get(
    "/break-glass",
    summary="The break-glass queue: emergency accesses with their latest verdict and review history",
    responses=report_responses(ReportFormat.CSV),
)
async def break_glass(
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    status: QueueStatus = "unreviewed",
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    older_than: Annotated[int | None, Query(ge=0, le=36500, description="days")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    fmt: FormatDep = ReportFormat.JSON,
) -> Any:
    query = parse_queue_query(
        {"status": status, "from": from_, "to": to, "older_than": older_than, "limit": limit, "cursor": cursor}
    )
    config = ReviewConfig.from_settings(audit.settings)
    if fmt is ReportFormat.CSV:
        # The whole queue from the cursor on, streamed a page at a time.
        return csv_response(COLUMNS, await whole_queue(audit, query, caller, config), csv_row, "break-glass.csv")
    return await break_glass_queue(audit, query, caller, config)


@router.post(
    "",
    status_code=201,
    # Inline rather than a shared component: the review body refers to nothing else.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReviewRequest.model_json_schema()}},
        }
    },
    summary="Record a verdict on a break-glass access (an event in the chain, linked to it)",
    responses={
        404: {"model": ErrorOut, "description": "No event with this event_id"},
        500: {"model": ErrorOut, "description": "The append transaction failed; nothing was stored; retry"},
    },
)
async def review(request: Request, audit: AuditDep, caller: PrivacyOfficerDep, limits: BodyLimitsDep) -> dict[str, Any]:
    # The body is read only after the caller is authenticated, and bounded.
    body = parse_review(await read_json_body(request, MAX_REVIEW_BODY_BYTES, limits.json))
    return await record_review(audit, body, caller)
