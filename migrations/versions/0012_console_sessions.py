"""The web console's sessions and saved searches (auditsvc/api/console).

``console_sessions`` holds one row per signed-in browser: the SHA-256 of the
session cookie's value (never the value), who signed in (an API token's id
or ``oidc:<subject>``, never the token) and in which roles, the CSRF
secret of its forms, and the times that end it (idle and absolute). The
runtime role updates ``last_seen`` and ``signed_out_at``, so unlike the log
these are not append-only tables; nothing in them is evidence (sign-ins
and sign-outs are recorded in the chain).

``console_searches`` keeps a patient search made through the console under
an opaque id, so the report's address carries no identifier: the value is
sealed with the identifier keys (AES-256-GCM) like every stored identifier.
A search belongs to the session that made it and goes with it.

``patient_identifiers_system`` lets the console list the identifier systems
seen with a skip scan (one index probe per system, store/console_sessions.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = (
    """
    CREATE TABLE console_sessions (
        session_hash    bytea PRIMARY KEY,
        caller_id       text NOT NULL,
        caller_name     text,
        roles           text[] NOT NULL,
        csrf_secret     text NOT NULL,
        created_at      timestamptz NOT NULL,
        last_seen       timestamptz NOT NULL,
        expires_at      timestamptz NOT NULL,
        signed_out_at   timestamptz,
        signed_out_why  text
    )
    """,
    "CREATE INDEX console_sessions_expires ON console_sessions (expires_at)",
    """
    CREATE TABLE console_searches (
        search_id       text PRIMARY KEY,
        session_hash    bytea NOT NULL REFERENCES console_sessions ON DELETE CASCADE,
        kind            text NOT NULL,
        subject_system  text NOT NULL,
        subject_sealed  text NOT NULL,
        created_at      timestamptz NOT NULL
    )
    """,
    "CREATE INDEX console_searches_session ON console_searches (session_hash)",
    "CREATE INDEX patient_identifiers_system ON patient_identifiers (log_id, system)",
)


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    for statement in SCHEMA:
        op.execute(statement)
    op.execute("REVOKE ALL ON console_sessions, console_searches FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON console_sessions, console_searches TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
