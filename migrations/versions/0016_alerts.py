"""Alerts on the flow of PHI: ``alerts``.

One row per alert (a new source -> destination pair, a flow to a party
without an effective BAA, a BAA about to expire, a system gone silent),
unique by its kind and key so that each fires once, whatever the number of
processes that look. The alert and its acknowledgement are events in the
chain (domain/alerts.py); this table is the working state around them:
whether it is acknowledged, and the webhook delivery's state (attempts,
next attempt, last error). The runtime role may UPDATE it (acknowledgement,
delivery), never DELETE or TRUNCATE it.

``alert_state`` holds, per log, the seq from which a pair counts as new:
the log's size when this revision ran, so an existing store does not
announce every pair it already had as new.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SCHEMA = (
    """
    CREATE TABLE alerts (
        log_id            smallint NOT NULL,
        alert_id          uuid NOT NULL,
        kind              text NOT NULL,
        alert_key         text NOT NULL,
        systems           text[] NOT NULL,
        details           jsonb NOT NULL,
        raised_at         timestamptz NOT NULL,
        raised_seq        bigint NOT NULL,
        acknowledged_at   timestamptz,
        acknowledged_by   text,
        acknowledged_seq  bigint,
        notes             text,
        delivery          text NOT NULL DEFAULT 'pending',
        attempts          integer NOT NULL DEFAULT 0,
        next_attempt_at   timestamptz NOT NULL,
        last_error        text,
        PRIMARY KEY (log_id, alert_id),
        UNIQUE (log_id, kind, alert_key)
    )
    """,
    "CREATE INDEX alerts_raised ON alerts (log_id, raised_at, alert_id)",
    "CREATE INDEX alerts_open ON alerts (log_id, raised_at, alert_id) WHERE acknowledged_at IS NULL",
    "CREATE INDEX alerts_acknowledged ON alerts (log_id, raised_at, alert_id) WHERE acknowledged_at IS NOT NULL",
    "CREATE INDEX alerts_by_seq ON alerts (log_id, raised_seq)",
    "CREATE INDEX alerts_to_deliver ON alerts (log_id, next_attempt_at) WHERE delivery = 'pending'",
    """
    CREATE TABLE alert_state (
        log_id          smallint PRIMARY KEY,
        new_pairs_from  bigint NOT NULL
    )
    """,
    """
    INSERT INTO alert_state (log_id, new_pairs_from)
    SELECT l.log_id, coalesce((SELECT max(e.seq) + 1 FROM events e WHERE e.log_id = l.log_id), 0) FROM logs l
    """,
)


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    for statement in SCHEMA:
        op.execute(statement)
    op.execute(
        "CREATE TRIGGER alerts_no_delete BEFORE DELETE ON alerts FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER alert_state_no_change BEFORE UPDATE OR DELETE ON alert_state "
        "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
    )
    for table in ("alerts", "alert_state"):
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()"
        )
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON alerts TO {runtime_role}")
    op.execute(f"GRANT SELECT ON alert_state TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
