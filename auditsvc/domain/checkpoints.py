"""Signed checkpoints: made every N events or T seconds and on demand, never
inconsistent with one signed before, and published outside the database.

A checkpoint is a C2SP ``tlog-checkpoint`` body (origin, tree size, base64
root hash) in C2SP ``signed-note`` form, signed with the log's Ed25519 key.
Before signing size N, the service proves (RFC 9162 consistency proof,
checked with the SDK's verifier) that the tree of N extends the last tree it
signed; if the stored data no longer agrees — rows rewritten or removed —
it refuses and says so, and signs nothing.

Publication (``sinks.py``) happens after the checkpoint is committed: a
directory, a webhook, and witnesses that cosign it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from auditsvc_sdk.merkle import ProofError, verify_consistency
from auditsvc_sdk.note import Checkpoint, sign_note

from ..keys import CheckpointSigner
from ..store import tree as store
from ..store.events import committed_size
from ..store.locks import CHECKPOINT_LOCK_CLASS, try_xact_lock, xact_lock
from ..store.session import Connection
from .tree import consistency_proof, extend_stored_tree, root_at

log = logging.getLogger("auditsvc.checkpoints")


class CheckpointRefused(RuntimeError):
    """The stored log does not extend the last signed checkpoint: the service
    will not sign (this is evidence of tampering or a bad restore)."""


@dataclass(frozen=True)
class SignedCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str
    created: bool  # False: the latest checkpoint already had this size


async def make_checkpoint(
    conn: Connection, log_id: int, origin: str, signer: CheckpointSigner, *, wait: bool = True
) -> SignedCheckpoint | None:
    """Sign a checkpoint of the committed log (or return the latest when the
    log has not grown). ``wait=False``: None when another process is signing."""
    await extend_stored_tree(conn, log_id, wait=wait)
    async with conn.transaction():
        if wait:
            await xact_lock(conn, CHECKPOINT_LOCK_CLASS, log_id)
        elif not await try_xact_lock(conn, CHECKPOINT_LOCK_CLASS, log_id):
            return None
        size = await committed_size(conn, log_id)
        latest = await store.latest_checkpoint(conn, log_id)
        if latest is not None and latest.tree_size == size:
            return SignedCheckpoint(latest.tree_size, latest.root_hash, latest.note, created=False)
        if latest is not None and latest.tree_size > size:
            raise CheckpointRefused(
                f"the log holds {size} events but the service signed a checkpoint of {latest.tree_size}: "
                "rows were removed; refusing to sign"
            )
        root = await root_at(conn, log_id, size)
        if latest is not None:
            proof = await consistency_proof(conn, log_id, latest.tree_size, size)
            try:
                verify_consistency(latest.tree_size, size, proof, latest.root_hash, root)
            except ProofError as exc:
                raise CheckpointRefused(
                    f"the stored log is not consistent with the checkpoint of size {latest.tree_size} "
                    f"signed before ({exc}); refusing to sign"
                ) from None
        key = signer.current()
        note = sign_note(Checkpoint(origin, size, root).body(), [key])
        await store.register_verifier_key(conn, log_id, key.name, key.key_id, key.vkey)
        await store.insert_checkpoint(conn, log_id, size, root, note, key.vkey)
    log.info("signed checkpoint of tree size %d with key %s+%08x", size, key.name, key.key_id)
    return SignedCheckpoint(size, root, note, created=True)


async def checkpoint_due(conn: Connection, log_id: int, every_events: int, interval_seconds: float, now: float) -> bool:
    """Whether the log grew by ``every_events`` since the latest checkpoint,
    or grew at all and ``interval_seconds`` passed by ``now`` (Unix seconds)."""
    size = await committed_size(conn, log_id)
    latest = await store.latest_checkpoint(conn, log_id)
    if latest is None:
        return True  # even the empty tree: it dates the start of the log
    if size <= latest.tree_size:
        return False
    age = now - latest.created_at.timestamp()
    return size - latest.tree_size >= every_events or age >= interval_seconds


async def published_note(conn: Connection, log_id: int, tree_size: int | None = None) -> str | None:
    """The signed note of the latest checkpoint (or of ``tree_size``) with
    the witnesses' cosignature lines appended."""
    cp = (
        await store.latest_checkpoint(conn, log_id)
        if tree_size is None
        else await store.checkpoint_at(conn, log_id, tree_size)
    )
    if cp is None:
        return None
    extra = [line for _, line in await store.cosignatures(conn, log_id, cp.tree_size)]
    return cp.note + "".join(line if line.endswith("\n") else line + "\n" for line in extra)
