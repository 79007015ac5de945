"""Break-glass review: the queue and the reviews, found through the read model.

``event_facts_break_glass`` holds only the break-glass rows (a few in a
thousand), in (occurred_at, seq) order: listing the queue walks the queue's
rows, never the log's. ``event_facts_reviews`` finds the reviews of an event:
a review is an event the service appends itself (source ``auditsvc``, type
``break-glass-review``) whose one data element names the reviewed event as
``AuditEvent/<event_id>`` (domain/reviews.py); only such rows are indexed, so
the predicate costs an insert two column comparisons and no JSON.

No new table: the reviews are events in the chain, and these are indexes on
the read model that migration 0006 made append-only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENTS = (
    "CREATE INDEX event_facts_break_glass ON event_facts (log_id, occurred_at, seq) WHERE break_glass",
    "CREATE INDEX event_facts_reviews ON event_facts (log_id, (data_elements[1]), seq) "
    "WHERE event_type = 'break-glass-review' AND source_system = 'auditsvc'",
)


def upgrade(**kw: Any) -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
