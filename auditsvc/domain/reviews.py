"""Break-glass review: the queue of emergency accesses and the privacy officer's verdicts.

An access is break-glass when its event type is ``break-glass``, its purpose
of use ``ETREAT`` or its ``attributes.break_glass`` true (the read model's
``event_facts.break_glass``). Such accesses form a queue; a privacy officer
records a verdict on one (``appropriate``, ``inappropriate``,
``investigate``) with notes.

A review is an event in the chain, appended by the service itself (source
``auditsvc``, type ``break-glass-review``): the officer as actor, the reviewed
event's patient as subject (so the review is in that patient's history), the
reviewed event named by its one data element ``AuditEvent/<event_id>`` (the
key the read model finds reviews by: migration 0009) and, in attributes, by
``reviewed_event_id`` and ``reviewed_seq``, with ``verdict``, ``notes`` and
the review it ``supersedes``. Reviews are never changed: a later one of the
same event supersedes the earlier (an ``investigate`` followed by a final
verdict), and the queue shows the latest with the history. Only events whose
source is ``auditsvc`` count: an emitter cannot forge a review.

Listing the queue reveals patients, so each page is recorded in the chain
(one ``audit-log-query`` event per page, see ``_record_page``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import wire_event
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..settings import Settings
from ..store import reviews as queries
from ..store.events import committed_size, event_by_id
from ..store.session import driver_connection
from .backfill import require_read_model
from .cursors import encode_cursor, page_start
from .errors import InvalidInput, NotFound
from .ingest import parse_body, parse_params, prepare
from .periods import DayOrTimestamp, report_period
from .read_audit import read_event
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller

REVIEW_EVENT_TYPE = queries.REVIEW_EVENT_TYPE
REVIEW_DESTINATION = f"{SERVICE_SYSTEM_ID}:break-glass-review"
QUEUE_SUBJECT_SYSTEM = "urn:auditsvc:break-glass-queue"
"""A queue page reveals many patients; its ``audit-log-query`` event names
the queue itself as subject (``urn:auditsvc:break-glass-queue|<status>``: one
key finds every listing through ``patient_events``, and no listing links
patients together), and the ``seq`` of every event it revealed in attributes."""

MAX_NOTES = 1000  # one event attribute holds at most 1024 characters
MAX_PAGE = 500  # the revealed seqs of a page fit in the page event's attributes
HISTORY_PER_EVENT = 20  # the latest reviews shown per event (the chain keeps them all)

Verdict = Literal["appropriate", "inappropriate", "investigate"]
QueueStatus = Literal["unreviewed", "reviewed", "all", "overdue"]


@dataclass(frozen=True)
class ReviewConfig:
    """``review_days``: a break-glass access unreviewed for longer is overdue."""

    review_days: int = 7
    scan_budget: int = 2000
    """Queue rows one request walks at most when a status filter skips rows:
    a page may then hold fewer than ``limit`` items, even none, with a
    ``next_cursor`` to go on from."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ReviewConfig:
        return cls(review_days=settings.break_glass_review_days)


class ReviewRequest(BaseModel):
    """Body of ``POST /v1/reviews``."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    verdict: Verdict
    notes: str = Field(default="", max_length=MAX_NOTES, pattern=r"^[^\x00]*$")


class QueueQuery(BaseModel):
    """``GET /v1/reviews/break-glass``: ``status`` ``unreviewed`` (default),
    ``reviewed``, ``all``, or ``overdue`` (unreviewed for longer than
    ``older_than`` days, by default the configured review window);
    ``older_than`` with any status keeps accesses at least that many days old;
    ``from``/``to`` a date (whole UTC day) or RFC 3339 timestamp, inclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: QueueStatus = "unreviewed"
    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    older_than: int | None = Field(default=None, ge=0, le=36500)
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=400)


def parse_review(body: bytes) -> ReviewRequest:
    """The review request from raw body bytes, errors named by field (never quoting notes)."""
    return parse_body(ReviewRequest, body, "review")


def parse_queue_query(params: dict[str, Any]) -> QueueQuery:
    return parse_params(QueueQuery, params, "queue request")


_CURSOR_KIND = "break-glass-queue"


# --- reviews as JSON ---------------------------------------------------------------


def review_json(seq: int, record: dict[str, Any]) -> dict[str, Any]:
    """One review, from its stored record (no PHI but the officer's notes)."""
    attributes = record.get("attributes") or {}
    actor = record["actor"]
    return {
        "review_event_id": record["event_id"],
        "seq": seq,
        "verdict": attributes.get("verdict"),
        "notes": attributes.get("notes", ""),
        "reviewed_at": record["occurred_at"],
        "reviewer": {k: actor[k] for k in ("id", "role", "name") if k in actor},
        "supersedes": attributes.get("supersedes"),
    }


def _reviews(found: list[tuple[int, str]]) -> list[dict[str, Any]]:
    out = []
    for seq, raw in found:
        record = json.loads(raw)
        # The index holds only the service's own reviews; checked again on the record itself.
        if record.get("source", {}).get("system_id") == SERVICE_SYSTEM_ID and record["event_type"] == REVIEW_EVENT_TYPE:
            out.append(review_json(seq, record))
    return out


# --- recording a review ------------------------------------------------------------


def _review_event(
    reviewed: dict[str, Any], reviewed_seq: int, request: ReviewRequest, reviewer: Caller, supersedes: str | None
) -> PhiAccess:
    attributes: dict[str, str | int | bool] = {
        "reviewed_event_id": str(request.event_id),
        "reviewed_seq": reviewed_seq,
        "verdict": request.verdict,
    }
    if request.notes:
        attributes["notes"] = request.notes
    if supersedes:
        attributes["supersedes"] = supersedes
    actor = {"id": reviewer.token_id, "type": "user", "role": reviewer.role.value}
    if reviewer.name:
        actor["name"] = reviewer.name
    return PhiAccess(
        occurred_at=datetime.now(UTC),
        action="E",
        event_type=REVIEW_EVENT_TYPE,
        patient={"identifiers": reviewed["patient"]["identifiers"]},
        data_elements=[queries.review_key(request.event_id)],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": REVIEW_DESTINATION},
        actor=actor,
        outcome=0,
        attributes=attributes,
    )


def _not_found() -> NotFound:
    return NotFound("no event with this event_id is in the log")


async def record_review(audit: AuditLog, request: ReviewRequest, reviewer: Caller) -> dict[str, Any]:
    """Append the review of a break-glass event; returns it once committed."""
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        stored = await event_by_id(conn, audit.log_id, request.event_id)
        if stored is None:
            raise _not_found()
        flag = await queries.is_break_glass(conn, audit.log_id, stored.seq)
        if flag is None:
            raise _not_found()
        if not flag:
            raise InvalidInput(
                "event_id names an event that is not a break-glass access",
                [{"loc": ["event_id"], "msg": "not a break-glass access", "type": "value_error"}],
            )
        size = await committed_size(conn, audit.log_id)
        previous = await queries.reviews_of(conn, audit.log_id, [request.event_id], size, 1)
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    reviewed = sealer.reveal_record(json.loads(stored.record))
    earlier = _reviews(previous[str(request.event_id)])
    supersedes = earlier[-1]["review_event_id"] if earlier else None
    event = _review_event(reviewed, stored.seq, request, reviewer, supersedes)
    [result], _ = await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reviewer.token_id))
    record = {
        "event_id": str(event.event_id),
        "occurred_at": format_timestamp(event.occurred_at),
        "actor": event.actor.model_dump(exclude_none=True),
        "attributes": event.attributes,
    }
    return {
        "review": review_json(result.seq, record),
        "event": {"event_id": str(request.event_id), "seq": stored.seq},
    }


async def review_state(audit: AuditLog, event_id: UUID, seq: int, history: int = 10) -> dict[str, Any] | None:
    """The review state of the event at ``seq`` for the console's event page:
    None when it is not a break-glass access, else its status and latest
    reviews (at most ``history``, oldest first). The caller has already read
    (and recorded) the event itself."""
    async with driver_connection(audit.engine) as conn:
        if not await queries.is_break_glass(conn, audit.log_id, seq):
            return None
        size = await committed_size(conn, audit.log_id)
        found = await queries.reviews_of(conn, audit.log_id, [event_id], size, history)
    reviews = _reviews(found[str(event_id)])
    return {
        "status": "reviewed" if reviews else "unreviewed",
        "review": reviews[-1] if reviews else None,
        "history": reviews,
    }


# --- the queue ---------------------------------------------------------------------


def _item(
    row: queries.QueueRow, history: list[dict[str, Any]], overdue_before: datetime, sealer: Any
) -> dict[str, Any]:
    latest = history[-1] if history else None
    return {
        "event": sealer.reveal_record(json.loads(row.record)),
        "status": "reviewed" if latest else "unreviewed",
        "verdict": latest["verdict"] if latest else None,
        "review": latest,
        "history": history,
        "overdue": latest is None and row.occurred_at <= overdue_before,
    }


def seq_attributes(seqs: list[int]) -> dict[str, str]:
    """``seqs.0``, ``seqs.1``, ...: the seqs comma-separated, at most 1,000
    characters an attribute (an attribute holds 1,024)."""
    chunks = [""]
    for seq in map(str, seqs):
        if chunks[-1] and len(chunks[-1]) + 1 + len(seq) > 1000:
            chunks.append("")
        chunks[-1] = f"{chunks[-1]},{seq}" if chunks[-1] else seq
    return {f"seqs.{i}": chunk for i, chunk in enumerate(chunks) if chunk}


async def _record_page(
    audit: AuditLog, reader: Caller, query: QueueQuery, span: tuple[datetime, datetime], as_of: int, seqs: list[int]
) -> None:
    """One ``audit-log-query`` event per page: the queue as subject, the
    query and every revealed event's ``seq`` in attributes (so each revealed
    patient can be found from the chain without an event per patient)."""
    attributes: dict[str, str] = {"query": "break-glass-queue", "status": query.status, "as_of": str(as_of)}
    attributes |= {"from": format_timestamp(span[0]), "to": format_timestamp(span[1])}
    attributes["revealed"] = str(len(seqs))
    attributes |= seq_attributes(seqs)
    event = read_event(
        [Identifier(system=QUEUE_SUBJECT_SYSTEM, value=query.status)],
        actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        destination=f"{SERVICE_SYSTEM_ID}:{reader.role.value}",
        data_elements=["AuditEvent"],
        attributes=attributes,
    )
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))


async def whole_queue(
    audit: AuditLog, query: QueueQuery, reader: Caller, config: ReviewConfig
) -> AsyncIterator[dict[str, Any]]:
    """Every item from ``query``'s position on, page after page (each page
    recorded in the chain before its items are yielded), in memory bounded by
    one page. The first page is read before this returns, so bad input is
    refused before anything is sent."""
    first = await break_glass_queue(audit, query, reader, config)

    async def items() -> AsyncIterator[dict[str, Any]]:
        page = first
        while True:
            for item in page["items"]:
                yield item
            if not page["next_cursor"]:
                return
            page = await break_glass_queue(
                audit, query.model_copy(update={"cursor": page["next_cursor"]}), reader, config
            )

    return items()


async def break_glass_queue(
    audit: AuditLog,
    query: QueueQuery,
    reader: Caller,
    config: ReviewConfig,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """One page of the break-glass queue, each access with its latest review
    and history; the page is recorded in the chain before it is returned."""
    start, end = report_period(query.from_, query.to)
    moment = now()
    overdue_before = moment - timedelta(days=config.review_days)
    older_than = query.older_than
    if query.status == "overdue" and older_than is None:
        older_than = config.review_days
    if older_than is not None:
        end = min(end, moment - timedelta(days=older_than))
    status: queries.Status = "unreviewed" if query.status == "overdue" else query.status
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        first = await page_start(conn, audit.log_id, query.cursor, _CURSOR_KIND, status=query.status)
        after, as_of, end = first.position, first.as_of, first.end or end
        rows, until = [], None
        if start <= end:
            if status != "all":  # a filter skips rows: walk at most the budget
                until = await queries.walk_end(conn, audit.log_id, start, end, as_of, after, config.scan_budget)
            rows = await queries.queue_page(
                conn, audit.log_id, status, start, end, as_of, after, query.limit + 1, until
            )
        page = rows[: query.limit]
        found = await queries.reviews_of(conn, audit.log_id, [r.event_id for r in page], as_of, HISTORY_PER_EVENT)
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = encode_cursor(
            _CURSOR_KIND, (page[-1].occurred_at, page[-1].seq), as_of, status=query.status, end=end
        )
    elif until is not None:  # the walk's budget ran out first: go on from where it stopped
        next_cursor = encode_cursor(_CURSOR_KIND, until, as_of, status=query.status, end=end)
    await _record_page(audit, reader, query, (start, end), as_of, [r.seq for r in page])
    sealer = audit.keys.sealer
    return {
        "status": query.status,
        "review_days": config.review_days,
        "older_than": older_than,
        "items": [_item(r, _reviews(found[str(r.event_id)]), overdue_before, sealer) for r in page],
        "next_cursor": next_cursor,
    }
