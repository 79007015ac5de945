"""Verification runs: "verify now" from the console, its progress, and the
last result, for the auditor page.

A run is ``verify_chain`` (domain/verify.py) over the whole log, started in
the service process as a background task. Its life, in insert-only rows
(store/verification_runs.py, migration 0012):

1. **Start.** The starter takes the log's verification lock, a session-level
   PostgreSQL advisory lock on a connection of its own, held until the run
   ends: a second run, from any API process or pod, is refused while it is
   held. Holding it, the starter knows every earlier run without a result
   is dead and records that (``failed``), then stores the run and appends a
   ``verification`` event to the chain naming who asked (every examination
   of the log made by a person is in the chain, like reports).
2. **Progress.** The rows are checked in a thread with its own event loop
   and connection, so the API's loop keeps answering; the rows checked so
   far are written as a heartbeat every ``heartbeat_seconds``.
3. **Result.** ``intact``, ``tampered`` (first bad seq and kind) or
   ``failed`` (could not run), stored and appended to the chain as a
   ``verification-result`` event, then the lock is let go.

If the process dies mid-run, its connection closes and PostgreSQL drops the
lock: the next look at the runs (``latest_run``, ``start_run``) finds a run
with no result and the lock free, and records it ``failed``. A hung process
that still holds its connection keeps the lock; its stale heartbeat shows
on the page.

``auditsvc verify`` records its runs the same way (``record_cli_run``)
when the lock is free, so the page's "last verification" includes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import wire_event

from ..keys import ServerKeys
from ..runtime import AuditLog
from ..store import verification_runs as store
from ..store.engine import asyncpg_dsn
from ..store.events import committed_size
from ..store.session import Connection, connect, driver_connection
from .errors import Conflict, NotFound
from .ingest import prepare
from .log_ref import LogRef
from .page_audit import subject_identifier
from .read_audit import read_event
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller
from .verify import VerifyOptions, VerifyReport, verify_chain

VERIFICATION_EVENT = "verification"
RESULT_EVENT = "verification-result"
ORIGINS = ("console", "api", "cli")
DEAD_DETAIL = "the process running the verification stopped before it finished"
RECENT_RUNS = 20  # how far back a look searches for runs left without a result


@dataclass(frozen=True)
class RunConfig:
    """How runs started in the service behave."""

    heartbeat_seconds: float = 1.0


@dataclass(frozen=True)
class RunView:
    """A run as the auditor page and its status route show it (no PHI)."""

    run_id: str
    status: str  # running | intact | tampered | failed
    started_at: datetime
    requested_by: str
    requested_role: str
    origin: str
    checked_rows: int
    total_rows: int
    progress_at: datetime | None
    finished_at: datetime | None
    tree_size: int | None
    first_bad_seq: int | None
    damage_kind: str | None
    detail: str | None
    seconds: float | None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def percent(self) -> int:
        if self.status != "running":
            return 100
        return 100 if self.total_rows == 0 else min(100, self.checked_rows * 100 // self.total_rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": format_timestamp(self.started_at),
            "requested_by": self.requested_by,
            "requested_role": self.requested_role,
            "origin": self.origin,
            "checked_rows": self.checked_rows,
            "total_rows": self.total_rows,
            "percent": self.percent,
            "progress_at": format_timestamp(self.progress_at) if self.progress_at else None,
            "finished_at": format_timestamp(self.finished_at) if self.finished_at else None,
            "tree_size": self.tree_size,
            "first_bad_seq": self.first_bad_seq,
            "damage_kind": self.damage_kind,
            "detail": self.detail,
            "seconds": self.seconds,
        }


def _view(run: store.StoredRun) -> RunView:
    finished = run.status is not None
    return RunView(
        run_id=str(run.run_id),
        status=run.status or "running",
        started_at=run.started_at,
        requested_by=run.requested_by,
        requested_role=run.requested_role,
        origin=run.origin,
        checked_rows=(run.result_checked_rows or 0) if finished else run.checked_rows,
        total_rows=run.progress_total,
        progress_at=run.progress_at,
        finished_at=run.finished_at,
        tree_size=run.tree_size,
        first_bad_seq=run.first_bad_seq,
        damage_kind=run.damage_kind,
        detail=run.detail,
        seconds=run.seconds,
    )


def requester(caller: Caller) -> str:
    """Who asked, as the page shows it: the credential's name, else its id."""
    return caller.name or caller.token_id


# --- looking ------------------------------------------------------------------------------


async def fail_dead_runs(conn: Connection, log_id: int) -> None:
    """Record ``failed`` for recent runs left without a result by a process
    that died (no one holds the lock). Only call it holding the lock, or
    after seeing it free."""
    for run_id in await store.unfinished_runs(conn, log_id, RECENT_RUNS):
        await store.insert_result(conn, run_id, "failed", detail=DEAD_DETAIL)


async def latest_run(audit: AuditLog) -> RunView | None:
    """The most recent run of the log, a dead one recorded as failed first."""
    async with driver_connection(audit.engine) as conn:
        runs = await store.latest_runs(conn, audit.log_id, 1)
        if runs and runs[0].status is None and await store.run_lock_free(conn, audit.log_id):
            await fail_dead_runs(conn, audit.log_id)
            runs = await store.latest_runs(conn, audit.log_id, 1)
    return _view(runs[0]) if runs else None


async def recent_runs(audit: AuditLog, limit: int = 10) -> list[RunView]:
    async with driver_connection(audit.engine) as conn:
        return [_view(r) for r in await store.latest_runs(conn, audit.log_id, limit)]


async def get_run(audit: AuditLog, run_id: str) -> RunView:
    """One run by id (404 when it is not one of this log's)."""
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        raise NotFound("no verification run with that id") from None
    async with driver_connection(audit.engine) as conn:
        run = await store.get_run(conn, key)
        if run is not None and run.status is None and await store.run_lock_free(conn, audit.log_id):
            await fail_dead_runs(conn, audit.log_id)
            run = await store.get_run(conn, key)
    if run is None:
        raise NotFound("no verification run with that id")
    return _view(run)


# --- running ------------------------------------------------------------------------------


class RunStopped(Exception):
    """The service is stopping: the verification thread gives up."""


class _Progress:
    """The latest ``(done, total)`` the verification reported (written by its
    thread, read by the heartbeat: two ints, replaced whole). Once ``stopped``
    is set, the next report raises ``RunStopped`` in the verifying thread, so
    that a service shutting down does not wait for a whole verification (the
    run is then left without a result, and recorded failed by the next look)."""

    def __init__(self, total: int) -> None:
        self.value = (0, total)
        self.stopped = False

    def __call__(self, done: int, total: int) -> None:
        if self.stopped:
            raise RunStopped("the service stopped during the verification")
        self.value = (done, total)


_RUNNING: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


def _dsn(audit: AuditLog) -> str:
    return asyncpg_dsn(audit.engine.url.render_as_string(hide_password=False))


async def start_run(
    audit: AuditLog, caller: Caller, origin: str = "console", config: RunConfig | None = None
) -> RunView:
    """Start a verification of the whole log in the background and return it
    (``running``); 409 while another run holds the lock."""
    run_id = uuid.uuid4()
    conn = await connect(_dsn(audit))  # its own: it holds the lock for the run, however the process ends
    try:
        if not await store.try_run_lock(conn, audit.log_id):
            raise Conflict("a verification of this log is already running; wait for its result")
        await fail_dead_runs(conn, audit.log_id)
        total = await committed_size(conn, audit.log_id)
        await store.insert_run(conn, run_id, audit.log_id, requester(caller), caller.role.value, origin, total)
        await _append_service_event(audit, caller, VERIFICATION_EVENT, run_id, {"tree_size": str(total)})
        view = await get_run(audit, str(run_id))
    except BaseException:
        await conn.close()
        raise
    task = asyncio.create_task(_carry_out(audit, conn, run_id, total, config or RunConfig()))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return view


async def _carry_out(audit: AuditLog, conn: Connection, run_id: uuid.UUID, total: int, config: RunConfig) -> None:
    """Verify, with heartbeats, record the result; closing ``conn`` lets the lock go."""
    progress = _Progress(total)
    started = time.perf_counter()
    try:
        heartbeat = asyncio.create_task(_beat(conn, run_id, progress, config.heartbeat_seconds))
        try:
            report = await asyncio.to_thread(
                _verify_in_thread, _dsn(audit), audit.log_id, audit.log_name, audit.keys, progress
            )
        except asyncio.CancelledError:  # the service is stopping
            progress.stopped = True
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await store.insert_progress(conn, run_id, *progress.value)
        await _record_result(conn, run_id, report)
        await _append_result_event(audit, run_id, report)
    except Exception as exc:  # the run could not finish: say so, never leave it "running"
        with contextlib.suppress(Exception):
            await store.insert_result(
                conn,
                run_id,
                "failed",
                detail=f"verification could not run: {type(exc).__name__}",
                seconds=round(time.perf_counter() - started, 3),
            )
    finally:
        await conn.close()


async def _beat(conn: Connection, run_id: uuid.UUID, progress: _Progress, seconds: float) -> None:
    while True:
        await store.insert_progress(conn, run_id, *progress.value)
        await asyncio.sleep(seconds)


def _verify_in_thread(dsn: str, log_id: int, log_name: str, keys: ServerKeys, progress: _Progress) -> VerifyReport:
    async def _run() -> VerifyReport:
        conn = await connect(dsn)
        try:
            # In this process, one range at a time: worker processes are not
            # forked from a service that runs threads and an event loop.
            return await verify_chain(conn, LogRef.named(log_id, log_name), VerifyOptions(keys=keys), progress)
        finally:
            await conn.close()

    return asyncio.run(_run())


async def _record_result(conn: Connection, run_id: uuid.UUID, report: VerifyReport) -> None:
    damage = report.damage
    await store.insert_result(
        conn,
        run_id,
        "intact" if report.ok else "tampered",
        tree_size=report.tree_size,
        checked_rows=report.rows_checked,
        first_bad_seq=None if damage is None else damage.seq,
        damage_kind=None if damage is None else damage.kind,
        detail=None if damage is None else damage.detail,
        seconds=report.seconds,
    )


async def _append_service_event(
    audit: AuditLog, caller: Caller | None, event_type: str, run_id: uuid.UUID, attributes: dict[str, str]
) -> None:
    """A ``verification`` (who asked) or ``verification-result`` (the service)
    event, subject ``urn:auditsvc:verification|<run id>``."""
    actor: dict[str, Any] = (
        {"id": caller.token_id, "type": "user", "role": caller.role.value, "name": caller.name}
        if caller is not None
        else {"id": SERVICE_SYSTEM_ID, "type": "system"}
    )
    role = caller.role.value if caller is not None else "verification"
    subject: Identifier = subject_identifier(VERIFICATION_EVENT, str(run_id))
    event = read_event(
        [subject],
        actor={k: v for k, v in actor.items() if v is not None},
        destination=f"{SERVICE_SYSTEM_ID}:{role}",
        data_elements=["AuditEvent"],
        attributes={"query": event_type, "run_id": str(run_id), **attributes},
    )
    emitter = caller.token_id if caller is not None else SERVICE_SYSTEM_ID
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, emitter))


async def _append_result_event(audit: AuditLog, run_id: uuid.UUID, report: VerifyReport) -> None:
    attributes = {"status": "intact" if report.ok else "tampered", "tree_size": str(report.tree_size)}
    if report.damage is not None:
        attributes |= {"first_bad_seq": str(report.damage.seq), "kind": report.damage.kind}
    await _append_service_event(audit, None, RESULT_EVENT, run_id, attributes)


# --- the command line ---------------------------------------------------------------------


async def record_cli_run(
    conn: Connection, log_id: int, requested_by: str, verify: Callable[[], Awaitable[VerifyReport]]
) -> tuple[VerifyReport, bool]:
    """Run ``verify()`` recorded as a ``cli`` run when the lock is free;
    ``(report, recorded)``. An auditor's own verification is never refused:
    with the lock held elsewhere it runs unrecorded."""
    if not await store.try_run_lock(conn, log_id):
        return await verify(), False
    run_id = uuid.uuid4()
    try:
        await fail_dead_runs(conn, log_id)
        total = await committed_size(conn, log_id)
        await store.insert_run(conn, run_id, log_id, requested_by, "operator", "cli", total)
        try:
            report = await verify()
        except Exception as exc:
            await store.insert_result(
                conn, run_id, "failed", detail=f"verification could not run: {type(exc).__name__}"
            )
            raise
        await store.insert_progress(conn, run_id, report.rows_checked, report.tree_size)
        await _record_result(conn, run_id, report)
        return report, True
    finally:
        await store.release_run_lock(conn, log_id)
