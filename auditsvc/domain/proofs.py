"""What the checkpoint and proof endpoints answer, for the thin routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..runtime import AuditLog
from ..store import tree as store
from ..store.session import driver_connection
from .checkpoints import CheckpointRefused, published_note
from .errors import Conflict, InvalidInput, NotFound
from .tree import TreeRangeError, consistency_proof, inclusion_proof


async def latest_note(audit: AuditLog, tree_size: int | None = None) -> str:
    async with driver_connection(audit.engine) as conn:
        note = await published_note(conn, audit.log_id, tree_size)
    if note is None:
        what = "no checkpoint has been signed yet" if tree_size is None else f"no checkpoint of tree size {tree_size}"
        raise NotFound(what)
    return note


def verifier_key(audit: AuditLog) -> str:
    return audit.checkpointer.signer.current().vkey


async def all_verifier_keys(audit: AuditLog) -> list[str]:
    async with driver_connection(audit.engine) as conn:
        keys = await store.verifier_keys(conn, audit.log_id)
    current = verifier_key(audit)
    return keys if current in keys else [*keys, current]


async def sign_now(audit: AuditLog) -> str:
    try:
        cp = await audit.checkpointer.checkpoint_now()
    except CheckpointRefused as exc:
        raise Conflict(str(exc)) from None
    return await latest_note(audit, cp.tree_size)


@dataclass(frozen=True)
class CheckpointSummary:
    """The latest signed checkpoint as the auditor page shows it."""

    tree_size: int
    root_hash: str  # hex
    signed_at: datetime
    vkey: str  # the key that signed it
    note: str  # the signed note with the witnesses' cosignature lines
    witnesses: list[tuple[str, datetime]]  # (name, when its cosignature came)


async def latest_checkpoint_summary(audit: AuditLog) -> CheckpointSummary | None:
    """The latest checkpoint, its note and its witnesses; None before the first."""
    async with driver_connection(audit.engine) as conn:
        cp = await store.latest_checkpoint(conn, audit.log_id)
        if cp is None:
            return None
        note = await published_note(conn, audit.log_id, cp.tree_size)
        witnesses = await store.cosignature_receipts(conn, audit.log_id, cp.tree_size)
    return CheckpointSummary(cp.tree_size, cp.root_hash.hex(), cp.created_at, cp.vkey, note or cp.note, witnesses)


async def _default_size(audit: AuditLog, tree_size: int | None) -> int:
    if tree_size is not None:
        return tree_size
    async with driver_connection(audit.engine) as conn:
        latest = await store.latest_checkpoint(conn, audit.log_id)
    if latest is None:
        raise NotFound("no checkpoint has been signed yet: pass tree_size")
    return latest.tree_size


async def inclusion(audit: AuditLog, seq: int, tree_size: int | None) -> dict[str, Any]:
    size = await _default_size(audit, tree_size)
    try:
        async with driver_connection(audit.engine) as conn:
            leaf, proof = await inclusion_proof(conn, audit.log_id, seq, size)
    except TreeRangeError as exc:
        raise InvalidInput(str(exc), [{"loc": ["query", "seq"], "msg": str(exc), "type": "value_error"}]) from None
    return {"seq": seq, "tree_size": size, "leaf_hash": leaf.hex(), "hashes": [h.hex() for h in proof]}


async def consistency(audit: AuditLog, first: int, second: int | None) -> dict[str, Any]:
    size = await _default_size(audit, second)
    try:
        async with driver_connection(audit.engine) as conn:
            proof = await consistency_proof(conn, audit.log_id, first, size)
    except TreeRangeError as exc:
        raise InvalidInput(str(exc), [{"loc": ["query", "first"], "msg": str(exc), "type": "value_error"}]) from None
    return {"first": first, "second": size, "hashes": [h.hex() for h in proof]}
