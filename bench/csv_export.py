"""A streamed CSV export at a million rows: rows/s and the service's memory.

1. A fresh database on the server under test (default: embedded), migrated;
   the real service (``python -m auditsvc serve``) started on it.
2. ``--rows`` events (default 1,000,000) of one source system written
   straight into the tables with SQL (``events`` with format-1 records, whose
   identifiers are in clear, and ``event_facts``): this measures the export,
   not ingest, so the chain hashes are placeholders.
3. ``POST /v1/reports/system-access?format=csv`` for that system, read as a
   stream: rows, bytes, seconds, and the service process's resident memory
   sampled every 0.1 s during the export, against its value before.

Expectation: resident memory flat (one keyset page of 1,000 records and a
64 kB buffer), whatever ``--rows``.

    python -m bench.csv_export [--rows N] [--quick] [--database-url DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from auditsvc.store.engine import asyncpg_dsn

from ._common import (
    BENCH_LOG_NAME,
    code_facts,
    database_server,
    fresh_database,
    machine_facts,
    print_table,
    service_env,
    write_results,
)
from .ingest import create_token, start_service

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 100_000
SYSTEM = "bulk-export-src"

_RECORD = """json_build_object('seq', i, 'occurred_at', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  'event_id', u, 'action', 'R', 'event_type', 'hl7v2-message', 'outcome', 0,
  'source', json_build_object('system_id', $2::text), 'destination', json_build_object('system_id', 'lab-lis'),
  'actor', json_build_object('id', 'mirth/ADT_OUT', 'type', 'system'),
  'data_elements', json_build_array('PID', 'PV1', 'OBX', 'NTE'),
  'patient', json_build_object('identifiers', json_build_array(
      json_build_object('system', 'urn:oid:2.16.840.1.113883.3.1234.1.1',
                        'value', 'MRN' || lpad((i % 50000)::text, 7, '0')))))::text"""


async def fill_rows(url: str, rows: int) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        log_id = await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", BENCH_LOG_NAME)
        start = int(await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1", log_id))
        t0 = time.perf_counter()
        # events is partitioned by seq (migration 0010): the partitions the rows go to, first.
        await conn.execute("SELECT auditsvc_extend_partitions($1, NULL)", start + rows)
        series = (
            "(SELECT i, gen_random_uuid() AS u, timestamptz '2026-01-01 00:00:00+00' + (i * interval '1 second') AS t "
            "FROM generate_series($3::bigint, $4::bigint) AS i) s"
        )
        await conn.execute(
            "INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash) "
            f"SELECT $1, i, u, t, {_RECORD}, sha256(int8send(i)), sha256(int8send(-i)) FROM {series}",
            log_id,
            SYSTEM,
            start,
            start + rows - 1,
        )
        await conn.execute(
            "INSERT INTO event_facts SELECT $1, 0, false, i, t, 'hl7v2-message', 'R', NULL, $2, 'lab-lis', "
            f"'mirth/ADT_OUT', 'system', NULL, NULL, 'bench', ARRAY['PID','PV1','OBX','NTE'] FROM {series}",
            log_id,
            SYSTEM,
            start,
            start + rows - 1,
        )
        await conn.execute("ANALYZE events, event_facts")
        return time.perf_counter() - t0
    finally:
        await conn.close()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def export(base_url: str, token: str, pid: int) -> dict[str, Any]:
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            samples.append(_rss(pid))

    before = _rss(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rows = size = 0
    t0 = time.perf_counter()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        body = {"system_id": SYSTEM}
        with (
            httpx.Client(base_url=base_url, headers=headers, timeout=3600) as client,
            client.stream("POST", "/v1/reports/system-access?format=csv", json=body) as r,
        ):
            if r.status_code != 200:
                raise RuntimeError(f"export answered {r.status_code}: {r.read()[:300]!r}")
            for chunk in r.iter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - t0
    return {
        "rows": rows - 1,
        "mb": round(size / 1e6, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round((rows - 1) / seconds),
        "service_rss_mb_before": round(before / 1e6, 1),
        "service_rss_mb_max_during": round(max(samples, default=before) / 1e6, 1),
        "service_rss_mb_after": round(_rss(pid) / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.csv_export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help=f"rows exported (default {DEFAULT_ROWS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    work = Path(tempfile.mkdtemp(prefix="asvc-bench-csv-"))
    try:
        with database_server(args.database_url) as server, fresh_database(server) as url:
            env = service_env(url, work / "data")
            service = start_service(env, 1, work / "serve.log")
            try:
                fill_s = asyncio.run(fill_rows(url, rows))
                token = create_token(env, "privacy_officer")
                result = export(service.base_url, token, service.process.pid)
            finally:
                service.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {
        "benchmark": "csv_export",
        "server": server.label,
        "filled": rows,
        "fill_s": round(fill_s, 1),
        **result,
        "machine": machine_facts(),
        "code": code_facts(),
    }
    print_table(
        f"bench.csv_export: {rows:,} rows, {server.label} PostgreSQL",
        [
            ("rows exported, CSV size", f"{result['rows']:,} rows, {result['mb']} MB"),
            ("time, rate", f"{result['seconds']} s, {result['rows_per_s']:,} rows/s"),
            (
                "service RSS before / max during / after",
                f"{result['service_rss_mb_before']} / {result['service_rss_mb_max_during']} / "
                f"{result['service_rss_mb_after']} MB",
            ),
        ],
    )
    name = "csv_export-" + server.label + ("" if rows == DEFAULT_ROWS else f"-{rows}rows")
    print(f"results: {write_results(name, payload)}")
    return 0 if result["rows"] == rows else 1


if __name__ == "__main__":
    sys.exit(main())
