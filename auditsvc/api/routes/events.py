"""/v1/events: append (emitters) and read back with hashes (auditors, privacy officers)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response

from ...domain.events import ingest_batch, read_event
from ...domain.ingest import EventBatch
from ...telemetry.metrics import counting_rejections
from ..deps import AuditDep, EmitterDep, EventReaderDep
from ..limits import BodyLimitsDep, read_event_batch_body
from ..schemas import AppendResponse, EventWithHashes, request_body_schema

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post(
    "",
    response_model=AppendResponse,
    openapi_extra=request_body_schema(EventBatch),
    summary="Append a batch of PHI access events (accepted or rejected whole)",
)
async def append_events(request: Request, audit: AuditDep, caller: EmitterDep, limits: BodyLimitsDep) -> Response:
    with counting_rejections():  # by error class: auditsvc.batches.rejected
        body = await read_event_batch_body(request, limits)
        answer = await ingest_batch(audit, body, caller, limits.max_batch_events)
    # Built by the domain in the documented shape; returning a Response
    # skips re-validating up to 1,000 result rows against the response model.
    return Response(orjson.dumps(answer), media_type="application/json")


@router.get("/{event_id}", response_model=EventWithHashes, summary="One stored event with its leaf and chain hash")
async def get_event(event_id: UUID, audit: AuditDep, caller: EventReaderDep) -> dict[str, Any]:
    return await read_event(audit, event_id, caller)
