"""Merkle tree nodes, signed checkpoints, verifier keys, witness cosignatures.

``merkle_nodes`` holds the roots of perfect subtrees of 256 leaves and more
(levels 8 and up): with them an inclusion or consistency proof reads
O(log n) stored hashes, plus at most one 256-leaf block of leaf hashes from
``events`` for the levels below. They are a cache of what the leaves
determine: verification recomputes them, and a proof built from a damaged
node does not verify against a signed checkpoint.

``checkpoints`` are the signed notes the service published, one per tree
size; ``verifier_keys`` every key that ever signed one (rotation keeps the
old ones); ``checkpoint_cosignatures`` what witnesses returned.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("merkle_nodes", "checkpoints", "verifier_keys", "checkpoint_cosignatures")

SCHEMA = (
    """
    CREATE TABLE merkle_nodes (
        log_id  smallint NOT NULL REFERENCES logs (log_id),
        level   smallint NOT NULL CHECK (level BETWEEN 8 AND 63),
        idx     bigint NOT NULL CHECK (idx >= 0),
        hash    bytea NOT NULL CHECK (octet_length(hash) = 32),
        PRIMARY KEY (log_id, level, idx)
    )
    """,
    """
    CREATE TABLE verifier_keys (
        log_id      smallint NOT NULL REFERENCES logs (log_id),
        key_name    text NOT NULL,
        key_id      bigint NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
        vkey        text NOT NULL,
        first_used  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (log_id, vkey)
    )
    """,
    """
    CREATE TABLE checkpoints (
        log_id      smallint NOT NULL REFERENCES logs (log_id),
        tree_size   bigint NOT NULL CHECK (tree_size >= 0),
        root_hash   bytea NOT NULL CHECK (octet_length(root_hash) = 32),
        note        text NOT NULL,
        vkey        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (log_id, tree_size)
    )
    """,
    """
    CREATE TABLE checkpoint_cosignatures (
        log_id       smallint NOT NULL,
        tree_size    bigint NOT NULL,
        witness      text NOT NULL,
        signature    text NOT NULL,
        received_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (log_id, tree_size, witness),
        FOREIGN KEY (log_id, tree_size) REFERENCES checkpoints (log_id, tree_size)
    )
    """,
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
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(TABLES)} TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
