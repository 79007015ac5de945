"""2. The manifest (a known format; every member listed with its SHA-256),
then the small members: start, keys, checkpoint notes and proofs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from .._chain import FORMAT_VERSION, genesis_hash
from .._note import (
    CosignatureVerifier,
    KeyFormatError,
    NoteVerifier,
)
from .errors import EvidenceRejected, EvidenceUnreadable
from .layout import (
    CHECKPOINT_NAME,
    EVIDENCE_FORMAT,
    HEX32,
    LAYOUT,
    LOG_KEYS,
    MANIFEST,
    MAX_SEQ,
    PACKAGE_DIR,
    PROOF_NAME,
    RECORDS,
    RFC3339,
    START,
    hash_bytes,
    is_int,
)
from .step1_archive import Archive


@dataclass(frozen=True, slots=True)
class Manifest:
    origin: str
    created_at: str
    from_seq: int
    to_seq: int
    files: dict[str, str]


_MANIFEST_KEYS = frozenset(("format", "chain_format", "origin", "created_at", "from_seq", "to_seq", "files"))


def check_manifest(archive: Archive) -> Manifest:
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
    if not is_int(chain_format) or chain_format != FORMAT_VERSION:
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
    if not (is_int(a) and is_int(b) and 0 <= a <= b <= MAX_SEQ - 1):
        raise EvidenceUnreadable(
            "malformed_manifest", "from_seq and to_seq must be integers with 0 <= from_seq <= to_seq"
        )
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and k != MANIFEST and LAYOUT.fullmatch(k) and isinstance(v, str) and HEX32.fullmatch(v)
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
    return Manifest(origin, created_at, a, b, dict(files))


def _valid_time(text: str) -> bool:
    if not RFC3339.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


# --- start, keys, checkpoint and proof files ----------------------------------------------


def load_json(archive: Archive, rel: str, kind: str) -> Any:
    try:
        return orjson.loads(archive.contents[rel])
    except orjson.JSONDecodeError:
        raise EvidenceRejected(kind, f"{rel} is not UTF-8 JSON", member=rel) from None


def parse_start(archive: Archive, manifest: Manifest) -> tuple[bytes, list[bytes]]:
    start = load_json(archive, START, "malformed_start")
    if not isinstance(start, dict) or set(start) != {"previous_chain_hash", "left_frontier"}:
        raise EvidenceRejected("malformed_start", f"{START} must hold previous_chain_hash and left_frontier")
    previous = hash_bytes(start["previous_chain_hash"])
    frontier_hex = start["left_frontier"]
    frontier = [hash_bytes(h) for h in frontier_hex] if isinstance(frontier_hex, list) else [None]
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


def trusted_keys(keys: Iterable[str | _V], cls: type[_V]) -> dict[tuple[str, int], _V]:
    """The caller's keys; a malformed one is the caller's error (``KeyFormatError``)."""
    verifiers = [cls.from_vkey(k) if isinstance(k, str) else k for k in keys]
    for v in verifiers:
        if not isinstance(v, cls):
            raise KeyFormatError(f"{v!r} is not a {cls.__name__}")
    if not verifiers:
        raise ValueError("an empty list of trusted keys can verify nothing: pass None to use the package's keys")
    return _key_map(verifiers)


def package_keys(archive: Archive, rel: str, cls: type[_V]) -> dict[tuple[str, int], _V]:
    data = archive.contents.get(rel, b"")
    try:
        lines = data.decode("utf-8").split("\n")
        return _key_map(cls.from_vkey(line.strip()) for line in lines if line.strip())
    except (UnicodeDecodeError, KeyFormatError) as exc:
        raise EvidenceRejected("malformed_keys", f"{rel}: {exc}", member=rel) from None


def checkpoint_files(archive: Archive) -> dict[int, bytes]:
    notes = {}
    for rel, data in archive.contents.items():
        if match := CHECKPOINT_NAME.fullmatch(rel):
            notes[int(match.group(1))] = data
    return notes


def proof_files(archive: Archive, manifest: Manifest, sizes: Iterable[int]) -> dict[int, bytes]:
    """The consistency proof for every checkpoint past the records; none other."""
    first = manifest.to_seq + 1
    proofs: dict[int, bytes] = {}
    for rel, data in archive.contents.items():
        if match := PROOF_NAME.fullmatch(rel):
            size1, size2 = int(match.group(1)), int(match.group(2))
            if size1 != first or size2 <= first or size2 not in sizes:
                raise EvidenceRejected(
                    "unexpected_member",
                    f"{rel} is not a proof from tree size {first} to an included checkpoint",
                    member=rel,
                )
            proofs[size2] = data
    return proofs
