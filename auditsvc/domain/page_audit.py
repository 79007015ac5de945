"""The chain record of a report page that lists patients.

A by-system or by-actor report reveals every patient on the pages it
serves. Rather than one event per patient, each page served appends one
``audit-log-query`` event whose subject names the report and what it was
run over (``urn:auditsvc:system-access|<system_id>``,
``urn:auditsvc:actor-access|<actor_id>``), so ``patient_events`` finds every
run over a system or actor, and whose attributes hold what the page
covered: the period, the tree size it was answered at (``as_of``: only
events below it) and the first and last (occurred_at, seq) of the page in
index order. A patient was revealed by the page exactly when one of their
events on that system (or by that actor) lies within those bounds and below
``as_of`` (domain/revealed.py finds them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import wire_event

from ..runtime import AuditLog
from .ingest import prepare
from .read_audit import read_event
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller

SUBJECT_PREFIX = "urn:auditsvc:"
MAX_IDENTIFIER_VALUE = 128  # the event's identifier value limit (SDK)


@dataclass(frozen=True)
class PageBounds:
    """First and last (occurred_at, seq) of a page, in the report's index order."""

    first: tuple[datetime, int]
    last: tuple[datetime, int]

    @classmethod
    def of_rows(cls, rows: Sequence[tuple[int, datetime, Any]]) -> PageBounds | None:
        """The bounds of a page of (seq, occurred_at, ...) rows; None for an empty page."""
        return cls((rows[0][1], rows[0][0]), (rows[-1][1], rows[-1][0])) if rows else None


def subject_identifier(kind: str, subject: str) -> Identifier:
    """The identifier a run of report ``kind`` over ``subject`` is recorded
    under (a subject longer than an identifier value may be, by its hash)."""
    value = (
        subject if len(subject) <= MAX_IDENTIFIER_VALUE else "sha256:" + hashlib.sha256(subject.encode()).hexdigest()
    )
    return Identifier(system=SUBJECT_PREFIX + kind, value=value)


async def record_page(
    audit: AuditLog,
    reader: Caller,
    kind: str,
    subject: str,
    start: datetime,
    end: datetime,
    as_of: int,
    bounds: PageBounds | None,
    *,
    fmt: str,
) -> None:
    """Append (and commit) the page's ``audit-log-query`` event."""
    attributes: dict[str, str] = {
        "query": f"{kind}-report",
        "subject": subject,
        "from": format_timestamp(start),
        "to": format_timestamp(end),
        "as_of": str(as_of),
        "format": fmt,
    }
    if bounds is not None:
        attributes |= {
            "first_at": format_timestamp(bounds.first[0]),
            "first_seq": str(bounds.first[1]),
            "last_at": format_timestamp(bounds.last[0]),
            "last_seq": str(bounds.last[1]),
        }
    event = read_event(
        [subject_identifier(kind, subject)],
        actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        destination=f"{SERVICE_SYSTEM_ID}:{reader.role.value}",
        data_elements=["AuditEvent"],
        attributes=attributes,
    )
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))
