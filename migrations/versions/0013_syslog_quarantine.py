"""Quarantine for ATNA syslog messages that could not be mapped to events.

A message the listeners cannot turn into events (no syslog header, XML that
is malformed, hostile or not an audit message, a source system the sender
may not write as) is kept whole here, sealed (AES-256-GCM, as identifiers
are: it holds PHI), with a stable reason code and a detail without PHI, so
an admin can see it and replay it after a fix (auditsvc/domain/quarantine.py).

``message_hmac`` is a keyed hash of the message: a sender that resends a
quarantined message adds to ``times_received``, it does not add a row.

Unlike the log, this is a work queue: a replay moves a row's ``status`` to
``replayed`` (with the ``seq`` of each event it appended) or records the
new reason. The runtime role may INSERT, SELECT and UPDATE; nobody DELETEs
(a trigger refuses it and TRUNCATE): a message that is given up on is
``discarded``, and stays.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SCHEMA = (
    """
    CREATE TABLE syslog_quarantine (
        id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        log_id            smallint NOT NULL,
        message_hmac      bytea NOT NULL,
        message_sealed    text NOT NULL,
        message_bytes     integer NOT NULL,
        reason            text NOT NULL,
        detail            text NOT NULL,
        transport         text NOT NULL CHECK (transport IN ('tls', 'tcp', 'udp')),
        peer              text,
        emitter           text NOT NULL,
        allowed_systems   text[],
        msgid             text,
        received_at       timestamptz NOT NULL DEFAULT now(),
        last_received_at  timestamptz NOT NULL DEFAULT now(),
        times_received    integer NOT NULL DEFAULT 1,
        status            text NOT NULL DEFAULT 'quarantined'
                          CHECK (status IN ('quarantined', 'replayed', 'discarded')),
        replayed_at       timestamptz,
        replay_seqs       bigint[],
        UNIQUE (log_id, message_hmac)
    )
    """,
    "CREATE INDEX syslog_quarantine_by_status ON syslog_quarantine (log_id, status, id)",
    "CREATE INDEX syslog_quarantine_by_reason ON syslog_quarantine (log_id, status, reason, id)",
    "CREATE TRIGGER syslog_quarantine_no_delete BEFORE DELETE ON syslog_quarantine "
    "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()",
    "CREATE TRIGGER syslog_quarantine_no_truncate BEFORE TRUNCATE ON syslog_quarantine "
    "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()",
)


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    for statement in SCHEMA:
        op.execute(statement)
    op.execute("REVOKE ALL ON syslog_quarantine FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON syslog_quarantine TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
