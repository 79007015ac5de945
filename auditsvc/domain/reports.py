"""The privacy officer's question: every system that accessed this patient.

A report is itself a read of PHI, so it is recorded in the same chain
(event type ``audit-log-query``) before the answer is returned.
"""

from __future__ import annotations

import json
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..store import reports as queries
from ..store.session import driver_connection
from .backfill import require_read_model
from .cursors import page_start, page_with_cursor
from .ingest import parse_body
from .periods import DayOrTimestamp, report_period
from .read_audit import record_read
from .revealed import revealed_by

KIND = "patient-access"
"""What the report's cursors are bound to."""


class PatientAccessQuery(BaseModel):
    """Body of ``POST /v1/reports/patient-access``. ``from``/``to`` take a
    date (whole days, UTC) or an RFC 3339 timestamp; both ends inclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    identifier: Identifier
    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)


def _system_json(s: queries.SystemAccess) -> dict[str, Any]:
    return {
        "system_id": s.system_id,
        "count": s.count,
        "as_source": s.as_source,
        "as_destination": s.as_destination,
        "first_access": format_timestamp(s.first_access),
        "last_access": format_timestamp(s.last_access),
        "actions": s.actions,
        "data_elements": s.data_elements,
        "actors": s.actors,
    }


def parse_query(body: bytes) -> PatientAccessQuery:
    """The report request from raw body bytes, errors named by field."""
    return parse_body(PatientAccessQuery, body, "report request")


async def patient_access_report(audit: AuditLog, query: PatientAccessQuery, reader: Any) -> dict[str, Any]:
    start, end = report_period(query.from_, query.to)
    id_hmac = audit.keys.identifier_hmac(query.identifier.system, query.identifier.value)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        page = await page_start(conn, audit.log_id, query.cursor, KIND)
        after, as_of = page.position, page.as_of
        hmacs = await queries.linked_identifier_hmacs(conn, audit.log_id, id_hmac)
        identifiers = await queries.identifiers_for(conn, audit.log_id, hmacs)
        systems = await queries.system_accesses(conn, audit.log_id, hmacs, start, end, as_of)
        # The by-system and by-actor report pages that listed this patient (the first page only).
        revealed = None
        if not query.cursor:
            actors = sorted({a["id"] for s in systems for a in s.actors})
            patient = (hmacs, start, end, as_of)
            revealed = await revealed_by(
                conn, audit.log_id, audit.keys, patient, [s.system_id for s in systems], actors
            )
        rows = await queries.access_events(conn, audit.log_id, hmacs, start, end, as_of, after, query.limit + 1)
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    linked = sorted({(s, v if v is not None else sealer.open(s, str(enc))) for s, v, enc in identifiers})
    if not linked:
        linked = [(query.identifier.system, query.identifier.value)]
    rows, next_cursor = page_with_cursor(rows, query.limit, KIND, as_of)
    await record_read(audit, reader, [query.identifier], data_elements=["AuditEvent"], detail="patient-access-report")
    return {
        "patient": {"identifiers": [{"system": s, "value": v} for s, v in linked]},
        "systems": [_system_json(s) for s in systems],
        "events": [sealer.reveal_record(json.loads(record)) for _, _, record in rows],
        "next_cursor": next_cursor,
        "revealed_by": revealed,
    }
