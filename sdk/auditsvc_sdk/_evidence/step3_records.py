"""3. The records: each leaf and chain hash recomputed, and the Merkle roots
at the checkpoint sizes the records reach."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from .._chain import UnsupportedFormatVersion, chain_hash, check_format_version, leaf_hash
from .._merkle import CompactRange
from .errors import EvidenceRejected
from .layout import (
    RECORDS,
    EvidenceLimits,
    hash_bytes,
    is_int,
)
from .step1_archive import Archive, archive_errors
from .step2_members import (
    Manifest,
)


@dataclass(frozen=True, slots=True)
class Records:
    head_chain_hash: bytes
    root: bytes  # the Merkle root at tree size to_seq + 1
    roots: dict[int, bytes]  # tree size -> root, at checkpoint sizes in [from_seq, to_seq + 1]


def record_lines(archive: Archive, limits: EvidenceLimits) -> Iterator[bytes]:
    """The lines of records.jsonl, re-hashed as they are read (the file is read twice)."""
    assert archive.records is not None
    digest = hashlib.sha256()
    with archive_errors():
        data = archive.tar.extractfile(archive.records)
        assert data is not None
        while line := data.readline(limits.max_line_bytes + 1):
            digest.update(line)
            yield line
    if digest.hexdigest() != archive.digests[RECORDS]:
        raise EvidenceRejected("file_hash_mismatch", f"{RECORDS} changed while it was read", member=RECORDS)


def _parse_row(line: bytes, seq: int, limits: EvidenceLimits) -> tuple[int, bytes, bytes, bytes]:
    if len(line) > limits.max_line_bytes:
        raise EvidenceRejected("malformed_row", f"the line is longer than {limits.max_line_bytes} bytes", seq=seq)
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        row = None
    if not isinstance(row, dict) or set(row) != {"seq", "record", "leaf_hash", "chain_hash"}:
        raise EvidenceRejected("malformed_row", "the line is not a JSON object of seq, record and the hashes", seq=seq)
    leaf, chained = hash_bytes(row["leaf_hash"]), hash_bytes(row["chain_hash"])
    if not is_int(row["seq"]) or not isinstance(row["record"], str) or leaf is None or chained is None:
        raise EvidenceRejected("malformed_row", "seq must be an integer, record a string, hashes SHA-256 hex", seq=seq)
    try:
        data = row["record"].encode("utf-8")
    except UnicodeEncodeError:
        raise EvidenceRejected("malformed_record", "the record is not valid Unicode text", seq=seq) from None
    return row["seq"], data, leaf, chained


def _check_record(seq: int, data: bytes) -> None:
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        raise EvidenceRejected("malformed_record", "the record is not a JSON object", seq=seq)
    try:
        check_format_version(record)
    except UnsupportedFormatVersion as exc:
        raise EvidenceRejected("unsupported_version", str(exc), seq=seq) from None
    if not is_int(record.get("seq")) or record["seq"] != seq:
        raise EvidenceRejected("record_mismatch", f"the record at this seq says seq {record.get('seq')!r}", seq=seq)


def verify_records(
    lines: Iterator[bytes],
    manifest: Manifest,
    previous: bytes,
    frontier: list[bytes],
    sizes: set[int],
    limits: EvidenceLimits,
) -> Records:
    """3. Recompute every leaf and chain hash, and the Merkle roots at the checkpoint sizes."""
    a, b = manifest.from_seq, manifest.to_seq
    tree = CompactRange.from_frontier(a, frontier)
    roots = {a: tree.root()} if a in sizes else {}
    expected = a
    for line in lines:
        if expected > b:
            raise EvidenceRejected("unexpected_row", f"{RECORDS} goes on past to_seq {b}", seq=expected)
        seq, data, stored_leaf, stored_chain = _parse_row(line, expected, limits)
        if seq != expected:
            if seq > expected:
                raise EvidenceRejected(
                    "missing_row", f"expected seq {expected}, the next line is seq {seq}", seq=expected
                )
            raise EvidenceRejected("duplicate_seq", f"a second line claims seq {seq}", seq=seq)
        _check_record(seq, data)
        leaf = leaf_hash(data)
        if leaf != stored_leaf:
            raise EvidenceRejected("leaf_hash_mismatch", "the record's bytes do not hash to its leaf hash", seq=seq)
        previous = chain_hash(previous, leaf)
        if previous != stored_chain:
            raise EvidenceRejected(
                "chain_hash_mismatch", "the chain hash does not follow from the previous one and this leaf", seq=seq
            )
        tree.append(leaf)
        expected += 1
        if expected in sizes:
            roots[expected] = tree.root()
    if expected <= b:
        raise EvidenceRejected("missing_row", f"{RECORDS} ends before to_seq {b}", seq=expected)
    return Records(previous, tree.root(), roots)
