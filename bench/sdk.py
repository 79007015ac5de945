"""The SDK client: what ``record()`` costs the caller, and how many events per
second one client process delivers end to end to the real service.

For each mode (memory queue; spool with ``fsync="interval"``, the default;
spool with ``fsync="always"``) one client in this process records
pre-generated events (dicts, as integration code builds them) in a tight
loop, timing every ``record()`` call, then ``flush()``es. End to end is from
the first ``record()`` to ``flush()`` returning: every event committed by
the service. The service is ``auditsvc serve`` in a subprocess on a fresh
database, as in ``bench.ingest``; the client's sender thread and the service
share the machine's cores with the recording loop, as they would in an
interface engine.

Targets (issue #3): ``record()`` p99 <= 50 us in memory mode; spool mode
sustains >= 10,000 events/s from one process.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from auditsvc_sdk import AuditClient

from ._common import (
    EventFactory,
    code_facts,
    database_server,
    describe_url,
    fresh_database,
    machine_facts,
    percentile,
    print_table,
    rate,
    results_name,
    service_env,
    write_results,
)
from .ingest import create_emitter_token, start_service

DEFAULT_SDK_EVENTS = 50_000
QUICK_SDK_EVENTS = 10_000
ALWAYS_FSYNC_EVENTS = 5_000  # one disk flush per event: a smaller run says enough
P99_TARGET_US = 50.0
SPOOL_RATE_TARGET = 10_000.0


def run_mode(url: str, token: str, events: list[dict[str, Any]], spool_dir: Path | None, fsync: str) -> dict[str, Any]:
    options: dict[str, Any] = {"max_batch": 500}
    if spool_dir is not None:
        options.update(spool_dir=spool_dir, fsync=fsync)
    client = AuditClient(url, token, **options)
    latencies: list[int] = []
    record = client.record
    clock = time.perf_counter_ns
    gc.collect()
    started = time.perf_counter()
    for event in events:
        t0 = clock()
        record(event)
        latencies.append(clock() - t0)
    recorded = time.perf_counter()
    if not client.flush(timeout=600):
        raise RuntimeError(f"flush did not complete: {client.counters()}")
    finished = time.perf_counter()
    counters = client.counters()
    client.close()
    if counters.sent != len(events) or counters.internal_errors or counters.dead_lettered:
        raise RuntimeError(f"not every event was accepted: {counters}")
    us = [ns / 1000 for ns in latencies]
    return {
        "events": len(events),
        "record_p50_us": round(percentile(us, 0.50), 2),
        "record_p99_us": round(percentile(us, 0.99), 2),
        "record_p999_us": round(percentile(us, 0.999), 2),
        "record_max_us": round(max(us), 1),
        "record_rate_per_s": round(rate(len(events), recorded - started)),
        "end_to_end_s": round(finished - started, 3),
        "end_to_end_per_s": round(rate(len(events), finished - started)),
        "counters": counters.as_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help=f"events per mode (default {DEFAULT_SDK_EVENTS:,})")
    parser.add_argument("--quick", action="store_true", help=f"small smoke run ({QUICK_SDK_EVENTS:,} events)")
    parser.add_argument("--database-url", default=None, help="owner DSN of an existing server (as bench.ingest)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="service worker processes (default 1)")
    args = parser.parse_args(argv)
    count = args.events or (QUICK_SDK_EVENTS if args.quick else DEFAULT_SDK_EVENTS)
    factory = EventFactory(args.seed)
    modes: dict[str, dict[str, Any]] = {}
    with (
        database_server(args.database_url) as server,
        fresh_database(server) as url,
        tempfile.TemporaryDirectory(prefix="asvc-bench-sdk-") as tmp,
    ):
        base = Path(tmp)
        env = service_env(url, base / "data")
        token = create_emitter_token(env)
        service = start_service(env, args.workers, base / "serve.log")
        try:
            run_mode(service.base_url, token, factory.events(min(count, 2000)), None, "")  # warm-up
            modes["memory"] = run_mode(service.base_url, token, factory.events(count), None, "")
            modes["spool (fsync interval)"] = run_mode(
                service.base_url, token, factory.events(count), base / "spool-interval", "interval"
            )
            modes["spool (fsync always)"] = run_mode(
                service.base_url, token, factory.events(min(count, ALWAYS_FSYNC_EVENTS)),
                base / "spool-always", "always",
            )  # fmt: skip
        finally:
            service.stop()
    rows: list[tuple[str, str]] = []
    for name, m in modes.items():
        rows += [
            (f"{name}: record() p50 / p99 / p99.9", f"{m['record_p50_us']} / {m['record_p99_us']} / "
             f"{m['record_p999_us']} us"),
            (f"{name}: record() calls per second", f"{m['record_rate_per_s']:,}"),
            (f"{name}: end to end ({m['events']:,} events)", f"{m['end_to_end_per_s']:,} events/s"),
        ]  # fmt: skip
    memory_p99 = modes["memory"]["record_p99_us"]
    spool_rate = modes["spool (fsync interval)"]["end_to_end_per_s"]
    rows += [
        ("target: memory record() p99 <= 50 us", "met" if memory_p99 <= P99_TARGET_US else "MISSED"),
        ("target: spool >= 10,000 events/s", "met" if spool_rate >= SPOOL_RATE_TARGET else "MISSED"),
    ]
    print_table(f"bench.sdk: one client process, {server.label} PostgreSQL", rows)
    path = write_results(
        results_name("sdk", server.label, argparse.Namespace(quick=args.quick, events=args.events)),
        {
            "benchmark": "sdk",
            "server": {"label": server.label, "url": describe_url(server.url)},
            "workers": args.workers,
            "modes": modes,
            "targets": {"memory_record_p99_us": P99_TARGET_US, "spool_events_per_s": SPOOL_RATE_TARGET},
            "machine": machine_facts(),
            "code": code_facts(),
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
