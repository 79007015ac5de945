"""The append-only, hash-chained log: tables, indexes, triggers, runtime role.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Tables that only ever grow. Each is protected by a row trigger refusing
# UPDATE and DELETE and a statement trigger refusing TRUNCATE, and the runtime
# role holds only SELECT and INSERT on it.
LOG_TABLES = ("logs", "events", "event_identifiers", "identifier_links", "patient_identifiers")

SCHEMA = """
CREATE TABLE logs (
    log_id          smallint PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    format_version  smallint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per event. `record` holds the leaf bytes: the RFC 8785 JSON that is
-- hashed, byte for byte. event_id, seq and occurred_at are copies kept for
-- indexing; verification checks them against the record.
CREATE TABLE events (
    log_id       smallint NOT NULL REFERENCES logs (log_id),
    seq          bigint NOT NULL CHECK (seq >= 0),
    event_id     uuid NOT NULL,
    occurred_at  timestamptz NOT NULL,
    record       text NOT NULL,
    leaf_hash    bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
    chain_hash   bytea NOT NULL CHECK (octet_length(chain_hash) = 32),
    PRIMARY KEY (log_id, seq),
    UNIQUE (log_id, event_id)
);

CREATE INDEX events_occurred_at ON events (log_id, occurred_at, seq);

-- Patient lookup: the keyed hash (HMAC) of each identifier an event carries.
CREATE TABLE event_identifiers (
    log_id   smallint NOT NULL,
    id_hmac  bytea NOT NULL,
    seq      bigint NOT NULL,
    PRIMARY KEY (log_id, id_hmac, seq)
);

-- Identifiers seen together in one event are the same patient. Edges are
-- stored both ways from the event's first identifier (a star), which is
-- enough for the transitive closure a report walks.
CREATE TABLE identifier_links (
    log_id  smallint NOT NULL,
    a       bytea NOT NULL,
    b       bytea NOT NULL,
    PRIMARY KEY (log_id, a, b)
);

-- The identifier behind each keyed hash, for the report's linked-identifier list.
CREATE TABLE patient_identifiers (
    log_id   smallint NOT NULL,
    id_hmac  bytea NOT NULL,
    system   text NOT NULL,
    value    text NOT NULL,
    PRIMARY KEY (log_id, id_hmac)
);

-- API credentials: only a keyed hash of the secret is stored.
CREATE TABLE api_tokens (
    token_id     text PRIMARY KEY,
    secret_hmac  bytea NOT NULL,
    role         text NOT NULL CHECK (role IN ('emitter', 'privacy_officer', 'auditor', 'admin')),
    systems      text[] NOT NULL DEFAULT '{}',
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CHECK (role <> 'emitter' OR cardinality(systems) > 0)
);

CREATE FUNCTION auditsvc_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'auditsvc: % on % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    # asyncpg runs one statement per call; statements are separated by blank lines.
    for statement in SCHEMA.split("\n\n"):
        if statement.strip():
            op.execute(statement)
    for table in LOG_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()"
        )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{runtime_role}') THEN
                CREATE ROLE {runtime_role} LOGIN;
            END IF;
        END
        $$;
        """
    )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {runtime_role}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {runtime_role}")
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(LOG_TABLES)} TO {runtime_role}")
    op.execute(f"GRANT SELECT ON api_tokens TO {runtime_role}")
    op.execute(f"GRANT SELECT ON alembic_version TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
