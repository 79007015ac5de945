"""Coverage: ``system_pairs`` and an index of ``event_facts`` by emitter.

``system_pairs`` holds one row per source -> destination pair ever seen in a
log: the first event that named it (``first_seq``, lowest seq) and that
event's ``occurred_at``. It is written in the append transaction, under the
append lock (``ON CONFLICT DO NOTHING``; a process skips the pairs it has
seen committed, so a pair costs one insert in its life), and backfilled here
from the records, under each log's append lock so that no append falls
between the backfill and the code that writes it. ``verify`` checks it
against ``event_facts`` (domain/verify_pairs.py).

``event_facts_emitter`` lets the coverage report find every emitter and its
last events by skip scan instead of reading the log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APPEND_LOCK_CLASS = 0x41554454  # store/locks.py

SCHEMA = (
    """
    CREATE TABLE system_pairs (
        log_id              smallint NOT NULL,
        source_system       text NOT NULL,
        destination_system  text NOT NULL,
        first_seq           bigint NOT NULL,
        first_occurred_at   timestamptz NOT NULL,
        PRIMARY KEY (log_id, source_system, destination_system)
    )
    """,
    "CREATE INDEX event_facts_emitter ON event_facts (log_id, emitter, occurred_at, seq)",
)

# The records are the evidence (event_facts may still be waiting for its
# backfill): the pair of each log's lowest seq per pair.
BACKFILL = """
INSERT INTO system_pairs (log_id, source_system, destination_system, first_seq, first_occurred_at)
SELECT DISTINCT ON (log_id, src, dst) log_id, src, dst, seq, occurred_at
FROM (
    SELECT e.log_id, e.seq, e.occurred_at,
           e.record::jsonb -> 'source' ->> 'system_id' AS src,
           e.record::jsonb -> 'destination' ->> 'system_id' AS dst
    FROM events e
    OFFSET 0
) r
WHERE src IS NOT NULL AND dst IS NOT NULL
ORDER BY log_id, src, dst, seq
"""


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    # Every log's append lock before anything else (the index build blocks
    # inserts into event_facts, which an appender holding its lock would wait
    # for), held to the end of the migration's transaction.
    op.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_CLASS}, log_id) FROM (SELECT log_id FROM logs ORDER BY 1) l")
    for statement in SCHEMA:
        op.execute(statement)
    op.execute(BACKFILL)
    op.execute(
        "CREATE TRIGGER system_pairs_no_update_delete BEFORE UPDATE OR DELETE ON system_pairs "
        "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER system_pairs_no_truncate BEFORE TRUNCATE ON system_pairs "
        "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()"
    )
    op.execute("REVOKE ALL ON system_pairs FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT ON system_pairs TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
