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

Steps, numbered as the modules of this package that take them
(``step1_archive`` ... ``step5_7_proofs``, run in order by ``verify.verify_package``):

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

from .errors import EvidenceError, EvidenceRejected, EvidenceUnreadable
from .layout import EVIDENCE_FORMAT, PACKAGE_DIR, EvidenceLimits
from .report import CheckpointEvidence, EvidenceReport
from .step4_checkpoints import KeyRef, WitnessCosignature
from .verify import verify_package

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
