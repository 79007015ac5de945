"""Migrations carry stored data forward and keep the log append-only."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import asyncpg_dsn
from auditsvc.store.migrate import alembic_config, upgrade_head

from .conftest import (
    LOG_TABLES,
    READ_MODEL_TABLES,
    TEST_SECRET_KEY,
    _admin,
    _with_database,
    event,
    query,
    run_cli,
    running_service,
)


@pytest.fixture
def empty_db(server_url: str) -> Iterator[str]:
    name = f"asvc_m_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name}")
    yield _with_database(server_url, name)
    _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_lookup_rows_stored_by_seq_are_rekeyed_by_event_id(empty_db: str) -> None:
    settings = Settings(database_url=empty_db, secret_key=TEST_SECRET_KEY)
    command.upgrade(alembic_config(settings, empty_db), "0001")
    ids = [uuid.uuid4() for _ in range(3)]
    hmacs = [secrets.token_bytes(32) for _ in range(2)]

    async def _fill() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(empty_db))
        try:
            await conn.execute("INSERT INTO logs (log_id, name, format_version) VALUES (1, 'm/log', 1)")
            for seq, event_id in enumerate(ids):
                await conn.execute(
                    "INSERT INTO events VALUES (1, $1, $2, now(), '{}', $3, $3)", seq, event_id, bytes(32)
                )
                for h in hmacs[: seq % 2 + 1]:
                    await conn.execute("INSERT INTO event_identifiers VALUES (1, $1, $2)", h, seq)
        finally:
            await conn.close()

    asyncio.run(_fill())
    upgrade_head(settings, empty_db)

    rows = query(empty_db, "SELECT id_hmac, event_id FROM event_identifiers ORDER BY event_id, id_hmac")
    expected = sorted((bytes(h), ids[seq]) for seq in range(3) for h in hmacs[: seq % 2 + 1])
    assert sorted((bytes(r["id_hmac"]), r["event_id"]) for r in rows) == expected
    columns = query(
        empty_db, "SELECT column_name FROM information_schema.columns WHERE table_name = 'event_identifiers'"
    )
    assert {c["column_name"] for c in columns} == {"log_id", "id_hmac", "event_id"}
    # The append-only trigger lifted for the backfill is back in force.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        query(empty_db, "DELETE FROM event_identifiers")


# -- 0005: the log handed to a dedicated owner role ---------------------------

ALL_TABLES = (*LOG_TABLES, "api_tokens", "alembic_version")
# The tables a log filled at 0004 already has (the read model comes with 0006, event_ids with 0010).
OLD_LOG_TABLES = tuple(t for t in LOG_TABLES if t not in (*READ_MODEL_TABLES, "system_pairs", "event_ids"))
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
LINKED = [("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-MIG-5"), ("urn:oid:2.16.840.1.113883.3.9999.0", "E-MIG-5")]


def table_owners(url: str) -> dict[str, str]:
    rows = query(
        url,
        "SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v', 'm')",
    )
    return {r["relname"]: r["owner"] for r in rows}


def runtime_privileges(url: str, role: str, tables: tuple[str, ...] = ALL_TABLES) -> dict[str, set[str]]:
    return {
        table: {
            p for p in PRIVILEGES if query(url, "SELECT has_table_privilege($1, $2, $3) AS ok", role, table, p)[0]["ok"]
        }
        for table in tables
    }


def fill_through_the_api(settings: Settings) -> str:
    """Events (with linked identifiers and a whole 256-leaf block), a checkpoint
    and a report, through the real service; the privacy officer's token."""
    with running_service(settings) as service:
        with service.client(service.token(Role.EMITTER, ["epic-adt"])) as client:
            client.post("/v1/events", json={"events": [event(LINKED)]}).raise_for_status()
            client.post("/v1/events", json={"events": [event() for _ in range(256)]}).raise_for_status()
        with service.client(service.token(Role.ADMIN)) as admin:
            admin.post("/v1/checkpoints").raise_for_status()
        officer = service.token(Role.PRIVACY_OFFICER)
        with service.client(officer) as client:
            identifier = {"system": LINKED[1][0], "value": LINKED[1][1]}
            client.post("/v1/reports/patient-access", json={"identifier": identifier}).raise_for_status()
    return officer


def assert_administration_works(settings: Settings, officer: str) -> None:
    """What the owner DSN is for, after the hand-over: tokens, verify, reports;
    and the API, as the runtime role, still appends and reads."""
    created = run_cli(settings, "tokens", "create", "--role", "emitter", "--system", "epic-adt", "--json")
    assert created.returncode == 0, created.stderr
    revoked = json.loads(created.stdout)["token"]
    listed = run_cli(settings, "tokens", "list")
    assert listed.returncode == 0, listed.stderr
    revoking = run_cli(settings, "tokens", "revoke", revoked.split("_")[1])
    assert revoking.returncode == 0, revoking.stderr
    emitter = json.loads(
        run_cli(settings, "tokens", "create", "--role", "emitter", "--system", "epic-adt", "--json").stdout
    )["token"]
    with running_service(settings) as service:
        with service.client(revoked) as client:
            assert client.post("/v1/events", json={"events": [event(LINKED)]}).status_code == 401
        with service.client(emitter) as client:
            client.post("/v1/events", json={"events": [event(LINKED)]}).raise_for_status()
        with service.client(officer) as client:
            identifier = {"system": LINKED[0][0], "value": LINKED[0][1]}
            report = client.post("/v1/reports/patient-access", json={"identifier": identifier})
            report.raise_for_status()
            # The two emitted, and the audit of the report made before the upgrade.
            kinds = sorted(e["event_type"] for e in report.json()["events"])
            assert kinds == ["audit-log-query", "hl7v2-message", "hl7v2-message"]
    reported = run_cli(settings, "report", "patient", "--identifier", "|".join(LINKED[0]), "--format", "json")
    assert reported.returncode == 0, reported.stderr
    verified = run_cli(settings, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def copy_rows(source: str, target: str, tables: tuple[str, ...]) -> None:
    """Every row of ``tables`` from one database into the other (triggers off in the target)."""
    src, dst = await asyncpg.connect(asyncpg_dsn(source)), await asyncpg.connect(asyncpg_dsn(target))
    try:
        async with dst.transaction():
            await dst.execute("SET LOCAL session_replication_role = replica")
            for table in tables:
                rows = await src.fetch(f"SELECT * FROM {table}")
                if rows:
                    await dst.copy_records_to_table(
                        table, records=[tuple(r) for r in rows], columns=list(rows[0].keys())
                    )
    finally:
        await src.close()
        await dst.close()


def test_a_log_filled_at_0004_is_handed_to_the_owner_role_and_keeps_working(
    empty_db: str, db_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=empty_db, secret_key=TEST_SECRET_KEY, data_dir=tmp_path / "data", log_name="m.auditsvc.local/log"
    )
    command.upgrade(alembic_config(settings, empty_db), "0004")
    # Filled by this code at head, then the rows copied into the log at 0004
    # (this code writes the read model of 0006, which a log at 0004 lacks).
    officer = fill_through_the_api(settings.model_copy(update={"database_url": db_url}))
    asyncio.run(copy_rows(db_url, empty_db, (*OLD_LOG_TABLES, "api_tokens")))
    counts = {t: query(empty_db, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in OLD_LOG_TABLES}
    records = query(empty_db, "SELECT seq, record, chain_hash FROM events ORDER BY seq")
    old_tables = (*OLD_LOG_TABLES, "api_tokens", "alembic_version")
    grants = runtime_privileges(empty_db, settings.runtime_role, old_tables)
    assert set(table_owners(empty_db).values()) != {settings.owner_role}

    upgrade_head(settings, empty_db)

    assert set(table_owners(empty_db).values()) == {settings.owner_role}
    assert {t: query(empty_db, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in OLD_LOG_TABLES} == counts
    assert query(empty_db, "SELECT seq, record, chain_hash FROM events ORDER BY seq") == records
    assert runtime_privileges(empty_db, settings.runtime_role, old_tables) == grants
    assert runtime_privileges(empty_db, settings.runtime_role) == {
        **{t: {"SELECT", "INSERT"} for t in LOG_TABLES},
        "api_tokens": {"SELECT"},
        "alembic_version": {"SELECT"},
    }
    assert grants == {
        **{t: {"SELECT", "INSERT"} for t in OLD_LOG_TABLES},
        "api_tokens": {"SELECT"},
        "alembic_version": {"SELECT"},
    }
    [function] = query(
        empty_db,
        "SELECT pg_get_userbyid(proowner) AS owner, has_function_privilege('public', oid, 'EXECUTE') AS public "
        "FROM pg_proc WHERE proname = 'auditsvc_refuse_change'",
    )
    assert (function["owner"], function["public"]) == (settings.owner_role, False)
    # The triggers still refuse, the owner role included (they fire whoever holds EXECUTE).
    for statement in ("DELETE FROM events", "UPDATE logs SET name = name", "TRUNCATE checkpoints CASCADE"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            _admin(empty_db, f"SET ROLE {settings.owner_role}; {statement}")
    # Reports wait for the read model of the rows stored before 0006; `auditsvc migrate` builds it.
    assert query(empty_db, "SELECT count(*) AS n FROM event_facts")[0]["n"] == 0
    migrated = run_cli(settings, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert query(empty_db, "SELECT count(*) AS n FROM event_facts")[0]["n"] == len(records)
    # The coverage pairs (0008) were backfilled from the records by the migration itself.
    pairs = {
        (json.loads(r["record"])["source"]["system_id"], json.loads(r["record"])["destination"]["system_id"])
        for r in records
    }
    stored = query(empty_db, "SELECT source_system AS s, destination_system AS d FROM system_pairs")
    assert {(r["s"], r["d"]) for r in stored} == pairs and len(stored) == len(pairs)
    assert_administration_works(settings, officer)


def latest_revision() -> str:
    """The newest revision's id (the file names start with it, numbered in order)."""
    return max(p.name.split("_")[0] for p in (Settings().migrations_dir / "versions").glob("[0-9]*_*.py"))


def test_migrations_after_the_hand_over_run_as_the_owner_role(empty_db: str, tmp_path: Path) -> None:
    # A later revision, stand-in: what it creates must belong to the owner role.
    migrations = tmp_path / "migrations"
    shutil.copytree(Settings().migrations_dir, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_later.py").write_text(
        f'revision = "9999"\ndown_revision = "{latest_revision()}"\n'
        "from alembic import op\n"
        "def upgrade(**kw):\n"
        '    op.execute("CREATE TABLE later (a int)")\n'
        "    op.execute(\"CREATE FUNCTION later_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'\")\n"
    )
    settings = Settings(database_url=empty_db, secret_key=TEST_SECRET_KEY, migrations_dir=migrations)
    upgrade_head(settings, empty_db)
    assert table_owners(empty_db)["later"] == settings.owner_role
    [function] = query(
        empty_db,
        "SELECT pg_get_userbyid(proowner) AS owner, has_function_privilege('public', oid, 'EXECUTE') AS public "
        "FROM pg_proc WHERE proname = 'later_fn'",
    )
    assert (function["owner"], function["public"]) == (settings.owner_role, False)
    assert not query(empty_db, "SELECT has_table_privilege($1, 'later', 'SELECT') AS ok", settings.runtime_role)[0][
        "ok"
    ]


@contextmanager
def database_of_a_login(server_url: str, attributes: str) -> Iterator[tuple[str, str, str]]:
    """A database owned by a login that is no superuser (a managed
    PostgreSQL's administrator, CloudNativePG's ``app``), and unique owner and
    runtime role names: (that login's DSN, owner role, runtime role)."""
    suffix = secrets.token_hex(4)
    login, owner, runtime = f"asvc_mig_{suffix}", f"asvc_own_{suffix}", f"asvc_rt_{suffix}"
    name = f"asvc_m_{suffix}"
    _admin(server_url, f"CREATE ROLE {login} LOGIN {attributes}")
    _admin(server_url, f"CREATE DATABASE {name} OWNER {login}")
    try:
        url = make_url(_with_database(server_url, name)).set(username=login).render_as_string(hide_password=False)
        yield url, owner, runtime
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        for role in (owner, runtime, login):
            _admin(server_url, f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def createrole_login(server_url: str) -> Iterator[tuple[str, str, str]]:
    with database_of_a_login(server_url, "CREATEROLE") as names:
        yield names


@pytest.fixture
def plain_login(server_url: str) -> Iterator[tuple[str, str, str]]:
    with database_of_a_login(server_url, "NOCREATEROLE") as names:
        # It cannot create the runtime role either: an administrator (or
        # CloudNativePG's managed roles) did.
        _admin(server_url, f"CREATE ROLE {names[2]} LOGIN")
        yield names


def test_a_login_with_createrole_but_no_superuser_migrates_and_administers(
    createrole_login: tuple[str, str, str], tmp_path: Path
) -> None:
    url, owner, runtime = createrole_login
    settings = Settings(
        database_url=url,
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        owner_role=owner,
        runtime_role=runtime,
        log_name="m.auditsvc.local/log",
    )
    upgrade_head(settings, url)
    assert set(table_owners(url).values()) == {owner}
    [role] = query(
        url,
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
        "pg_has_role(session_user, oid, 'USAGE') AS inherited FROM pg_roles WHERE rolname = $1",
        owner,
    )
    assert dict(role) == {
        "rolcanlogin": False,
        "rolsuper": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
        "rolreplication": False,
        "rolbypassrls": False,
        "inherited": True,
    }
    upgrade_head(settings, url)  # again, now under SET ROLE: nothing to do, no error
    officer = fill_through_the_api(settings)
    assert_administration_works(settings, officer)


def test_a_login_that_may_not_create_roles_is_told_how_and_may_own_the_log_itself(
    plain_login: tuple[str, str, str], tmp_path: Path
) -> None:
    url, owner, runtime = plain_login
    login = make_url(url).username
    settings = Settings(database_url=url, secret_key=TEST_SECRET_KEY, owner_role=owner, runtime_role=runtime)
    with pytest.raises(RuntimeError, match=f"set AUDITSVC_OWNER_ROLE to {login}"):
        upgrade_head(settings, url)
    # The earlier revisions are in; naming the login as the owner role (as
    # CloudNativePG's app) finishes the upgrade, and the log stays the login's.
    settings = settings.model_copy(update={"owner_role": login})
    upgrade_head(settings, url)
    assert set(table_owners(url).values()) == {login}
    assert runtime_privileges(url, runtime) == {
        **{t: {"SELECT", "INSERT"} for t in LOG_TABLES},
        "api_tokens": {"SELECT"},
        "alembic_version": {"SELECT"},
    }
    [acl] = query(
        url,
        "SELECT has_schema_privilege('public', 'public', 'CREATE') AS public_creates, "
        "has_function_privilege('public', 'auditsvc_refuse_change()', 'EXECUTE') AS public_executes",
    )
    assert not any(acl.values()), dict(acl)
