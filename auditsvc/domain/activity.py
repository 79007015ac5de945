"""The activity review record (issue 15, point 5): who ran which report,
export or review, and when, read from the chain itself.

HIPAA asks that activity be *recorded and examined*
(§164.308(a)(1)(ii)(D)); this report is the evidence of the examining.
It lists the service's own events (source system ``auditsvc``: every
report, export, review and registry change appends one), never an
emitter's: ingest refuses that source from any emitter token. The rows
carry no PHI (no patient identifier, no free-text notes), so auditors may
read it as well as privacy officers; its own run is recorded like any other.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..store import activity as queries
from ..store.report_sql import facts_page
from ..store.session import driver_connection
from .backfill import require_read_model
from .cursors import MAX_SEQ, Row, every_row, page_start, page_with_cursor, query_key
from .page_audit import PageBounds, record_page
from .periods import DayOrTimestamp, report_period
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller

KIND = "activity"

# Attributes that may hold free text (a review's notes): left out, so the
# record is fit for auditors, who may not see PHI.
_FREE_TEXT = frozenset({"notes", "note", "comment", "reason_text"})


class ActivityQuery(BaseModel):
    """Body of ``POST /v1/reports/activity``; ``from``/``to`` as for the other
    reports (a date is the whole UTC day; both inclusive)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=400)


def activity_row(record: dict[str, Any]) -> dict[str, Any]:
    """One row of the record: when, who (and in which role), what."""
    actor = record.get("actor") or {}
    attributes = record.get("attributes") or {}
    destination = (record.get("destination") or {}).get("system_id", "")
    return {
        "seq": record.get("seq"),
        "occurred_at": record.get("occurred_at"),
        "event_id": record.get("event_id"),
        "event_type": record.get("event_type"),
        "activity": attributes.get("query") or record.get("event_type"),
        "actor": {k: actor[k] for k in ("id", "type", "role", "name") if actor.get(k) is not None},
        "channel": destination.partition(":")[2] or destination,
        "details": {k: v for k, v in sorted(attributes.items()) if k != "query" and k not in _FREE_TEXT},
    }


async def _start(audit: AuditLog, query: ActivityQuery) -> tuple[datetime, datetime, str, tuple[datetime, int], int]:
    start, end = report_period(query.from_, query.to)
    key = query_key(KIND, "", start, end)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        page = await page_start(conn, audit.log_id, query.cursor, key)
    return start, end, key, page.position, page.as_of


async def activity_report(audit: AuditLog, query: ActivityQuery, reader: Caller) -> dict[str, Any]:
    """One page of the activity record, its own run recorded before it is returned."""
    start, end, key, after, as_of = await _start(audit, query)
    async with driver_connection(audit.engine) as conn:
        rows = await facts_page(
            conn, queries.ACTIVITY_PAGE_SQL, audit.log_id, SERVICE_SYSTEM_ID, start, end, as_of, after, query.limit + 1
        )
    rows, next_cursor = page_with_cursor(rows, query.limit, key, as_of)
    await record_page(audit, reader, KIND, "all", start, end, as_of, PageBounds.of_rows(rows), fmt="json")
    return {
        "period": {"from": format_timestamp(start), "to": format_timestamp(end)},
        "activity": [activity_row(json.loads(record)) for _, _, record in rows],
        "next_cursor": next_cursor,
    }


async def activity_records(audit: AuditLog, query: ActivityQuery, reader: Caller) -> AsyncIterator[dict[str, Any]]:
    """Every row from the query's cursor on, page by page; the run recorded first."""
    start, end, _, after, as_of = await _start(audit, query)
    await record_page(audit, reader, KIND, "all", start, end, as_of, PageBounds(after, (end, MAX_SEQ)), fmt="csv")
    return _pages(audit, start, end, as_of, after)


async def _pages(
    audit: AuditLog, start: datetime, end: datetime, as_of: int, after: tuple[datetime, int]
) -> AsyncIterator[dict[str, Any]]:
    async def read_page(after: tuple[datetime, int], limit: int) -> list[Row]:
        async with driver_connection(audit.engine) as conn:
            return await facts_page(
                conn, queries.ACTIVITY_PAGE_SQL, audit.log_id, SERVICE_SYSTEM_ID, start, end, as_of, after, limit
            )

    async for _, _, record in every_row(read_page, after):
        yield activity_row(json.loads(record))
