"""Evidence packages: a range of the log with everything needed to verify it
offline, with the SDK alone (``auditsvc-verify FILE``), no database, no
network, and no decryption key (records are hashed as stored).

A gzip'd tar, every member under ``auditsvc-evidence/`` (docs/chain-format.md
§8 is the normative description):

* ``manifest.json``: format, chain format, origin, range, creation time and
  the SHA-256 of every other member;
* ``records.jsonl``: ``{"seq", "record", "leaf_hash", "chain_hash"}`` per
  event, ``record`` being the stored leaf bytes as a JSON string;
* ``start.json``: the chain hash before the range and the Merkle frontier of
  the tree before it (so a range not starting at 0 still proves inclusion);
* ``checkpoints/<size>.note``: every signed checkpoint past the range's start,
  with witness cosignatures;
* ``proofs/consistency-<b+1>-<M>.json``: from the range's end to each later
  checkpoint;
* ``keys/log.vkeys``, ``keys/witnesses.vkeys``: verifier keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from auditsvc_sdk.merkle import frontier_nodes

from ..store import tree as store
from .checkpoints import published_note
from .tree import consistency_proof, node_hashes

PACKAGE_FORMAT = "auditsvc-evidence/v1"
PREFIX = "auditsvc-evidence"


class ExportRangeError(ValueError):
    pass


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    from_seq: int
    to_seq: int
    events: int
    checkpoints: int
    bytes: int


async def write_package(
    conn: asyncpg.Connection,
    log_id: int,
    origin: str,
    genesis: bytes,
    out: Path,
    *,
    covered_size: int,
    from_seq: int = 0,
    to_seq: int | None = None,
    witness_vkeys: list[str] | None = None,
    chain_format: int = 1,
) -> ExportSummary:
    """Write the package of ``[from_seq, to_seq]``; ``covered_size`` is the
    size of a signed checkpoint (stored tree extended over it) that must
    cover the range."""
    last = covered_size - 1 if to_seq is None else to_seq
    if covered_size == 0:
        raise ExportRangeError("the log is empty: nothing to export")
    if not 0 <= from_seq <= last:
        raise ExportRangeError(f"--from-seq {from_seq} and --to-seq {last} do not make a range")
    if last >= covered_size:
        raise ExportRangeError(f"--to-seq {last} is past the latest signed checkpoint (size {covered_size})")
    files: dict[str, bytes | Path] = {}
    with tempfile.TemporaryDirectory(prefix="auditsvc-export-") as tmp:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            if from_seq == 0:
                previous = genesis
            else:
                previous = bytes(
                    await conn.fetchval(
                        "SELECT chain_hash FROM events WHERE log_id = $1 AND seq = $2", log_id, from_seq - 1
                    )
                )
            frontier = await node_hashes(conn, log_id, frontier_nodes(from_seq))
            files["start.json"] = _json(
                {"previous_chain_hash": previous.hex(), "left_frontier": [h.hex() for h in frontier]}
            )
            records = Path(tmp) / "records.jsonl"
            count = 0
            with records.open("wb") as fh:
                async for row in conn.cursor(
                    "SELECT seq, record, leaf_hash, chain_hash FROM events "
                    "WHERE log_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
                    log_id,
                    from_seq,
                    last,
                    prefetch=5000,
                ):
                    fh.write(
                        orjson.dumps(
                            {
                                "seq": row["seq"],
                                "record": row["record"],
                                "leaf_hash": bytes(row["leaf_hash"]).hex(),
                                "chain_hash": bytes(row["chain_hash"]).hex(),
                            }
                        )
                        + b"\n"
                    )
                    count += 1
            if count != last - from_seq + 1:
                raise ExportRangeError(f"the log holds {count} of the events {from_seq}..{last}")
            files["records.jsonl"] = records
            stored = [cp for cp in await store.checkpoints(conn, log_id, from_seq + 1) if cp.tree_size <= covered_size]
            for cp in stored:
                note = await published_note(conn, log_id, cp.tree_size)
                assert note is not None
                files[f"checkpoints/{cp.tree_size}.note"] = note.encode()
                if cp.tree_size > last + 1:
                    proof = await consistency_proof(conn, log_id, last + 1, cp.tree_size)
                    files[f"proofs/consistency-{last + 1}-{cp.tree_size}.json"] = _json(
                        {"first": last + 1, "second": cp.tree_size, "hashes": [h.hex() for h in proof]}
                    )
            files["keys/log.vkeys"] = "".join(k + "\n" for k in await store.verifier_keys(conn, log_id)).encode()
            files["keys/witnesses.vkeys"] = "".join(k + "\n" for k in (witness_vkeys or [])).encode()
        manifest: dict[str, Any] = {
            "format": PACKAGE_FORMAT,
            "chain_format": chain_format,
            "origin": origin,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "from_seq": from_seq,
            "to_seq": last,
            "files": {name: _sha256(data) for name, data in sorted(files.items())},
        }
        size = await asyncio.to_thread(_pack, out, manifest, files)
    return ExportSummary(out, from_seq, last, count, len(stored), size)


def _pack(out: Path, manifest: dict[str, Any], files: dict[str, bytes | Path]) -> int:
    """Write the tar.gz next to ``out`` and rename it into place; returns its size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    with tarfile.open(partial, "w:gz") as tar:
        _add(tar, "manifest.json", _json(manifest))
        for name, data in sorted(files.items()):
            _add(tar, name, data)
    os.replace(partial, out)
    return out.stat().st_size


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n"


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    info = tarfile.TarInfo(f"{PREFIX}/{name}")
    info.mtime = int(time.time())
    info.mode = 0o644
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        info.size = data.stat().st_size
        with data.open("rb") as fh:
            tar.addfile(info, fh)
