"""ATNA syslog throughput through the TLS listener into the chain, as a ratio to raw COPY.

1. On a fresh, migrated database, start the real listener process
   (``python -m auditsvc syslog listen``, as ``auditsvc serve`` starts it) with
   RFC 5425 TLS on, client certificates required, from a throwaway CA.
2. ``--senders`` OS processes (spawn), each with its own client certificate
   (CN = the source system it writes as) and pre-built, octet-counted
   DICOM audit messages (patient record read, update, query, export, import;
   one message in ten names two patients), write them over one TLS
   connection each, as fast as the listener takes them. Wall time runs from
   the senders' start to the moment the last event is committed (polled
   every 20 ms).
3. On the same server and database: the rows the listener stored are copied
   into tables shaped like the log tables (bench/ingest.py's raw baseline:
   COPY, batches of 500 events, as many connections as senders).

The ratio syslog/raw is events per second through the listener over what
PostgreSQL alone takes for the same rows. Each senders count runs on a fresh
database.

    python -m bench.syslog [--messages N] [--senders 1,8] [--quick] [--database-url DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import asyncpg

from auditsvc.store.engine import asyncpg_dsn
from tests.syslog_messages import audit_message, octet_counted, syslog_frame
from tests.test_tls import Ca, Issued

from ._common import (
    REPO,
    code_facts,
    cpu_delta,
    cpu_snapshot,
    database_server,
    fresh_database,
    machine_facts,
    postmaster_pid,
    print_table,
    rate,
    results_name,
    server_facts,
    service_env,
    write_results,
)
from .ingest import run_raw

VIEWERS = [f"viewer-{n}" for n in range(7)]
DEFAULT_MESSAGES = 20_000
QUICK_MESSAGES = 2_000
KINDS = (  # (DICOM EventID, its text, action): what ATNA senders mostly log
    ("110110", "Patient Record", "R"),
    ("110110", "Patient Record", "R"),
    ("110110", "Patient Record", "U"),
    ("110112", "Query", "E"),
    ("110106", "Export", "R"),
    ("110107", "Import", "C"),
)


def sender_messages(sender: int, count: int) -> tuple[bytes, int]:
    """``count`` framed messages from sender ``sender`` (source ``ris-<n>``), and the events they make."""
    frames, events = [], 0
    for i in range(count):
        n = sender * 10_000_000 + i
        eid, text, action = KINDS[i % len(KINDS)]
        patients = (f"MRN{n:08d}", f"MRN{n + 5_000_000:08d}") if i % 10 == 9 else (f"MRN{n:08d}",)
        events += len(patients)
        minute, second = divmod(i % 3600, 60)
        msg = audit_message(
            *patients,
            source=f"ris-{sender}",
            destination=VIEWERS[i % len(VIEWERS)],
            user=f"user-{i % 300}",
            when=f"2026-12-06T{(i // 3600) % 24:02}:{minute:02}:{second:02}.{i % 1000:03}Z",
            action=action,
            event_id=(eid, text),
        )
        frames.append(syslog_frame(msg, host=f"ris-{sender}"))
    return octet_counted(*frames), events


def _sender_main(port: int, ca: str, cert: str, key: str, data: bytes, barrier: Barrier) -> None:
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        barrier.wait(timeout=300)
        s.sendall(data)
        # Half-close and read to the end: closing with the server's session
        # tickets unread would send a reset, and the kernel may then drop
        # what the listener had not read yet.
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


@dataclass
class ListenerRun:
    messages: int
    events: int
    seconds: float
    listener_cpu: dict[str, Any]
    postgres_cpu: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the syslog listener did not start") from None
            time.sleep(0.1)


async def _wait_for_events(url: str, expected: int, patience: float = 3600) -> float:
    """The time the ``expected``-th event was seen committed."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        deadline = time.monotonic() + patience
        while (n := await conn.fetchval("SELECT count(*) FROM events")) < expected:
            if time.monotonic() > deadline:
                reasons = await conn.fetch("SELECT reason, detail, count(*) FROM syslog_quarantine GROUP BY 1, 2")
                raise RuntimeError(f"only {n} of {expected} events arrived; quarantined: {[tuple(r) for r in reasons]}")
            await asyncio.sleep(0.02)
        return time.perf_counter()
    finally:
        await conn.close()


def run_listener(
    url: str, pki: dict[str, Any], senders: int, messages: int, pg_pid: int | None, patience: float = 3600
) -> ListenerRun:
    port = _free_port()
    directory: Path = pki["dir"]
    env = {
        **service_env(url, directory / "data"),
        "AUDITSVC_SYSLOG_TLS_PORT": str(port),
        "AUDITSVC_SYSLOG_TLS_CERT_FILE": str(pki["server"].cert),
        "AUDITSVC_SYSLOG_TLS_KEY_FILE": str(pki["server"].key),
        "AUDITSVC_SYSLOG_TLS_CLIENT_CA_FILE": str(pki["ca"].pem),
        # No CN map: a RIS's query audits name the viewer that answered as the
        # source and the RIS as the destination, a party it may report as.
    }
    shares = [messages // senders + (1 if i < messages % senders else 0) for i in range(senders)]
    built = [sender_messages(i, shares[i]) for i in range(senders)]
    expected = sum(events for _, events in built)
    with open(directory / f"listener-{senders}.log", "wb") as log:
        listener = subprocess.Popen(
            [sys.executable, "-m", "auditsvc", "syslog", "listen"], env=env, cwd=REPO, stdout=log, stderr=log
        )
    try:
        _wait_listening(port, listener)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(senders + 1)
        certs: list[Issued] = [pki["ca"].issue(f"ris-{i}", server=False) for i in range(senders)]
        procs = [
            ctx.Process(
                target=_sender_main,
                args=(port, str(pki["ca"].pem), str(certs[i].cert), str(certs[i].key), built[i][0], barrier),
            )
            for i in range(senders)
        ]
        for proc in procs:
            proc.start()
        listener_before, pg_before = cpu_snapshot(listener.pid), cpu_snapshot(pg_pid)
        barrier.wait(timeout=300)
        started = time.perf_counter()
        finished = asyncio.run(_wait_for_events(url, expected, patience))
        listener_after, pg_after = cpu_snapshot(listener.pid), cpu_snapshot(pg_pid)
        for proc in procs:
            proc.join(timeout=60)
    finally:
        listener.terminate()
        listener.wait(timeout=60)
    return ListenerRun(
        messages,
        expected,
        finished - started,
        cpu_delta(listener_before, listener_after),
        cpu_delta(pg_before, pg_after),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=None, help=f"messages per run (default {DEFAULT_MESSAGES:,})")
    parser.add_argument("--senders", default="1,8", help="comma-separated sender counts, one run each")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES:,} messages")
    parser.add_argument("--database-url", default=None, help="owner (superuser) DSN of an existing server")
    parser.add_argument("--raw-rounds", type=int, default=3)
    args = parser.parse_args()
    messages = args.messages or (QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES)
    counts = [int(c) for c in args.senders.split(",")]
    runs: list[dict[str, Any]] = []
    with database_server(args.database_url) as server, tempfile.TemporaryDirectory(prefix="asvc-bench-syslog-") as tmp:
        directory = Path(tmp)
        ca = Ca(directory, "bench-ca")
        pki = {"dir": directory, "ca": ca, "server": ca.issue("localhost", server=True)}
        facts: dict[str, Any] = {}
        for senders in counts:
            with fresh_database(server) as url:
                pg_pid = asyncio.run(_pg_pid(url))
                if not facts:
                    facts = asyncio.run(_server_facts(url))
                listened = run_listener(url, pki, senders, messages, pg_pid)
                raw = asyncio.run(run_raw(url, 0, senders, pg_pid, args.raw_rounds))
                syslog_rate = rate(listened.events, listened.seconds)
                raw_rate = rate(raw.events, raw.seconds)
                runs.append(
                    {
                        "senders": senders,
                        "messages": listened.messages,
                        "events": listened.events,
                        "seconds": round(listened.seconds, 3),
                        "messages_per_second": rate(listened.messages, listened.seconds),
                        "events_per_second": syslog_rate,
                        "raw_events_per_second": raw_rate,
                        "raw_round_seconds": raw.round_seconds,
                        "ratio": round(syslog_rate / raw_rate, 3),
                        "listener_cpu": listened.listener_cpu,
                        "postgres_cpu": listened.postgres_cpu,
                    }
                )
                print_table(
                    f"ATNA syslog over TLS, {senders} sender(s), {listened.messages:,} messages",
                    [
                        ("messages/s through the listener", f"{rate(listened.messages, listened.seconds):,.0f}"),
                        ("events/s committed", f"{syslog_rate:,.0f}"),
                        ("raw COPY events/s (same rows)", f"{raw_rate:,.0f}"),
                        ("ratio syslog/raw", f"{syslog_rate / raw_rate:.3f}"),
                    ],
                )
        variant = f"{messages}msg" if args.messages and not args.quick else ""
        name = results_name("syslog", server.label, argparse.Namespace(quick=args.quick, events=None), variant)
        path = write_results(
            name,
            {"runs": runs, "server": facts, "machine": machine_facts(), "code": code_facts()},
        )
        print(f"results: {path}")


async def _pg_pid(url: str) -> int | None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await postmaster_pid(conn)
    finally:
        await conn.close()


async def _server_facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await server_facts(conn)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
