"""Patient lookup index keyed by event_id instead of seq.

An event's ``seq`` is known only once the append lock is held; its
``event_id`` is known when the request arrives. Keying ``event_identifiers``
by ``(log_id, id_hmac, event_id)`` lets the append transaction write the
lookup rows before it takes the lock, which keeps the one serial point of
the log short. Reports reach the event through the unique
``(log_id, event_id)`` index, as they reached it through the primary key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = (
    # The append-only triggers refuse the backfill's UPDATE; the owner lifts
    # them for this transaction only (DDL is transactional in PostgreSQL).
    "ALTER TABLE event_identifiers DISABLE TRIGGER event_identifiers_no_update_delete",
    "ALTER TABLE event_identifiers ADD COLUMN event_id uuid",
    "UPDATE event_identifiers ei SET event_id = e.event_id FROM events e WHERE e.log_id = ei.log_id AND e.seq = ei.seq",
    "ALTER TABLE event_identifiers ALTER COLUMN event_id SET NOT NULL",
    "ALTER TABLE event_identifiers DROP CONSTRAINT event_identifiers_pkey",
    "ALTER TABLE event_identifiers DROP COLUMN seq",
    "ALTER TABLE event_identifiers ADD PRIMARY KEY (log_id, id_hmac, event_id)",
    "ALTER TABLE event_identifiers ENABLE TRIGGER event_identifiers_no_update_delete",
)


def upgrade(**kw: Any) -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
