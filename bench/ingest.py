"""Ingest throughput through the real HTTP API, as a ratio to raw COPY.

1. Start the real service (``python -m auditsvc serve``) as a subprocess on a
   fresh, migrated database and create an emitter token with the CLI.
2. Client OS processes (multiprocessing, spawn), each holding pre-generated,
   pre-serialised batches of realistic events, POST them to ``/v1/events``
   over one keep-alive connection each. Wall time runs from the first request
   to the last response over all clients; latency is per request.
3. On the same server, in the same database: tables created ``LIKE`` the
   log tables (same columns, constraints, indexes; the events foreign key
   added back) receive exactly the rows the API stored, by COPY in batches of
   the same size from as many connections as there were clients, one
   transaction per batch. No hashing, no JSON, no HTTP: what PostgreSQL alone
   costs for these rows.

The ratio API/raw says what fraction of PostgreSQL's own ingest speed the
service delivers for the same rows on the same server (target: >= 0.25).
Steps 1-3 run ``--repeat`` times (default 3), each on a fresh database; the
run with the median ratio is reported in full, with every run's ratio: on a
shared VM one run's ratio can be off by a fifth.

    python -m bench.ingest [--events N] [--workers W] [--clients C] [--quick]
                           [--repeat K] [--database-url DSN] [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from auditsvc.store.engine import asyncpg_dsn

from ._common import (
    REPO,
    SOURCE_SYSTEM_IDS,
    DatabaseServer,
    EventFactory,
    add_common_arguments,
    code_facts,
    cpu_delta,
    cpu_snapshot,
    database_server,
    describe_url,
    event_count,
    fresh_database,
    machine_facts,
    percentile,
    postmaster_pid,
    print_table,
    rate,
    results_name,
    server_facts,
    service_env,
    write_results,
)

BATCH_SIZE = 500
READY_TIMEOUT_S = 120.0

# The log tables, in the order the append transaction writes them, with the
# columns it writes. The raw baseline writes the same columns.
EVENT_COLUMNS = ("log_id", "seq", "event_id", "occurred_at", "record", "leaf_hash", "chain_hash")
IDENT_COLUMNS = ("log_id", "id_hmac", "event_id")
EVENT_ID_COLUMNS = ("log_id", "event_id", "seq")
PATIENT_COLUMNS = ("log_id", "id_hmac", "system", "value", "value_enc")
LINK_COLUMNS = ("log_id", "a", "b")
RAW_TABLES = {
    "events": "raw_events",
    "event_ids": "raw_event_ids",  # the event_id -> seq key (migration 0010; before it, a unique index on events)
    "event_identifiers": "raw_event_identifiers",
    "patient_identifiers": "raw_patient_identifiers",
    "identifier_links": "raw_identifier_links",
}


# ------------------------------------------------------------ the service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running ``auditsvc serve`` subprocess."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL to the session
        this bench created for it if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_service(env: dict[str, str], workers: int, log_path: Path) -> Service:
    port = _free_port()
    cmd = [sys.executable, "-m", "auditsvc", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    with log_path.open("wb") as log:
        # Its own session, so that a stuck worker can be killed with its parent.
        process = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=service.base_url, timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"auditsvc serve exited with {process.returncode}:\n{service.log_tail()}")
            try:
                if client.get("/readyz").status_code == 200:
                    return service
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                service.stop()
                raise RuntimeError(f"auditsvc serve not ready after {READY_TIMEOUT_S}s:\n{service.log_tail()}")
            time.sleep(0.2)


def create_emitter_token(env: dict[str, str]) -> str:
    """An emitter token bound to every synthetic source system, via the real CLI."""
    return create_token(env, "emitter", SOURCE_SYSTEM_IDS)


def create_token(env: dict[str, str], role: str, systems: Sequence[str] = ()) -> str:
    """A token of ``role`` (bound to ``systems``), via the real CLI."""
    cmd = [sys.executable, "-m", "auditsvc", "tokens", "create", "--role", role, "--name", "bench", "--json"]
    for system in systems:
        cmd += ["--system", system]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tokens create failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return str(json.loads(done.stdout)["token"])


# ------------------------------------------------------------- the clients


def _client_main(
    index: int,
    base_url: str,
    token: str,
    count: int,
    seed: int,
    patients: int,
    barrier: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    """One client OS process: generate and serialise, warm up, wait, send."""
    try:
        factory = EventFactory(seed * 1000 + index, patients)
        bodies: list[tuple[int, bytes]] = []
        for start in range(0, count, BATCH_SIZE):
            events = factory.events(min(BATCH_SIZE, count - start))
            bodies.append((len(events), json.dumps({"events": events}, separators=(",", ":")).encode()))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
            # One untimed single-event request opens the keep-alive connection
            # and lets the server's pool and token path warm up; its event is
            # stored (seq < number of clients) and excluded from the raw copy.
            warm = client.post("/v1/events", content=json.dumps({"events": factory.events(1)}).encode())
            if warm.status_code != 200:
                raise RuntimeError(f"warm-up request answered {warm.status_code}: {warm.text[:300]}")
            barrier.wait()
            latencies: list[float] = []
            accepted = 0
            cpu_started = time.process_time()
            # time.monotonic is CLOCK_MONOTONIC on Linux: comparable across processes.
            started = time.monotonic()
            for size, body in bodies:
                t0 = time.perf_counter()
                response = client.post("/v1/events", content=body)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text[:300]}")
                # Counting is enough: parsing 500 results would cost the client
                # CPU that the server, on the same cores, then lacks.
                got = response.content.count(b'"accepted"')
                if got != size:
                    raise RuntimeError(f"{got} of {size} events accepted")
                accepted += got
            finished = time.monotonic()
        results.put(
            {
                "index": index,
                "started": started,
                "finished": finished,
                "latencies": latencies,
                "events": accepted,
                "cpu_s": time.process_time() - cpu_started,
            }
        )
    except BaseException as exc:
        barrier.abort()  # the parent and the other clients must not wait for us
        results.put({"index": index, "error": f"{type(exc).__name__}: {exc}"})
        raise


@dataclass
class ApiRun:
    events: int
    seconds: float
    latencies: list[float]
    client_cpu_s: float
    server_cpu: dict[str, Any] = field(default_factory=dict)
    postgres_cpu: dict[str, Any] = field(default_factory=dict)


def _start_py_spy(root_pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server and its workers, collapsed stacks to ``out``."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("py-spy not found next to the interpreter; `pip install py-spy` to profile", file=sys.stderr)
        return None
    cmd = [str(exe), "record", "--pid", str(root_pid), "--subprocesses", "--rate", "250"]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_collapsed(path: Path, top: int = 20) -> list[tuple[str, float]]:
    """The functions with the most samples anywhere on the stack (inclusive),
    as a share of all samples, from py-spy's collapsed output."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        # A frame looks like "function (path/to/file.py:123)"; drop the line number.
        frames = {frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") else frame for frame in stack.split(";")}
        for frame in frames:
            inclusive[frame] += count
    return [(frame, n / total) for frame, n in inclusive.most_common(top)] if total else []


def run_api(
    service: Service, token: str, events: int, clients: int, seed: int, patients: int, pg_pid: int | None,
    py_spy_dir: Path | None,
) -> ApiRun:  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients + 1)
    results: Queue[dict[str, Any]] = ctx.Queue()
    shares = [events // clients + (1 if i < events % clients else 0) for i in range(clients)]
    procs = [
        ctx.Process(
            target=_client_main,
            args=(i, service.base_url, token, shares[i], seed, patients, barrier, results),
            name=f"bench-client-{i}",
        )
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    spy: subprocess.Popen[bytes] | None = None
    try:
        # Snapshots while every client is parked at the barrier: nothing runs.
        server_before, pg_before = cpu_snapshot(service.process.pid), cpu_snapshot(pg_pid)
        if py_spy_dir is not None:
            py_spy_dir.mkdir(parents=True, exist_ok=True)
            spy = _start_py_spy(service.process.pid, py_spy_dir / "ingest-server.txt")
            time.sleep(1.0)  # let py-spy attach before the load starts
        # A broken barrier means a client failed: its error is in the queue.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=900)
        outcomes = [results.get(timeout=3600) for _ in procs]
        server_after, pg_after = cpu_snapshot(service.process.pid), cpu_snapshot(pg_pid)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(timeout=60)
        for proc in procs:
            proc.join(timeout=60)
    errors = [o["error"] for o in outcomes if "error" in o]
    if errors:
        raise RuntimeError("client failed: " + "; ".join(errors) + f"\nservice log:\n{service.log_tail()}")
    return ApiRun(
        events=sum(o["events"] for o in outcomes),
        seconds=max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes),
        latencies=[lat for o in outcomes for lat in o["latencies"]],
        client_cpu_s=round(sum(o["cpu_s"] for o in outcomes), 2),
        server_cpu=cpu_delta(server_before, server_after),
        postgres_cpu=cpu_delta(pg_before, pg_after),
    )


# ------------------------------------------------------- the raw baseline


@dataclass
class RawBatch:
    events: list[tuple[Any, ...]]
    identifiers: list[tuple[Any, ...]] = field(default_factory=list)
    patients: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return 2 * len(self.events) + len(self.identifiers) + len(self.patients) + len(self.links)  # events, event_ids


async def create_raw_tables(conn: asyncpg.Connection) -> None:
    """Tables shaped like the log tables. ``LIKE ... INCLUDING ALL`` copies
    columns, defaults, CHECK and NOT NULL constraints, primary keys, unique
    constraints and indexes; it copies neither triggers nor foreign keys. The
    log's triggers fire only on UPDATE, DELETE and TRUNCATE, so they cost an
    insert nothing; the foreign key from events to logs is checked per row, so
    it is added back for a like-for-like insert."""
    for table, raw in RAW_TABLES.items():
        await conn.execute(f"CREATE TABLE {raw} (LIKE {table} INCLUDING ALL)")
    await conn.execute("ALTER TABLE raw_events ADD FOREIGN KEY (log_id) REFERENCES logs (log_id)")


async def load_raw_batches(conn: asyncpg.Connection, skip: int) -> list[RawBatch]:
    """The rows the API stored (less the ``skip`` warm-up events), cut into
    batches of ``BATCH_SIZE`` events in ``seq`` order. Each patient identifier
    and link row rides with the batch whose events first mention it, as in the
    service, where a later mention is an ``ON CONFLICT DO NOTHING``."""
    events = [
        tuple(r)
        for r in await conn.fetch(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE seq >= $1 ORDER BY seq", skip)
    ]
    batches = [RawBatch(events[i : i + BATCH_SIZE]) for i in range(0, len(events), BATCH_SIZE)]
    first_batch: dict[bytes, int] = {}
    for row in await conn.fetch(
        "SELECT ei.log_id, ei.id_hmac, ei.event_id, e.seq FROM event_identifiers ei "
        "JOIN events e ON e.log_id = ei.log_id AND e.event_id = ei.event_id WHERE e.seq >= $1 ORDER BY e.seq",
        skip,
    ):
        index = (row["seq"] - skip) // BATCH_SIZE
        batches[index].identifiers.append((row["log_id"], row["id_hmac"], row["event_id"]))
        first_batch.setdefault(row["id_hmac"], index)
    # Identifiers only the warm-up events mentioned go with the first batch.
    for row in await conn.fetch(f"SELECT {', '.join(PATIENT_COLUMNS)} FROM patient_identifiers"):
        batches[first_batch.get(row["id_hmac"], 0)].patients.append(tuple(row))
    for row in await conn.fetch(f"SELECT {', '.join(LINK_COLUMNS)} FROM identifier_links"):
        index = max(first_batch.get(row["a"], 0), first_batch.get(row["b"], 0))
        batches[index].links.append(tuple(row))
    return batches


async def _copy_batches(conn: asyncpg.Connection, batches: Iterator[RawBatch]) -> None:
    # The iterator is shared by the connections' tasks: each takes the next
    # batch when it is free, as the API's clients each send the next request.
    for batch in batches:
        async with conn.transaction():
            await conn.copy_records_to_table(
                RAW_TABLES["event_ids"], records=[(r[0], r[2], r[1]) for r in batch.events], columns=EVENT_ID_COLUMNS
            )
            await conn.copy_records_to_table(RAW_TABLES["events"], records=batch.events, columns=EVENT_COLUMNS)
            await conn.copy_records_to_table(
                RAW_TABLES["event_identifiers"], records=batch.identifiers, columns=IDENT_COLUMNS
            )
            if batch.patients:
                await conn.copy_records_to_table(
                    RAW_TABLES["patient_identifiers"], records=batch.patients, columns=PATIENT_COLUMNS
                )
            if batch.links:
                await conn.copy_records_to_table(
                    RAW_TABLES["identifier_links"], records=batch.links, columns=LINK_COLUMNS
                )


@dataclass
class RawRun:
    """The median round of the raw copy (by wall time), with every round's time."""

    events: int
    rows: int
    seconds: float
    round_seconds: list[float]
    bench_cpu_s: float
    postgres_cpu: dict[str, Any]


async def run_raw(url: str, skip: int, connections: int, pg_pid: int | None, rounds: int) -> RawRun:
    """Copy the API's rows into the raw tables ``rounds`` times (emptied in
    between) and keep the median round: a few seconds of COPY is far more
    exposed to a stray fsync stall than the API's much longer run."""
    dsn = asyncpg_dsn(url)
    admin = await asyncpg.connect(dsn)
    try:
        await create_raw_tables(admin)
        batches = await load_raw_batches(admin, skip)
        expected = sum(len(b.events) for b in batches)
        # The API's 200k fresh rows would otherwise trigger autovacuum in the
        # middle of the raw rounds; pay for it here, untimed.
        await admin.execute(
            "VACUUM (ANALYZE) events, event_ids, event_identifiers, patient_identifiers, identifier_links"
        )
        measured: list[tuple[float, float, dict[str, Any]]] = []
        for _ in range(rounds):
            await admin.execute(f"TRUNCATE {', '.join(RAW_TABLES.values())}")  # no triggers on the raw tables
            await admin.execute("CHECKPOINT")  # start from a clean WAL state, as the API run did
            conns = [await asyncpg.connect(dsn) for _ in range(connections)]
            try:
                shared = iter(batches)
                pg_before, cpu_started = cpu_snapshot(pg_pid), time.process_time()
                started = time.perf_counter()
                await asyncio.gather(*(_copy_batches(c, shared) for c in conns))
                seconds = time.perf_counter() - started
                pg_after, bench_cpu = cpu_snapshot(pg_pid), time.process_time() - cpu_started
            finally:
                for c in conns:
                    await c.close()
            stored = await admin.fetchval("SELECT count(*) FROM raw_events")
            if stored != expected:
                raise RuntimeError(f"raw copy stored {stored} events, expected {expected}")
            measured.append((seconds, bench_cpu, cpu_delta(pg_before, pg_after)))
        seconds, bench_cpu, pg_cpu = sorted(measured, key=lambda m: m[0])[len(measured) // 2]
        return RawRun(
            events=expected,
            rows=sum(b.rows for b in batches),
            seconds=seconds,
            round_seconds=[round(m[0], 3) for m in measured],
            bench_cpu_s=round(bench_cpu, 2),
            postgres_cpu=pg_cpu,
        )
    finally:
        await admin.close()


# ------------------------------------------------------------------- main


async def _prepare_database(url: str) -> tuple[dict[str, Any], int | None]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await server_facts(conn), await postmaster_pid(conn)
    finally:
        await conn.close()


async def _checkpoint(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _api_stored(url: str) -> dict[str, Any]:
    """What the API stored: a gapless count, table sizes, and how many append
    transactions it took (each group commit stamps one ``received_at``)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(max(seq) + 1, 0) AS size, "
            "count(DISTINCT (record::jsonb ->> 'received_at')) AS groups FROM events"
        )
        assert row is not None  # an aggregate always answers one row
        out = {"events": row["n"], "tree_size": row["size"], "append_transactions": row["groups"]}
        for table in ("event_identifiers", "patient_identifiers", "identifier_links"):
            out[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return out
    finally:
        await conn.close()


def _by_process(cpu: dict[str, Any]) -> str:
    """The busiest processes' CPU seconds: with few keep-alive connections,
    uvicorn may hand all of them to one worker while the others idle."""
    busy = sorted(cpu.get("per_process_s", {}).values(), reverse=True)
    return " / ".join(f"{v:.1f}" for v in busy if v >= 0.05) or "-"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


@dataclass
class Run:
    """One full measurement: the API on a fresh database, then the raw copy."""

    api: ApiRun
    raw: RawRun
    stored: dict[str, Any]
    facts: dict[str, Any]

    @property
    def api_rate(self) -> float:
        return rate(self.api.events, self.api.seconds)

    @property
    def raw_rate(self) -> float:
        return rate(self.raw.events, self.raw.seconds)

    @property
    def ratio(self) -> float:
        return self.api_rate / self.raw_rate if self.raw_rate else 0.0


def run_once(args: argparse.Namespace, server: DatabaseServer, events: int, py_spy: Path | None) -> Run:
    with fresh_database(server) as url, tempfile.TemporaryDirectory(prefix="asvc-bench-") as tmp:
        facts, pg_pid = asyncio.run(_prepare_database(url))
        env = service_env(url, Path(tmp) / "data")
        service = start_service(env, args.workers, Path(tmp) / "serve.log")
        try:
            token = create_emitter_token(env)
            asyncio.run(_checkpoint(url))
            api = run_api(service, token, events, args.clients, args.seed, args.patients, pg_pid, py_spy)
        finally:
            service.stop()
        stored = asyncio.run(_api_stored(url))
        expected = events + args.clients  # one warm-up event per client
        if stored["events"] != expected or stored["tree_size"] != expected:
            raise SystemExit(f"the API stored {stored} events, expected a gapless {expected}")
        raw = asyncio.run(run_raw(url, args.clients, args.clients, pg_pid, args.raw_rounds))
    return Run(api, raw, stored, facts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes of the service (default 2)")
    parser.add_argument("--clients", type=int, default=2, help="client OS processes, and raw COPY connections (2)")
    parser.add_argument("--patients", type=int, default=3000, help="synthetic patients in the pool (default 3000)")
    parser.add_argument("--raw-rounds", type=int, default=3, help="raw COPY rounds; the median is used (3)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="whole runs, each on a fresh database; the median ratio counts (3)"
    )
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR", help="profile the service with py-spy")
    args = parser.parse_args(argv)
    events = event_count(args)
    code = code_facts()  # before the run: the code the service starts with

    with database_server(args.database_url) as server:
        print(
            f"ingest: {events:,} events, {args.clients} clients, {args.workers} workers, {server.label} server, "
            f"{args.repeat} run(s)"
        )
        runs: list[Run] = []
        for i in range(args.repeat):
            runs.append(run_once(args, server, events, args.py_spy if i == 0 else None))
            last = runs[-1]
            print(
                f"  run {i + 1}: API {last.api_rate:,.0f} events/s, raw COPY {last.raw_rate:,.0f} events/s, "
                f"ratio {last.ratio:.3f}"
            )
    # The run with the median ratio is the one reported in full.
    median = sorted(runs, key=lambda r: r.ratio)[len(runs) // 2]
    api, raw, stored, facts = median.api, median.raw, median.stored, median.facts
    api_rate, raw_rate, ratio = median.api_rate, median.raw_rate, median.ratio
    lat = api.latencies
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "server": server.label,
        "database_url": describe_url(server.url),
        "server_facts": facts,
        "machine": machine_facts(),
        "code": code,
        "config": {"events": events, "batch_size": BATCH_SIZE, "clients": args.clients, "workers": args.workers,
                   "patients": args.patients, "seed": args.seed},
        "api": {
            "events": api.events, "seconds": round(api.seconds, 3), "events_per_s": round(api_rate, 1),
            "requests": len(lat),
            "latency_ms": {q: round(percentile(lat, p) * 1000, 2)
                           for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))},
            "stored": stored,
            "cpu_s": {"server": api.server_cpu, "postgres": api.postgres_cpu, "clients": api.client_cpu_s},
        },
        "raw_copy": {
            "events": raw.events, "rows_all_tables": raw.rows, "seconds": round(raw.seconds, 3),
            "round_seconds": raw.round_seconds,
            "events_per_s": round(raw_rate, 1), "rows_per_s": round(rate(raw.rows, raw.seconds), 1),
            "cpu_s": {"postgres": raw.postgres_cpu, "bench": raw.bench_cpu_s},
        },
        "ratio_api_over_raw": round(ratio, 3),
        "runs": [
            {"api_events_per_s": round(r.api_rate, 1), "raw_events_per_s": round(r.raw_rate, 1),
             "ratio": round(r.ratio, 3)}
            for r in runs
        ],
        "target_ratio": 0.25,
    }  # fmt: skip
    variant = "" if (args.workers, args.clients) == (2, 2) else f"w{args.workers}c{args.clients}"
    path = write_results(results_name("ingest", server.label, args, variant, "py-spy" if args.py_spy else ""), result)

    groups = stored["append_transactions"] or 1
    rows = [
        ("server", f"{server.label} (PostgreSQL {facts['version'].split()[0]})"),
        ("API events/s", f"{api_rate:,.0f}"),
        ("  events, wall time", f"{api.events:,} in {api.seconds:.2f} s"),
        ("  latency p50 / p95 / max", f"{_ms(percentile(lat, 0.5))} / {_ms(percentile(lat, 0.95))} / {_ms(max(lat))}"),
        ("  append transactions", f"{stored['append_transactions']:,} (avg {stored['events'] / groups:,.0f} events)"),
        ("  CPU s: service / postgres / clients",
         f"{api.server_cpu.get('total_s', 0):.1f} / {api.postgres_cpu.get('total_s', 0):.1f} / {api.client_cpu_s:.1f}"),
        ("  service CPU by process", _by_process(api.server_cpu)),
        ("raw COPY events/s (events-equivalent)", f"{raw_rate:,.0f}"),
        ("  rows all tables, rows/s", f"{raw.rows:,}, {rate(raw.rows, raw.seconds):,.0f}/s"),
        ("  events, wall time (median round)", f"{raw.events:,} in {raw.seconds:.2f} s"),
        ("  all rounds", " / ".join(f"{r:.2f} s" for r in raw.round_seconds)),
        ("  CPU s: postgres / bench", f"{raw.postgres_cpu.get('total_s', 0):.1f} / {raw.bench_cpu_s:.1f}"),
        ("ratio API / raw (median run)", f"{ratio:.3f}  (target >= 0.25: {'met' if ratio >= 0.25 else 'NOT met'})"),
        ("  all runs", " / ".join(f"{r.ratio:.3f}" for r in runs)),
    ]  # fmt: skip
    print_table(f"ingest ({server.label})", rows)
    if args.py_spy is not None and (args.py_spy / "ingest-server.txt").exists():
        print("service profile (py-spy, share of samples with the function on the stack):")
        for frame, share in summarize_collapsed(args.py_spy / "ingest-server.txt"):
            print(f"  {share * 100:5.1f}%  {frame}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
