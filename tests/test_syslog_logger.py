"""Real syslog senders: util-linux ``logger`` (RFC 5424, octet counting or
LF over TCP, UDP) into the listener; and ``auditsvc serve`` running the
listener process beside two API workers while both append to one chain."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time

import httpx
import pytest

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import env_for, event, free_port, make_token, query, run_cli, serve_process
from .syslog_messages import audit_message
from .test_syslog_listeners import count_events, events, listening

pytestmark = pytest.mark.db

LOGGER = shutil.which("logger")
needs_logger = pytest.mark.skipif(LOGGER is None, reason="util-linux logger is not installed")


def logger_args(port: int | str, transport: str, msg: bytes, msgid: str = "IHE+RFC-3881") -> list[str]:
    """util-linux ``logger`` sending ``msg`` (RFC 5424, an ATNA tag) to
    127.0.0.1:``port`` over ``transport``, or to the Unix socket ``port``
    names with ``transport`` ``unix``."""
    assert LOGGER is not None
    target = (
        ["-u", str(port)]
        if transport == "unix"
        else [
            *{"tcp-octet": ["--tcp", "--octet-count"], "tcp-lf": ["--tcp"], "udp": ["--udp"]}[transport],
            "-n",
            "127.0.0.1",
            "-P",
            str(port),
        ]
    )
    return [
        LOGGER,
        "--rfc5424",
        *target,
        "--msgid",
        msgid,
        "-t",
        "ATNA",
        "-p",
        "authpriv.notice",
        "--size",
        "65536",
        "--",
        msg.decode(),
    ]


@needs_logger
def test_util_linux_logger_delivers_to_the_listener(settings: Settings) -> None:
    async def scenario() -> None:
        async with listening(settings, None) as running:
            for n, (transport, port) in enumerate(
                [
                    ("tcp-octet", running.port("tcp")),
                    ("tcp-lf", running.port("tcp")),
                    ("udp", running.port("udp")),
                ]
            ):
                msg = audit_message(f"MRN-SYN-L{n}", source="ehr-app", when=f"2026-12-06T05:0{n}:00Z")
                process = await asyncio.create_subprocess_exec(*logger_args(port, transport, msg, "DICOM+RFC3881"))
                assert await process.wait() == 0
            await count_events(running.url, 3)
            stored = await events(running.url)
            assert [e["emitter"] for e in stored].count("syslog-tcp") == 2
            assert {e["source"]["system_id"] for e in stored} == {"ehr-app"}
            assert all(e["attributes"]["origin"] == "atna-syslog" for e in stored)

    asyncio.run(scenario())


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@needs_logger
def test_serve_runs_one_listener_beside_two_workers_and_the_chain_stays_one(settings: Settings) -> None:
    token = make_token(settings, Role.EMITTER, ["epic-adt"])
    syslog_port = free_port()
    env = {**env_for(settings), "AUDITSVC_SYSLOG_TCP_PORT": str(syslog_port)}
    http_events = [event(source="epic-adt") for _ in range(60)]
    syslog_messages = [
        audit_message(f"MRN-SYN-S{i:02}", source="pacs-01", when=f"2026-12-06T05:{i:02}:00Z") for i in range(30)
    ]
    with serve_process("--workers", "2", env=env) as base:
        deadline = time.monotonic() + 30
        while not _listening(syslog_port):
            assert time.monotonic() < deadline, "the syslog listener did not start"
            time.sleep(0.1)

        def post() -> None:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                for at in range(0, len(http_events), 5):
                    client.post("/v1/events", json={"events": http_events[at : at + 5]}).raise_for_status()

        poster = threading.Thread(target=post)
        poster.start()
        for msg in syslog_messages:
            subprocess.run(logger_args(syslog_port, "tcp-octet", msg), check=True, timeout=30)
        poster.join(timeout=60)
        expected = len(http_events) + len(syslog_messages)
        deadline = time.monotonic() + 30
        while query(str(settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"] < expected:
            assert time.monotonic() < deadline, "not every event landed"
            time.sleep(0.1)
    emitters = query(
        str(settings.database_url), "SELECT record::jsonb ->> 'emitter' AS e, count(*) AS n FROM events GROUP BY 1"
    )
    assert {r["e"]: r["n"] for r in emitters}.get("syslog-tcp") == len(syslog_messages)
    result = run_cli(settings, "verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
