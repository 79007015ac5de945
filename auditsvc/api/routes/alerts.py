"""/v1/alerts: the flow alerts (new pairs, uncovered flows, expiring BAAs,
silent systems) and their acknowledgement. Privacy officers."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request

from ...domain.alerts import (
    AcknowledgeRequest,
    acknowledge_alert,
    list_alerts,
    parse_acknowledgement,
    parse_alert_query,
)
from ..deps import AuditDep, PrivacyOfficerDep
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import ErrorOut

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
REQUEST_MODELS = (AcknowledgeRequest,)
MAX_ACK_BODY_BYTES = 8 * 1024


@router.get("", response_model=None, summary="The alerts, newest first: open (default), acknowledged or all")
async def alerts(
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    status: Literal["open", "acknowledged", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    return await list_alerts(audit, parse_alert_query({"status": status, "limit": limit}), caller)


@router.post(
    "/{alert_id}/acknowledge",
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AcknowledgeRequest"}}},
        }
    },
    summary="Acknowledge an alert with notes; recorded in the chain",
    responses={404: {"model": ErrorOut, "description": "No alert with this alert_id"}},
)
async def acknowledge(
    alert_id: UUID, request: Request, audit: AuditDep, caller: PrivacyOfficerDep, limits: BodyLimitsDep
) -> Any:
    body = parse_acknowledgement(await read_json_body(request, MAX_ACK_BODY_BYTES, limits.json))
    return await acknowledge_alert(audit, str(alert_id), body, caller)
