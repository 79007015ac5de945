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

``write_package`` goes in three steps: 1. the span (which events, under
which signed checkpoint), 2. the members, all read in one snapshot, 3. the
manifest and the archive, written beside ``out`` and renamed into place.
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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from auditsvc_sdk.merkle import frontier_nodes

from ..store import events as store_events
from ..store import evidence as store_evidence
from ..store import tree as store
from ..store.session import Connection
from .checkpoints import published_note
from .log_ref import LogRef
from .tree import consistency_proof, node_hashes

PACKAGE_FORMAT = "auditsvc-evidence/v1"
PREFIX = "auditsvc-evidence"


class ExportRangeError(ValueError):
    pass


@dataclass(frozen=True)
class ExportSpan:
    """The events ``from_seq..to_seq`` (inclusive; ``None``: up to the
    newest), which a signed checkpoint of size ``covered_size`` (the stored
    tree extended over it) must cover."""

    covered_size: int
    from_seq: int = 0
    to_seq: int | None = None

    @property
    def last(self) -> int:
        return self.covered_size - 1 if self.to_seq is None else self.to_seq

    def check(self) -> None:
        """A clear error for a span that is empty, inverted or not covered."""
        if self.covered_size == 0:
            raise ExportRangeError("the log is empty: nothing to export")
        if not 0 <= self.from_seq <= self.last:
            raise ExportRangeError(f"--from-seq {self.from_seq} and --to-seq {self.last} do not make a range")
        if self.last >= self.covered_size:
            raise ExportRangeError(
                f"--to-seq {self.last} is past the latest signed checkpoint (size {self.covered_size})"
            )


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    from_seq: int
    to_seq: int
    events: int
    checkpoints: int
    bytes: int


Members = dict[str, bytes | Path]  # package path -> contents, or a file holding them


async def write_package(
    conn: Connection,
    log: LogRef,
    out: Path,
    span: ExportSpan,
    *,
    witness_vkeys: Iterable[str] = (),
    chain_format: int = 1,
) -> ExportSummary:
    """Write the package of ``span`` of ``log`` to ``out``."""
    # 1. The span.
    span.check()
    with tempfile.TemporaryDirectory(prefix="auditsvc-export-") as tmp:
        # 2. The members, in one snapshot.
        files: Members = {}
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            files["start.json"] = await _start(conn, log, span)
            files["records.jsonl"], count = await _records(conn, log, span, Path(tmp) / "records.jsonl")
            checkpoints = await _checkpoints(conn, log, span, files)
            files["keys/log.vkeys"] = _lines(await store.verifier_keys(conn, log.log_id))
            files["keys/witnesses.vkeys"] = _lines(witness_vkeys)
        # 3. The manifest and the archive.
        manifest = _manifest(log, span, chain_format, files)
        size = await asyncio.to_thread(_pack, out, manifest, files)
    return ExportSummary(out, span.from_seq, span.last, count, checkpoints, size)


async def _start(conn: Connection, log: LogRef, span: ExportSpan) -> bytes:
    """``start.json``: the chain hash before the span and the tree's frontier there."""
    previous = log.genesis
    if span.from_seq > 0:
        stored = await store_events.chain_hash_at(conn, log.log_id, span.from_seq - 1)
        if stored is None:
            raise ExportRangeError(f"the log holds no event {span.from_seq - 1}, which the range follows")
        previous = stored
    frontier = await node_hashes(conn, log.log_id, frontier_nodes(span.from_seq))
    return _json({"previous_chain_hash": previous.hex(), "left_frontier": [h.hex() for h in frontier]})


async def _records(conn: Connection, log: LogRef, span: ExportSpan, path: Path) -> tuple[Path, int]:
    """``records.jsonl``, streamed to ``path``; every event of the span must be there."""
    count = 0
    with path.open("wb") as fh:
        async for row in store_evidence.events_between(conn, log.log_id, span.from_seq, span.last):
            line = {
                "seq": row.seq,
                "record": row.record,
                "leaf_hash": row.leaf_hash.hex(),
                "chain_hash": row.chain_hash.hex(),
            }
            fh.write(orjson.dumps(line) + b"\n")
            count += 1
    if count != span.last - span.from_seq + 1:
        raise ExportRangeError(f"the log holds {count} of the events {span.from_seq}..{span.last}")
    return path, count


async def _checkpoints(conn: Connection, log: LogRef, span: ExportSpan, files: Members) -> int:
    """Every signed checkpoint past the span's start (up to the covering one)
    with its cosignatures, and a consistency proof from the span's end to
    each later one; how many checkpoints."""
    end = span.last + 1
    stored = [
        cp for cp in await store.checkpoints(conn, log.log_id, span.from_seq + 1) if cp.tree_size <= span.covered_size
    ]
    for cp in stored:
        note = await published_note(conn, log.log_id, cp.tree_size)
        assert note is not None
        files[f"checkpoints/{cp.tree_size}.note"] = note.encode()
        if cp.tree_size > end:
            proof = await consistency_proof(conn, log.log_id, end, cp.tree_size)
            files[f"proofs/consistency-{end}-{cp.tree_size}.json"] = _json(
                {"first": end, "second": cp.tree_size, "hashes": [h.hex() for h in proof]}
            )
    return len(stored)


def _lines(keys: Iterable[str]) -> bytes:
    return "".join(k + "\n" for k in keys).encode()


def _manifest(log: LogRef, span: ExportSpan, chain_format: int, files: Members) -> dict[str, Any]:
    return {
        "format": PACKAGE_FORMAT,
        "chain_format": chain_format,
        "origin": log.name,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "from_seq": span.from_seq,
        "to_seq": span.last,
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }


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
