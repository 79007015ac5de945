"""``patient_events`` by ``seq``: the patients of a set of events.

The by-system and by-actor reports (domain/access_reports.py) count the
distinct patients among a system's (or an actor's) events: they find the
events through ``event_facts`` and need each one's patient keys without
reading its record. The index carries ``id_hmac`` so that lookup reads the
index only. No new table, so nothing to grant or protect: the table's
append-only triggers and grants (0006) are unchanged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade(**kw: Any) -> None:
    op.execute("CREATE INDEX patient_events_seq ON patient_events (log_id, seq) INCLUDE (id_hmac)")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
