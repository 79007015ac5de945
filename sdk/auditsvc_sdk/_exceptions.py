"""Errors raised by the SDK.

The background sender never raises into the host: network faults, refusals
and internal failures are logged (without PHI), counted and retried or
dead-lettered. What does raise, synchronously, is what the caller can fix:

AuditError
├── InvalidEvent            record(): the event fails local validation (names the field, never the value)
├── QueueFull               record(): the in-memory queue stayed full for the whole block timeout
│   └── SpoolFull           record(): the durable spool stayed full for the whole block timeout
├── SpoolLocked             AuditClient(spool_dir=...): another live process holds that spool
├── SpoolUnsupported        AuditClient(spool_dir=...): no fcntl on this platform (Windows), so no spool
├── ClientClosed            record() after close(), or a spooling client used in a forked child
├── ServiceError            record_batch() / patient_access_report(): the service answered an error status
│   └── EventRejected       4xx: the batch was invalid or not allowed
├── TransportError          record_batch() / patient_access_report(): the service could not be reached
├── HL7v2Error              events_from_hl7v2(): nothing in the input names a patient or can be read
└── FHIRError               events_from_fhir(): nothing in the input can be read (names the JSON path)

``InvalidEvent``, ``HL7v2Error`` and ``FHIRError`` are also ``ValueError``s
(the last two live beside their helpers, in ``_hl7v2_text.py`` and ``_fhir_json.py``;
``read_hl7v2``/``read_fhir`` never raise them: they report a ``Refusal`` instead). ``ServiceError`` and
``TransportError`` come only from the direct, synchronous calls, never from
``record()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AuditError",
    "ClientClosed",
    "EventRejected",
    "InvalidEvent",
    "QueueFull",
    "ServiceError",
    "SpoolFull",
    "SpoolLocked",
    "SpoolUnsupported",
    "TransportError",
]


class AuditError(Exception):
    """Base class of every SDK error."""


class InvalidEvent(AuditError, ValueError):
    """The event does not validate. ``errors`` lists ``{"loc", "msg", "type"}``
    per bad field; neither holds the offending value (it may be PHI)."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        self.errors = list(errors)
        fields = "; ".join(f"{_dotted(e['loc'])}: {e['msg']}" for e in self.errors)
        super().__init__(f"invalid PHI access event: {fields}")


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "event"


class QueueFull(AuditError):
    """The client's bound was reached and no room freed up within
    ``block_timeout``: the event was NOT recorded. The service is likely
    unreachable or refusing this client; see the log and ``counters()``."""


class SpoolFull(QueueFull):
    """The durable spool reached ``spool_max_bytes`` and no room freed up
    within ``block_timeout``: the event was NOT recorded."""


class SpoolLocked(AuditError):
    """Another live client (in this or another process) holds the spool directory."""


class SpoolUnsupported(AuditError):
    """A spool was asked for where ``fcntl`` does not exist (Windows): the
    spool locks its directory with ``fcntl.flock``. Without ``spool_dir`` the
    client keeps events in memory; everything else in the SDK works there."""


class ClientClosed(AuditError):
    """The client was closed, or belongs to the parent of a forked process."""


class TransportError(AuditError):
    """The service could not be reached (connection refused, timeout, DNS)."""


class ServiceError(AuditError):
    """The service answered with an error status. ``refused`` lists the
    events of the batch it refused, ``{"index", "reason"}`` each (reason
    ``invalid`` or ``source_not_allowed``); empty when it refused none in particular."""

    def __init__(self, status_code: int, detail: Any, refused: Sequence[dict[str, Any]] = ()) -> None:
        self.status_code = status_code
        self.detail = detail
        self.refused = list(refused)
        super().__init__(f"auditsvc answered {status_code}: {detail}")


class EventRejected(ServiceError):
    """The service refused the batch (4xx); resending it unchanged will not help."""
