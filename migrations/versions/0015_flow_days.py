"""The flow map's rollup: ``flow_days`` and ``flow_day_elements``.

A flow report over a period is an aggregate of every event in it; read
from ``event_facts`` it would cost the period's events. ``flow_days`` holds
one row per UTC day, source -> destination pair, event type, purpose of use
and action, with the events' count and first and last ``occurred_at``;
``flow_day_elements`` the data elements each pair carried on each day. The
flow and BAA reports read these rows only (pairs x days x kinds), never the
log. Both are written in the append transaction, under the append lock
(store/append.py, store/flows.py): a count is an upsert (``events + n``),
so the runtime role may UPDATE ``flow_days`` (nothing else, and no DELETE
or TRUNCATE). ``verify`` recomputes both from ``event_facts``
(domain/verify_flows.py), so a row altered in the database is caught.

``event_facts_pair`` finds one pair's events in a day range: the patients a
BAA gap reached are counted over that pair's events only.

Backfilled here from the records, under every log's append lock, as 0008 does.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

APPEND_LOCK_CLASS = 0x41554454  # store/locks.py

SCHEMA = (
    """
    CREATE TABLE flow_days (
        log_id              smallint NOT NULL,
        day                 date NOT NULL,
        source_system       text NOT NULL,
        destination_system  text NOT NULL,
        event_type          text NOT NULL,
        purpose_of_use      text NOT NULL,  -- '' when the events carry none
        action              text NOT NULL,
        events              bigint NOT NULL CHECK (events > 0),
        first_at            timestamptz NOT NULL,
        last_at             timestamptz NOT NULL,
        PRIMARY KEY (log_id, day, source_system, destination_system, event_type, purpose_of_use, action)
    )
    """,
    """
    CREATE TABLE flow_day_elements (
        log_id              smallint NOT NULL,
        day                 date NOT NULL,
        source_system       text NOT NULL,
        destination_system  text NOT NULL,
        data_element        text NOT NULL,
        PRIMARY KEY (log_id, day, source_system, destination_system, data_element)
    )
    """,
    "CREATE INDEX event_facts_pair ON event_facts (log_id, source_system, destination_system, occurred_at, seq)",
)

_RECORDS = """
    SELECT e.log_id, e.occurred_at, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
           r -> 'source' ->> 'system_id' AS src, r -> 'destination' ->> 'system_id' AS dst,
           r ->> 'event_type' AS event_type, coalesce(r ->> 'purpose_of_use', '') AS purpose,
           r ->> 'action' AS action, r -> 'data_elements' AS elements
    FROM (SELECT log_id, occurred_at, record::jsonb AS r FROM events OFFSET 0) e
"""

BACKFILL = (
    f"""
    INSERT INTO flow_days
    SELECT log_id, day, src, dst, event_type, purpose, action, count(*), min(occurred_at), max(occurred_at)
    FROM ({_RECORDS}) x
    WHERE src IS NOT NULL AND dst IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    """,
    f"""
    INSERT INTO flow_day_elements
    SELECT DISTINCT x.log_id, x.day, x.src, x.dst, el
    FROM ({_RECORDS}) x
    CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE jsonb_typeof(x.elements) WHEN 'array' THEN x.elements ELSE '[]'::jsonb END) AS el
    WHERE x.src IS NOT NULL AND x.dst IS NOT NULL
    """,
)


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    op.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_CLASS}, log_id) FROM (SELECT log_id FROM logs ORDER BY 1) l")
    for statement in (*SCHEMA, *BACKFILL):
        op.execute(statement)
    # Counts grow by upsert: UPDATE is allowed on flow_days, never DELETE or TRUNCATE.
    op.execute(
        "CREATE TRIGGER flow_days_no_delete BEFORE DELETE ON flow_days "
        "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER flow_day_elements_no_update_delete BEFORE UPDATE OR DELETE ON flow_day_elements "
        "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
    )
    for table in ("flow_days", "flow_day_elements"):
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()"
        )
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON flow_days TO {runtime_role}")
    op.execute(f"GRANT SELECT, INSERT ON flow_day_elements TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
