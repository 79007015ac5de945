"""The patient-access report's events as a stream (``?format=csv``).

The same events as the JSON pages of domain/reports.py, from the query's
cursor on, in keyset pages of ``cursors.PAGE_ROWS`` on the snapshot the stream
started at: memory is bounded by one page whatever the patient's history.
The read is recorded in the chain, as for a JSON page, before the first
event is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from ..runtime import AuditLog
from ..store import reports as queries
from ..store.session import driver_connection
from .backfill import require_read_model
from .cursors import Row, every_row, page_start
from .periods import report_period
from .read_audit import record_read
from .reports import KIND, PatientAccessQuery
from .tokens import Caller


async def patient_access_records(
    audit: AuditLog, query: PatientAccessQuery, reader: Caller
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the patient's report from the query's cursor on."""
    start, end = report_period(query.from_, query.to)
    id_hmac = audit.keys.identifier_hmac(query.identifier.system, query.identifier.value)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        page = await page_start(conn, audit.log_id, query.cursor, KIND)
        hmacs = await queries.linked_identifier_hmacs(conn, audit.log_id, id_hmac)
    await record_read(audit, reader, [query.identifier], data_elements=["AuditEvent"], detail="patient-access-report")
    return _pages(audit, hmacs, start, end, page.as_of, page.position)


async def _pages(
    audit: AuditLog, hmacs: list[bytes], start: datetime, end: datetime, as_of: int, after: tuple[datetime, int]
) -> AsyncIterator[dict[str, Any]]:
    sealer = audit.keys.sealer
    assert sealer is not None

    async def read_page(after: tuple[datetime, int], limit: int) -> list[Row]:
        async with driver_connection(audit.engine) as conn:
            return await queries.access_events(conn, audit.log_id, hmacs, start, end, as_of, after, limit)

    async for _, _, record in every_row(read_page, after):
        yield sealer.reveal_record(json.loads(record))
