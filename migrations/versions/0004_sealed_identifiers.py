"""Patient identifiers stored encrypted: ``patient_identifiers.value_enc``.

New rows hold the identifier value sealed with AES-256-GCM
(``aes256gcm:<key id>:<data>``, auditsvc/sealing.py) in ``value_enc`` and
no ``value``; rows written before this revision keep their value in clear
(the records that carry them are hashed into the chain and cannot be
re-encrypted without breaking it). Exactly one of the two is set.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade(**kw: Any) -> None:
    op.execute("ALTER TABLE patient_identifiers ALTER COLUMN value DROP NOT NULL")
    op.execute("ALTER TABLE patient_identifiers ADD COLUMN value_enc text")
    op.execute(
        "ALTER TABLE patient_identifiers ADD CONSTRAINT patient_identifiers_one_value "
        "CHECK ((value IS NULL) <> (value_enc IS NULL))"
    )


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
