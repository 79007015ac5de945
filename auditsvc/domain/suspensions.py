"""Suspensions of the right to an accounting of disclosures (§164.528(a)(2)).

A health oversight agency or law-enforcement official may ask the covered
entity to suspend an individual's right to an accounting of disclosures to
that agency, for a stated time: in writing, or orally for at most 30 days
from the statement unless a written statement follows within them (the
oral statement documented with the identity of the agency or official).

A suspension is an event in the chain, appended by the service itself
(source ``auditsvc``, event type ``disclosure-suspension``, the privacy
officer or admin as actor), its terms in ``attributes``. Its subject is the
patient when the statement names one; otherwise the recipient itself as
``urn:auditsvc:disclosure-suspension|<recipient system id>``, so that
suspensions never link patients together and each recipient's are found by
one index range. Only events whose source is ``auditsvc`` are read back (an
emitter cannot write as the service: domain/reserved.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import NO_NUL_PATTERN, wire_event
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..store import disclosures as queries
from ..store.session import Connection
from .disclosure_rules import Suspension
from .errors import InvalidInput
from .ingest import parse_body, prepare
from .periods import MIN_TIME, DayOrTimestamp, bound
from .reserved import SERVICE_SYSTEM_ID, is_reserved_system
from .tokens import Caller

SUSPENSION_EVENT_TYPE = "disclosure-suspension"
SUSPENSION_DESTINATION = f"{SERVICE_SYSTEM_ID}:disclosure-suspensions"
SUBJECT_SYSTEM = "urn:auditsvc:disclosure-suspension"
ORAL_LIMIT = timedelta(days=30)


class SuspensionIn(BaseModel):
    """Body of ``POST /v1/disclosure-suspensions``. ``ends`` takes a date
    (the whole day, UTC) or an RFC 3339 timestamp; ``identifier`` limits the
    suspension to one patient (any of their linked identifiers), otherwise
    it covers every patient's disclosures to the recipient."""

    model_config = ConfigDict(extra="forbid")

    recipient_system_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+~-]{0,127}$")
    ends: DayOrTimestamp
    oral: bool = False
    reference: str = Field(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)
    official: str | None = Field(default=None, min_length=1, max_length=256, pattern=NO_NUL_PATTERN)
    identifier: Identifier | None = None


def _invalid(field: str, msg: str) -> InvalidInput:
    return InvalidInput(f"'{field}': {msg}", [{"loc": [field], "msg": msg, "type": "value_error"}])


def parse_suspension(body: bytes) -> SuspensionIn:
    return parse_body(SuspensionIn, body, "suspension")


def check_terms(request: SuspensionIn, now: datetime) -> datetime:
    """The suspension's end, after the rule's checks (named by field)."""
    if is_reserved_system(request.recipient_system_id):
        raise _invalid("recipient_system_id", "is the service's own system id, not a recipient")
    try:
        ends = bound(request.ends, end=True)
    except OverflowError:
        raise _invalid("ends", "is out of range") from None
    except InvalidInput:
        raise _invalid("ends", "timestamp without offset") from None
    if ends <= now:
        raise _invalid("ends", "is not in the future")
    if request.oral:
        if ends > now + ORAL_LIMIT:
            raise _invalid("ends", "an oral statement suspends for at most 30 days; record the written statement")
        if request.official is None:
            raise _invalid("official", "an oral statement must name the agency or official who made it")
    return ends


async def record_suspension(
    audit: AuditLog, request: SuspensionIn, caller: Caller, now: datetime | None = None
) -> dict[str, Any]:
    """Append the suspension to the chain, recorded at ``now`` (the clock by
    default); returns it as recorded."""
    now = now or datetime.now(UTC)
    ends = check_terms(request, now)
    subject = request.identifier or Identifier(system=SUBJECT_SYSTEM, value=request.recipient_system_id)
    attributes: dict[str, str | bool] = {
        "recipient_system_id": request.recipient_system_id,
        "ends": format_timestamp(ends),
        "oral": request.oral,
        "reference": request.reference,
        "scope": "patient" if request.identifier else "all_patients",
    }
    if request.official:
        attributes["official"] = request.official
    event = PhiAccess(
        occurred_at=now,
        action="C",
        event_type=SUSPENSION_EVENT_TYPE,
        patient={"identifiers": [subject]},
        data_elements=["AccountingOfDisclosures"],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": SUSPENSION_DESTINATION},
        actor={"id": caller.token_id, "type": "user", "role": caller.role.value, "name": caller.name},
        outcome=0,
        attributes=attributes,
    )
    [result], _ = await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, caller.token_id))
    return {
        "seq": result.seq,
        "event_id": str(result.event_id),
        **Suspension(
            result.seq,
            request.recipient_system_id,
            now,
            ends,
            request.oral,
            request.reference,
            patient_specific=request.identifier is not None,
        ).as_json(),
    }


def _suspension(seq: int, occurred_at: datetime, raw: Any) -> Suspension | None:
    record = raw if isinstance(raw, dict) else json.loads(raw)
    a = record.get("attributes") or {}
    try:
        return Suspension(
            seq=seq,
            recipient_system_id=str(a["recipient_system_id"]),
            recorded_at=occurred_at,
            ends=datetime.fromisoformat(str(a["ends"])),
            oral=a.get("oral") is True,
            reference=str(a.get("reference", "")),
            patient_specific=a.get("scope") == "patient",
        )
    except (KeyError, ValueError):
        return None  # not one this service wrote: ignored


async def suspensions_for(
    conn: Connection, audit: AuditLog, patient_hmacs: list[bytes], recipients: list[str], until: datetime, as_of: int
) -> list[Suspension]:
    """The suspensions recorded by ``until`` for this patient (by any linked
    identifier) and for each of ``recipients`` (every patient's)."""
    hmacs = list(patient_hmacs) + [audit.keys.identifier_hmac(SUBJECT_SYSTEM, r) for r in recipients]
    rows = await queries.typed_events(
        conn, audit.log_id, hmacs, MIN_TIME, until, as_of, [SUSPENSION_EVENT_TYPE], SERVICE_SYSTEM_ID
    )
    found = [_suspension(r.seq, r.occurred_at, r.record) for r in rows]
    wanted = set(recipients)
    return [s for s in found if s is not None and s.recipient_system_id in wanted]
