"""``auditsvc demo``: a realistic day of integration traffic, end to end.

With no ``--url`` it starts the API in this process on a free loopback port
(on the embedded or configured database), creates an emitter token bound to
the demo's source systems and a privacy-officer token, sends the day through
the SDK over HTTP, and prints one patient's report.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from ..demo import DEMO_SOURCE_SYSTEMS, featured_patient, generate_day, send_day
from ..domain.tokens import Role, new_token
from ..keys import load_keys
from ..settings import Settings
from ..store.engine import PoolConfig, create_engine, runtime_url
from ..store.session import driver_connection
from ..store.tokens import insert_token
from ._common import console, database, fail, settings
from .report import render_table


def _create_tokens(s: Settings, url: str) -> tuple[str, str]:
    keys = load_keys(s)
    emitter = new_token(keys, Role.EMITTER, list(DEMO_SOURCE_SYSTEMS))
    officer = new_token(keys, Role.PRIVACY_OFFICER, [])

    async def _insert() -> None:
        engine = create_engine(url, PoolConfig.from_settings(s))
        try:
            async with driver_connection(engine) as conn, conn.transaction():
                await insert_token(
                    conn,
                    emitter.token_id,
                    emitter.secret_hmac,
                    "emitter",
                    list(DEMO_SOURCE_SYSTEMS),
                    "demo interface engine",
                    None,
                )
                await insert_token(
                    conn, officer.token_id, officer.secret_hmac, "privacy_officer", [], "demo privacy officer", None
                )
        finally:
            await engine.dispose()

    asyncio.run(_insert())
    return emitter.token, officer.token


@contextlib.contextmanager
def _local_server(s: Settings) -> Iterator[str]:
    import uvicorn

    from ..api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(s, runtime_url(s)), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            fail("the demo's local API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _break_glass_waiting(url: str, officer_token: str) -> int:
    """How many break-glass accesses the review queue lists as unreviewed (each page recorded, as any listing)."""
    import httpx

    count, params = 0, {"status": "unreviewed", "limit": "500"}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {officer_token}"}, timeout=60) as client:
        while True:
            page = client.get("/v1/reviews/break-glass", params=params).raise_for_status().json()
            count += len(page["items"])
            if not page["next_cursor"]:
                return count
            params = {**params, "cursor": page["next_cursor"]}


def demo(
    url: Annotated[str | None, typer.Option(help="send to this running service instead of a local one")] = None,
    emitter_token: Annotated[str | None, typer.Option(help="with --url: an emitter token for the demo systems")] = None,
    officer_token: Annotated[str | None, typer.Option(help="with --url: a privacy_officer token")] = None,
    seed: Annotated[int, typer.Option(help="the day's random seed")] = 7,
    scale: Annotated[float, typer.Option(min=0.01, max=100, help="traffic volume (1.0 is about 1,500 events)")] = 1.0,
) -> None:
    """Drive a realistic day of integration traffic through the SDK and print one patient's report."""
    from auditsvc_sdk import AuditClient

    events = generate_day(seed=seed, scale=scale)
    system, value = featured_patient(events)
    with contextlib.ExitStack() as stack:
        if url is None:
            s = settings()
            owner = database(s)
            emitter_token, officer_token = _create_tokens(s, owner)
            url = stack.enter_context(_local_server(s))
        elif not (emitter_token and officer_token):
            fail("--url needs --emitter-token and --officer-token")
        assert emitter_token is not None and officer_token is not None
        started = time.perf_counter()
        counts = send_day(url, emitter_token, events)
        elapsed = time.perf_counter() - started
        console.print(
            f"sent {len(events)} events from {len(DEMO_SOURCE_SYSTEMS)} source systems in {elapsed:.1f}s: "
            f"{counts.get('accepted', 0)} accepted, {counts.get('duplicate', 0)} duplicate",
            highlight=False,
        )
        with AuditClient(url, officer_token) as officer:
            report: dict[str, Any] = officer.patient_access_report(system, value, limit=1000)
        console.print(f"\nReport for the patient known to one system as {system}|{value}:", highlight=False)
        render_table(report)
        waiting = _break_glass_waiting(url, officer_token)
        console.print(
            f"\n{waiting} break-glass accesses await review: auditsvc report break-glass",
            highlight=False,
        )
