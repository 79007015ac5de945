"""What the client did, as plain counts the host can read or export.

No counter carries event contents or identifiers. A host exports them with
whatever it already uses, e.g. an OpenTelemetry observable gauge::

    meter.create_observable_gauge(
        "auditsvc.sdk.queue_depth",
        callbacks=[lambda _: [Observation(client.counters().queue_depth)]],
    )
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Counters", "Tally"]


@dataclass(frozen=True)
class Counters:
    """A snapshot of a client's counters (monotonic, except ``queue_depth``)."""

    recorded: int
    """events accepted by ``record()`` (validated and queued or spooled)"""
    sent: int
    """events the service acknowledged as newly stored (``accepted``)"""
    duplicates: int
    """events the service already had (``duplicate``: a resend after a lost answer)"""
    retried: int
    """events sent again after a connection error, 408, 429 or 5xx"""
    spooled: int
    """events written to the durable spool"""
    dead_lettered: int
    """events the service refused as invalid, moved to the dead-letter file"""
    queue_depth: int
    """events recorded and not yet acknowledged (in memory or in the spool)"""
    internal_errors: int
    """unexpected failures inside the SDK, caught and logged (should stay 0)"""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Tally:
    """The live counts. Each field has one writer at a time (the recording
    side under the client's lock, or the single sender), so plain integers do."""

    __slots__ = ("dead_lettered", "duplicates", "internal_errors", "recorded", "retried", "sent", "spooled")

    def __init__(self) -> None:
        self.recorded = 0
        self.sent = 0
        self.duplicates = 0
        self.retried = 0
        self.spooled = 0
        self.dead_lettered = 0
        self.internal_errors = 0

    def snapshot(self, queue_depth: int) -> Counters:
        return Counters(
            recorded=self.recorded,
            sent=self.sent,
            duplicates=self.duplicates,
            retried=self.retried,
            spooled=self.spooled,
            dead_lettered=self.dead_lettered,
            queue_depth=queue_depth,
            internal_errors=self.internal_errors,
        )
