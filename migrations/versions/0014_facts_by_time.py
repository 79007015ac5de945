"""The read model in time order: ``event_facts_occurred`` (log_id, occurred_at, seq).

An ITI-81 search (the FHIR facade, docs/fhir.md) must name a date and may
name nothing else: "every AuditEvent of this afternoon", then filtered by
type, outcome or address. Every other index of the read model starts with a
subject (a patient, a system, an actor); without this one, a search by date
alone would read the log. With it, a page reads the rows of its period in
(occurred_at, seq) order and stops at the page (or its scan budget).

An index on the read model that migration 0006 made append-only; no new
table, no grant.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade(**kw: Any) -> None:
    op.execute("CREATE INDEX event_facts_occurred ON event_facts (log_id, occurred_at, seq)")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
