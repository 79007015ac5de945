"""What an append takes and answers: prepared events in, per-event results
and the new head out. Pure data; the transaction is ``store/append.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from auditsvc_sdk import RecordTemplate


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A validated event, with everything computable outside the lock."""

    event_id: UUID
    template: RecordTemplate  # the event's leaf bytes, seq and received_at still open
    occurred_at: datetime
    identifiers: tuple[tuple[bytes, str, str], ...]  # (hmac, system, sealed value)
    facts: tuple[Any, ...] = ()  # the read model's event_facts columns after occurred_at (store/readmodel.py)


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """One request's events, appended together."""

    events: Sequence[PreparedEvent]


@dataclass(frozen=True, slots=True)
class EventResult:
    event_id: UUID
    status: str  # "accepted" | "duplicate"
    seq: int


@dataclass(frozen=True, slots=True)
class Head:
    """The log after an append: its size and the chain hash of its last event."""

    tree_size: int
    chain_hash: bytes
