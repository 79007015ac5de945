"""One syslog frame -> validated events bound to the sender, or a rejection.

The steps, each with its rejection reason (a stable code for metrics and the
quarantine; the detail never quotes the message):

1. the syslog header (``syslog_header``);
2. the ATNA mapping, auditsvc/domain/atna.py (its own reasons; a fault in
   the mapper is ``mapping_fault``, never a crash of the listener);
3. the events' validation, the one ``POST /v1/events`` uses (``invalid_event``);
4. each event's source and destination systems against the sender's: one
   of them must be the sender's, as either party of an exchange audits it
   in ATNA (``source_not_allowed``).

The same function serves the listeners and a replay from quarantine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from auditsvc_sdk.wire import WireEvent, parse_event_batch
from pydantic import ValidationError

from ..domain.atna import AtnaOrigin, AtnaUnmappable, map_audit_message
from ..domain.ingest import validation_errors
from .header import HeaderError, SyslogMessage, parse_syslog
from .identity import SenderIdentity

log = logging.getLogger(__name__)

Transport = Literal["tls", "tcp", "udp", "replay"]
Mapper = Callable[[bytes, AtnaOrigin], list[dict[str, Any]]]


class Rejected(Exception):
    """The frame cannot become events: ``reason`` (stable code), ``detail`` (no PHI)."""

    def __init__(self, reason: str, detail: str, message: SyslogMessage | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.message = reason, detail, message


@dataclass(frozen=True, slots=True)
class Converted:
    message: SyslogMessage
    events: list[WireEvent]


def convert_frame(
    frame: bytes,
    transport: Transport,
    peer: str | None,
    sender: SenderIdentity,
    mapper: Mapper = map_audit_message,
) -> Converted:
    """The frame's events, validated and allowed for ``sender``; ``Rejected`` otherwise."""
    try:
        message = parse_syslog(frame)
    except HeaderError as exc:
        raise Rejected("syslog_header", exc.detail) from None
    try:
        mapped = mapper(message.msg, AtnaOrigin(transport, peer, message.msgid))
    except AtnaUnmappable as exc:
        raise Rejected(exc.reason, exc.detail, message) from None
    except Exception as exc:  # a mapper bug must cost one message, not the listener
        log.error("the ATNA mapping failed on a message (%s); it is quarantined", type(exc).__name__)
        raise Rejected("mapping_fault", f"the mapping raised {type(exc).__name__}", message) from None
    if not mapped:
        raise Rejected("no_events", "the message maps to no event", message)
    try:
        events = parse_event_batch(orjson.dumps({"events": mapped}))
    except (ValidationError, TypeError) as exc:
        errors = validation_errors(exc) if isinstance(exc, ValidationError) else []
        where = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]) or "not JSON"
        raise Rejected("invalid_event", f"the mapped events are not valid ({where})", message) from None
    for event in events:
        source, destination = event.json["source"]["system_id"], event.json["destination"]["system_id"]
        if not sender.may_report(source, destination):
            raise Rejected(
                "source_not_allowed",
                f"neither source system {source!r} nor destination {destination!r} is one sender "
                f"{sender.emitter!r} may write as",
                message,
            )
    return Converted(message, events)
