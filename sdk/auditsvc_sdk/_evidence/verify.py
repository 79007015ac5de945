"""The whole verification, step by step (the steps are in the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import ExitStack

from .._chain import FORMAT_VERSION
from .._note import (
    CosignatureVerifier,
    NoteVerifier,
)
from .layout import (
    LOG_KEYS,
    WITNESS_KEYS,
    EvidenceLimits,
)
from .report import EvidenceReport
from .step1_archive import open_archive, read_archive
from .step2_members import (
    check_manifest,
    checkpoint_files,
    package_keys,
    parse_start,
    proof_files,
    trusted_keys,
)
from .step3_records import record_lines, verify_records
from .step4_checkpoints import open_checkpoint
from .step5_7_proofs import prove


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
    pinned_log = None if trusted_log_keys is None else trusted_keys(trusted_log_keys, NoteVerifier)
    pinned_witnesses = None if trusted_witness_keys is None else trusted_keys(trusted_witness_keys, CosignatureVerifier)
    with ExitStack() as stack:
        # 1. The archive, 2. the manifest.
        archive = read_archive(open_archive(source, stack, limits), limits)
        manifest = check_manifest(archive)
        a, b = manifest.from_seq, manifest.to_seq
        previous, frontier = parse_start(archive, manifest)
        notes = checkpoint_files(archive)
        proofs = proof_files(archive, manifest, notes)
        # 3. The records, with the Merkle roots at every checkpoint size they reach.
        sizes = {s for s in notes if a <= s <= b + 1}
        records = verify_records(record_lines(archive, limits), manifest, previous, frontier, sizes, limits)
    # 4. The checkpoints' signatures, origin and size; cosignatures.
    log_keys = pinned_log if pinned_log is not None else package_keys(archive, LOG_KEYS, NoteVerifier)
    witness_keys = (
        pinned_witnesses if pinned_witnesses is not None else package_keys(archive, WITNESS_KEYS, CosignatureVerifier)
    )
    opened = {s: open_checkpoint(s, notes[s], manifest.origin, log_keys, witness_keys) for s in sorted(notes)}
    # 5-7. What they prove: roots, consistency, and that something signed covers the end.
    evidence, proven_by = prove(opened, records, manifest, proofs)
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
        checkpoints=evidence,
        proven_by=proven_by,
        log_keys_pinned=pinned_log is not None,
        witness_keys_pinned=pinned_witnesses is not None,
    )
