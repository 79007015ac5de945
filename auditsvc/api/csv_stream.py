"""Streamed CSV for every report endpoint (``?format=csv``).

The domain hands over an async iterator of rows, read page by page (keyset
pages of the read model); this module writes them out as they come, a
header row first, so an export of any size runs in memory bounded by one
page. The report's run is recorded in the chain before the iterator is
made, so before the first byte leaves.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi.responses import StreamingResponse

FLUSH_BYTES = 64 * 1024  # one write to the socket per this much CSV

EVENT_COLUMNS = (
    "seq",
    "occurred_at",
    "event_id",
    "action",
    "event_type",
    "outcome",
    "purpose_of_use",
    "source_system",
    "destination_system",
    "actor_id",
    "actor_type",
    "actor_role",
    "actor_name",
    "data_elements",
    "patient_identifiers",
)


def event_row(record: dict[str, Any]) -> list[Any]:
    """One CSV row of a (revealed) event record; lists joined by spaces,
    identifiers as ``system|value`` joined by spaces."""
    actor = record.get("actor") or {}
    identifiers = (record.get("patient") or {}).get("identifiers") or []
    return [
        record.get("seq"),
        record.get("occurred_at"),
        record.get("event_id"),
        record.get("action"),
        record.get("event_type"),
        record.get("outcome"),
        record.get("purpose_of_use") or "",
        (record.get("source") or {}).get("system_id"),
        (record.get("destination") or {}).get("system_id"),
        actor.get("id"),
        actor.get("type"),
        actor.get("role") or "",
        actor.get("name") or "",
        " ".join(record.get("data_elements") or ()),
        " ".join(f"{i['system']}|{i['value']}" for i in identifiers),
    ]


async def csv_chunks(
    header: Sequence[str], items: AsyncIterator[Any], to_row: Callable[[Any], Sequence[Any]]
) -> AsyncIterator[bytes]:
    """The CSV text of ``items`` in chunks of about ``FLUSH_BYTES``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    async for item in items:
        writer.writerow(to_row(item))
        if buffer.tell() >= FLUSH_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def csv_response(
    header: Sequence[str], items: AsyncIterator[Any], to_row: Callable[[Any], Sequence[Any]], filename: str
) -> StreamingResponse:
    """A streamed ``text/csv`` answer (an attachment named ``filename``)."""
    return StreamingResponse(
        csv_chunks(header, items, to_row),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def events_csv(records: AsyncIterator[dict[str, Any]], filename: str) -> StreamingResponse:
    """A report's events as streamed CSV, one row per event."""
    return csv_response(EVENT_COLUMNS, records, event_row, filename)
