"""The privacy officer's question: every system that accessed this patient.

A report is itself a read of PHI, so it is recorded in the same chain
(event type ``audit-log-query``) before the answer is returned.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..runtime import AuditLog
from ..store import reports as queries
from ..store.events import committed_size
from ..store.session import driver_connection
from .backfill import require_read_model
from .errors import InvalidInput, MalformedBody
from .ingest import decode_json_body, validation_errors
from .read_audit import record_read
from .revealed import revealed_by

MIN_TIME = datetime(1, 1, 2, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC)


def _day_or_timestamp(value: Any) -> Any:
    # pydantic would read "2026-11-24" as a naive midnight datetime; a bare
    # date means the whole day.
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, str | date):
        # pydantic would also take a number as Unix seconds.
        raise ValueError("must be a date (YYYY-MM-DD) or an RFC 3339 timestamp with a UTC offset")
    return value


DayOrTimestamp = Annotated[datetime | date, BeforeValidator(_day_or_timestamp)]


class PatientAccessQuery(BaseModel):
    """Body of ``POST /v1/reports/patient-access``. ``from``/``to`` take a
    date (whole days, UTC) or an RFC 3339 timestamp; both ends inclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    identifier: Identifier
    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)


def _bound(value: datetime | date | None, *, end: bool) -> datetime:
    if value is None:
        return MAX_TIME if end else MIN_TIME
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(
                "report dates need a UTC offset",
                [{"loc": ["to" if end else "from"], "msg": "timestamp without offset"}],
            )
        return value.astimezone(UTC)
    start = datetime.combine(value, time(0), tzinfo=UTC)
    return start + timedelta(days=1) - timedelta(microseconds=1) if end else start


def encode_cursor(occurred_at: datetime, seq: int, as_of: int) -> str:
    """The keyset position plus the tree size the first page saw, so every
    page reports the same snapshot even while the log grows (the report's own
    audit event included)."""
    raw = json.dumps({"t": format_timestamp(occurred_at), "s": seq, "m": as_of}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_BAD_CURSOR = InvalidInput(
    "cursor is not one this service issued", [{"loc": ["cursor"], "msg": "invalid cursor", "type": "value_error"}]
)
_MAX_SEQ = 2**62


def decode_cursor(cursor: str) -> tuple[tuple[datetime, int], int]:
    """Parse a cursor; it is client input, so every part is range-checked."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if "k" in data:  # another report's cursor (domain/access_reports.py binds its own)
            raise _BAD_CURSOR
        occurred_at = datetime.fromisoformat(data["t"])
        seq, as_of = data["s"], data["m"]
        if occurred_at.tzinfo is None or type(seq) is not int or type(as_of) is not int:
            raise _BAD_CURSOR
        if not (0 <= seq < _MAX_SEQ and 0 <= as_of < _MAX_SEQ):
            raise _BAD_CURSOR
        occurred_at = occurred_at.astimezone(UTC)
        if not MIN_TIME <= occurred_at <= MAX_TIME:
            raise _BAD_CURSOR
        return (occurred_at, seq), as_of
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        raise _BAD_CURSOR from None


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
    decode_json_body(body)
    try:
        return PatientAccessQuery.model_validate_json(body)
    except ValidationError as exc:
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedBody("request body is not valid JSON") from None
        raise InvalidInput(f"{len(errors)} invalid field(s) in the report request", errors) from None


async def patient_access_report(audit: AuditLog, query: PatientAccessQuery, reader: Any) -> dict[str, Any]:
    start, end = _bound(query.from_, end=False), _bound(query.to, end=True)
    if start > end:
        raise InvalidInput("'from' is after 'to'", [{"loc": ["from"], "msg": "after 'to'", "type": "value_error"}])
    id_hmac = audit.keys.identifier_hmac(query.identifier.system, query.identifier.value)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        if query.cursor:
            after, as_of = decode_cursor(query.cursor)
        else:
            after, as_of = (MIN_TIME - timedelta(days=1), -1), await committed_size(conn, audit.log_id)
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
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = encode_cursor(rows[-1][1], rows[-1][0], as_of)
    await record_read(audit, reader, [query.identifier], data_elements=["AuditEvent"], detail="patient-access-report")
    return {
        "patient": {"identifiers": [{"system": s, "value": v} for s, v in linked]},
        "systems": [_system_json(s) for s in systems],
        "events": [sealer.reveal_record(json.loads(record)) for _, _, record in rows],
        "next_cursor": next_cursor,
        "revealed_by": revealed,
    }
