"""Every read of the audit log is itself an event in the same chain.

A report, an event read or an export appends an ``audit-log-query`` event:
the reader as actor, the patient as subject, auditsvc as source and the
reader's role as destination. It is appended (and committed) before the
answer leaves the service, so no read of PHI goes unrecorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk._wire import wire_event

from ..runtime import AuditLog
from .ingest import prepare
from .tokens import Caller

SERVICE_SYSTEM_ID = "auditsvc"
READ_EVENT_TYPE = "audit-log-query"


async def record_read(
    audit: AuditLog,
    reader: Caller,
    identifiers: Sequence[Identifier],
    *,
    data_elements: list[str],
    detail: str,
) -> None:
    event = PhiAccess(
        occurred_at=datetime.now(UTC),
        action="E",
        event_type=READ_EVENT_TYPE,
        patient={"identifiers": list(identifiers)},
        data_elements=data_elements,
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": f"{SERVICE_SYSTEM_ID}:{reader.role.value}"},
        actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        outcome=0,
        attributes={"query": detail},
    )
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))
