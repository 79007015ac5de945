"""Offline verification of an evidence package (``auditsvc export``), with the SDK alone.

No database, no network, no decryption key: records are hashed exactly as
stored, so patient identifiers in them may be ciphertext.

The package, format ``auditsvc-evidence/v1``, is a gzip'd tar whose members
all sit under ``auditsvc-evidence/``::

    manifest.json                      {"format", "chain_format", "origin", "created_at",
                                        "from_seq": a, "to_seq": b, "files": {path: sha256 hex}}
    records.jsonl                      one line per seq a..b: {"seq", "record", "leaf_hash", "chain_hash"}
    start.json                         {"previous_chain_hash", "left_frontier"}: the chain hash of
                                       seq a-1 (genesis when a == 0), the Merkle frontier of size a
    checkpoints/<size>.note            signed checkpoints of the log with size > a
    proofs/consistency-<b+1>-<M>.json  {"first", "second", "hashes"} for each checkpoint with M > b+1
    keys/log.vkeys                     the log's verifier keys, one per line
    keys/witnesses.vkeys               witness cosignature verifier keys (may be empty)

Verification (``verify_package``) stops at the first failure and raises an
``EvidenceError`` naming its ``kind`` (and ``seq``, where one applies)::

    EvidenceError              (ValueError)
    ├── EvidenceUnreadable     could not verify: not a readable package, an unknown
    │                          format version, or past the size limits     (CLI exit 2)
    └── EvidenceRejected       the package does not prove what it claims:
                               altered, incomplete, or unproven           (CLI exit 1)

Steps, numbered as in the code below:

1. The archive: gzip and tar decode; every member is a regular file (or a
   directory) with a plain relative path under ``auditsvc-evidence/`` that
   the layout names; no member twice; sizes bounded.
2. The manifest: a known format and chain format; every other member listed
   with its SHA-256, none unlisted, none missing.
3. The records, seq a..b in order: each line well formed, each record a
   JSON object of record format 1 or 2 (``v``) whose ``seq`` is its own, whose bytes hash
   to ``leaf_hash``, and whose ``chain_hash`` follows from the previous one
   (from ``start.previous_chain_hash``, which must be the genesis value when
   a == 0). The Merkle tree is resumed from the frontier of size a and
   extended with each leaf hash; its root is kept at every checkpoint size.
4. The checkpoints: each signed by a log key (the caller's pinned keys, or
   else the package's own), of this log, of the size its file name says;
   witness cosignatures verified with the witness keys.
5. Roots: each checkpoint of size S in (a, b+1] has the records' root at S.
   (Signatures are checked first, so a forged checkpoint is reported as
   such, not as altered records.)
6. Consistency: each checkpoint of size M > b+1 extends the records' tree of
   size b+1, by the consistency proof in the package.
7. At least one signed checkpoint has size >= b+1: otherwise nothing signed
   commits to the last records (``unproven``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, TypeVar

import orjson

from ._chain import FORMAT_VERSION, UnsupportedFormatVersion, chain_hash, check_format_version, genesis_hash, leaf_hash
from ._merkle import CompactRange, ProofError, verify_consistency
from ._note import (
    Checkpoint,
    CosignatureVerifier,
    InvalidSignatureError,
    KeyFormatError,
    NoteError,
    NoteVerifier,
    UnverifiedNoteError,
    open_note,
    verify_cosignature,
)

__all__ = [
    "EVIDENCE_FORMAT",
    "PACKAGE_DIR",
    "CheckpointEvidence",
    "EvidenceError",
    "EvidenceLimits",
    "EvidenceRejected",
    "EvidenceReport",
    "EvidenceUnreadable",
    "KeyRef",
    "WitnessCosignature",
    "verify_package",
]

EVIDENCE_FORMAT = "auditsvc-evidence/v1"
PACKAGE_DIR = "auditsvc-evidence"

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
START = "start.json"
LOG_KEYS = "keys/log.vkeys"
WITNESS_KEYS = "keys/witnesses.vkeys"

_SIZE = r"(0|[1-9][0-9]{0,19})"
_CHECKPOINT_NAME = re.compile(rf"checkpoints/{_SIZE}\.note")
_PROOF_NAME = re.compile(rf"proofs/consistency-{_SIZE}-{_SIZE}\.json")
_LAYOUT = re.compile(
    rf"manifest\.json|records\.jsonl|start\.json|keys/(log|witnesses)\.vkeys"
    rf"|checkpoints/{_SIZE}\.note|proofs/consistency-{_SIZE}-{_SIZE}\.json"
)
_DIRECTORIES = frozenset(("", "checkpoints", "proofs", "keys"))
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]{1,255}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_MAX_SEQ = (1 << 63) - 1
_CHUNK = 1 << 20


# --- errors ---------------------------------------------------------------------


class EvidenceError(ValueError):
    """The package could not be verified, or does not prove what it claims.

    ``kind`` names the failure; ``seq`` is the first bad record where one is
    known; ``checkpoint`` the tree size of the checkpoint concerned;
    ``member`` the package file concerned. ``exit_code`` is the CLI's.
    """

    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        seq: int | None = None,
        checkpoint: int | None = None,
        member: str | None = None,
    ) -> None:
        where = (
            f" at seq {seq}" if seq is not None else f" at checkpoint {checkpoint}" if checkpoint is not None else ""
        )
        super().__init__(f"{kind}{where}: {detail}")
        self.kind = kind
        self.detail = detail
        self.seq = seq
        self.checkpoint = checkpoint
        self.member = member

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": False,
            "kind": self.kind,
            "seq": self.seq,
            "checkpoint": self.checkpoint,
            "member": self.member,
            "detail": self.detail,
        }


class EvidenceUnreadable(EvidenceError):
    """Could not verify: unreadable, not a package, an unknown format version, too large.

    Kinds: ``unreadable_file``, ``corrupt_archive``, ``not_a_package``,
    ``unsupported_format``, ``malformed_manifest``, ``too_large``.
    """

    exit_code = 2


class EvidenceRejected(EvidenceError):
    """The package is readable but does not prove what it claims.

    Package: ``unsafe_member``, ``unexpected_member``, ``duplicate_member``,
    ``unlisted_member``, ``missing_member``, ``file_hash_mismatch``,
    ``malformed_start``, ``genesis_mismatch``, ``malformed_keys``.
    Records (with ``seq``): ``malformed_row``, ``missing_row``,
    ``duplicate_seq``, ``unexpected_row``, ``malformed_record``,
    ``unsupported_version``, ``record_mismatch``, ``leaf_hash_mismatch``,
    ``chain_hash_mismatch``. Checkpoints (with ``checkpoint``):
    ``malformed_checkpoint``, ``checkpoint_name_mismatch``,
    ``origin_mismatch``, ``unknown_key``, ``bad_signature``,
    ``bad_cosignature``, ``root_mismatch``, ``missing_proof``,
    ``malformed_proof``, ``consistency_failure``. And ``unproven`` (with the
    first ``seq`` no signed checkpoint commits to).
    """


def _show(name: str) -> str:
    # Member names come from a hostile archive: never print them raw.
    text = ascii(name)
    return text if len(text) <= 120 else text[:117] + "..."


# --- limits and the bounded stream ----------------------------------------------


@dataclass(frozen=True, slots=True)
class EvidenceLimits:
    """Bounds that keep a hostile package (a decompression bomb above all) cheap to refuse."""

    max_unpacked_bytes: int = 16 << 30  # the whole tar, decompressed
    max_members: int = 1_000_000
    max_member_bytes: int = 64 << 20  # every member but records.jsonl, held in memory
    max_line_bytes: int = 16 << 20  # one line of records.jsonl


class _BoundedStream:
    """The decompressed tar, refusing to go past ``limit`` bytes or to read more
    than ``max_read`` at once (tarfile reads pax and long-name headers whole)."""

    def __init__(self, inner: gzip.GzipFile, limit: int, max_read: int) -> None:
        self._inner = inner
        self._limit = limit
        self._max_read = max_read

    def _too_large(self) -> EvidenceUnreadable:
        return EvidenceUnreadable("too_large", f"the package unpacks to more than {self._limit} bytes")

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > self._max_read:
            raise EvidenceUnreadable("too_large", f"a tar header or read of more than {self._max_read} bytes")
        pos = self._inner.tell()
        data = self._inner.read(min(size, self._limit - pos + 1))
        if pos + len(data) > self._limit:
            raise self._too_large()
        return data

    def seek(self, pos: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET and pos > self._limit:
            raise self._too_large()
        return self._inner.seek(pos, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read only")

    def close(self) -> None:
        self._inner.close()


@contextmanager
def _archive_errors() -> Iterator[None]:
    """Decoding failures of the gzip or tar layer become ``corrupt_archive``."""
    try:
        yield
    except EvidenceError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        # ValueError: tarfile on a few malformed headers; a truncated gzip is EOFError.
        raise EvidenceUnreadable("corrupt_archive", f"the gzip'd tar does not decode: {exc}") from None


# --- 1. the archive ---------------------------------------------------------------


@dataclass(slots=True)
class _Archive:
    tar: tarfile.TarFile
    digests: dict[str, str]  # relative path -> sha256 hex, every file
    contents: dict[str, bytes]  # every file but records.jsonl
    records: tarfile.TarInfo | None


def _relative_path(member: tarfile.TarInfo) -> str | None:
    """The member's path inside the package; None for a directory entry."""
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or not _SAFE_PATH.fullmatch(name) or any(p in ("", ".", "..") for p in parts):
        raise EvidenceRejected("unsafe_member", f"member {_show(name)} has an absolute, traversing or unsafe path")
    if parts[0] != PACKAGE_DIR:
        raise EvidenceRejected("unexpected_member", f"member {_show(name)} is outside {PACKAGE_DIR}/")
    rel = "/".join(parts[1:])
    if member.isdir():
        if rel in _DIRECTORIES:
            return None
        raise EvidenceRejected("unexpected_member", f"directory {_show(name)} is not part of the package layout")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise EvidenceRejected("unsafe_member", f"member {_show(name)} is a link, device or other special file")
    if not _LAYOUT.fullmatch(rel):
        raise EvidenceRejected("unexpected_member", f"member {_show(name)} is not part of the package layout")
    return rel


def _open_archive(source: str | os.PathLike[str] | bytes, stack: ExitStack, limits: EvidenceLimits) -> tarfile.TarFile:
    raw: IO[bytes]
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            raw = io.BytesIO(bytes(source))
        else:
            raw = stack.enter_context(open(source, "rb"))  # noqa: SIM115 - closed by the stack
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raise EvidenceUnreadable("unreadable_file", f"cannot read {_show(os.fsdecode(source))}: {exc}") from None
    if magic != b"\x1f\x8b":
        raise EvidenceUnreadable("not_a_package", "not a gzip file (an evidence package is a .tar.gz)")
    max_read = max(limits.max_member_bytes, _CHUNK)
    stream = _BoundedStream(gzip.GzipFile(fileobj=raw, mode="rb"), limits.max_unpacked_bytes, max_read)
    with _archive_errors():
        tar = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed by the stack
    stack.callback(tar.close)
    return tar


def _read_archive(tar: tarfile.TarFile, limits: EvidenceLimits) -> _Archive:
    """1. Walk every member once: check its path and type, hash it, keep the small ones."""
    archive = _Archive(tar, {}, {}, None)
    count = total = 0
    with _archive_errors():
        for member in tar:
            count += 1
            if count > limits.max_members:
                raise EvidenceUnreadable("too_large", f"the package has more than {limits.max_members} members")
            rel = _relative_path(member)
            if rel is None:
                continue
            if rel in archive.digests:
                raise EvidenceRejected("duplicate_member", f"{rel} appears twice in the package", member=rel)
            if member.size < 0:  # base-256 size fields can say so
                raise EvidenceUnreadable("corrupt_archive", f"{rel} has a negative size", member=rel)
            total += member.size
            if total > limits.max_unpacked_bytes or (rel != RECORDS and member.size > limits.max_member_bytes):
                raise EvidenceUnreadable(
                    "too_large", f"{rel} ({member.size} bytes) is past the size limits", member=rel
                )
            data = tar.extractfile(member)
            if data is None:  # pragma: no cover - regular files always have data
                raise EvidenceRejected("unsafe_member", f"{rel} has no data", member=rel)
            digest, chunks = hashlib.sha256(), []
            while chunk := data.read(_CHUNK):
                digest.update(chunk)
                if rel != RECORDS:
                    chunks.append(chunk)
            archive.digests[rel] = digest.hexdigest()
            if rel == RECORDS:
                archive.records = member
            else:
                archive.contents[rel] = b"".join(chunks)
        # Read the gzip stream to its end, so its CRC and length are checked too.
        # Past the tar's end-of-archive block only zero padding may follow:
        # anything else is a damaged header (tarfile stops there silently) or
        # members hidden from this reader but not from others.
        stream = tar.fileobj
        assert stream is not None
        while chunk := stream.read(_CHUNK):
            if chunk.count(0) != len(chunk):
                raise EvidenceUnreadable("corrupt_archive", "data after the end of the tar archive (a damaged header?)")
    return archive


# --- 2. the manifest ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Manifest:
    origin: str
    created_at: str
    from_seq: int
    to_seq: int
    files: dict[str, str]


_MANIFEST_KEYS = frozenset(("format", "chain_format", "origin", "created_at", "from_seq", "to_seq", "files"))


def _is_int(value: Any) -> bool:
    return type(value) is int


def _check_manifest(archive: _Archive) -> _Manifest:
    """2. A known format; every member listed with its SHA-256, none unlisted, none missing."""
    data = archive.contents.get(MANIFEST)
    if data is None:
        raise EvidenceUnreadable("not_a_package", f"no {PACKAGE_DIR}/{MANIFEST}: this is not an evidence package")
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError:
        manifest = None
    if not isinstance(manifest, dict):
        raise EvidenceUnreadable("not_a_package", f"{MANIFEST} is not a JSON object")
    # The version first: another version may well have other fields.
    if manifest.get("format") != EVIDENCE_FORMAT:
        raise EvidenceUnreadable(
            "unsupported_format", f"package format {manifest.get('format')!r} is not {EVIDENCE_FORMAT!r}"
        )
    chain_format = manifest.get("chain_format")
    if not _is_int(chain_format) or chain_format != FORMAT_VERSION:
        raise EvidenceUnreadable(
            "unsupported_format",
            f"chain format {chain_format!r} is not supported (this verifier knows {FORMAT_VERSION})",
        )
    if set(manifest) != _MANIFEST_KEYS:
        raise EvidenceUnreadable(
            "malformed_manifest", f"{MANIFEST} must have exactly the keys {sorted(_MANIFEST_KEYS)}"
        )
    origin, created_at = manifest["origin"], manifest["created_at"]
    a, b, files = manifest["from_seq"], manifest["to_seq"], manifest["files"]
    if not isinstance(origin, str) or not origin or any(c in origin for c in "\n\r\x00"):
        raise EvidenceUnreadable("malformed_manifest", "origin must be a non-empty line")
    if not isinstance(created_at, str) or not _valid_time(created_at):
        raise EvidenceUnreadable("malformed_manifest", "created_at must be an RFC 3339 timestamp")
    if not (_is_int(a) and _is_int(b) and 0 <= a <= b <= _MAX_SEQ - 1):
        raise EvidenceUnreadable(
            "malformed_manifest", "from_seq and to_seq must be integers with 0 <= from_seq <= to_seq"
        )
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and k != MANIFEST and _LAYOUT.fullmatch(k) and isinstance(v, str) and _HEX32.fullmatch(v)
        for k, v in files.items()
    ):
        raise EvidenceUnreadable("malformed_manifest", "files must map package paths to lowercase SHA-256 hex")
    for rel in sorted(archive.digests):
        if rel == MANIFEST:
            continue
        if rel not in files:
            raise EvidenceRejected("unlisted_member", f"{rel} is in the package but not in the manifest", member=rel)
        if files[rel] != archive.digests[rel]:
            raise EvidenceRejected(
                "file_hash_mismatch", f"{rel} does not hash to the manifest's SHA-256: it was altered", member=rel
            )
    for rel in sorted(files):
        if rel not in archive.digests:
            raise EvidenceRejected("missing_member", f"{rel} is in the manifest but not in the package", member=rel)
    for rel in (RECORDS, START, LOG_KEYS):
        if rel not in files:
            raise EvidenceRejected("missing_member", f"the package has no {rel}", member=rel)
    return _Manifest(origin, created_at, a, b, dict(files))


def _valid_time(text: str) -> bool:
    if not _RFC3339.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


# --- start, keys, checkpoint and proof files ----------------------------------------------


def _load_json(archive: _Archive, rel: str, kind: str) -> Any:
    try:
        return orjson.loads(archive.contents[rel])
    except orjson.JSONDecodeError:
        raise EvidenceRejected(kind, f"{rel} is not UTF-8 JSON", member=rel) from None


def _hash_bytes(value: Any) -> bytes | None:
    return bytes.fromhex(value) if isinstance(value, str) and _HEX32.fullmatch(value) else None


def _parse_start(archive: _Archive, manifest: _Manifest) -> tuple[bytes, list[bytes]]:
    start = _load_json(archive, START, "malformed_start")
    if not isinstance(start, dict) or set(start) != {"previous_chain_hash", "left_frontier"}:
        raise EvidenceRejected("malformed_start", f"{START} must hold previous_chain_hash and left_frontier")
    previous = _hash_bytes(start["previous_chain_hash"])
    frontier_hex = start["left_frontier"]
    frontier = [_hash_bytes(h) for h in frontier_hex] if isinstance(frontier_hex, list) else [None]
    if previous is None or any(h is None for h in frontier):
        raise EvidenceRejected("malformed_start", f"{START}: hashes must be lowercase SHA-256 hex")
    a = manifest.from_seq
    if len(frontier) != a.bit_count():
        raise EvidenceRejected(
            "malformed_start", f"the Merkle frontier of tree size {a} has {a.bit_count()} hashes, not {len(frontier)}"
        )
    if a == 0 and previous != genesis_hash(manifest.origin):
        raise EvidenceRejected(
            "genesis_mismatch", f"the chain must start from the genesis value of log {manifest.origin!r}", seq=0
        )
    return previous, [h for h in frontier if h is not None]


_V = TypeVar("_V", NoteVerifier, CosignatureVerifier)


def _key_map(verifiers: Iterable[_V]) -> dict[tuple[str, int], _V]:
    keys: dict[tuple[str, int], _V] = {}
    for v in verifiers:
        if keys.setdefault((v.name, v.key_id), v) != v:
            raise KeyFormatError(f"two different keys are named {v.name}+{v.key_id:08x}")
    return keys


def _trusted_keys(keys: Iterable[str | _V], cls: type[_V]) -> dict[tuple[str, int], _V]:
    """The caller's keys; a malformed one is the caller's error (``KeyFormatError``)."""
    verifiers = [cls.from_vkey(k) if isinstance(k, str) else k for k in keys]
    for v in verifiers:
        if not isinstance(v, cls):
            raise KeyFormatError(f"{v!r} is not a {cls.__name__}")
    if not verifiers:
        raise ValueError("an empty list of trusted keys can verify nothing: pass None to use the package's keys")
    return _key_map(verifiers)


def _package_keys(archive: _Archive, rel: str, cls: type[_V]) -> dict[tuple[str, int], _V]:
    data = archive.contents.get(rel, b"")
    try:
        lines = data.decode("utf-8").split("\n")
        return _key_map(cls.from_vkey(line.strip()) for line in lines if line.strip())
    except (UnicodeDecodeError, KeyFormatError) as exc:
        raise EvidenceRejected("malformed_keys", f"{rel}: {exc}", member=rel) from None


def _checkpoint_files(archive: _Archive) -> dict[int, bytes]:
    notes = {}
    for rel, data in archive.contents.items():
        if match := _CHECKPOINT_NAME.fullmatch(rel):
            notes[int(match.group(1))] = data
    return notes


def _proof_files(archive: _Archive, manifest: _Manifest, sizes: Iterable[int]) -> dict[int, bytes]:
    """The consistency proof for every checkpoint past the records; none other."""
    first = manifest.to_seq + 1
    proofs: dict[int, bytes] = {}
    for rel, data in archive.contents.items():
        if match := _PROOF_NAME.fullmatch(rel):
            size1, size2 = int(match.group(1)), int(match.group(2))
            if size1 != first or size2 <= first or size2 not in sizes:
                raise EvidenceRejected(
                    "unexpected_member",
                    f"{rel} is not a proof from tree size {first} to an included checkpoint",
                    member=rel,
                )
            proofs[size2] = data
    return proofs


# --- 3. the records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Records:
    head_chain_hash: bytes
    root: bytes  # the Merkle root at tree size to_seq + 1
    roots: dict[int, bytes]  # tree size -> root, at checkpoint sizes in [from_seq, to_seq + 1]


def _record_lines(archive: _Archive, limits: EvidenceLimits) -> Iterator[bytes]:
    """The lines of records.jsonl, re-hashed as they are read (the file is read twice)."""
    assert archive.records is not None
    digest = hashlib.sha256()
    with _archive_errors():
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
    leaf, chained = _hash_bytes(row["leaf_hash"]), _hash_bytes(row["chain_hash"])
    if not _is_int(row["seq"]) or not isinstance(row["record"], str) or leaf is None or chained is None:
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
    if not _is_int(record.get("seq")) or record["seq"] != seq:
        raise EvidenceRejected("record_mismatch", f"the record at this seq says seq {record.get('seq')!r}", seq=seq)


def _verify_records(
    lines: Iterator[bytes],
    manifest: _Manifest,
    previous: bytes,
    frontier: list[bytes],
    sizes: set[int],
    limits: EvidenceLimits,
) -> _Records:
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
    return _Records(previous, tree.root(), roots)


# --- 4. checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A verifier key by name and key ID (``<name>+<8 hex digits>``)."""

    name: str
    key_id: str

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id}"


@dataclass(frozen=True, slots=True)
class WitnessCosignature:
    """A witness's verified cosignature of a checkpoint, made at ``timestamp`` (POSIX seconds)."""

    witness: KeyRef
    timestamp: int

    @property
    def time(self) -> str:
        """The timestamp as RFC 3339 UTC (as far as datetime can represent it)."""
        try:
            return datetime.fromtimestamp(self.timestamp, UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return str(self.timestamp)


@dataclass(frozen=True, slots=True)
class CheckpointEvidence:
    """A verified checkpoint and what it proves about the records.

    ``covers_to_seq`` is the last record of the package it commits to (None
    when it is older than the package's first record); ``proof`` says how:
    ``root`` (its root is the records' root at its size), ``consistency``
    (a consistency proof from the records' tree to its) or ``none``.
    """

    size: int
    root_hash: str
    signed_by: tuple[KeyRef, ...]
    cosigned_by: tuple[WitnessCosignature, ...]
    covers_to_seq: int | None
    proof: str


@dataclass(frozen=True, slots=True)
class _Opened:
    checkpoint: Checkpoint
    signed_by: tuple[KeyRef, ...]
    cosigned_by: tuple[WitnessCosignature, ...]


def _open_checkpoint(
    size: int,
    data: bytes,
    origin: str,
    log_keys: dict[tuple[str, int], NoteVerifier],
    witness_keys: dict[tuple[str, int], CosignatureVerifier],
) -> _Opened:
    """4. The log's signature, its origin and size, and the witnesses' cosignatures."""
    rel = f"checkpoints/{size}.note"
    try:
        note = open_note(data, log_keys.values())
    except UnverifiedNoteError as exc:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in exc.unverified) or "nobody"
        raise EvidenceRejected(
            "unknown_key", f"not signed by any trusted log key (signed by {names})", checkpoint=size, member=rel
        ) from None
    except InvalidSignatureError as exc:
        raise EvidenceRejected(
            "bad_signature",
            f"the signature of log key {exc.name}+{exc.key_id:08x} does not verify",
            checkpoint=size,
            member=rel,
        ) from None
    except NoteError as exc:
        raise EvidenceRejected("malformed_checkpoint", str(exc), checkpoint=size, member=rel) from None
    try:
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as exc:
        raise EvidenceRejected("malformed_checkpoint", str(exc), checkpoint=size, member=rel) from None
    if checkpoint.origin != origin:
        raise EvidenceRejected(
            "origin_mismatch",
            f"the checkpoint is of log {checkpoint.origin!r}, not {origin!r}",
            checkpoint=size,
            member=rel,
        )
    if checkpoint.size != size:
        raise EvidenceRejected(
            "checkpoint_name_mismatch",
            f"{rel} holds a checkpoint of tree size {checkpoint.size}",
            checkpoint=size,
            member=rel,
        )
    cosigned = []
    for sig in note.unverified:
        witness = witness_keys.get((sig.name, sig.key_id))
        if witness is None:
            continue  # an unknown cosigner proves nothing and is ignored
        try:
            timestamp = verify_cosignature(note.text, sig.line, witness)
        except NoteError:
            raise EvidenceRejected(
                "bad_cosignature",
                f"the cosignature of witness {sig.name}+{sig.key_id:08x} does not verify",
                checkpoint=size,
                member=rel,
            ) from None
        cosigned.append(WitnessCosignature(KeyRef(sig.name, f"{sig.key_id:08x}"), timestamp))
    signed_by = tuple(KeyRef(s.name, f"{s.key_id:08x}") for s in note.signatures)
    return _Opened(checkpoint, signed_by, tuple(cosigned))


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvidenceReport:
    """What a verified package proves.

    The records ``from_seq..to_seq`` of log ``origin`` are exactly those the
    checkpoints in ``proven_by`` (tree sizes, each >= ``to_seq + 1``) commit
    to, signed by the log's keys (``log_keys_pinned``: the caller's own
    keys, not the package's) and cosigned as each checkpoint says. Records
    are verified as stored: no decryption key is needed, and identifiers
    in them may be encrypted.
    """

    origin: str
    created_at: str
    chain_format: int
    from_seq: int
    to_seq: int
    event_count: int
    head_chain_hash: str
    tree_size: int  # to_seq + 1
    root_hash: str  # the Merkle root at tree_size
    checkpoints: tuple[CheckpointEvidence, ...]
    proven_by: tuple[int, ...]
    log_keys_pinned: bool
    witness_keys_pinned: bool
    decryption_key_needed: bool = False

    @property
    def witnesses(self) -> tuple[KeyRef, ...]:
        """Every witness that cosigned a checkpoint proving the whole range."""
        seen: dict[KeyRef, None] = {}
        for cp in self.checkpoints:
            if cp.size in self.proven_by:
                for c in cp.cosigned_by:
                    seen.setdefault(c.witness, None)
        return tuple(seen)

    def to_json(self) -> dict[str, Any]:
        def key(k: KeyRef) -> dict[str, str]:
            return {"name": k.name, "key_id": k.key_id}

        return {
            "verified": True,
            "origin": self.origin,
            "created_at": self.created_at,
            "chain_format": self.chain_format,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "event_count": self.event_count,
            "head_chain_hash": self.head_chain_hash,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "checkpoints": [
                {
                    "size": cp.size,
                    "root_hash": cp.root_hash,
                    "signed_by": [key(k) for k in cp.signed_by],
                    "cosigned_by": [
                        {**key(c.witness), "timestamp": c.timestamp, "time": c.time} for c in cp.cosigned_by
                    ],
                    "covers_to_seq": cp.covers_to_seq,
                    "proof": cp.proof,
                }
                for cp in self.checkpoints
            ],
            "proven_by": list(self.proven_by),
            "witnesses": [key(k) for k in self.witnesses],
            "log_keys_pinned": self.log_keys_pinned,
            "witness_keys_pinned": self.witness_keys_pinned,
            "decryption_key_needed": self.decryption_key_needed,
        }


# --- the whole verification -----------------------------------------------------------------


def verify_package(
    source: str | os.PathLike[str] | bytes,
    trusted_log_keys: Iterable[str | NoteVerifier] | None = None,
    trusted_witness_keys: Iterable[str | CosignatureVerifier] | None = None,
    *,
    limits: EvidenceLimits | None = None,
) -> EvidenceReport:
    """Verify an evidence package (a path, or the .tar.gz bytes) offline.

    ``trusted_log_keys`` are the auditor's pinned log verifier keys (vkey
    strings or ``NoteVerifier``), obtained out of band; without them the
    package's own ``keys/log.vkeys`` are used and the report says the keys
    were not pinned. ``trusted_witness_keys`` likewise for witnesses.

    Returns an ``EvidenceReport``; raises ``EvidenceRejected`` (the package
    does not prove what it claims) or ``EvidenceUnreadable`` (it could not
    be verified), and ``KeyFormatError``/``ValueError`` for a malformed
    trusted key.
    """
    limits = limits or EvidenceLimits()
    pinned_log = None if trusted_log_keys is None else _trusted_keys(trusted_log_keys, NoteVerifier)
    pinned_witnesses = (
        None if trusted_witness_keys is None else _trusted_keys(trusted_witness_keys, CosignatureVerifier)
    )
    with ExitStack() as stack:
        # 1. The archive, 2. the manifest.
        archive = _read_archive(_open_archive(source, stack, limits), limits)
        manifest = _check_manifest(archive)
        a, b = manifest.from_seq, manifest.to_seq
        previous, frontier = _parse_start(archive, manifest)
        notes = _checkpoint_files(archive)
        proofs = _proof_files(archive, manifest, notes)
        # 3. The records, with the Merkle roots at every checkpoint size they reach.
        sizes = {s for s in notes if a <= s <= b + 1}
        records = _verify_records(_record_lines(archive, limits), manifest, previous, frontier, sizes, limits)
    # 4. The checkpoints' signatures, origin and size; cosignatures.
    log_keys = pinned_log if pinned_log is not None else _package_keys(archive, LOG_KEYS, NoteVerifier)
    witness_keys = (
        pinned_witnesses if pinned_witnesses is not None else _package_keys(archive, WITNESS_KEYS, CosignatureVerifier)
    )
    opened = {s: _open_checkpoint(s, notes[s], manifest.origin, log_keys, witness_keys) for s in sorted(notes)}
    evidence = []
    for size, cp in opened.items():
        root = cp.checkpoint.root_hash
        # 5. A checkpoint inside the records' range has their root at its size.
        if size in records.roots:
            if records.roots[size] != root:
                lo = max((s for s in opened if a < s < size), default=a)
                where = (
                    f"a record in seq {lo}..{size - 1} was altered, inserted or removed"
                    if size > a
                    else f"the left_frontier in {START} is not the signed tree's"
                )
                raise EvidenceRejected(
                    "root_mismatch",
                    f"the records' Merkle root at tree size {size} is {records.roots[size].hex()}, the signed "
                    f"checkpoint says {root.hex()}: {where}",
                    checkpoint=size,
                )
            proof = "root" if size > a else "none"
        # 6. A later checkpoint extends the records' tree, by a consistency proof.
        elif size > b + 1:
            _check_consistency(b + 1, size, proofs.get(size), records.root, root)
            proof = "consistency"
        else:
            proof = "none"  # older than the first record: nothing here to check it against
        covers = min(size, b + 1) - 1 if size > a else None
        evidence.append(CheckpointEvidence(size, root.hex(), cp.signed_by, cp.cosigned_by, covers, proof))
    # 7. Something signed must commit to the last record.
    proven_by = tuple(cp.size for cp in evidence if cp.size >= b + 1)
    if not proven_by:
        first = max((cp.size for cp in evidence if cp.size > a), default=a)
        raise EvidenceRejected(
            "unproven",
            f"the records are self-consistent, but no signed checkpoint commits to seq {first}..{b} "
            f"(the package needs a checkpoint of tree size {b + 1} or more)",
            seq=first,
        )
    return EvidenceReport(
        origin=manifest.origin,
        created_at=manifest.created_at,
        chain_format=FORMAT_VERSION,
        from_seq=a,
        to_seq=b,
        event_count=b - a + 1,
        head_chain_hash=records.head_chain_hash.hex(),
        tree_size=b + 1,
        root_hash=records.root.hex(),
        checkpoints=tuple(evidence),
        proven_by=proven_by,
        log_keys_pinned=pinned_log is not None,
        witness_keys_pinned=pinned_witnesses is not None,
    )


def _check_consistency(size1: int, size2: int, data: bytes | None, root1: bytes, root2: bytes) -> None:
    rel = f"proofs/consistency-{size1}-{size2}.json"
    if data is None:
        raise EvidenceRejected(
            "missing_proof", f"no {rel} to link the records to the checkpoint of tree size {size2}", checkpoint=size2
        )
    try:
        proof = orjson.loads(data)
    except orjson.JSONDecodeError:
        proof = None
    hashes = proof.get("hashes") if isinstance(proof, dict) else None
    nodes = [_hash_bytes(h) for h in hashes] if isinstance(hashes, list) else [None]
    if (
        not isinstance(proof, dict)
        or set(proof) != {"first", "second", "hashes"}
        or not (
            _is_int(proof["first"])
            and proof["first"] == size1
            and _is_int(proof["second"])
            and proof["second"] == size2
        )
        or any(h is None for h in nodes)
    ):
        raise EvidenceRejected(
            "malformed_proof",
            f"{rel} must be {{first: {size1}, second: {size2}, hashes: [hex...]}}",
            checkpoint=size2,
            member=rel,
        )
    try:
        verify_consistency(size1, size2, [h for h in nodes if h is not None], root1, root2)
    except ProofError as exc:
        raise EvidenceRejected(
            "consistency_failure",
            f"the records' tree of size {size1} is not a prefix of the checkpoint's tree of size {size2}: {exc}",
            checkpoint=size2,
            member=rel,
        ) from None
