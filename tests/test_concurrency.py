"""One linear history however many OS processes append at once."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
import uuid
from typing import Any

import httpx

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import env_for, event, make_token, query, run_cli, serve_process

PROCESSES = 4
BATCHES = 12
BATCH = 50


def _batch_events(worker: int, batch: int) -> list[dict[str, Any]]:
    return [
        event(
            [("urn:oid:2.16.840.1.113883.3.1234.1.1", f"MRN-C{(worker * 7 + i) % 40:04d}")],
            event_id=str(uuid.UUID(int=(worker << 64) | (batch << 16) | i)),
        )
        for i in range(BATCH)
    ]


def _shared_events() -> list[dict[str, Any]]:
    # Every process also sends these same events: each must be stored once.
    return [event(event_id=str(uuid.UUID(int=(999 << 64) | i))) for i in range(BATCH)]


def _append_worker(settings_json: str, worker: int, start: Any) -> None:
    """One OS process with its own appender, racing the others at the database."""
    from auditsvc_sdk import PhiAccess
    from auditsvc_sdk._wire import wire_event

    from auditsvc.domain.ingest import prepare
    from auditsvc.runtime import open_audit_log

    settings = Settings.model_validate_json(settings_json)

    async def _run() -> None:
        async with open_audit_log(settings) as audit:
            start.wait(timeout=120)  # every process has connected and registered the log
            batches = [_batch_events(worker, b) for b in range(BATCHES)] + [_shared_events()]
            await asyncio.gather(
                *(
                    audit.appender.append_batch(
                        prepare(
                            [wire_event(PhiAccess.model_validate(e)) for e in batch], audit.keys, f"worker-{worker}"
                        )
                    )
                    for batch in batches
                )
            )

    asyncio.run(_run())


def assert_one_linear_history(settings: Settings, expected: int) -> None:
    rows = query(str(settings.database_url), "SELECT seq, event_id FROM events ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(expected)), "seq is not gapless from 0"
    assert len({r["event_id"] for r in rows}) == expected, "an event was stored twice"
    result = run_cli(settings, "verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["rows_checked"] == expected


def test_four_processes_appending_at_once_make_one_gapless_chain(settings: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES + 1)
    assert settings.secret_key is not None
    payload = json.dumps({**settings.model_dump(mode="json"), "secret_key": settings.secret_key.get_secret_value()})
    workers = [context.Process(target=_append_worker, args=(payload, w, start)) for w in range(PROCESSES)]
    for process in workers:
        process.start()
    start.wait(timeout=120)  # let every process connect and register the log first
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert_one_linear_history(settings, PROCESSES * BATCHES * BATCH + BATCH)


def _post_worker(url: str, token: str, worker: int) -> list[str]:
    statuses: list[str] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for b in range(BATCHES):
            for batch in (_batch_events(worker, b), _shared_events()):
                response = client.post("/v1/events", json={"events": batch})
                response.raise_for_status()
                statuses += [r["status"] for r in response.json()["results"]]
    return statuses


def test_four_clients_against_two_server_workers_make_one_gapless_chain(settings: Settings) -> None:
    token = make_token(settings, Role.EMITTER, ["epic-adt"])
    with (
        serve_process("--workers", "2", env=env_for(settings)) as url,
        multiprocessing.get_context("spawn").Pool(PROCESSES) as pool,
    ):
        results = pool.starmap(_post_worker, [(url, token, w) for w in range(PROCESSES)])
    statuses = [s for worker in results for s in worker]
    unique = PROCESSES * BATCHES * BATCH + BATCH
    assert statuses.count("accepted") == unique
    assert statuses.count("duplicate") == len(statuses) - unique
    assert_one_linear_history(settings, unique)


async def _until_waiting(watcher: Any, pid: int, wait_event_type: str) -> None:
    """Until backend ``pid`` is blocked on a lock of the given kind."""
    deadline = time.monotonic() + 30
    while True:
        row = await watcher.fetchrow("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", pid)
        if row is not None and row["wait_event_type"] == "Lock" and row["wait_event"] == wait_event_type:
            return
        assert time.monotonic() < deadline, f"backend never waited on {wait_event_type}: {dict(row or {})}"
        await asyncio.sleep(0.02)


def test_a_resend_racing_its_original_is_stored_once_and_answered_duplicate(settings: Settings) -> None:
    """The original and its resend both pass the look-up before either holds
    the lock; the resend then collides with the original's rows and is
    retried, and finds the events stored."""
    import asyncpg
    from auditsvc_sdk import FORMAT_VERSION, PhiAccess, genesis_hash
    from auditsvc_sdk._wire import wire_event

    from auditsvc.domain.append_types import PendingBatch
    from auditsvc.domain.ingest import prepare
    from auditsvc.keys import load_keys
    from auditsvc.store.append import append_group
    from auditsvc.store.engine import asyncpg_dsn
    from auditsvc.store.locks import APPEND_LOCK_CLASS
    from auditsvc.store.logs import ensure_log

    events = [event([("urn:oid:2.16.840.1.113883.3.1234.1.1", f"MRN-R{i:04d}")]) for i in range(20)]

    async def _run() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        dsn = asyncpg_dsn(str(settings.database_url))
        holder, first, second, watcher = [await asyncpg.connect(dsn) for _ in range(4)]
        try:
            log_id = await ensure_log(holder, settings.log_name, FORMAT_VERSION)
            genesis = genesis_hash(settings.log_name)
            keys = load_keys(settings)
            batch = PendingBatch(prepare([wire_event(PhiAccess.model_validate(e)) for e in events], keys, "tok"))
            holding = holder.transaction()
            await holding.start()
            await holder.execute("SELECT pg_advisory_xact_lock($1, $2)", APPEND_LOCK_CLASS, log_id)
            original = asyncio.create_task(append_group(first, log_id, genesis, [batch]))
            await _until_waiting(watcher, first.get_server_pid(), "advisory")
            resend = asyncio.create_task(append_group(second, log_id, genesis, [batch]))
            # The resend's lookup rows collide with the original's uncommitted ones.
            await _until_waiting(watcher, second.get_server_pid(), "transactionid")
            await holding.commit()
            (a,), _ = await original
            (b,), _ = await resend
            return [(r.status, r.seq) for r in a], [(r.status, r.seq) for r in b]
        finally:
            for conn in (holder, first, second, watcher):
                await conn.close()

    original, resend = asyncio.run(_run())
    assert original == [("accepted", seq) for seq in range(20)]
    assert resend == [("duplicate", seq) for seq in range(20)]
    assert_one_linear_history(settings, 20)
