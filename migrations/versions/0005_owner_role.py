"""A dedicated owner role: the log belongs to a NOLOGIN, non-superuser role.

Until this revision the schema belonged to whoever ran the migrations (in the
embedded server and in most set-ups, the superuser ``postgres``). From here
on it belongs to the owner role (``AUDITSVC_OWNER_ROLE``, default
``auditsvc_owner``): no login, no superuser, no role attributes. The login
of the owner DSN is granted the role (with INHERIT and SET), so the
administrative commands keep working through the privileges it inherits, and
migrations/env.py runs every later migration under ``SET ROLE`` to it, so
whatever they create is owned by it too.

This revision:

1. creates the owner role if it does not exist (the login needs CREATEROLE,
   or to be a superuser; otherwise an administrator creates it first);
2. grants it to the migrating login unless the login already has its
   privileges (a superuser needs no grant; ``AUDITSVC_OWNER_ROLE`` may name
   the login itself where no role can be created, e.g. CloudNativePG's ``app``);
3. hands it every table, sequence and the trigger function, and takes
   EXECUTE on that function from PUBLIC: a trigger fires whether or not the
   acting role may EXECUTE its function (checked on PostgreSQL 15 and 16);
   only CREATE TRIGGER needs that privilege;
4. takes CREATE on schema ``public`` from PUBLIC (PostgreSQL 14 and older
   grant it) and gives it to the owner role, and makes functions and types
   the owner role creates later not executable or usable by PUBLIC;
5. states the runtime role's grants again, exactly as 0001 and 0003 made them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Append-only tables (0001, 0003): the runtime role holds SELECT and INSERT.
LOG_TABLES = (
    "logs",
    "events",
    "event_identifiers",
    "identifier_links",
    "patient_identifiers",
    "merkle_nodes",
    "checkpoints",
    "checkpoint_cosignatures",
    "verifier_keys",
)
# Read-only for the runtime role.
READ_TABLES = ("api_tokens", "alembic_version")
FUNCTIONS = ("auditsvc_refuse_change()",)

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def upgrade(runtime_role: str = "auditsvc_app", owner_role: str = "auditsvc_owner", **kw: Any) -> None:
    for name in (runtime_role, owner_role):
        if not _ROLE_NAME.fullmatch(name):
            raise ValueError("role names must be plain lowercase identifiers")
    if owner_role == runtime_role:
        raise ValueError("the owner role and the runtime role must be different roles")
    conn = op.get_bind()
    login = conn.execute(
        text("SELECT current_user AS name, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).one()
    owner = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": owner_role}).first()

    # 1. The role.
    if owner is None:
        if not (login.rolsuper or login.rolcreaterole):
            raise RuntimeError(
                f"the owner role {owner_role} does not exist and {login.name} may not create roles: "
                f"create it as an administrator (CREATE ROLE {owner_role} NOLOGIN; "
                f"GRANT {owner_role} TO {login.name}), or set AUDITSVC_OWNER_ROLE to {login.name}"
            )
        op.execute(f"CREATE ROLE {owner_role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
    elif owner.rolsuper:
        raise RuntimeError(f"the owner role {owner_role} is a superuser: name a role without special attributes")

    # 2. The login acts as the owner: inherits its privileges (token
    # administration, verify, reports) and may SET ROLE to it (migrations).
    if owner_role != login.name and not login.rolsuper:
        _grant_owner_to_login(owner_role, login.name)

    # 3. Ownership. New owners need CREATE on the schema (unless a superuser
    # transfers), and the owner role needs it for later migrations anyway.
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {owner_role}")
    for table in (*LOG_TABLES, *READ_TABLES):
        op.execute(f"ALTER TABLE {table} OWNER TO {owner_role}")
    sequences = "SELECT oid::regclass::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'S'"
    for sequence in conn.execute(text(sequences)).scalars().all():
        op.execute(f"ALTER SEQUENCE {sequence} OWNER TO {owner_role}")
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} OWNER TO {owner_role}")
        op.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")

    # 4. Nobody else creates in the schema; later functions and types are private.
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")
    op.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} REVOKE USAGE ON TYPES FROM PUBLIC")

    # 5. The runtime role: exactly what 0001 and 0003 granted, nothing more.
    tables = ", ".join((*LOG_TABLES, *READ_TABLES))
    op.execute(f"REVOKE ALL ON {tables} FROM PUBLIC, {runtime_role}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {runtime_role}")
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(LOG_TABLES)} TO {runtime_role}")
    op.execute(f"GRANT SELECT ON {', '.join(READ_TABLES)} TO {runtime_role}")


def _grant_owner_to_login(owner_role: str, login: str) -> None:
    conn = op.get_bind()
    version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    # PostgreSQL 16 split membership into INHERIT and SET; before, a member
    # could always SET ROLE and inherited unless it was NOINHERIT itself.
    options = " WITH INHERIT TRUE, SET TRUE" if version >= 160000 else ""
    needed = ("USAGE", "SET") if version >= 160000 else ("USAGE",)

    def has_it() -> bool:
        return all(
            conn.execute(text("SELECT pg_has_role(current_user, :r, :p)"), {"r": owner_role, "p": p}).scalar_one()
            for p in needed
        )

    if has_it():
        return
    try:
        op.execute(f"GRANT {owner_role} TO {login}{options}")
    except DBAPIError as exc:
        raise RuntimeError(
            f"{login} may not grant itself the owner role {owner_role}: as an administrator, "
            f"GRANT {owner_role} TO {login}{options}"
        ) from exc
    if not has_it():
        raise RuntimeError(f"{login} is a member of {owner_role} but does not inherit its privileges (NOINHERIT)")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
