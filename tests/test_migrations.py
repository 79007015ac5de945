"""Migrations carry stored data forward and keep the log append-only."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from alembic import command

from auditsvc.settings import Settings
from auditsvc.store.engine import asyncpg_dsn
from auditsvc.store.migrate import alembic_config, upgrade_head

from .conftest import TEST_SECRET_KEY, _admin, _with_database, query


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
