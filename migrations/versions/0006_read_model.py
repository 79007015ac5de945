"""The read model for reports: ``event_facts``, ``patient_events``, ``read_model_backfill``.

``event_facts`` holds, per event, the fields reports filter and group on as
typed columns; ``patient_events`` the keyed hash of each of an event's
identifiers with its ``occurred_at`` and ``seq``, so that one patient's
events in a date range are one index range scan per identifier. Both are
written in the append transaction, beside the chain rows; they are derived
from the records, which stay the evidence: ``verify`` checks that they agree
with them (domain/verify_readmodel.py).

Rows stored before this revision are backfilled in batches after it
(store/readmodel.py): this revision only records, in ``read_model_backfill``,
that each log holding events needs it; reports answer 503 until it is done.
``read_model_backfill`` only grows: one row per batch done (``upto``), and a
last one with ``complete``.

``events_occurred_at`` served only the report this replaces: dropped.

The record column is left as it was. Compressing it was measured and does
nothing at these sizes: PostgreSQL considers a row for TOAST only above
TOAST_TUPLE_THRESHOLD (about 2 kB, fixed at build time); ``toast_tuple_target``
and ``STORAGE MAIN`` only change what happens once a row is over it, and a
record is about 1.1 kB (100,000 records copied into a table with
``STORAGE MAIN, toast_tuple_target = 128``: 1,355 bytes a row, as without).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("event_facts", "patient_events", "read_model_backfill")

SCHEMA = (
    """
    CREATE TABLE event_facts (
        log_id              smallint NOT NULL,
        outcome             smallint NOT NULL,
        break_glass         boolean NOT NULL,
        seq                 bigint NOT NULL,
        occurred_at         timestamptz NOT NULL,
        event_type          text NOT NULL,
        action              text NOT NULL,
        purpose_of_use      text,
        source_system       text NOT NULL,
        destination_system  text NOT NULL,
        actor_id            text NOT NULL,
        actor_type          text NOT NULL,
        actor_role          text,
        actor_name          text,
        emitter             text NOT NULL,
        data_elements       text[] NOT NULL,
        PRIMARY KEY (log_id, seq)
    )
    """,
    "CREATE INDEX event_facts_source ON event_facts (log_id, source_system, occurred_at, seq)",
    "CREATE INDEX event_facts_destination ON event_facts (log_id, destination_system, occurred_at, seq)",
    "CREATE INDEX event_facts_actor ON event_facts (log_id, actor_id, occurred_at, seq)",
    """
    CREATE TABLE patient_events (
        log_id       smallint NOT NULL,
        id_hmac      bytea NOT NULL,
        occurred_at  timestamptz NOT NULL,
        seq          bigint NOT NULL,
        PRIMARY KEY (log_id, id_hmac, occurred_at, seq)
    )
    """,
    """
    CREATE TABLE read_model_backfill (
        log_id       smallint NOT NULL,
        upto         bigint NOT NULL,
        complete     boolean NOT NULL,
        recorded_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX read_model_backfill_log ON read_model_backfill (log_id, upto)",
    # Every log that holds events when this revision runs needs its rows backfilled.
    "INSERT INTO read_model_backfill (log_id, upto, complete) "
    "SELECT l.log_id, 0, false FROM logs l WHERE EXISTS (SELECT FROM events e WHERE e.log_id = l.log_id)",
    "DROP INDEX events_occurred_at",
)


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    for statement in SCHEMA:
        op.execute(statement)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()"
        )
    op.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(TABLES)} TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
