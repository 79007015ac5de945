"""What a verified package proves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .step4_checkpoints import KeyRef, WitnessCosignature


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
