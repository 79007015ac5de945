"""Verification runs (the console's auditor page) and console token administration.

A verification run is three kinds of insert-only rows, so that its history
is written like the log, never edited: ``verification_runs`` when it starts
(who asked, through what), ``verification_progress`` as it goes (a
heartbeat with the rows checked so far), ``verification_results`` when it
ends (intact, tampered with the first bad seq and kind, or failed). A run
with no result row is running while its process holds the verification
advisory lock; one whose process died is given a ``failed`` result by the
next process that looks (domain/verification_runs.py).

Tokens: the runtime role still may not write ``api_tokens`` (a compromised
service must not raise a token's role or unrevoke one, tests/test_db_roles.py).
The admin page creates and revokes tokens through two SECURITY DEFINER
functions that do exactly that and nothing more: ``auditsvc_issue_token``
inserts a new token (never replaces one), ``auditsvc_revoke_token`` sets
``revoked_at`` to now on an active token (never clears it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("verification_runs", "verification_progress", "verification_results")

SCHEMA = (
    """
    CREATE TABLE verification_runs (
        run_id          uuid PRIMARY KEY,
        log_id          smallint NOT NULL REFERENCES logs (log_id),
        started_at      timestamptz NOT NULL DEFAULT now(),
        requested_by    text NOT NULL,
        requested_role  text NOT NULL,
        origin          text NOT NULL CHECK (origin IN ('console', 'api', 'cli')),
        total_rows      bigint NOT NULL CHECK (total_rows >= 0)
    )
    """,
    "CREATE INDEX verification_runs_latest ON verification_runs (log_id, started_at DESC, run_id DESC)",
    """
    CREATE TABLE verification_progress (
        run_id        uuid NOT NULL REFERENCES verification_runs (run_id),
        at            timestamptz NOT NULL DEFAULT clock_timestamp(),
        checked_rows  bigint NOT NULL CHECK (checked_rows >= 0),
        total_rows    bigint NOT NULL CHECK (total_rows >= 0),
        PRIMARY KEY (run_id, at)
    )
    """,
    """
    CREATE TABLE verification_results (
        run_id         uuid PRIMARY KEY REFERENCES verification_runs (run_id),
        finished_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
        status         text NOT NULL CHECK (status IN ('intact', 'tampered', 'failed')),
        tree_size      bigint,
        checked_rows   bigint,
        first_bad_seq  bigint,
        damage_kind    text,
        detail         text,
        seconds        double precision,
        CHECK (status <> 'tampered' OR (first_bad_seq IS NOT NULL AND damage_kind IS NOT NULL))
    )
    """,
)

CREATE_ISSUE_FUNCTION = """
CREATE FUNCTION auditsvc_issue_token(
    p_token_id text, p_secret_hmac bytea, p_role text, p_systems text[], p_name text, p_expires_at timestamptz
) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    INSERT INTO public.api_tokens (token_id, secret_hmac, role, systems, name, expires_at)
    VALUES (p_token_id, p_secret_hmac, p_role, p_systems, p_name, p_expires_at)
$$
"""

CREATE_REVOKE_FUNCTION = """
CREATE FUNCTION auditsvc_revoke_token(p_token_id text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH revoked AS (
        UPDATE public.api_tokens SET revoked_at = now()
        WHERE token_id = p_token_id AND revoked_at IS NULL RETURNING 1
    )
    SELECT EXISTS (SELECT FROM revoked)
$$
"""

FUNCTIONS = (
    "auditsvc_issue_token(text, bytea, text, text[], text, timestamptz)",
    "auditsvc_revoke_token(text)",
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
    op.execute(CREATE_ISSUE_FUNCTION)
    op.execute(CREATE_REVOKE_FUNCTION)
    for function in FUNCTIONS:
        op.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
