"""Database roles: connected *as the runtime role*, nothing in the log can be
changed, dropped, altered, disabled or shadowed; the role holds only SELECT
and INSERT on the log tables and owns nothing. The log belongs to a
dedicated NOLOGIN owner role, and the triggers refuse that role too.

Every attempt runs inside a transaction that is rolled back, so a privilege
that wrongly exists fails its own test without disturbing the others; the
row counts are compared at the end all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import asyncpg_dsn, runtime_url

from .conftest import LOG_TABLES, TEST_SECRET_KEY, _admin, _with_database, event, query, running_service

pytestmark = pytest.mark.db


# {t}: the table; {r}: the runtime role.
TABLE_STATEMENTS = {
    "update": "UPDATE {t} SET log_id = log_id",
    "delete": "DELETE FROM {t}",
    "truncate": "TRUNCATE {t}",
    "truncate cascade": "TRUNCATE {t} CASCADE",
    "alter add column": "ALTER TABLE {t} ADD COLUMN x int",
    "alter rename": "ALTER TABLE {t} RENAME TO {t}_old",
    "alter owner": "ALTER TABLE {t} OWNER TO {r}",
    "disable all triggers": "ALTER TABLE {t} DISABLE TRIGGER ALL",
    "disable row trigger": "ALTER TABLE {t} DISABLE TRIGGER {t}_no_update_delete",
    "disable truncate trigger": "ALTER TABLE {t} DISABLE TRIGGER {t}_no_truncate",
    "drop row trigger": "DROP TRIGGER {t}_no_update_delete ON {t}",
    "drop truncate trigger": "DROP TRIGGER {t}_no_truncate ON {t}",
    "create trigger": (
        "CREATE TRIGGER shadow BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
    ),
    "create index": "CREATE INDEX shadow ON {t} (log_id)",
    "lock exclusively": "LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE",
    "drop table": "DROP TABLE {t}",
    "drop table cascade": "DROP TABLE {t} CASCADE",
}

SCHEMA_STATEMENTS = {
    "create table": "CREATE TABLE shadow (a int)",
    "create table in public": "CREATE TABLE public.shadow (a int)",
    "create view over events": "CREATE VIEW public.shadow AS SELECT * FROM events",
    "create function": "CREATE FUNCTION public.shadow() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "replace the refusing trigger function": (
        "CREATE OR REPLACE FUNCTION auditsvc_refuse_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
    ),
    "alter the trigger function": "ALTER FUNCTION auditsvc_refuse_change() OWNER TO {r}",
    "drop the trigger function": "DROP FUNCTION auditsvc_refuse_change() CASCADE",
    "create schema": "CREATE SCHEMA shadow",
    "drop schema": "DROP SCHEMA public CASCADE",
    "drop an index": "DROP INDEX event_facts_source",
    "session_replication_role (disables triggers)": "SET session_replication_role = replica",
    "become superuser": "ALTER ROLE {r} SUPERUSER",
    "bypass row security": "ALTER ROLE {r} BYPASSRLS",
    "create role": "CREATE ROLE shadow LOGIN SUPERUSER",
    "mint a token": (
        "INSERT INTO api_tokens (token_id, secret_hmac, role) "
        "VALUES ('0000000000000000', decode(repeat('00', 32), 'hex'), 'admin')"
    ),
    "raise a token's role": "UPDATE api_tokens SET role = 'admin'",
    "unrevoke a token": "UPDATE api_tokens SET revoked_at = NULL",
    "forge the migration state": "UPDATE alembic_version SET version_num = 'x'",
    "drop the token table": "DROP TABLE api_tokens",
}


@dataclass
class Database:
    owner: str
    runtime: str
    runtime_role: str
    owner_role: str


def attempt(url: str, sql: str) -> BaseException | None:
    """Run ``sql`` in a transaction that is always rolled back; the error, if any."""

    class Undo(Exception):
        pass

    async def _run() -> BaseException | None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with conn.transaction():
                await conn.execute(sql)
                raise Undo
        except Undo:
            return None
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()

    return asyncio.run(_run())


def row_counts(url: str) -> dict[str, int]:
    return {t: int(query(url, f"SELECT count(*) AS n FROM {t}")[0]["n"]) for t in LOG_TABLES}


@pytest.fixture(scope="module")
def database(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A log with a row in every table: events, a stored Merkle node, a checkpoint, a cosignature."""
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        settings = Settings(
            database_url=_with_database(server_url, name),
            secret_key=TEST_SECRET_KEY,
            data_dir=tmp_path_factory.mktemp("roles") / "data",
            log_name="test.auditsvc.local/log",
        )
        with running_service(settings) as service:
            linked = [
                ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-R-1"),
                ("urn:oid:2.16.840.1.113883.3.9999.0", "E-R"),
            ]
            with service.client(service.token(Role.EMITTER, ["epic-adt"])) as client:
                client.post("/v1/events", json={"events": [event(linked)]}).raise_for_status()
                client.post("/v1/events", json={"events": [event() for _ in range(256)]}).raise_for_status()
            with service.client(service.token(Role.ADMIN)) as admin:
                admin.post("/v1/checkpoints").raise_for_status()
        owner = str(settings.database_url)
        query(
            owner,
            "INSERT INTO checkpoint_cosignatures (log_id, tree_size, witness, signature) "
            "SELECT log_id, tree_size, 'witness.example/w', 'a line' FROM checkpoints",
        )
        # A log created at 0006 or later needs no backfill; a row here as one that finished would leave.
        query(owner, "INSERT INTO read_model_backfill (log_id, upto, complete) SELECT log_id, 0, true FROM logs")
        assert all(row_counts(owner).values()), row_counts(owner)
        yield Database(owner, runtime_url(settings), settings.runtime_role, settings.owner_role)
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def counts_before(database: Database) -> dict[str, int]:
    return row_counts(database.owner)


def assert_refused(database: Database, sql: str) -> None:
    error = attempt(database.runtime, sql.format(r=database.runtime_role))
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), f"{sql!r} was not refused: {error!r}"


@pytest.mark.parametrize("statement", list(TABLE_STATEMENTS))
@pytest.mark.parametrize("table", LOG_TABLES)
def test_the_runtime_role_cannot_change_any_log_table(
    database: Database, counts_before: dict[str, int], table: str, statement: str
) -> None:
    assert_refused(database, TABLE_STATEMENTS[statement].replace("{t}", table))


@pytest.mark.parametrize("statement", list(SCHEMA_STATEMENTS))
def test_the_runtime_role_cannot_change_the_schema_or_itself(
    database: Database, counts_before: dict[str, int], statement: str
) -> None:
    assert_refused(database, SCHEMA_STATEMENTS[statement])


@pytest.mark.parametrize("table", LOG_TABLES)
def test_the_runtime_role_cannot_grant_itself_more(database: Database, table: str) -> None:
    # PostgreSQL answers a GRANT without grant options with a warning, not an
    # error: what matters is that, inside the same transaction, nothing was granted.
    async def _run() -> bool:
        conn = await asyncpg.connect(asyncpg_dsn(database.runtime))
        outer = conn.transaction()
        await outer.start()
        try:
            # A savepoint: a GRANT refused with an error leaves the transaction usable.
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute(f"GRANT UPDATE, DELETE, TRUNCATE ON {table} TO {database.runtime_role}")
            return bool(
                await conn.fetchval("SELECT has_table_privilege(current_user, $1, 'UPDATE,DELETE,TRUNCATE')", table)
            )
        finally:
            await outer.rollback()
            await conn.close()

    assert asyncio.run(_run()) is False


def test_the_runtime_role_can_still_read_and_append(database: Database) -> None:
    # The control: the same connection path works for what the role is for.
    assert attempt(database.runtime, "SELECT count(*) FROM events") is None
    assert attempt(database.runtime, "INSERT INTO logs (log_id, name, format_version) VALUES (99, 'x', 1)") is None


def test_the_runtime_role_holds_only_select_and_insert_on_the_log(database: Database) -> None:
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    if int(query(database.owner, "SHOW server_version_num")[0]["server_version_num"]) >= 170000:
        privileges.append("MAINTAIN")
    for table in LOG_TABLES:
        held = {
            p
            for p in privileges
            if query(database.owner, "SELECT has_table_privilege($1, $2, $3) AS ok", database.runtime_role, table, p)[
                0
            ]["ok"]
        }
        assert held == {"SELECT", "INSERT"}, (table, held)
    token_rights = query(
        database.owner,
        "SELECT has_table_privilege($1, 'api_tokens', 'INSERT,UPDATE,DELETE,TRUNCATE') AS ok",
        database.runtime_role,
    )
    assert token_rights[0]["ok"] is False


def test_the_runtime_role_has_no_special_attributes_owns_nothing_and_inherits_nothing(database: Database) -> None:
    [role] = query(
        database.owner,
        "SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
        "FROM pg_roles WHERE rolname = $1",
        database.runtime_role,
    )
    assert not any(role[a] for a in ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls"))
    owned = query(
        database.owner,
        "SELECT relname AS name FROM pg_class WHERE relowner = $1 "
        "UNION ALL SELECT proname FROM pg_proc WHERE proowner = $1 "
        "UNION ALL SELECT nspname FROM pg_namespace WHERE nspowner = $1",
        role["oid"],
    )
    assert owned == []
    member_of = query(
        database.owner,
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = $1",
        role["oid"],
    )
    assert member_of == []


def test_every_log_table_keeps_both_triggers_enabled(database: Database) -> None:
    for table in LOG_TABLES:
        rows = query(
            database.owner,
            "SELECT tgname, tgenabled::text AS tgenabled FROM pg_trigger "
            "WHERE tgrelid = $1::regclass AND NOT tgisinternal",
            table,
        )
        assert {(r["tgname"], r["tgenabled"]) for r in rows} == {
            (f"{table}_no_update_delete", "O"),
            (f"{table}_no_truncate", "O"),
        }


def test_nothing_was_changed_by_any_attempt(database: Database, counts_before: dict[str, int]) -> None:
    assert row_counts(database.owner) == counts_before


def test_the_log_is_owned_by_a_dedicated_non_superuser_owner_role(database: Database) -> None:
    owners = query(
        database.owner,
        "SELECT DISTINCT r.rolname, r.rolsuper, r.rolcanlogin FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'",
        list(LOG_TABLES),
    )
    assert len(owners) == 1, owners
    [owner] = owners
    assert owner["rolname"] != database.runtime_role
    assert owner["rolname"] == database.owner_role
    assert not owner["rolsuper"], f"the log is owned by the superuser {owner['rolname']}"
    assert not owner["rolcanlogin"], "the owner role should be NOLOGIN, assumed with SET ROLE by the migrator"


def test_the_owner_role_has_no_attributes_and_owns_the_rest_of_the_schema(database: Database) -> None:
    [role] = query(
        database.owner,
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin "
        "FROM pg_roles WHERE rolname = $1",
        database.owner_role,
    )
    assert not any(role.values()), dict(role)
    owners = query(
        database.owner,
        "SELECT relname AS name, pg_get_userbyid(relowner) AS owner FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v', 'm', 'p') "
        "UNION ALL SELECT proname, pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
    )
    assert {r["name"] for r in owners} >= {*LOG_TABLES, "api_tokens", "alembic_version", "auditsvc_refuse_change"}
    assert {r["owner"] for r in owners} == {database.owner_role}, owners


def test_nobody_else_may_create_in_the_schema_or_call_the_trigger_function(database: Database) -> None:
    [acl] = query(
        database.owner,
        "SELECT has_schema_privilege('public', 'public', 'CREATE') AS public_creates, "
        "has_function_privilege('public', 'auditsvc_refuse_change()', 'EXECUTE') AS public_executes, "
        "has_function_privilege($1, 'auditsvc_refuse_change()', 'EXECUTE') AS runtime_executes",
        database.runtime_role,
    )
    assert not any(acl.values()), dict(acl)


@pytest.mark.parametrize("statement", ["update", "delete", "truncate cascade"])
@pytest.mark.parametrize("table", LOG_TABLES)
def test_the_triggers_refuse_the_owner_role_too(database: Database, table: str, statement: str) -> None:
    # The owner holds every privilege on its tables; the append-only triggers
    # still fire, though PUBLIC may no longer EXECUTE their function.
    sql = TABLE_STATEMENTS[statement].replace("{t}", table)
    error = attempt(database.owner, f"SET LOCAL ROLE {database.owner_role}; {sql}")
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error
    assert "append-only" in str(error)
