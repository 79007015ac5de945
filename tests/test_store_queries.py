"""The store's own functions against real PostgreSQL: logs, events, locks,
tokens and the session helpers (tests/conftest.py gives each test a fresh,
migrated database)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from auditsvc_sdk import FORMAT_VERSION, chain_hash, genesis_hash, leaf_hash

from auditsvc.domain.append_types import PendingBatch
from auditsvc.domain.ingest import parse_batch, prepare
from auditsvc.keys import ServerKeys
from auditsvc.sealing import IdentifierSealer, StaticKeyProvider
from auditsvc.store import events, locks, logs, reports, tokens
from auditsvc.store.append import append_group
from auditsvc.store.session import CONNECTION_ERRORS, Connection, DatabaseError, connect

from .conftest import event

pytestmark = pytest.mark.db

LOG = "auditsvc.test/store"
KEYS = ServerKeys(b"k" * 32, b"t" * 32, IdentifierSealer(StaticKeyProvider({"k1": b"e" * 32}, "k1")))
T = TypeVar("T")


def on_db(db_url: str, body: Callable[[Connection], Awaitable[T]]) -> T:
    async def _run() -> T:
        conn = await connect(db_url)
        try:
            return await body(conn)
        finally:
            await conn.close()

    return asyncio.run(_run())


async def _append(conn: Connection, log_id: int, n: int, start: int = 0) -> list[uuid.UUID]:
    wire = [event([("urn:oid:1.2.3", f"MRN-S{i:04d}")]) for i in range(start, start + n)]
    batch = PendingBatch(prepare(parse_batch(json.dumps({"events": wire}).encode(), 1000), KEYS, "tok_store"))
    [results], _ = await append_group(conn, log_id, genesis_hash(LOG), [batch])
    return [r.event_id for r in results]


def test_a_log_is_registered_once_and_found_by_name(db_url: str) -> None:
    async def body(conn: Connection) -> None:
        assert await logs.log_id_for(conn, LOG) is None
        first = await logs.ensure_log(conn, LOG, FORMAT_VERSION)
        assert await logs.ensure_log(conn, LOG, FORMAT_VERSION) == first
        assert await logs.log_id_for(conn, LOG) == first
        other = await logs.ensure_log(conn, LOG + "-other", FORMAT_VERSION)
        assert other != first
        assert await logs.log_id_for(conn, LOG + "-other") == other

    on_db(db_url, body)


def test_events_size_chain_hash_and_lookup_follow_the_appends(db_url: str) -> None:
    async def body(conn: Connection) -> None:
        log_id = await logs.ensure_log(conn, LOG, FORMAT_VERSION)
        assert await events.committed_size(conn, log_id) == 0
        assert await events.chain_hash_at(conn, log_id, 0) is None
        ids = await _append(conn, log_id, 5)
        assert await events.committed_size(conn, log_id) == 5
        # The chain recomputed from the stored records matches what the store answers.
        previous = genesis_hash(LOG)
        for seq, event_id in enumerate(ids):
            stored = await events.event_by_id(conn, log_id, event_id)
            assert stored is not None and stored.seq == seq
            assert stored.leaf_hash == leaf_hash(stored.record.encode())
            previous = chain_hash(previous, stored.leaf_hash)
            assert stored.chain_hash == previous == await events.chain_hash_at(conn, log_id, seq)
        assert await events.chain_hash_at(conn, log_id, 5) is None
        assert await events.event_by_id(conn, log_id, uuid.uuid4()) is None
        # Another log's events are not this log's.
        other = await logs.ensure_log(conn, LOG + "-other", FORMAT_VERSION)
        assert await events.committed_size(conn, other) == 0
        assert await events.event_by_id(conn, other, ids[0]) is None
        # The report's snapshot is the same query.
        assert reports.TREE_SIZE_SQL == events.COMMITTED_SIZE_SQL

    on_db(db_url, body)


def test_an_advisory_lock_is_held_until_its_transaction_ends(db_url: str) -> None:
    async def body(holder: Connection) -> None:
        other = await connect(db_url)
        try:
            async with holder.transaction():
                await locks.xact_lock(holder, locks.TREE_LOCK_CLASS, 7)
                async with other.transaction():
                    assert not await locks.try_xact_lock(other, locks.TREE_LOCK_CLASS, 7)
                    # Another log, or another lock class, is free.
                    assert await locks.try_xact_lock(other, locks.TREE_LOCK_CLASS, 8)
                    assert await locks.try_xact_lock(other, locks.CHECKPOINT_LOCK_CLASS, 7)
            async with other.transaction():
                assert await locks.try_xact_lock(other, locks.TREE_LOCK_CLASS, 7)
        finally:
            await other.close()

    on_db(db_url, body)


def test_the_lock_classes_are_distinct() -> None:
    classes = [locks.APPEND_LOCK_CLASS, locks.TREE_LOCK_CLASS, locks.CHECKPOINT_LOCK_CLASS, locks.PUBLISH_LOCK_CLASS]
    assert len(set(classes)) == len(classes)


def test_a_token_is_stored_listed_and_revoked_once(db_url: str) -> None:
    expires = datetime.now(UTC) + timedelta(days=3)

    async def body(conn: Connection) -> None:
        assert await tokens.get_token(conn, "0123456789abcdef") is None
        await tokens.insert_token(conn, "0123456789abcdef", b"h" * 32, "emitter", ["ehr", "lab"], "mirth", expires)
        await tokens.insert_token(conn, "fedcba9876543210", b"g" * 32, "auditor", [], None, None)
        stored = await tokens.get_token(conn, "0123456789abcdef")
        assert stored is not None
        assert (stored.secret_hmac, stored.role, stored.systems, stored.name) == (
            b"h" * 32,
            "emitter",
            ("ehr", "lab"),
            "mirth",
        )
        assert stored.expires_at == expires and stored.revoked_at is None
        assert [t.token_id for t in await tokens.list_tokens(conn)] == ["0123456789abcdef", "fedcba9876543210"]
        assert await tokens.revoke_token(conn, "fedcba9876543210")
        assert not await tokens.revoke_token(conn, "fedcba9876543210")  # already revoked
        assert not await tokens.revoke_token(conn, "0000000000000000")  # no such token
        revoked = await tokens.get_token(conn, "fedcba9876543210")
        assert revoked is not None and revoked.revoked_at is not None
        with pytest.raises(DatabaseError):  # the id is the primary key
            await tokens.insert_token(conn, "0123456789abcdef", b"x" * 32, "auditor", [], None, None)

    on_db(db_url, body)


def test_an_unreachable_database_is_a_connection_error(tmp_path: object) -> None:
    with pytest.raises(CONNECTION_ERRORS):
        asyncio.run(connect(f"postgresql://nobody@/none?host={tmp_path}"))
