"""The SDK against real faults: the service SIGKILLed mid-stream, PostgreSQL
stopped and restarted, the emitting process SIGKILLed with events spooled,
a full spool. Real service, real PostgreSQL, real processes; the proof is
always the database: every event stored exactly once, the chain verifies."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from auditsvc_sdk import AuditClient, RetryPolicy, SpoolFull

from auditsvc.api.app import create_app
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url
from auditsvc.store.migrate import upgrade_head

from .conftest import (
    REPO,
    TEST_SECRET_KEY,
    _admin,
    _with_database,
    env_for,
    event,
    free_port,
    make_token,
    query,
    run_cli,
)

QUICK = RetryPolicy(initial_backoff=0.05, max_backoff=0.5, max_retry_after=0.5)


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.02)


def events_for(count: int) -> list[dict[str, object]]:
    return [event([("urn:oid:2.16.840.1.113883.3.1234.1.1", f"MRN-F{i % 97:04d}")]) for i in range(count)]


def assert_stored_exactly_once(settings: Settings, event_ids: list[str]) -> None:
    rows = query(str(settings.database_url), "SELECT seq, event_id FROM events ORDER BY seq")
    stored = [str(r["event_id"]) for r in rows]
    assert [r["seq"] for r in rows] == list(range(len(rows))), "seq is not gapless"
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert sorted(stored) == sorted(event_ids), "an event is missing (or one was never sent)"
    result = run_cli(settings, "verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr


class Serve:
    """``python -m auditsvc serve`` as a subprocess on a fixed port, restartable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditsvc", "serve", "--port", str(self.port), "--workers", "1"],
            env=env_for(self.settings),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, "auditsvc serve exited"
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 60, "auditsvc serve ready")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
def serve(settings: Settings) -> Iterator[Serve]:
    server = Serve(settings)
    server.start()
    yield server
    server.stop()


def test_service_sigkilled_mid_stream_every_event_stored_once(serve: Serve, settings: Settings, tmp_path) -> None:
    token = make_token(settings, Role.EMITTER, ["epic-adt"])
    events = events_for(5000)
    client = AuditClient(serve.url, token, spool_dir=tmp_path / "spool", max_batch=100, retry=QUICK)
    recording = threading.Thread(target=lambda: [client.record(e) for e in events])
    recording.start()
    wait_until(lambda: client.counters().sent >= 1000, what="1,000 events sent")
    serve.kill()  # mid-stream: batches in flight, answers lost
    recording.join(timeout=60)
    wait_until(lambda: client.counters().retried > 0, what="a retry")
    serve.start()
    assert client.flush(timeout=120), client.counters()
    counters = client.counters()
    client.close()
    assert counters.recorded == 5000 and counters.queue_depth == 0
    assert counters.sent + counters.duplicates == 5000
    assert counters.internal_errors == 0 and counters.dead_lettered == 0
    assert_stored_exactly_once(settings, [str(e["event_id"]) for e in events])


EMITTER = textwrap.dedent(
    """
    import json, sys, time
    from auditsvc_sdk import AuditClient
    url, token, spool, path = sys.argv[1:5]
    events = json.load(open(path))
    # Batches of 500 go while recording; the last 200 wait for the (hour-long) batch delay.
    client = AuditClient(url, token, spool_dir=spool, max_batch=500, flush_interval=3600)
    for e in events:
        client.record(e)
    print("recorded", flush=True)
    time.sleep(3600)
    """
)


def test_emitter_sigkilled_with_spooled_events_a_new_client_sends_them(
    serve: Serve, settings: Settings, tmp_path
) -> None:
    import json

    token = make_token(settings, Role.EMITTER, ["epic-adt"])
    events = events_for(1200)
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    spool = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", EMITTER, serve.url, token, str(spool), str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "recorded"
    finally:
        child.kill()  # SIGKILL: no atexit, no flush
        child.wait(timeout=30)
    stored_before = query(str(settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"]
    assert stored_before < 1200, "the test needs events that were recorded but not sent"
    client = AuditClient(serve.url, token, spool_dir=spool, retry=QUICK)
    assert client.counters().queue_depth >= 1200 - stored_before
    assert client.flush(timeout=60)
    assert client.close()
    assert_stored_exactly_once(settings, [str(e["event_id"]) for e in events])


def test_full_spool_blocks_then_raises_and_every_recorded_event_arrives_later(
    serve: Serve, settings: Settings, tmp_path
) -> None:
    token = make_token(settings, Role.EMITTER, ["epic-adt"])
    spool = tmp_path / "spool"
    unreachable = f"http://127.0.0.1:{free_port()}"
    offline = AuditClient(
        unreachable, token, spool_dir=spool, spool_max_bytes=32 * 1024, block_timeout=0.3,
        retry=RetryPolicy(initial_backoff=5, max_backoff=5),
    )  # fmt: skip
    recorded: list[str] = []
    with pytest.raises(SpoolFull):
        for e in events_for(1000):
            offline.record(e)
            recorded.append(str(e["event_id"]))
    assert 10 < len(recorded) < 1000
    assert offline.counters().queue_depth == len(recorded)
    offline.close(timeout=0)
    client = AuditClient(serve.url, token, spool_dir=spool, retry=QUICK)
    assert client.flush(timeout=30) and client.close()
    assert_stored_exactly_once(settings, recorded)


# ------------------------------------------------ PostgreSQL stopped and restarted


@contextmanager
def private_postgres() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A dedicated embedded PostgreSQL in its own temp dir, with stop and start:
    never the shared test server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

        base = Path(tempfile.mkdtemp(prefix="asvc-pgstop-", dir="/tmp"))
        pgdata = base / "pg"
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir or pgdata

    def stop() -> None:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user, timeout=60)

    def start() -> None:
        args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"]
        pg_ctl(args, pgdata=pgdata, user=server.system_user, timeout=60)

    try:
        yield f"postgresql://postgres@/postgres?host={socket_dir}", stop, start
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_stopped_service_answers_503_and_the_events_arrive_afterwards(tmp_path) -> None:
    with private_postgres() as (owner_url, stop_postgres, start_postgres):
        _admin(owner_url, "CREATE DATABASE asvc_pgstop")
        db_url = _with_database(owner_url, "asvc_pgstop")
        settings = Settings(
            database_url=db_url, secret_key=TEST_SECRET_KEY, data_dir=tmp_path / "data", log_name="test.local/log"
        )
        upgrade_head(settings, db_url)
        token = make_token(settings, Role.EMITTER, ["epic-adt"])
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, runtime_url(settings)), host="127.0.0.1", port=port, log_level="error")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, 30, "API started")
        url = f"http://127.0.0.1:{port}"
        try:
            client = AuditClient(url, token, retry=QUICK, max_batch=50)
            before = events_for(100)
            for e in before:
                client.record(e)
            assert client.flush(timeout=30)

            stop_postgres()
            answer = httpx.post(
                f"{url}/v1/events", json={"events": events_for(1)}, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 503
            during = events_for(300)
            for e in during:
                client.record(e)
            wait_until(lambda: client.counters().retried > 0, 30, "a retry while the database is down")
            assert client.flush(timeout=0.5) is False
            assert client.counters().queue_depth == 300

            start_postgres()
            assert client.flush(timeout=60), client.counters()
            counters = client.counters()
            assert client.close()
            assert (counters.sent, counters.duplicates, counters.dead_lettered) == (400, 0, 0)
            assert_stored_exactly_once(settings, [str(e["event_id"]) for e in before + during])
        finally:
            server.should_exit = True
            thread.join(timeout=15)
