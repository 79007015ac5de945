"""What the listener is told when an audit message cannot become events.

One exception, :class:`AtnaUnmappable`, with a stable ``reason`` code (the
quarantine table and the metrics group by it) and a ``detail`` for people
that names the element or attribute path and never quotes a value from the
message: values are patient identifiers, names and whole HL7 messages.

Reasons::

    too_large                the message is over the size limit (AtnaLimits.max_bytes)
    xml_malformed            not well-formed XML: truncated, bad bytes, not UTF-8, empty
    xml_forbidden_construct  a DTD, an entity declaration or an external reference
    too_deep                 elements nested deeper than AtnaLimits.max_depth
    unknown_schema           well-formed XML whose root is not AuditMessage
    no_event_identification  no EventIdentification, or no EventID code in it
    bad_event_time           EventDateTime missing, unreadable or out of range
    no_patient               no ParticipantObjectIdentification is a patient (role 1): a login,
                             a security alert, audit log use; an event is an access to a patient's data
    too_many_patients        more patients than one batch of events may carry
    invalid_event            the event built fails the service's event validation
"""

from __future__ import annotations

__all__ = ["REASONS", "AtnaUnmappable"]

REASONS = frozenset(
    {
        "too_large",
        "xml_malformed",
        "xml_forbidden_construct",
        "too_deep",
        "unknown_schema",
        "no_event_identification",
        "bad_event_time",
        "no_patient",
        "too_many_patients",
        "invalid_event",
    }
)


class AtnaUnmappable(Exception):
    """An audit message that cannot be mapped to events; kept whole in quarantine by the caller.

    ``reason`` is one of ``REASONS``; ``detail`` names where (element or
    attribute path, line and column) and what, quoting nothing from the message.
    """

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown AtnaUnmappable reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
