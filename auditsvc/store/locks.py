"""Transaction-scoped advisory locks: who may append, extend the stored
tree, sign or publish a checkpoint of a log at a time.

``pg_advisory_xact_lock(class, key)``: the class names the lock, the key
the log (0 for registering logs). Each lock is released when its transaction
ends, so none outlives a crashed holder.
"""

from __future__ import annotations

from .session import Connection

APPEND_LOCK_CLASS = 0x41554454  # "AUDT": appending to a log (key 0: registering a log)
TREE_LOCK_CLASS = 0x41545245  # "ATRE": extending the stored tree
CHECKPOINT_LOCK_CLASS = 0x41434B50  # "ACKP": signing a checkpoint
PUBLISH_LOCK_CLASS = CHECKPOINT_LOCK_CLASS + 1  # publishing the latest checkpoint to the sinks
PARTITION_LOCK_CLASS = 0x41505254  # "APRT": creating partitions of events (taken in SQL by migration 0010's function)
VERIFY_LOCK_CLASS = (
    0x41564652  # "AVFR": a verification run (session-level: held for the run, store/verification_runs.py)
)


async def xact_lock(conn: Connection, lock_class: int, key: int) -> None:
    """Wait for the lock; held until the current transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", lock_class, key)


async def try_xact_lock(conn: Connection, lock_class: int, key: int) -> bool:
    """Take the lock if it is free (held until the transaction ends); False when another holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", lock_class, key))
