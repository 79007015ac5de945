"""Where recorded events wait for the service: the interface both stores share.

The sender has at most one batch in flight, and resolves it whole (sent,
duplicate or dead-lettered) before taking the next, so acknowledgement is a
watermark: ``take()`` reads from the head, ``ack(n)`` removes the first n.
Neither store blocks or waits; the clients do the waiting, under their lock.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Protocol

__all__ = ["EventStore", "MemoryQueue"]


class EventStore(Protocol):
    @property
    def depth(self) -> int:
        """Events stored and not yet acknowledged (the in-flight batch included)."""

    def has_room(self, size: int) -> bool:
        """Whether one more event of ``size`` bytes fits under the bound."""

    def put(self, payload: bytes) -> None:
        """Append one event's JSON (the caller checked ``has_room``)."""

    def take(self, max_events: int, max_bytes: int) -> list[bytes]:
        """The oldest unacknowledged events: at most ``max_events``, and at
        most ``max_bytes`` unless the first alone is larger."""

    def ack(self, count: int) -> None:
        """The first ``count`` events of the last ``take()`` are resolved."""

    def close(self) -> None: ...


class MemoryQueue:
    """A bounded FIFO of encoded events, lost with the process (use a spool to survive that)."""

    def __init__(self, max_events: int) -> None:
        if max_events < 1:
            raise ValueError("max_queue must be at least 1")
        self._items: deque[bytes] = deque()
        self._max = max_events

    @property
    def depth(self) -> int:
        return len(self._items)

    def has_room(self, size: int) -> bool:
        return len(self._items) < self._max

    def put(self, payload: bytes) -> None:
        self._items.append(payload)

    def take(self, max_events: int, max_bytes: int) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        for item in islice(self._items, max_events):
            size += len(item) + 1
            if batch and size > max_bytes:
                break
            batch.append(item)
        return batch

    def ack(self, count: int) -> None:
        for _ in range(count):
            self._items.popleft()

    def clear(self) -> int:
        """Forget every event (a forked child must not resend its parent's); returns how many."""
        count = len(self._items)
        self._items.clear()
        return count

    def close(self) -> None:
        pass
