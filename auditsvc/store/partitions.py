"""The range partitions of ``events`` by ``seq`` (migration 0010).

The service creates them itself, ahead of need: the runtime role may not
CREATE TABLE, so it calls ``auditsvc_extend_partitions(upto, width)``, a
SECURITY DEFINER function of the owner role that creates and attaches
partitions of ``width`` rows until ``seq < upto`` is covered, and records
each in ``event_partitions``. Attaching takes SHARE UPDATE EXCLUSIVE on
``events``, which no append conflicts with; still, it is only ever called
outside the append lock (store/append.py), so the log's one serial point
never waits on the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from .events import committed_size
from .session import Connection

DEFAULT_PARTITION_ROWS = 10_000_000
MIN_PARTITION_ROWS = 100  # the function refuses narrower partitions


class NoPartitionRoom(Exception):
    """An append needs rows up to ``needed`` and the partitions end before it
    (internal to store/append.py: the transaction rolls back, the partitions
    are extended outside the lock, the append runs again)."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


@dataclass
class Partitions:
    """What one appender knows of ``events``' partitions.

    ``rows``: the width of the partitions it creates (None: that of the last
    one); with a width, it keeps a whole partition of room ahead of the head.
    ``top``: where the last partition ends, as last seen; partitions are only
    ever added above it, so a cached value errs only low, and a low value
    costs one catalog read under the lock, never a wrong answer."""

    rows: int | None = None
    top: int = 0

    def wants_room(self, head: int) -> bool:
        """Whether to create partitions now, ahead of need."""
        return self.rows is not None and head + self.rows > self.top


async def partition_top(conn: Connection) -> int:
    """Where the last partition of ``events`` ends (0: none yet)."""
    return int(await conn.fetchval("SELECT coalesce(max(upper), 0) FROM event_partitions"))


async def extend_partitions(conn: Connection, upto: int, rows: int | None) -> int:
    """Partitions covering every ``seq < upto``, created as needed (``rows``
    wide, or as wide as the last); returns where the last now ends. Its own
    transaction: call it holding no lock."""
    return int(await conn.fetchval("SELECT auditsvc_extend_partitions($1, $2)", upto, rows))


async def list_partitions(conn: Connection) -> list[tuple[str, int, int]]:
    """(name, lower, upper) of every partition, in ``seq`` order."""
    rows = await conn.fetch("SELECT name, lower, upper FROM event_partitions ORDER BY lower")
    return [(r["name"], int(r["lower"]), int(r["upper"])) for r in rows]


async def ensure_room(conn: Connection, log_id: int, rows: int) -> int:
    """At start-up: partitions reaching a whole partition (``rows``) past the
    log's head, so that even the first append finds its partition made.
    Before migration 0010 (the service answers /readyz 503 until it is
    applied) there is nothing to do: 0."""
    try:
        return await extend_partitions(conn, await committed_size(conn, log_id) + rows, rows)
    except asyncpg.UndefinedFunctionError:
        return 0
