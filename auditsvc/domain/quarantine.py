"""The syslog quarantine: ATNA messages that could not become events, kept
whole until a fix lets them (issue 19: nothing lost, nothing silent).

A message holds PHI (patient names, HL7 segments in ParticipantObjectDetail),
so it is stored sealed with the identifier keys (auditsvc/sealing.py) and
shown only to an admin who asks for it explicitly; that reveal is appended
to the chain as an ``audit-log-query`` event whose subject is the quarantine
entry (``urn:auditsvc:syslog-quarantine|<id>``), like every other read of PHI.
Listing shows reasons, transports and sizes: no message content.

A replay runs each selected message through the listeners' own conversion
(auditsvc/syslog/convert.py, with the sender identity recorded when it
arrived) and appends what now maps; the entry becomes ``replayed`` with the
``seq`` of each event, or keeps ``quarantined`` with the new reason. A
replay that stores and a discard are the admin's decisions about what
enters the log: each is appended as a ``syslog-quarantine-change`` event.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk.wire import wire_event

from ..keys import ServerKeys
from ..runtime import AuditLog
from ..store import quarantine as store
from ..store.quarantine import STATUSES, NewQuarantined, QuarantineRow
from ..store.session import driver_connection
from ..syslog.convert import Mapper, Rejected, convert_frame
from ..syslog.identity import SenderIdentity
from .errors import InvalidInput, NotFound
from .ingest import prepare
from .read_audit import record_read
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller

SEAL_SYSTEM = "urn:auditsvc:syslog-quarantine"
"""Bound into each sealed message (associated data), and the subject system of a reveal's event."""
CHANGE_EVENT_TYPE = "syslog-quarantine-change"
"""A replay that stored an entry's events, or a discard: an admin's decision
about what enters the log, recorded in the chain like a registry change."""
MAX_PAGE = 1000

# Every reason an entry may have (the mapping's, domain/atna/errors.py, and
# the listener's, syslog/convert.py and syslog/ingest.py), in words for admins.
REASON_TEXT = {
    "syslog_header": "the syslog header could not be read",
    "too_large": "the message is over the size limit",
    "xml_malformed": "not well-formed XML (truncated, bad bytes, empty)",
    "xml_forbidden_construct": "a DTD, an entity or an external reference (refused as hostile)",
    "too_deep": "elements nested too deep",
    "unknown_schema": "XML that is not an ATNA AuditMessage",
    "no_event_identification": "no EventIdentification or EventID",
    "bad_event_time": "the event time is missing or unreadable",
    "no_patient": "no participant is a patient (a login, a security alert, audit log use)",
    "too_many_patients": "more patients than one batch may carry",
    "invalid_event": "the events built fail the service's validation",
    "no_events": "the message maps to no event",
    "source_not_allowed": "the sender's certificate names neither party of the exchange",
    "mapping_fault": "the mapping failed (a fault in auditsvc: report it)",
    "append_failed": "the events could not be stored at the time",
}
_HMAC_TAG = b"auditsvc/syslog-quarantine/v1\x00"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Where a message went: its entry, and whether this copy made it (False: a resend)."""

    id: int
    new: bool


def message_hmac(keys: ServerKeys, msg: bytes) -> bytes:
    """The keyed hash a resend is recognised by: of the audit message (the
    syslog header's timestamp changes on a resend; the message does not)."""
    return hmac.digest(keys.identifier_key, _HMAC_TAG + msg, "sha256")


def _sealer(keys: ServerKeys) -> Any:
    if keys.sealer is None:
        raise RuntimeError("the quarantine cannot store messages without the identifier encryption keys")
    return keys.sealer


async def quarantine_frame(
    audit: AuditLog,
    frame: bytes,
    rejected: Rejected,
    *,
    transport: str,
    peer: str | None,
    sender: SenderIdentity,
) -> Quarantined:
    """Keep ``frame`` sealed with why it was rejected; a resend only counts."""
    msg = rejected.message.msg if rejected.message is not None else frame
    entry = NewQuarantined(
        message_hmac=message_hmac(audit.keys, msg),
        message_sealed=_sealer(audit.keys).seal_uncached(SEAL_SYSTEM, base64.b64encode(frame).decode("ascii")),
        message_bytes=len(frame),
        reason=rejected.reason,
        detail=rejected.detail[:500],
        transport=transport,
        peer=peer,
        emitter=sender.emitter,
        allowed_systems=sender.systems,
        msgid=rejected.message.msgid if rejected.message is not None else None,
    )
    async with driver_connection(audit.engine) as conn:
        row_id, new = await store.insert_quarantined(conn, audit.log_id, entry)
    return Quarantined(row_id, new)


def entry_json(row: QuarantineRow) -> dict[str, Any]:
    """An entry as JSON (no message content)."""
    out = asdict(row)
    for key in ("received_at", "last_received_at", "replayed_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    for key in ("allowed_systems", "replay_seqs"):
        out[key] = list(out[key]) if out[key] is not None else None
    return out


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")


async def quarantine_page(
    audit: AuditLog, *, status: str = "quarantined", reason: str | None = None, after: int = 0, limit: int = 100
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of entries in arrival order, and the id to continue ``after``
    (None: the last page). Entries replayed or discarded are read a page at
    a time and filtered by ``reason`` here (an index by reason would serve
    only the rare lookup), so such a page may hold fewer than ``limit``."""
    _check_status(status)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    by_index = reason if status == "quarantined" else None
    async with driver_connection(audit.engine) as conn:
        rows = await store.list_quarantined(conn, audit.log_id, status, by_index, after, limit)
    next_after = rows[-1].id if len(rows) == limit else None
    if reason is not None:
        rows = [r for r in rows if r.reason == reason]
    return [entry_json(r) for r in rows], next_after


async def list_quarantine(
    audit: AuditLog, *, status: str = "quarantined", reason: str | None = None, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """The entries of one page (``quarantine_page``)."""
    entries, _ = await quarantine_page(audit, status=status, reason=reason, after=after, limit=limit)
    return entries


async def show_quarantined(audit: AuditLog, reader: Caller, entry_id: int, *, reveal: bool) -> dict[str, Any]:
    """One entry; with ``reveal`` also the message itself (the whole syslog
    frame, as text where it is UTF-8), after the reveal is in the chain."""
    async with driver_connection(audit.engine) as conn:
        found = await store.quarantined_message(conn, audit.log_id, entry_id)
    if found is None:
        raise NotFound(f"no quarantine entry {entry_id}")
    row, sealed = found
    answer = entry_json(row)
    if reveal:
        frame = _open(audit.keys, sealed)
        await record_read(
            audit,
            reader,
            [Identifier(system=SEAL_SYSTEM, value=str(entry_id))],
            data_elements=["AuditMessage"],
            detail="syslog-quarantine-reveal",
        )
        answer["message"] = frame.decode("utf-8", "backslashreplace")
    return answer


def _open(keys: ServerKeys, sealed: str) -> bytes:
    return base64.b64decode(_sealer(keys).open(SEAL_SYSTEM, sealed))


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    id: int
    status: str  # replayed | quarantined | skipped (not quarantined any more)
    reason: str | None = None
    seqs: tuple[int, ...] = ()


async def select_for_replay(
    audit: AuditLog, *, ids: Sequence[int] = (), reason: str | None = None, every: bool = False
) -> list[int]:
    """The entries a replay takes: the ``ids`` given, or every quarantined
    one (of ``reason``), oldest first."""
    if ids:
        return list(ids)
    if not every and reason is None:
        raise InvalidInput("name entries to replay, or a reason, or all of them")
    chosen: list[int] = []
    after = 0
    while True:
        page = await list_quarantine(audit, reason=reason, after=after, limit=MAX_PAGE)
        chosen += [entry["id"] for entry in page]
        if len(page) < MAX_PAGE:
            return chosen
        after = page[-1]["id"]


def change_event(entry_id: int, admin: Caller, change: str, seqs: Sequence[int] = ()) -> PhiAccess:
    """The chain event recording ``admin``'s ``change`` (``replayed``,
    ``discarded``) of entry ``entry_id``; its subject is the entry, never a patient."""
    attributes = {"change": change, **({"seqs": ",".join(map(str, seqs))} if seqs else {})}
    return PhiAccess(
        occurred_at=datetime.now(UTC),
        action="U",
        event_type=CHANGE_EVENT_TYPE,
        patient={"identifiers": [Identifier(system=SEAL_SYSTEM, value=str(entry_id))]},
        data_elements=["AuditMessage"],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": f"{SERVICE_SYSTEM_ID}:{admin.role.value}"},
        actor={"id": admin.token_id, "type": "user", "role": admin.role.value, "name": admin.name},
        outcome=0,
        attributes=attributes,
    )


async def _record_change(audit: AuditLog, admin: Caller, entry_id: int, change: str, seqs: Sequence[int] = ()) -> None:
    event = wire_event(change_event(entry_id, admin, change, seqs))
    await audit.appender.append_batch(prepare([event], audit.keys, admin.token_id))


async def replay_entry(audit: AuditLog, entry_id: int, by: Caller, mapper: Mapper | None = None) -> ReplayOutcome:
    """Map one quarantined message again and append what now maps; a replay
    that stores is recorded in the chain as ``by``'s change."""
    async with driver_connection(audit.engine) as conn:
        found = await store.quarantined_message(conn, audit.log_id, entry_id)
    if found is None:
        raise NotFound(f"no quarantine entry {entry_id}")
    row, sealed = found
    if row.status != "quarantined":
        return ReplayOutcome(entry_id, "skipped", row.status)
    sender = SenderIdentity(row.emitter, row.allowed_systems)
    frame = _open(audit.keys, sealed)
    try:
        converted = convert_frame(frame, "replay", row.peer, sender, *(() if mapper is None else (mapper,)))
    except Rejected as exc:
        async with driver_connection(audit.engine) as conn:
            await store.mark_still_failing(conn, audit.log_id, entry_id, exc.reason, exc.detail[:500])
        return ReplayOutcome(entry_id, "quarantined", exc.reason)
    results, _ = await audit.appender.append_batch(prepare(converted.events, audit.keys, sender.emitter))
    seqs = tuple(r.seq for r in results)
    async with driver_connection(audit.engine) as conn:
        await store.mark_replayed(conn, audit.log_id, entry_id, seqs)
    await _record_change(audit, by, entry_id, "replayed", seqs)
    return ReplayOutcome(entry_id, "replayed", None, seqs)


async def discard_entry(audit: AuditLog, entry_id: int, by: Caller) -> bool:
    """Give up on a quarantined message (it stays, marked ``discarded``),
    recorded in the chain as ``by``'s change."""
    async with driver_connection(audit.engine) as conn:
        discarded = await store.mark_discarded(conn, audit.log_id, entry_id)
    if discarded:
        await _record_change(audit, by, entry_id, "discarded")
    return discarded
