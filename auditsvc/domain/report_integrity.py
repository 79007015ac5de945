"""The integrity statement of a report document (PDF): which signed
checkpoint it was checked against, and that every event it lists is in it.

Policy: the document is checked against a checkpoint signed *when it is
made*, after the report's own audit event is committed, so the checkpoint
covers every event listed (there is no "not yet covered" remainder to
explain). For each listed event the leaf hash is recomputed from the record
as stored (RFC 8785 bytes), its inclusion proof fetched and verified against
the checkpoint's root, and the checkpoint's signature verified with the
service's verifier key. Any failure stops the document: a privacy officer
never sends a statement the service could not check (409).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from auditsvc_sdk.chain import canonical_json, leaf_hash
from auditsvc_sdk.merkle import ProofError, verify_inclusion
from auditsvc_sdk.note import NoteError, open_checkpoint, verifier_from_vkey

from ..runtime import AuditLog
from ..store import disclosures as queries
from ..store.session import driver_connection
from .checkpoints import CheckpointRefused
from .errors import Conflict
from .tree import inclusion_proofs


@dataclass(frozen=True)
class IntegrityStatement:
    origin: str
    tree_size: int
    root_hash_hex: str
    key_name: str
    key_id_hex: str
    note: str
    events_checked: int
    checked_at: datetime


async def check_listed_events(audit: AuditLog, seqs: Sequence[int]) -> IntegrityStatement:
    """Sign a checkpoint now and prove every event in ``seqs`` is included in it."""
    try:
        checkpoint = await audit.checkpointer.checkpoint_now()
    except CheckpointRefused as exc:
        raise Conflict(f"the report cannot be certified: {exc}") from None
    key = audit.checkpointer.signer.current()
    try:
        signed, _ = open_checkpoint(checkpoint.note, [verifier_from_vkey(key.vkey)], origin=audit.log_name)
    except NoteError as exc:
        raise Conflict(f"the checkpoint signed for this report does not verify: {exc}") from None
    wanted = sorted(set(seqs))
    async with driver_connection(audit.engine) as conn:
        records = await queries.records_by_seq(conn, audit.log_id, wanted)
        proofs = await inclusion_proofs(conn, audit.log_id, wanted, signed.size)
    for seq in wanted:
        if seq not in records:
            raise Conflict(f"event seq {seq} listed in the report is missing from the log")
        stored = records[seq]
        leaf = leaf_hash(canonical_json(stored if isinstance(stored, dict) else json.loads(stored)))
        stored_leaf, proof = proofs[seq]
        try:
            if stored_leaf != leaf:
                raise ProofError("the stored leaf hash does not match the record")
            verify_inclusion(leaf, seq, signed.size, proof, signed.root_hash)
        except ProofError as exc:
            raise Conflict(f"event seq {seq} is not proven included in the checkpoint: {exc}") from None
    return IntegrityStatement(
        origin=signed.origin,
        tree_size=signed.size,
        root_hash_hex=signed.root_hash.hex(),
        key_name=key.name,
        key_id_hex=f"{key.key_id:08x}",
        note=checkpoint.note,
        events_checked=len(wanted),
        checked_at=datetime.now(UTC),
    )
