"""5. Roots, 6. consistency, 7. proven: what the verified checkpoints prove
about the records."""

from __future__ import annotations

import orjson

from .._merkle import ProofError, verify_consistency
from .errors import EvidenceRejected
from .layout import (
    START,
    hash_bytes,
    is_int,
)
from .report import CheckpointEvidence
from .step2_members import (
    Manifest,
)
from .step3_records import Records
from .step4_checkpoints import Opened


def prove(
    opened: dict[int, Opened], records: Records, manifest: Manifest, proofs: dict[int, bytes]
) -> tuple[tuple[CheckpointEvidence, ...], tuple[int, ...]]:
    """5-7 for every opened checkpoint, in size order: what each proves, and
    the sizes of those that commit to the whole range."""
    a, b = manifest.from_seq, manifest.to_seq
    evidence = []
    for size, cp in opened.items():
        root = cp.checkpoint.root_hash
        # 5. A checkpoint inside the records' range has their root at its size.
        if size in records.roots:
            _check_root(size, records.roots[size], root, opened, a)
            proof = "root" if size > a else "none"
        # 6. A later checkpoint extends the records' tree, by a consistency proof.
        elif size > b + 1:
            check_consistency(b + 1, size, proofs.get(size), records.root, root)
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
    return tuple(evidence), proven_by


def _check_root(size: int, ours: bytes, signed: bytes, opened: dict[int, Opened], a: int) -> None:
    """5. The records' root at ``size`` is the signed one; else the damage lies
    after the last smaller checkpoint (or in the start frontier)."""
    if ours == signed:
        return
    lo = max((s for s in opened if a < s < size), default=a)
    where = (
        f"a record in seq {lo}..{size - 1} was altered, inserted or removed"
        if size > a
        else f"the left_frontier in {START} is not the signed tree's"
    )
    raise EvidenceRejected(
        "root_mismatch",
        f"the records' Merkle root at tree size {size} is {ours.hex()}, the signed "
        f"checkpoint says {signed.hex()}: {where}",
        checkpoint=size,
    )


def check_consistency(size1: int, size2: int, data: bytes | None, root1: bytes, root2: bytes) -> None:
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
    nodes = [hash_bytes(h) for h in hashes] if isinstance(hashes, list) else [None]
    if (
        not isinstance(proof, dict)
        or set(proof) != {"first", "second", "hashes"}
        or not (
            is_int(proof["first"]) and proof["first"] == size1 and is_int(proof["second"]) and proof["second"] == size2
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
