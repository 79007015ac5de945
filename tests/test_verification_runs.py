"""Verification runs (the auditor page's "verify now"), token administration
from the service, and the latest checkpoint with its witnesses: on real
PostgreSQL, as the runtime role."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest

from auditsvc.domain import proofs, token_admin, verification_runs
from auditsvc.domain.errors import Conflict, NotFound
from auditsvc.domain.ingest import parse_batch, prepare
from auditsvc.domain.tokens import Caller, Role, authenticate, parse_api_token
from auditsvc.runtime import AuditLog, open_audit_log
from auditsvc.settings import Settings
from auditsvc.store import verification_runs as store
from auditsvc.store.engine import asyncpg_dsn, runtime_url
from auditsvc.store.session import driver_connection
from auditsvc.store.tokens import get_token

from .conftest import as_superuser, event, query, run_cli
from .plan_bounds import bounded, log_filled_by

T = TypeVar("T")
AUDITOR = Caller("a1b2c3d4e5f60718", Role.AUDITOR, (), "Internal audit")
ADMIN = Caller("0123456789abcdef", Role.ADMIN, (), "Security admin")


def on_log(settings: Settings, work: Callable[[AuditLog], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            return await work(audit)

    return asyncio.run(go())


async def append(audit: AuditLog, n: int) -> None:
    body = orjson.dumps({"events": [event() for _ in range(n)]})
    await audit.appender.append_batch(prepare(parse_batch(body, 1000), audit.keys, "test-emitter"))


async def finished(audit: AuditLog, run_id: str, timeout: float = 60) -> verification_runs.RunView:
    """Wait for the run's result (polls its stored state, as the page does)."""
    deadline = time.monotonic() + timeout
    while True:
        run = await verification_runs.get_run(audit, run_id)
        if not run.running:
            return run
        assert time.monotonic() < deadline, "the verification did not finish"
        await asyncio.sleep(0.05)


def service_events(settings: Settings) -> list[dict[str, Any]]:
    rows = query(str(settings.database_url), "SELECT record FROM events ORDER BY seq")
    records = [json.loads(r["record"]) for r in rows]
    return [r for r in records if r["source"]["system_id"] == "auditsvc"]


@pytest.mark.db
def test_verify_now_runs_to_intact_with_progress_and_is_recorded_in_the_chain(settings: Settings) -> None:
    async def go(audit: AuditLog) -> tuple[verification_runs.RunView, verification_runs.RunView, int]:
        await append(audit, 30)
        started = await verification_runs.start_run(audit, AUDITOR)
        done = await finished(audit, started.run_id)
        async with driver_connection(audit.engine) as conn:
            beats = len(await conn.fetch("SELECT 1 FROM verification_progress WHERE run_id = $1", done.run_id))
        return started, done, beats

    started, done, beats = on_log(settings, go)
    assert started.status == "running" and started.total_rows == 30 and started.requested_by == "Internal audit"
    assert done.status == "intact" and done.checked_rows == done.tree_size and done.tree_size >= 30
    assert done.first_bad_seq is None and done.finished_at is not None and beats >= 1
    assert done.percent == 100 and done.to_json()["status"] == "intact"
    recorded = [e for e in service_events(settings) if e["attributes"].get("run_id") == done.run_id]
    assert [e["attributes"]["query"] for e in recorded] == ["verification", "verification-result"]
    assert recorded[0]["actor"]["id"] == AUDITOR.token_id and recorded[1]["attributes"]["status"] == "intact"


@pytest.mark.db
def test_a_tampered_row_is_named_by_the_run(settings: Settings) -> None:
    on_log(settings, lambda audit: append(audit, 10))
    as_superuser(
        str(settings.database_url), "UPDATE events SET record = replace(record, 'MSG0001', 'MSG0002') WHERE seq = 4"
    )

    async def go(audit: AuditLog) -> verification_runs.RunView:
        started = await verification_runs.start_run(audit, AUDITOR)
        return await finished(audit, started.run_id)

    done = on_log(settings, go)
    assert done.status == "tampered" and done.first_bad_seq == 4 and done.damage_kind


@pytest.mark.db
def test_a_second_run_is_refused_while_another_process_holds_the_lock(settings: Settings) -> None:
    async def go(audit: AuditLog) -> str:
        other = await asyncpg.connect(asyncpg_dsn(runtime_url(settings)))  # another API process, say
        try:
            assert await store.try_run_lock(other, audit.log_id)
            with pytest.raises(Conflict, match="already running"):
                await verification_runs.start_run(audit, AUDITOR)
        finally:
            await other.close()
        # Its connection gone, the lock is free again.
        run = await verification_runs.start_run(audit, AUDITOR)
        return (await finished(audit, run.run_id)).status

    assert on_log(settings, go) == "intact"


@pytest.mark.db
def test_a_run_whose_process_died_is_recorded_failed_on_the_next_look(settings: Settings) -> None:
    async def go(audit: AuditLog) -> tuple[verification_runs.RunView | None, verification_runs.RunView | None]:
        import uuid

        dying = await asyncpg.connect(asyncpg_dsn(runtime_url(settings)))
        assert await store.try_run_lock(dying, audit.log_id)
        await store.insert_run(dying, uuid.uuid4(), audit.log_id, "Internal audit", "auditor", "console", 0)
        while_alive = await verification_runs.latest_run(audit)
        dying.terminate()  # the process is killed: no result, and PostgreSQL drops its lock
        await asyncio.sleep(0)
        deadline = time.monotonic() + 10
        while True:
            after = await verification_runs.latest_run(audit)
            if (after is not None and not after.running) or time.monotonic() > deadline:
                return while_alive, after
            await asyncio.sleep(0.05)

    alive, after = on_log(settings, go)
    assert alive is not None and alive.status == "running"
    assert after is not None and after.status == "failed" and after.detail == verification_runs.DEAD_DETAIL


@pytest.mark.db
def test_the_cli_records_its_run(settings: Settings) -> None:
    on_log(settings, lambda audit: append(audit, 5))
    result = run_cli(settings, "verify", "--json", "--workers", "1")
    assert result.returncode == 0, result.stderr
    run = on_log(settings, verification_runs.latest_run)
    assert run is not None and run.origin == "cli" and run.status == "intact" and run.requested_by.startswith("cli:")


@pytest.mark.db
def test_an_unknown_run_id_is_not_found(settings: Settings) -> None:
    async def go(audit: AuditLog) -> None:
        for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
            with pytest.raises(NotFound):
                await verification_runs.get_run(audit, bad)

    on_log(settings, go)


@pytest.mark.db
def test_the_service_issues_and_revokes_tokens_and_the_chain_records_both(settings: Settings) -> None:
    async def go(audit: AuditLog) -> tuple[token_admin.IssuedToken, list[dict[str, Any]], str, list[dict[str, Any]]]:
        issued = await token_admin.issue(audit, ADMIN, Role.EMITTER, ["epic-adt"], "Mirth ADT", None)
        token_id, secret = parse_api_token(issued.token)
        async with driver_connection(audit.engine) as conn:
            stored = await get_token(conn, token_id)
        caller = authenticate(stored, secret, audit.keys, stored.created_at if stored else None)  # type: ignore[arg-type]
        listed = await token_admin.list_token_views(audit)
        await token_admin.revoke(audit, ADMIN, token_id)
        with pytest.raises(NotFound):
            await token_admin.revoke(audit, ADMIN, token_id)  # only an active token
        return issued, listed, caller.role.value, await token_admin.list_token_views(audit)

    issued, listed, role, after = on_log(settings, go)
    assert role == "emitter"
    assert [t["state"] for t in listed if t["token_id"] == issued.token_id] == ["active"]
    assert [t["state"] for t in after if t["token_id"] == issued.token_id] == ["revoked"]
    assert all("secret" not in json.dumps(t, default=str) for t in after)
    changes = [e for e in service_events(settings) if e["event_type"] == token_admin.CREDENTIAL_EVENT_TYPE]
    assert [e["attributes"]["change"] for e in changes] == ["issued", "revoked"]
    assert changes[0]["seq"] == issued.seq and issued.token.split("_")[2] not in json.dumps(changes)


@pytest.mark.db
def test_the_runtime_role_cannot_unrevoke_tokens_or_edit_runs(settings: Settings) -> None:
    on_log(settings, lambda audit: append(audit, 1))  # the log is registered

    async def go() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(runtime_url(settings)))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE api_tokens SET revoked_at = NULL")
            import uuid

            run_id = uuid.uuid4()
            await store.insert_run(conn, run_id, 1, "x", "auditor", "console", 0)
            await store.insert_result(conn, run_id, "tampered", first_bad_seq=0, damage_kind="leaf_hash_mismatch")
            for statement in (
                "UPDATE verification_results SET status = 'intact'",
                "DELETE FROM verification_results",
                "DELETE FROM verification_runs",
                "TRUNCATE verification_progress",
            ):
                with pytest.raises(asyncpg.PostgresError):
                    await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.mark.db
def test_the_latest_checkpoint_comes_with_its_witnesses(settings: Settings) -> None:
    async def sign(audit: AuditLog) -> int:
        await append(audit, 3)
        cp = await audit.checkpointer.checkpoint_now()
        return cp.tree_size

    size = on_log(settings, sign)
    as_superuser(
        str(settings.database_url),
        f"INSERT INTO checkpoint_cosignatures (log_id, tree_size, witness, signature) "
        f"SELECT log_id, {size}, 'witness.example.org', '— witness.example.org AAAA\n' FROM logs",
    )
    summary = on_log(settings, proofs.latest_checkpoint_summary)
    assert summary is not None and summary.tree_size == size
    assert [name for name, _ in summary.witnesses] == ["witness.example.org"]
    assert summary.note.endswith("— witness.example.org AAAA\n") and f"\n{size}\n" in summary.note


# --- plans ---------------------------------------------------------------------------------

RUNS = 20_000
FILL = [
    "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'plans.example/log', 2)",
    f"""INSERT INTO verification_runs (run_id, log_id, started_at, requested_by, requested_role, origin, total_rows)
    SELECT md5(i::text)::uuid, 1, timestamptz '2026-01-01' + i * interval '1 minute', 'auditor', 'auditor',
           'console', i FROM generate_series(1, {RUNS}) i""",
    f"""INSERT INTO verification_progress (run_id, at, checked_rows, total_rows)
    SELECT md5(i::text)::uuid, timestamptz '2026-01-01' + i * interval '1 minute' + k * interval '1 second', k, i
    FROM generate_series(1, {RUNS}) i, generate_series(1, 3) k""",
    f"""INSERT INTO verification_results (run_id, status, tree_size, checked_rows)
    SELECT md5(i::text)::uuid, 'intact', i, i FROM generate_series(1, {RUNS} - 1) i""",
    "ANALYZE verification_runs, verification_progress, verification_results",
]
runs_log = log_filled_by(FILL)


def test_the_latest_runs_read_about_the_runs_shown(runs_log: str) -> None:
    for limit in (1, 10, 20):
        bounded(runs_log, store.LATEST_RUNS_SQL, (1, limit), bound=6, constant=20)
    import uuid

    bounded(runs_log, store.RUN_SQL, (uuid.UUID(bytes=bytes(16)),), rows=1, bound=4, constant=20)


def test_a_stopping_service_stops_the_verifying_thread_at_its_next_report() -> None:
    progress = verification_runs._Progress(10)
    progress(5, 10)
    assert progress.value == (5, 10)
    progress.stopped = True
    with pytest.raises(verification_runs.RunStopped):
        progress(6, 10)
