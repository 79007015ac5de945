"""Full-chain verification speed, as a ratio to a raw sequential read.

1. Fill a fresh database with N realistic events through the service's own
   append transaction (``auditsvc.store.append.append_group``, groups of
   5,000), not over HTTP: the rows are exactly what the service stores.
2. On one asyncpg connection, alternately, ``--repeat`` times:
   * raw: the SELECT ``verify_chain`` runs, ``ORDER BY seq``, through a
     server-side cursor with the same prefetch in the same kind of
     transaction, doing nothing per row;
   * verify: ``auditsvc.domain.verify.verify_chain`` over the same rows, as
     ``auditsvc verify`` runs it (ranges in one worker process per CPU,
     reading the same snapshot), and again in one process.
   An untimed read first puts the table in cache for both.
3. The ``auditsvc verify --json`` CLI's wall time on the same data (process
   start, imports, connection and verification).

The ratio verify/raw (medians) says what fraction of PostgreSQL's sequential
read speed full verification keeps (a later target is >= 0.6). A per-row
breakdown of verification's Python work, on rows held in memory, shows where
the rest goes.

    python -m bench.verify [--events N] [--repeat R] [--quick] [--database-url DSN] [--no-cli]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from auditsvc_sdk import chain_hash, leaf_hash

from auditsvc.domain.verify import LogRef, VerifyOptions, verify_chain
from auditsvc.keys import ServerKeys, load_keys
from auditsvc.store.engine import asyncpg_dsn
from auditsvc.store.verify import ROWS_SQL as VERIFY_ROWS_SQL  # the very query verification reads with
from auditsvc.store.verify import index_sum, text_as_bytes

from ._common import (
    BENCH_LOG_NAME,
    REPO,
    add_common_arguments,
    bench_settings,
    code_facts,
    database_server,
    describe_url,
    event_count,
    fill,
    fresh_database,
    machine_facts,
    print_table,
    rate,
    results_name,
    server_facts,
    service_env,
    write_results,
)

PREFETCH = 5000  # rows per fetch of verification's cursor; the raw read uses the same
BREAKDOWN_ROWS = 50_000  # rows held in memory for the per-step breakdown
_TOTAL_SQL = "SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1"
_INDEX_ROWS_SQL = "SELECT id_hmac, event_id FROM event_identifiers WHERE log_id = $1"


async def raw_read(conn: asyncpg.Connection, log_id: int) -> tuple[int, float]:
    """Read the rows as verification does (same transaction kind, count query,
    SELECT, rows per fetch and record bytes), in one sequential pass, doing
    nothing per row."""
    started = time.perf_counter()
    rows = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True), text_as_bytes(conn):
        total = await conn.fetchval(_TOTAL_SQL, log_id)
        cursor = await conn.cursor(VERIFY_ROWS_SQL, log_id, 0, total)
        while batch := await cursor.fetch(PREFETCH):
            rows += len(batch)
    return rows, time.perf_counter() - started


async def raw_index_read(conn: asyncpg.Connection, log_id: int) -> tuple[int, float]:
    """Read the patient lookup index rows the index check sums (``(id_hmac,
    event_id)`` of the log), in one sequential pass, doing nothing per row."""
    started = time.perf_counter()
    rows = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(_INDEX_ROWS_SQL, log_id)
        while batch := await cursor.fetch(PREFETCH):
            rows += len(batch)
    return rows, time.perf_counter() - started


async def timed_verify(
    conn: asyncpg.Connection, log_id: int, keys: ServerKeys | None, dsn: str, workers: int, check_index: bool = True
) -> tuple[int, float]:
    """``verify_chain`` over the log as ``auditsvc verify`` runs it, in
    ``workers`` processes; with the patient lookup index checked against each
    record (the default) or not (``--no-index-check``)."""
    started = time.perf_counter()
    options = VerifyOptions(keys=keys, check_index=check_index, dsn=dsn, workers=workers)
    report = await verify_chain(conn, LogRef.named(log_id, BENCH_LOG_NAME), options)
    seconds = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"verification failed on freshly appended data: {report.damage}")
    if report.index_checked != check_index:
        raise RuntimeError(f"the index was {'' if report.index_checked else 'not '}checked")
    return report.rows_checked, seconds


def _per_row_us(items: Sequence[Any], step: Callable[[Any], object]) -> float:
    started = time.perf_counter()
    for item in items:
        step(item)
    return round((time.perf_counter() - started) / len(items) * 1e6, 2)


async def breakdown(conn: asyncpg.Connection, log_id: int, limit: int) -> dict[str, Any]:
    """Microseconds per row of each step of a range check, on rows already in
    memory (no database), plus the index fingerprint query's time: where
    verification spends what it adds on top of reading.

    It times the verifier's own private helpers, so that it measures exactly
    what runs; if they change shape, the breakdown says so instead of failing
    the benchmark."""
    try:
        from auditsvc.domain import verify_range as vr

        async with text_as_bytes(conn):
            rows = await conn.fetch(VERIFY_ROWS_SQL + " LIMIT $4", log_id, 0, 1 << 62, limit)
        fields = [vr._decode_fields(r["record"]) for r in rows]
        event_ids = [r["event_id"] for r in rows]
        key = b"k" * 16
        leaves = [leaf_hash(r["record"]) for r in rows]

        def leaf(record: bytes) -> bytes:
            hasher = vr._LEAF_PREFIX.copy()
            hasher.update(record)
            return hasher.digest()

        def fingerprint(item: tuple[Any, Any]) -> int:
            decoded, event_id = item
            lookup = [bytes.fromhex(i.value_hmac) for i in decoded.patient.identifiers]
            return vr.index_fingerprint(key, event_id.bytes, lookup)

        started = time.perf_counter()
        vr._levels(leaves)
        merkle_us = round((time.perf_counter() - started) / len(leaves) * 1e6, 2)
        steps: dict[str, Any] = {
            "rows": len(rows),
            "decode_fields_us": _per_row_us(rows, lambda r: vr._decode_fields(r["record"])),
            "str_uuid_us": _per_row_us(rows, lambda r: str(r["event_id"])),
            "leaf_hash_us": _per_row_us([r["record"] for r in rows], leaf),
            "chain_hash_us": _per_row_us(leaves, lambda h: chain_hash(h, h)),
            "merkle_us": merkle_us,
            "index_fingerprint_py_us": _per_row_us(list(zip(fields, event_ids, strict=True)), fingerprint),
        }
        started = time.perf_counter()
        await index_sum(conn, log_id, key)
        steps["index_fingerprint_sql_s_all_rows"] = round(time.perf_counter() - started, 3)
        return steps
    except Exception as exc:
        return {"error": f"breakdown unavailable: {type(exc).__name__}: {exc}"}


async def measure(url: str, log_id: int, repeat: int, keys: ServerKeys, workers: int) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    dsn = asyncpg_dsn(url)
    try:
        facts = await server_facts(conn)
        await raw_read(conn, log_id)  # untimed: warm the cache for all
        await raw_index_read(conn, log_id)
        samples: dict[str, list[float]] = {
            name: [] for name in ("raw", "raw_index", "verify_full", "verify_no_index", "verify_one_process")
        }
        rows = index_rows = 0
        for _ in range(repeat):
            # Alternate so that drift (other load, checkpoints) hits all alike.
            rows, seconds = await raw_read(conn, log_id)
            samples["raw"].append(rate(rows, seconds))
            index_rows, seconds = await raw_index_read(conn, log_id)
            samples["raw_index"].append(rate(index_rows, seconds))
            for name, processes, check_index in (
                ("verify_full", workers, True),
                ("verify_no_index", workers, False),
                ("verify_one_process", 1, True),
            ):
                checked, seconds = await timed_verify(conn, log_id, keys, dsn, processes, check_index)
                if checked != rows:
                    raise RuntimeError(f"verify checked {checked} rows, the raw read saw {rows}")
                samples[name].append(rate(checked, seconds))
        steps = await breakdown(conn, log_id, BREAKDOWN_ROWS)
    finally:
        await conn.close()
    return {"facts": facts, "rows": rows, "index_rows": index_rows, "samples": samples, "breakdown": steps}


def run_cli(url: str, data_dir: Path) -> dict[str, Any]:
    """``python -m auditsvc verify --json`` on the same database: wall time
    (interpreter start and imports included) and the time it reports."""
    env = service_env(url, data_dir)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "auditsvc", "verify", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"exit_code": done.returncode, "wall_seconds": round(wall, 3)}
    if done.returncode == 0:
        report = json.loads(done.stdout)
        out.update(reported_seconds=report["seconds"], rows_checked=report["rows_checked"])
    else:
        out["stderr"] = done.stderr.strip()[-500:]
    return out


def _target(ratio: float) -> str:
    return f"target >= 0.6: {'met' if ratio >= 0.6 else 'not met'}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed rounds of raw read, verify in worker processes and in one; medians are reported (3)",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="verification processes (0, the default: one per CPU available)"
    )
    parser.add_argument("--no-cli", action="store_true", help="skip timing the `auditsvc verify` CLI")
    args = parser.parse_args(argv)
    events = event_count(args)
    code = code_facts()  # before the run: the code the service starts with

    with (
        database_server(args.database_url) as server,
        fresh_database(server) as url,
        tempfile.TemporaryDirectory(prefix="asvc-bench-") as tmp,
    ):
        print(f"verify: filling {events:,} events ({server.label} server)")
        filled = asyncio.run(fill(url, events, args.seed, Path(tmp)))
        print(f"verify: filled in {filled['seconds']} s; measuring {args.repeat} rounds of raw read / verify")
        keys = load_keys(bench_settings(url, Path(tmp)))
        workers = args.workers or len(os.sched_getaffinity(0))
        measured = asyncio.run(measure(url, filled["log_id"], args.repeat, keys, workers))
        cli = None if args.no_cli else run_cli(url, Path(tmp) / "data")

    samples = measured["samples"]
    medians = {name: statistics.median(values) for name, values in samples.items()}
    raw_rate = medians["raw"]
    # The same rows verification reads: the events, and (the index check)
    # the lookup index rows, index_rows / rows of them per event.
    per_event = measured["index_rows"] / measured["rows"] if measured["rows"] else 0.0
    raw_both = 1 / (1 / raw_rate + per_event / medians["raw_index"])
    ratio_chain = medians["verify_no_index"] / raw_rate
    ratio_full_same_rows = medians["verify_full"] / raw_both
    ratio_full_events = medians["verify_full"] / raw_rate
    ratio_one = medians["verify_one_process"] / raw_rate
    facts = measured["facts"]
    steps = measured["breakdown"]
    result: dict[str, Any] = {
        "benchmark": "verify",
        "server": server.label,
        "database_url": describe_url(server.url),
        "server_facts": facts,
        "machine": machine_facts(),
        "code": code,
        "config": {
            "events": events,
            "repeat": args.repeat,
            "prefetch": PREFETCH,
            "seed": args.seed,
            "workers": workers,
        },
        "fill": filled,
        "rows_per_s": {
            name: {"median": round(medians[name], 1), "samples": [round(r, 1) for r in values]}
            for name, values in samples.items()
        },
        "index_rows": measured["index_rows"],
        "raw_events_and_index_events_per_s": round(raw_both, 1),
        "ratio_verify_no_index_over_raw": round(ratio_chain, 3),
        "ratio_verify_over_raw_events_and_index": round(ratio_full_same_rows, 3),
        "ratio_verify_over_raw_events_only": round(ratio_full_events, 3),
        "ratio_one_process_over_raw": round(ratio_one, 3),
        "target_ratio": 0.6,
        "verify_breakdown_us_per_row": steps,
        "cli": cli,
    }
    path = write_results(results_name("verify", server.label, args), result)

    def per_s(name: str) -> str:
        return f"{medians[name]:,.0f}  ({1e6 / medians[name]:.2f} us/row)"

    rows = [
        ("server", f"{server.label} (PostgreSQL {facts['version'].split()[0]})"),
        ("events (events table size)", f"{measured['rows']:,} ({filled['events_table_bytes'] / 2**20:,.0f} MiB)"),
        ("fill: append_group events/s", f"{filled['append_events_per_s']:,.0f} (transactions only)"),
        ("raw sequential read: events rows/s", per_s("raw")),
        (f"raw sequential read: index rows/s ({per_event:.2f} per event)", per_s("raw_index")),
        ("  events and their index rows: events/s", f"{raw_both:,.0f}"),
        (f"verify --no-index-check rows/s ({workers} processes)", per_s("verify_no_index")),
        (f"verify rows/s ({workers} processes, the CLI default)", per_s("verify_full")),
        ("verify rows/s (one process)", per_s("verify_one_process")),
        ("ratio verify --no-index-check / raw events", f"{ratio_chain:.3f}  ({_target(ratio_chain)})"),
        ("ratio verify / raw events and index rows", f"{ratio_full_same_rows:.3f}  ({_target(ratio_full_same_rows)})"),
        ("ratio verify / raw events alone", f"{ratio_full_events:.3f}  ({_target(ratio_full_events)})"),
        ("ratio verify in one process / raw events", f"{ratio_one:.3f}"),
    ]
    if "error" in steps:
        rows.append(("per-row breakdown", str(steps["error"])))
    else:
        rows += [
            ("per row in memory: decode fields / str(uuid)",
             f"{steps['decode_fields_us']:.2f} / {steps['str_uuid_us']:.2f} us"),
            ("  leaf hash / chain hash / Merkle",
             f"{steps['leaf_hash_us']:.2f} / {steps['chain_hash_us']:.2f} / {steps['merkle_us']:.2f} us"),
            ("  index fingerprint, records side", f"{steps['index_fingerprint_py_us']:.2f} us"),
            ("  index fingerprint SQL (all rows)", f"{steps['index_fingerprint_sql_s_all_rows']:.2f} s"),
        ]  # fmt: skip
    if cli is not None:
        if cli["exit_code"] == 0:
            cli_text = f"{cli['wall_seconds']:.2f} s (reports {cli['reported_seconds']} s)"
            rows.append(("auditsvc verify CLI wall time", cli_text))
        else:
            rows.append(("auditsvc verify CLI", f"exit {cli['exit_code']}: {cli.get('stderr', '')[:120]}"))
    print_table(f"verify ({server.label})", rows)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
