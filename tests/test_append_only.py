"""Append-only in the database itself: triggers and the runtime role's grants."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import asyncpg_dsn, runtime_url

from .conftest import LOG_TABLES, Service, event, query


def attempt(url: str, sql: str) -> BaseException | None:
    async def _run() -> BaseException | None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()
        return None

    return asyncio.run(_run())


@pytest.fixture
def stored(service: Service) -> Settings:
    token = service.token(Role.EMITTER, ["epic-adt"])
    linked = [("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-AO-1"), ("urn:oid:2.16.840.1.113883.3.9999.0", "E-AO-1")]
    with service.client(token) as client:
        client.post("/v1/events", json={"events": [event(linked), event()]}).raise_for_status()
        # A whole 256-leaf block (a stored Merkle node) and a signed checkpoint.
        client.post("/v1/events", json={"events": [event() for _ in range(256)]}).raise_for_status()
    with service.client(service.token(Role.ADMIN)) as admin:
        admin.post("/v1/checkpoints").raise_for_status()
    query(
        str(service.settings.database_url),
        "INSERT INTO checkpoint_cosignatures (log_id, tree_size, witness, signature) "
        "SELECT log_id, tree_size, 'witness.example/w', 'a line' FROM checkpoints",
    )
    # A row as a finished backfill leaves (a log created at 0006 or later needs none).
    query(
        str(service.settings.database_url),
        "INSERT INTO read_model_backfill (log_id, upto, complete) SELECT log_id, 0, true FROM logs",
    )
    return service.settings


@pytest.mark.parametrize("table", LOG_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET log_id = log_id", "DELETE FROM {t}", "TRUNCATE {t} CASCADE"])
def test_runtime_role_cannot_change_log_tables(stored: Settings, table: str, statement: str) -> None:
    error = attempt(runtime_url(stored), statement.format(t=table))
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error


@pytest.mark.parametrize("table", ["events", "api_tokens"])
def test_runtime_role_cannot_alter_or_drop(stored: Settings, table: str) -> None:
    for statement in (f"ALTER TABLE {table} ADD COLUMN x int", f"DROP TABLE {table}"):
        error = attempt(runtime_url(stored), statement)
        assert isinstance(error, asyncpg.InsufficientPrivilegeError), (statement, error)


def test_runtime_role_cannot_write_tokens(stored: Settings) -> None:
    error = attempt(runtime_url(stored), "UPDATE api_tokens SET role = 'admin'")
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error


@pytest.mark.parametrize("table", LOG_TABLES)
def test_triggers_refuse_even_the_owner(stored: Settings, table: str) -> None:
    owner = str(stored.database_url)
    for statement in (f"UPDATE {table} SET log_id = log_id", f"DELETE FROM {table}"):
        error = attempt(owner, statement)
        assert error is not None and "append-only" in str(error), (statement, error)


@pytest.mark.parametrize("table", LOG_TABLES)
def test_truncate_is_refused_by_its_statement_trigger(stored: Settings, table: str) -> None:
    error = attempt(str(stored.database_url), f"TRUNCATE {table} CASCADE")
    assert error is not None and "TRUNCATE" in str(error) and "append-only" in str(error), error
