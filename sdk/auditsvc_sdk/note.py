"""Signed checkpoints, as a public surface (docs/chain-format.md §12-§13).

C2SP ``signed-note`` with Ed25519 signers and verifiers, C2SP
``tlog-checkpoint`` bodies, and witness cosignatures (C2SP ``tlog-cosignature``).
Every failure is a ``NoteError``.
"""

from __future__ import annotations

from ._note import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    open_note,
    sign_note,
    verifier_from_vkey,
    verify_cosignature,
)

__all__ = [
    "Checkpoint",
    "CosignatureSigner",
    "CosignatureVerifier",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "open_checkpoint",
    "open_note",
    "sign_note",
    "verifier_from_vkey",
    "verify_cosignature",
]
