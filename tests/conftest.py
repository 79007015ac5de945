"""Test fixtures: real PostgreSQL, real HTTP, no database mocks.

The server is the embedded one (``pgserver``) unless
``AUDITSVC_TEST_DATABASE_URL`` names another (CI sets it to its PostgreSQL
on 127.0.0.1:5432). Migrations run once into a template database; each test
that asks for ``db_url`` gets a fresh copy of it, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from auditsvc.api.app import create_app
from auditsvc.domain.tokens import Role, new_token
from auditsvc.keys import load_keys
from auditsvc.settings import Settings
from auditsvc.store.engine import PoolConfig, asyncpg_dsn, create_engine, runtime_url
from auditsvc.store.migrate import upgrade_head
from auditsvc.store.session import driver_connection
from auditsvc.store.tokens import insert_token

REPO = Path(__file__).resolve().parent.parent
# No background alert passes in tests (they append to the chain on a timer); alert tests run them directly.
os.environ.setdefault("AUDITSVC_ALERT_INTERVAL_SECONDS", "0")
TEST_SECRET_KEY = base64.b64encode(b"auditsvc-test-key-not-a-secret!!").decode()

# The append-only tables (migrations 0001, 0003): the runtime role holds only
# SELECT and INSERT on them, and triggers refuse UPDATE, DELETE and TRUNCATE.
READ_MODEL_TABLES = ("event_facts", "patient_events", "read_model_backfill")  # migration 0006
LOG_TABLES = (
    "logs",
    "events",  # partitioned by seq range (migration 0010): tests/test_partitions.py checks each partition
    "event_ids",
    "event_identifiers",
    "identifier_links",
    "patient_identifiers",
    "merkle_nodes",
    "checkpoints",
    "checkpoint_cosignatures",
    "verifier_keys",
    *READ_MODEL_TABLES,
    "system_pairs",  # migration 0008
)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An owner DSN (superuser) for the server the tests use."""
    external = os.environ.get("AUDITSVC_TEST_DATABASE_URL")
    if external:
        yield external
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # A short path: the Unix socket lives in the data directory.
        pgdata = Path(f"/tmp/asvc-test-{os.getpid()}")
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    yield f"postgresql://postgres@/postgres?host={pgdata}"
    server.cleanup()


def _admin(url: str, sql: str) -> None:
    async def _run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(_run())


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    name = f"asvc_tmpl_{secrets.token_hex(4)}"
    _admin(server_url, f"CREATE DATABASE {name}")
    url = _with_database(server_url, name)
    upgrade_head(Settings(database_url=url, secret_key=TEST_SECRET_KEY), url)
    yield name
    _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """Owner DSN of a fresh, migrated database for this test."""
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    yield _with_database(server_url, name)
    _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        log_name="test.auditsvc.local/log",
    )


def env_for(settings: Settings) -> dict[str, str]:
    """Environment for running the ``auditsvc`` CLI against ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSVC_")}
    env.update(
        AUDITSVC_DATABASE_URL=str(settings.database_url),
        AUDITSVC_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        AUDITSVC_DATA_DIR=str(settings.data_dir),
        AUDITSVC_LOG_NAME=settings.log_name,
        AUDITSVC_ALERT_INTERVAL_SECONDS="0",  # no timer appending to the chain a test counts
        # Rich wraps its output at the terminal's width; a long temporary path
        # would be split mid-word, so the CLI's messages get a wide terminal.
        COLUMNS="400",
    )
    return env


def run_cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditsvc", *args],
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def make_token(settings: Settings, role: Role, systems: list[str] | None = None, name: str | None = None) -> str:
    token = new_token(load_keys(settings, sealing=False), role, systems or [])

    async def _insert() -> None:
        engine = create_engine(str(settings.database_url), PoolConfig.from_settings(settings))
        try:
            async with driver_connection(engine) as conn:
                await insert_token(conn, token.token_id, token.secret_hmac, role.value, systems or [], name, None)
        finally:
            await engine.dispose()

    asyncio.run(_insert())
    return token.token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    url: str
    settings: Settings
    server: uvicorn.Server
    app: FastAPI  # its state (``app.state.audit``, ``.access_control``) is where tests move clocks

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def token(self, role: Role, systems: list[str] | None = None) -> str:
        return make_token(self.settings, role, systems)


@contextmanager
def running_service(settings: Settings, **uvicorn_options: Any) -> Iterator[Service]:
    """The real API on a loopback port, connected as the runtime role
    (``uvicorn_options`` go to ``uvicorn.Config``)."""
    port = free_port()
    app = create_app(settings, runtime_url(settings))
    options = {"log_level": "warning", **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API server did not start"
        time.sleep(0.02)
    try:
        yield Service(f"http://127.0.0.1:{port}", settings, server, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _answers_ready(base: str) -> bool:
    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200


@contextmanager
def serve_process(
    *args: str,
    env: dict[str, str],
    cwd: Path = REPO,
    scheme: str = "http",
    ready: Callable[[str], bool] = _answers_ready,
    timeout: float = 60,
) -> Iterator[str]:
    """``auditsvc serve`` as its own process (its own session) on a free port,
    once ``ready(base URL)`` is true; stopped with SIGTERM afterwards. Its
    output goes to a file, shown if it exits before it is ready."""
    port = free_port()
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "auditsvc", "serve", "--port", str(port), *args],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"{scheme}://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if ready(base):
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    output.seek(0)
                    raise AssertionError(f"auditsvc serve exited: {output.read().decode(errors='replace')}")
                assert time.monotonic() < deadline, "auditsvc serve did not become ready"
                time.sleep(0.2)
            yield base
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    with running_service(settings) as running:
        yield running


class ScriptedClock:
    """A clock that answers ``readings`` in turn, then the last one for ever."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)
        self.reads = 0
        self.now = readings[0]

    def __call__(self) -> float:
        self.now = self.readings[min(self.reads, len(self.readings) - 1)]
        self.reads += 1
        return self.now


def event(
    identifiers: list[tuple[str, str]] | None = None,
    *,
    source: str = "epic-adt",
    destination: str = "lab-lis",
    occurred_at: str = "2026-11-24T09:30:00.123456-05:00",
    **overrides: Any,
) -> dict[str, Any]:
    """A valid event for a synthetic patient, in the JSON shape."""
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": occurred_at,
        "action": "R",
        "event_type": "hl7v2-message",
        "patient": {
            "identifiers": [
                {"system": s, "value": v}
                for s, v in (identifiers or [("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-TEST-0001")])
            ]
        },
        "data_elements": ["PID", "PV1", "OBX"],
        "source": {"system_id": source},
        "destination": {"system_id": destination},
        "actor": {"id": "mirth-engine/ADT-OUT", "type": "system"},
        "outcome": 0,
        "message_id": "MSG0001",
    }
    body.update(overrides)
    return body


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run SQL as the owner (superuser in tests) and return the rows."""
    return asyncio.run(fetch(url, sql, *args))


def as_superuser(url: str, *statements: str) -> None:
    """Run ``statements`` in one transaction as the owner DSN's login (a
    superuser in tests) with every trigger off, as a database administrator
    who tampers with the log would."""

    async def _run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(_run())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that touches PostgreSQL ``db`` (CI reruns those over TCP).

    Under pytest-xdist (``make test``: ``--dist loadgroup``) each test file
    runs whole in one process, its module's service and database made once,
    and the browser tests all in one process, one after another: they share
    a package-scoped console service whose access log they read, and another
    file's server starting meanwhile in that process would reset uvicorn's
    access logger (uvicorn.Config applies its logging configuration)."""
    grouped = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
        if grouped:
            path = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group("tests/browser" if path.startswith("tests/browser/") else path))
