"""What one system, or one user or service, accessed over a period (issue 15, point 2).

``POST /v1/reports/system-access`` and ``/actor-access``: the subject's
registry entry (systems) or identity (actors), how many patients, which
counterparts and data elements, and the events, paged by keyset through the
read model (store/access_reports.py).

Listing the events lists patients, which is a disclosure of PHI: each page
served appends one ``audit-log-query`` event (domain/page_audit.py) naming
the subject (``urn:auditsvc:system-access|<system_id>``), the period, the
tree size the report was answered at and the key bounds of the page. A
report of 10,000 patients in pages of 1,000 writes 10 events, and every
patient it revealed is found again from their own patient-access report
(domain/revealed.py).

The summary (``patient_count``, ``counterparts``, ``data_elements``,
``summary``) comes with the first page only (null on the pages a cursor
asks for). It is exact up to ``SUMMARY_CAP`` events of the subject in the
period; past that it covers the first ``SUMMARY_CAP`` (``summary.complete``
false, ``summary.through`` the last one covered), so that its cost never
grows with the subject's traffic: about 170 ms at the cap on a loaded
2-core test machine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..store import access_reports as queries
from ..store.report_sql import facts_page
from ..store.session import Connection, driver_connection
from .backfill import require_read_model
from .cursors import MAX_SEQ, Row, every_row, page_start, page_with_cursor, query_key
from .errors import InvalidInput
from .ingest import parse_body
from .page_audit import PageBounds, record_page
from .patients import count_patients, page_patients
from .periods import DayOrTimestamp, report_period
from .systems import registry_entries
from .tokens import Caller

SUMMARY_CAP = 20_000
"""Events a summary aggregates at most (see the module docstring)."""

Kind = Literal["system-access", "actor-access"]

_SYSTEM_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+~-]{0,127}$"  # the event's system id (SDK SystemId)


class _AccessQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=400)


class SystemAccessQuery(_AccessQuery):
    """Body of ``POST /v1/reports/system-access``: every event ``system_id``
    was the source or the destination of. ``from``/``to`` as for the
    patient-access report (a date is the whole UTC day; both inclusive)."""

    system_id: str = Field(pattern=_SYSTEM_ID)


class ActorAccessQuery(_AccessQuery):
    """Body of ``POST /v1/reports/actor-access``: every event ``actor_id`` (a
    user or a service) performed."""

    actor_id: str = Field(min_length=1, max_length=256)


AccessQuery = SystemAccessQuery | ActorAccessQuery
Q = TypeVar("Q", bound=BaseModel)


def kind_of(query: AccessQuery) -> Kind:
    return "system-access" if isinstance(query, SystemAccessQuery) else "actor-access"


def subject_of(query: AccessQuery) -> str:
    return query.system_id if isinstance(query, SystemAccessQuery) else query.actor_id


def parse_access_query(model: type[Q], body: bytes) -> Q:
    """The report request from raw body bytes, errors named by field."""
    return parse_body(model, body, "report request")


# ---- the report -------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    kind: Kind
    subject: str
    start: datetime
    end: datetime
    key: str
    page_sql: str
    summary_sql: str


def _plan(query: AccessQuery) -> _Plan:
    start, end = report_period(query.from_, query.to)
    kind, subject = kind_of(query), subject_of(query)
    system = kind == "system-access"
    return _Plan(
        kind,
        subject,
        start,
        end,
        query_key(kind, subject, start, end),
        queries.SYSTEM_PAGE_SQL if system else queries.ACTOR_PAGE_SQL,
        queries.SYSTEM_SUMMARY_SQL if system else queries.ACTOR_SUMMARY_SQL,
    )


async def _resume(
    conn: Connection, audit: AuditLog, plan: _Plan, cursor: str | None
) -> tuple[tuple[datetime, int], int, bool]:
    """Where the page starts and at which tree size, and whether any event
    names the subject."""
    await require_read_model(conn, audit.log_id)
    page = await page_start(conn, audit.log_id, cursor, plan.key)
    known = await queries.subject_seen(conn, audit.log_id, plan.kind == "system-access", plan.subject)
    return page.position, page.as_of, known


async def _subject_entry(audit: AuditLog, plan: _Plan, known: bool) -> dict[str, Any]:
    if plan.kind == "actor-access":
        if not known:
            raise InvalidInput(
                "unknown actor: no event in the log names it",
                [{"loc": ["actor_id"], "msg": "unknown actor", "type": "value_error"}],
            )
        return {"actor_id": plan.subject}
    entry = (await registry_entries(audit, [plan.subject]))[plan.subject]
    if not known and not entry.get("registered"):
        raise InvalidInput(
            "unknown system: neither registered nor named by any event in the log",
            [{"loc": ["system_id"], "msg": "unknown system", "type": "value_error"}],
        )
    return entry


def _summary_fields(summary: queries.AccessSummary | None, patient_count: int | None) -> dict[str, Any]:
    if summary is None or patient_count is None:
        return dict.fromkeys(("patient_count", "counterparts", "data_elements", "summary"))
    counterparts = [
        {"system_id": c.system_id, "as_source": c.as_source, "as_destination": c.as_destination, "count": c.count}
        for c in summary.counterparts
    ]
    return {
        "patient_count": patient_count,
        "counterparts": counterparts,
        "data_elements": summary.data_elements,
        "summary": {
            "events": summary.events,
            "complete": summary.events < SUMMARY_CAP,
            "through": format_timestamp(summary.through) if summary.through else None,
            "patient_count": patient_count,
        },
    }


async def access_report(audit: AuditLog, query: AccessQuery, reader: Caller) -> dict[str, Any]:
    """One page of the by-system or by-actor report, recorded in the chain
    before it is returned."""
    plan = _plan(query)
    async with driver_connection(audit.engine) as conn:
        after, as_of, known = await _resume(conn, audit, plan, query.cursor)
        summary: queries.AccessSummary | None = None
        patient_count: int | None = None
        if not query.cursor:  # the summary comes with the first page only
            summary = await queries.access_summary(
                conn, plan.summary_sql, audit.log_id, plan.subject, plan.start, plan.end, as_of, SUMMARY_CAP
            )
            patient_count = await count_patients(conn, audit.log_id, summary.patient_keys)
        rows = await facts_page(
            conn, plan.page_sql, audit.log_id, plan.subject, plan.start, plan.end, as_of, after, query.limit + 1
        )
    entry = await _subject_entry(audit, plan, known)
    rows, next_cursor = page_with_cursor(rows, query.limit, plan.key, as_of)
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    events = [sealer.reveal_record(json.loads(record)) for _, _, record in rows]
    bounds = PageBounds.of_rows(rows)
    await record_page(audit, reader, plan.kind, plan.subject, plan.start, plan.end, as_of, bounds, fmt="json")
    subject_field = "system" if plan.kind == "system-access" else "actor"
    return {
        subject_field: entry,
        **_summary_fields(summary, patient_count),
        "patients": page_patients(events),
        "events": events,
        "next_cursor": next_cursor,
    }


async def access_report_records(
    audit: AuditLog, query: AccessQuery, reader: Caller, fmt: str
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the report from the query's cursor on, page by page (a
    connection borrowed per page, so a slow reader holds none). The run is
    recorded first, once, with bounds covering the whole period: an export
    cut short still names every patient it could have revealed."""
    plan = _plan(query)
    async with driver_connection(audit.engine) as conn:
        after, as_of, known = await _resume(conn, audit, plan, query.cursor)
    await _subject_entry(audit, plan, known)
    bounds = PageBounds(first=after, last=(plan.end, MAX_SEQ))
    await record_page(audit, reader, plan.kind, plan.subject, plan.start, plan.end, as_of, bounds, fmt=fmt)
    return _pages(audit, plan, as_of, after)


async def _pages(
    audit: AuditLog, plan: _Plan, as_of: int, after: tuple[datetime, int]
) -> AsyncIterator[dict[str, Any]]:
    sealer = audit.keys.sealer
    assert sealer is not None

    async def read_page(after: tuple[datetime, int], limit: int) -> list[Row]:
        async with driver_connection(audit.engine) as conn:
            return await facts_page(
                conn, plan.page_sql, audit.log_id, plan.subject, plan.start, plan.end, as_of, after, limit
            )

    async for _, _, record in every_row(read_page, after):
        yield sealer.reveal_record(json.loads(record))
