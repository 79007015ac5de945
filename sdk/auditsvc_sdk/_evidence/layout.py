"""The package layout (members, names, formats) and the limits a reader holds a package to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

EVIDENCE_FORMAT = "auditsvc-evidence/v1"
PACKAGE_DIR = "auditsvc-evidence"

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
START = "start.json"
LOG_KEYS = "keys/log.vkeys"
WITNESS_KEYS = "keys/witnesses.vkeys"

SIZE = r"(0|[1-9][0-9]{0,19})"
CHECKPOINT_NAME = re.compile(rf"checkpoints/{SIZE}\.note")
PROOF_NAME = re.compile(rf"proofs/consistency-{SIZE}-{SIZE}\.json")
LAYOUT = re.compile(
    rf"manifest\.json|records\.jsonl|start\.json|keys/(log|witnesses)\.vkeys"
    rf"|checkpoints/{SIZE}\.note|proofs/consistency-{SIZE}-{SIZE}\.json"
)
DIRECTORIES = frozenset(("", "checkpoints", "proofs", "keys"))
SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]{1,255}")
HEX32 = re.compile(r"[0-9a-f]{64}")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
MAX_SEQ = (1 << 63) - 1
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class EvidenceLimits:
    """Bounds that keep a hostile package (a decompression bomb above all) cheap to refuse."""

    max_unpacked_bytes: int = 16 << 30  # the whole tar, decompressed
    max_members: int = 1_000_000
    max_member_bytes: int = 64 << 20  # every member but records.jsonl, held in memory
    max_line_bytes: int = 16 << 20  # one line of records.jsonl


def is_int(value: Any) -> bool:
    return type(value) is int


def hash_bytes(value: Any) -> bytes | None:
    return bytes.fromhex(value) if isinstance(value, str) and HEX32.fullmatch(value) else None
