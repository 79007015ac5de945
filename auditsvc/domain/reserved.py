"""System ids the service keeps for itself.

The service appends its own events to the chain (reads of the log, registry
changes, reviews, suspensions) with source system ``auditsvc``, and reports
trust what those events say. So no emitter may claim that source: an emitter
token cannot be bound to it, and an event that names it is refused even from
a token bound to it before this rule existed.
"""

from __future__ import annotations

SERVICE_SYSTEM_ID = "auditsvc"
_RESERVED_PREFIX = SERVICE_SYSTEM_ID + ":"


def is_reserved_system(system_id: str) -> bool:
    """True for ``auditsvc`` and every ``auditsvc:...`` id (case-insensitive:
    ``AuditSvc`` must not pass for a different system in a report)."""
    folded = system_id.strip().casefold()
    return folded == SERVICE_SYSTEM_ID or folded.startswith(_RESERVED_PREFIX)
