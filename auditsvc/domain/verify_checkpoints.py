"""Checkpoints in full verification (steps 7 to 9 of ``domain/verify.py``).

What the rows are checked against: the signed checkpoints stored with the
log and ``external`` ones an auditor kept elsewhere (``CheckpointClaim``),
their signatures (``check_signatures``), the running Merkle root at each
claimed size as the rows stream past (``CheckpointRoots``), and the state a
verification saves to resume from its last matching checkpoint
(``ResumeState``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auditsvc_sdk.merkle import CompactRange
from auditsvc_sdk.note import NoteError, NoteVerifier, open_checkpoint

from .verify_range import Damage

CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
CHECKPOINTS_INCONSISTENT = "checkpoints_inconsistent"
CHECKPOINT_SIGNATURE = "checkpoint_signature_invalid"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"
STATE_MISMATCH = "resume_state_mismatch"


@dataclass(frozen=True)
class CheckpointClaim:
    """A signed checkpoint to check the rows against."""

    tree_size: int
    root_hash: bytes
    note: str
    external: bool  # kept outside the database (the auditor's copy)


@dataclass(frozen=True)
class ResumeState:
    """Where an earlier verification stopped: at a checkpoint it verified."""

    origin: str
    tree_size: int
    chain_hash: bytes
    frontier: tuple[bytes, ...]
    root_hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "auditsvc-verify-state/v1",
            "origin": self.origin,
            "tree_size": self.tree_size,
            "chain_hash": self.chain_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "frontier": [h.hex() for h in self.frontier],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResumeState:
        if data.get("format") != "auditsvc-verify-state/v1":
            raise ValueError("not an auditsvc verification state (format auditsvc-verify-state/v1)")
        try:
            state = cls(
                str(data["origin"]),
                int(data["tree_size"]),
                bytes.fromhex(data["chain_hash"]),
                tuple(bytes.fromhex(h) for h in data["frontier"]),
                bytes.fromhex(data["root_hash"]),
            )
            if CompactRange.from_frontier(state.tree_size, state.frontier).root() != state.root_hash:
                raise ValueError("its frontier does not hash to its root")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed verification state: {exc}") from None
        return state


def check_signatures(claims: Iterable[CheckpointClaim], origin: str, vkeys: Iterable[str]) -> Damage | None:
    """Every claim's note is signed by one of ``vkeys`` and names ``origin``."""
    verifiers = []
    for vkey in vkeys:
        with contextlib.suppress(NoteError):
            verifiers.append(NoteVerifier.from_vkey(vkey))
    for claim in claims:
        try:
            cp, _ = open_checkpoint(claim.note, verifiers, origin=origin)
        except NoteError as exc:
            where = "external" if claim.external else "stored"
            return Damage(claim.tree_size, CHECKPOINT_SIGNATURE, f"{where} checkpoint of size {claim.tree_size}: {exc}")
        if (cp.size, cp.root_hash) != (claim.tree_size, claim.root_hash):
            return Damage(claim.tree_size, CHECKPOINT_SIGNATURE, "a stored checkpoint's columns differ from its note")
    return None


class CheckpointRoots:
    """Compares the running Merkle root with each claimed checkpoint as the
    rows stream past, remembering the last size that matched."""

    def __init__(self, claims: Iterable[CheckpointClaim], start: int) -> None:
        self.by_size: dict[int, list[CheckpointClaim]] = {}
        for claim in claims:
            if claim.tree_size >= start:
                self.by_size.setdefault(claim.tree_size, []).append(claim)
        self.matched = start
        self.good: list[int] = []
        self.bad: list[tuple[CheckpointClaim, bytes]] = []
        self.snapshot: tuple[int, bytes, tuple[bytes, ...], bytes] | None = None

    def at(self, size: int, tree: CompactRange, chain: bytes) -> None:
        root = tree.root()
        wrong = [claim for claim in self.by_size[size] if claim.root_hash != root]
        self.bad.extend((claim, root) for claim in wrong)
        if not wrong:
            self.good.append(size)
            if len(self.bad) == 0:
                self.matched = size
                self.snapshot = (size, chain, tree.frontier, root)

    def resume_state(self, origin: str) -> ResumeState | None:
        """The state at the last checkpoint the rows matched (before any mismatch)."""
        if self.snapshot is None:
            return None
        size, chain, frontier, root = self.snapshot
        return ResumeState(origin, size, chain, frontier, root)

    def damage(self, rows: int) -> Damage | None:
        if self.bad:
            claim, root = self.bad[0]
            if not claim.external and any(size > claim.tree_size for size in self.good):
                return Damage(
                    self.matched,
                    CHECKPOINTS_INCONSISTENT,
                    f"the checkpoint of size {claim.tree_size} (root {claim.root_hash.hex()}) is contradicted by a "
                    f"later signed checkpoint, which the rows match (root here {root.hex()})",
                )
            where = "an external" if claim.external else "a stored"
            return Damage(
                self.matched,
                REWRITTEN if claim.external else CHECKPOINT_ROOT_MISMATCH,
                f"the first {claim.tree_size} rows hash to root {root.hex()}, but {where} checkpoint of that size "
                f"says {claim.root_hash.hex()}: rows were rewritten (the first difference is at or after seq "
                f"{self.matched}, before seq {claim.tree_size})",
            )
        beyond = sorted(size for size in self.by_size if size > rows)
        if beyond:
            claim = self.by_size[beyond[-1]][0]
            where = "an external" if claim.external else "a stored"
            return Damage(
                rows,
                TRUNCATED,
                f"{where} checkpoint commits to {claim.tree_size} events but the log holds {rows}: the tail is gone",
            )
        return None
