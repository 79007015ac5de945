"""What the transport knows about a message: no PHI, and no part of what the message means."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AtnaOrigin"]


@dataclass(frozen=True)
class AtnaOrigin:
    """Where one audit message came from.

    ``transport`` is ``"tls"``, ``"tcp"``, ``"udp"`` or ``"replay"`` (from
    quarantine); ``peer`` the client certificate's CN (TLS) or the address;
    ``msgid`` the syslog MSGID as received (``IHE+RFC-3881``,
    ``DICOM+RFC3881``, or whatever the sender wrote). None of them changes
    an event_id: a resend over another transport is the same event.
    """

    transport: str
    peer: str | None = None
    msgid: str | None = None
