"""The accounting of disclosures for one patient (45 CFR §164.528).

As of the request date: the patient's ``disclosure`` and ``export`` events
(found by any linked identifier, as the patient-access report finds them)
of the six years before it, less those the rule excludes (counted by
reason), less those to a recipient whose suspension is in force (listed
under ``suspended``, without the withheld entries); the rest grouped by
recipient and purpose, each with its first and last date, count, the
recipient's name and address from the system registry, and the PHI and the
purpose in plain words (domain/disclosure_rules.py, domain/plain_language.py).

Delivering the accounting is itself recorded in the chain before the answer
leaves (an ``audit-log-query`` event with the request date and the counts
delivered, never the entries), and so is the making of its PDF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import wire_event
from pydantic import BaseModel, ConfigDict

from ..runtime import AuditLog
from ..store import disclosures as queries
from ..store import reports as patient_queries
from ..store.events import committed_size
from ..store.session import driver_connection
from .backfill import require_read_model
from .disclosure_rules import DISCLOSURE_EVENT_TYPES, Classified, classify, suspensions_in_force
from .errors import InvalidInput
from .ingest import parse_body, prepare
from .periods import MIN_TIME, DayOrTimestamp, bound
from .read_audit import read_event
from .reserved import SERVICE_SYSTEM_ID
from .suspensions import suspensions_for
from .systems import registry_entries
from .tokens import Caller

ACCOUNTING_YEARS = 6
# A request timestamp this far ahead of the server's clock is a client clock
# off by a little, not a request from the future.
CLOCK_SKEW = timedelta(minutes=5)


class DisclosureQuery(BaseModel):
    """Body of ``POST /v1/reports/disclosures``. ``requested_at`` (default:
    now) takes a date (the accounting then runs to the end of that day, UTC)
    or an RFC 3339 timestamp; it may not be in the future."""

    model_config = ConfigDict(extra="forbid")

    identifier: Identifier
    requested_at: DayOrTimestamp | None = None


def parse_disclosure_query(body: bytes) -> DisclosureQuery:
    return parse_body(DisclosureQuery, body, "report request")


def years_before(moment: datetime, years: int) -> datetime:
    """The same calendar moment ``years`` earlier (29 February goes to the
    28th: the earlier day, so the period never loses a day); never before
    the earliest time a report knows."""
    if moment.year - years < MIN_TIME.year:
        return MIN_TIME
    try:
        return max(MIN_TIME, moment.replace(year=moment.year - years))
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _requested_at_error(msg: str) -> InvalidInput:
    return InvalidInput(f"'requested_at' is {msg}", [{"loc": ["requested_at"], "msg": msg, "type": "value_error"}])


def accounting_period(requested_at: datetime | date | None, now: datetime) -> tuple[datetime, datetime]:
    """[from, to], both inclusive: the six years before the request. A date
    means that whole day (UTC) and six years back from its start."""
    if requested_at is None:
        return years_before(now, ACCOUNTING_YEARS), now
    if isinstance(requested_at, datetime) and requested_at.tzinfo is None:
        raise InvalidInput(
            "'requested_at' needs a UTC offset",
            [{"loc": ["requested_at"], "msg": "timestamp without offset", "type": "value_error"}],
        )
    try:
        first = bound(requested_at, end=False)
        if first > now + CLOCK_SKEW:
            raise _requested_at_error("in the future")
        end = min(bound(requested_at, end=True), now)
    except OverflowError:
        raise _requested_at_error("out of range") from None
    return years_before(first, ACCOUNTING_YEARS), end


@dataclass(frozen=True)
class Accounting:
    """The accounting as answered, with what the PDF's integrity statement
    needs: the seq of every listed disclosure and the snapshot it was read at."""

    report: dict[str, Any]
    listed_seqs: list[int]
    as_of: int


def _decoded(record: Any) -> dict[str, Any]:
    return record if isinstance(record, dict) else json.loads(record)


def _recipient(system_id: str, entry: dict[str, Any], name_in_event: str | None) -> dict[str, Any]:
    registered = bool(entry.get("registered"))
    return {
        "system_id": system_id,
        "name": (entry.get("name") if registered else None) or name_in_event,
        "address": entry.get("address") if registered else None,
        "registered": registered,
    }


async def build_accounting(audit: AuditLog, query: DisclosureQuery, now: datetime | None = None) -> Accounting:
    """The accounting (not yet recorded as delivered)."""
    now = now or datetime.now(UTC)
    start, end = accounting_period(query.requested_at, now)
    id_hmac = audit.keys.identifier_hmac(query.identifier.system, query.identifier.value)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        as_of = await committed_size(conn, audit.log_id)
        hmacs = await patient_queries.linked_identifier_hmacs(conn, audit.log_id, id_hmac)
        identifiers = await patient_queries.identifiers_for(conn, audit.log_id, hmacs)
        rows = await queries.typed_events(conn, audit.log_id, hmacs, start, end, as_of, list(DISCLOSURE_EVENT_TYPES))
        disclosures = [(r.seq, r.occurred_at, _decoded(r.record)) for r in rows]
        recipients = sorted({record["destination"]["system_id"] for _, _, record in disclosures})
        suspensions = await suspensions_for(conn, audit, hmacs, recipients, end, as_of)
    classified = classify(disclosures, suspensions_in_force(suspensions, end))
    registry = await registry_entries(audit, [g.recipient_system_id for g in classified.groups])
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    linked = sorted({(s, v if v is not None else sealer.open(s, str(enc))) for s, v, enc in identifiers})
    if not linked:
        linked = [(query.identifier.system, query.identifier.value)]
    report = {
        "patient": {"identifiers": [{"system": s, "value": v} for s, v in linked]},
        "requested_at": format_timestamp(end),
        "period": {"from": format_timestamp(start), "to": format_timestamp(end)},
        "entries": [
            {
                "first_date": format_timestamp(g.first),
                "last_date": format_timestamp(g.last),
                "count": g.count,
                "recipient": _recipient(
                    g.recipient_system_id, registry.get(g.recipient_system_id, {}), g.name_in_event
                ),
                "description": g.description,
                "purpose": g.purpose_text,
                "purpose_code": g.purpose,
            }
            for g in classified.groups
        ],
        "excluded": classified.excluded,
        "suspended": [s.as_json() for _, s in sorted(classified.withheld_by.items())],
    }
    return Accounting(report, sorted(seq for g in classified.groups for seq in g.seqs), as_of)


def delivery_attributes(accounting: Accounting, delivered_as: str) -> dict[str, str | int | bool]:
    """What the delivery event records: the request and the counts, no entries."""
    report = accounting.report
    return {
        "query": "disclosure-accounting",
        "format": delivered_as,
        "requested_at": report["requested_at"],
        "period_from": report["period"]["from"],
        "entries": len(report["entries"]),
        "disclosures_listed": len(accounting.listed_seqs),
        "excluded": sum(report["excluded"].values()),
        "suspended_recipients": len(report["suspended"]),
    }


async def record_service_read(
    audit: AuditLog, reader: Caller, identifiers: list[Identifier], attributes: dict[str, str | int]
) -> None:
    """Append the ``audit-log-query`` event for a read with these attributes."""
    event = read_event(
        identifiers,
        actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        destination=f"{SERVICE_SYSTEM_ID}:{reader.role.value}",
        data_elements=["AuditEvent"],
        attributes=dict(attributes),
    )
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))


async def disclosure_accounting(
    audit: AuditLog, query: DisclosureQuery, reader: Caller, *, delivered_as: str = "json"
) -> Accounting:
    """Build the accounting and record its delivery in the chain."""
    accounting = await build_accounting(audit, query)
    await record_service_read(audit, reader, [query.identifier], delivery_attributes(accounting, delivered_as))
    return accounting


__all__ = [
    "Accounting",
    "Classified",
    "DisclosureQuery",
    "accounting_period",
    "build_accounting",
    "disclosure_accounting",
    "parse_disclosure_query",
    "record_service_read",
]
