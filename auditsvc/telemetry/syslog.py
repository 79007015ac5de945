"""The syslog listeners' metrics (auditsvc/syslog/). Attributes are the
transport and a stable reason code; never a peer, a sender or message content.

| name | kind | unit | attributes |
|---|---|---|---|
| ``auditsvc.syslog.messages.received`` | counter | {message} | ``auditsvc.transport`` |
| ``auditsvc.syslog.messages.appended`` | counter | {message} | ``auditsvc.transport`` |
| ``auditsvc.syslog.messages.quarantined`` | counter | {message} | ``auditsvc.transport``, ``auditsvc.reason`` |
| ``auditsvc.syslog.messages.dropped`` | counter | {message} | ``auditsvc.transport``, ``auditsvc.reason`` |
| ``auditsvc.syslog.connections.closed`` | counter | {connection} | ``auditsvc.transport``, ``auditsvc.reason`` |
| ``auditsvc.syslog.events.appended`` | counter | {event} | ``auditsvc.transport`` |

``dropped`` happens only to UDP datagrams (a full queue, an oversize
datagram) and to a quarantine the database refused; a TCP or TLS connection
with a framing error is closed (``connections.closed``), never read past.
"""

from __future__ import annotations

from opentelemetry import metrics

from .. import __version__

_meter = metrics.get_meter("auditsvc", __version__)

TRANSPORT = "auditsvc.transport"
REASON = "auditsvc.reason"

RECEIVED = _meter.create_counter(
    "auditsvc.syslog.messages.received", unit="{message}", description="Syslog messages read from a listener"
)
APPENDED = _meter.create_counter(
    "auditsvc.syslog.messages.appended", unit="{message}", description="Syslog messages whose events are committed"
)
EVENTS_APPENDED = _meter.create_counter(
    "auditsvc.syslog.events.appended", unit="{event}", description="Events committed from syslog messages"
)
QUARANTINED = _meter.create_counter(
    "auditsvc.syslog.messages.quarantined",
    unit="{message}",
    description="Syslog messages kept in quarantine (not mapped), by reason",
)
DROPPED = _meter.create_counter(
    "auditsvc.syslog.messages.dropped", unit="{message}", description="Syslog messages lost (UDP), by reason"
)
CONNECTIONS_CLOSED = _meter.create_counter(
    "auditsvc.syslog.connections.closed",
    unit="{connection}",
    description="TCP/TLS syslog connections closed by the listener for a framing error, by reason",
)


def received(transport: str) -> None:
    RECEIVED.add(1, {TRANSPORT: transport})


def appended(transport: str, messages: int, events: int) -> None:
    APPENDED.add(messages, {TRANSPORT: transport})
    EVENTS_APPENDED.add(events, {TRANSPORT: transport})


def quarantined(transport: str, reason: str) -> None:
    QUARANTINED.add(1, {TRANSPORT: transport, REASON: reason})


def dropped(transport: str, reason: str) -> None:
    DROPPED.add(1, {TRANSPORT: transport, REASON: reason})


def connection_closed(transport: str, reason: str) -> None:
    CONNECTIONS_CLOSED.add(1, {TRANSPORT: transport, REASON: reason})
