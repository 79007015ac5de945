"""Inclusion-proof latency at a large log, and the tree's build cost.

1. Fill a fresh database with N realistic events (default 1,000,000) with
   the service's own append transaction (``bench._common.fill``).
2. Build the stored tree (``extend_stored_tree``: perfect nodes of 256+
   leaves) and sign a checkpoint of the whole log, timing both.
3. Inclusion proofs for random seqs against that checkpoint, each verified
   with the SDK's ``verify_inclusion``:
   * in-process: ``auditsvc.domain.tree.inclusion_proof`` on one connection
     (the database work a request does);
   * over HTTP: ``GET /v1/proofs/inclusion`` to ``auditsvc serve`` (what an
     auditor sees), one client, sequential requests.
   Also consistency proofs between random sizes and the checkpoint.
4. For scale: a raw primary-key lookup of one row's leaf hash, same connection.

Target (issue #4): proof p95 <= 10 ms at 1M events.

    python -m bench.proofs [--events N] [--proofs P] [--quick] [--database-url DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from auditsvc_sdk import open_checkpoint, verify_consistency, verify_inclusion
from auditsvc_sdk.note import NoteVerifier

from auditsvc.domain.checkpoints import make_checkpoint
from auditsvc.domain.tree import consistency_proof, extend_stored_tree, inclusion_proof, root_at
from auditsvc.keys import CheckpointSigner, ensure_signing_key
from auditsvc.store.engine import asyncpg_dsn

from ._common import (
    BENCH_LOG_NAME,
    bench_settings,
    code_facts,
    database_server,
    describe_url,
    fill,
    fresh_database,
    machine_facts,
    percentile,
    print_table,
    results_name,
    service_env,
    write_results,
)
from .ingest import create_token, start_service

DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 50_000
P95_TARGET_MS = 10.0


def _ms(samples: list[float]) -> dict[str, float]:
    return {q: round(percentile(samples, p) * 1000, 3) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


async def in_process(url: str, log_id: int, size: int, root: bytes, seqs: list[int]) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        inclusion: list[float] = []
        for seq in seqs:
            t0 = time.perf_counter()
            leaf, proof = await inclusion_proof(conn, log_id, seq, size)
            inclusion.append(time.perf_counter() - t0)
            verify_inclusion(leaf, seq, size, proof, root)
        consistency: list[float] = []
        for first in seqs[: len(seqs) // 4]:
            t0 = time.perf_counter()
            await consistency_proof(conn, log_id, first + 1, size)
            consistency.append(time.perf_counter() - t0)
        lookup: list[float] = []
        for seq in seqs:
            t0 = time.perf_counter()
            await conn.fetchval("SELECT leaf_hash FROM events WHERE log_id = $1 AND seq = $2", log_id, seq)
            lookup.append(time.perf_counter() - t0)
    finally:
        await conn.close()
    return {"inclusion_ms": _ms(inclusion), "consistency_ms": _ms(consistency), "raw_pk_lookup_ms": _ms(lookup)}


def over_http(base_url: str, token: str, size: int, root: bytes, seqs: list[int]) -> dict[str, Any]:
    samples: list[float] = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for seq in seqs[:50]:  # warm the connection and the workers
            client.get("/v1/proofs/inclusion", params={"seq": seq, "tree_size": size}).raise_for_status()
        for seq in seqs:
            t0 = time.perf_counter()
            response = client.get("/v1/proofs/inclusion", params={"seq": seq, "tree_size": size})
            samples.append(time.perf_counter() - t0)
            body = response.json()
            proof = [bytes.fromhex(h) for h in body["hashes"]]
            verify_inclusion(bytes.fromhex(body["leaf_hash"]), seq, size, proof, root)
    return {"inclusion_ms": _ms(samples)}


async def build(url: str, data_dir: Path, log_id: int) -> dict[str, Any]:
    settings = bench_settings(url, data_dir)
    ensure_signing_key(settings)
    signer = CheckpointSigner.from_settings(settings)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        t0 = time.perf_counter()
        await extend_stored_tree(conn, log_id)
        tree_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        signed = await make_checkpoint(conn, log_id, BENCH_LOG_NAME, signer)
        sign_s = time.perf_counter() - t0
        nodes = await conn.fetchval("SELECT count(*) FROM merkle_nodes WHERE log_id = $1", log_id)
        assert signed is not None
        checkpoint, _ = open_checkpoint(signed.note, [NoteVerifier.from_vkey(signer.current().vkey)])
        # A consistency proof between two checkpoints, verified.
        proof = await consistency_proof(conn, log_id, checkpoint.size // 3, checkpoint.size)
        verify_consistency(
            checkpoint.size // 3, checkpoint.size, proof, await root_at(conn, log_id, checkpoint.size // 3),
            checkpoint.root_hash,
        )  # fmt: skip
    finally:
        await conn.close()
    return {
        "tree_build_s": round(tree_s, 2),
        "sign_s": round(sign_s, 3),
        "stored_nodes": nodes,
        "size": checkpoint.size,
        "root": checkpoint.root_hash,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proofs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help=f"log size (default {DEFAULT_EVENTS:,})")
    parser.add_argument("--proofs", type=int, default=2000, help="proofs to time per path (default 2,000)")
    parser.add_argument("--quick", action="store_true", help=f"small smoke run ({QUICK_EVENTS:,} events)")
    parser.add_argument("--database-url", default=None, help="owner DSN of an existing server")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    rng = random.Random(args.seed)
    with (
        database_server(args.database_url) as server,
        fresh_database(server) as url,
        tempfile.TemporaryDirectory(prefix="asvc-bench-proofs-") as tmp,
    ):
        data = Path(tmp) / "data"
        filled = asyncio.run(fill(url, events, args.seed, data))
        built = asyncio.run(build(url, data, filled["log_id"]))
        size, root = built.pop("size"), built.pop("root")
        seqs = [rng.randrange(size) for _ in range(args.proofs)]
        local = asyncio.run(in_process(url, filled["log_id"], size, root, seqs))
        env = service_env(url, data)
        service = start_service(env, 1, Path(tmp) / "serve.log")
        try:
            http = over_http(service.base_url, create_token(env, "auditor"), size, root, seqs)
        finally:
            service.stop()
    p95 = http["inclusion_ms"]["p95"]
    rows = [
        ("log size", f"{size:,} events"),
        ("stored tree: build / nodes", f"{built['tree_build_s']} s / {built['stored_nodes']:,}"),
        ("sign a checkpoint (incl. consistency check)", f"{built['sign_s'] * 1000:.1f} ms"),
        ("inclusion proof, in process p50/p95/p99", " / ".join(f"{v} ms" for v in local["inclusion_ms"].values())),
        ("consistency proof, in process p50/p95/p99", " / ".join(f"{v} ms" for v in local["consistency_ms"].values())),
        ("raw PK lookup of one row p50/p95/p99", " / ".join(f"{v} ms" for v in local["raw_pk_lookup_ms"].values())),
        ("inclusion proof over HTTP p50/p95/p99", " / ".join(f"{v} ms" for v in http["inclusion_ms"].values())),
        ("target: proof p95 <= 10 ms (HTTP)", "met" if p95 <= P95_TARGET_MS else "MISSED"),
    ]
    print_table(f"bench.proofs: {size:,} events, {server.label} PostgreSQL", rows)
    path = write_results(
        results_name("proofs", server.label, argparse.Namespace(quick=args.quick, events=args.events)),
        {
            "benchmark": "proofs",
            "server": {"label": server.label, "url": describe_url(server.url)},
            "events": size,
            "fill": filled,
            "build": built,
            "in_process": local,
            "http": http,
            "target_p95_ms": P95_TARGET_MS,
            "machine": machine_facts(),
            "code": code_facts(),
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
