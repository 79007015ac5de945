"""4. The checkpoints: the log's signature, origin and size, and the
witnesses' cosignatures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .._note import (
    Checkpoint,
    CosignatureVerifier,
    InvalidSignatureError,
    NoteError,
    NoteVerifier,
    UnverifiedNoteError,
    open_note,
    verify_cosignature,
)
from .errors import EvidenceRejected


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A verifier key by name and key ID (``<name>+<8 hex digits>``)."""

    name: str
    key_id: str

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id}"


@dataclass(frozen=True, slots=True)
class WitnessCosignature:
    """A witness's verified cosignature of a checkpoint, made at ``timestamp`` (POSIX seconds)."""

    witness: KeyRef
    timestamp: int

    @property
    def time(self) -> str:
        """The timestamp as RFC 3339 UTC (as far as datetime can represent it)."""
        try:
            return datetime.fromtimestamp(self.timestamp, UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return str(self.timestamp)


@dataclass(frozen=True, slots=True)
class Opened:
    checkpoint: Checkpoint
    signed_by: tuple[KeyRef, ...]
    cosigned_by: tuple[WitnessCosignature, ...]


def open_checkpoint(
    size: int,
    data: bytes,
    origin: str,
    log_keys: dict[tuple[str, int], NoteVerifier],
    witness_keys: dict[tuple[str, int], CosignatureVerifier],
) -> Opened:
    """4. The log's signature, its origin and size, and the witnesses' cosignatures."""
    rel = f"checkpoints/{size}.note"
    try:
        note = open_note(data, log_keys.values())
    except UnverifiedNoteError as exc:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in exc.unverified) or "nobody"
        raise EvidenceRejected(
            "unknown_key", f"not signed by any trusted log key (signed by {names})", checkpoint=size, member=rel
        ) from None
    except InvalidSignatureError as exc:
        raise EvidenceRejected(
            "bad_signature",
            f"the signature of log key {exc.name}+{exc.key_id:08x} does not verify",
            checkpoint=size,
            member=rel,
        ) from None
    except NoteError as exc:
        raise EvidenceRejected("malformed_checkpoint", str(exc), checkpoint=size, member=rel) from None
    try:
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as exc:
        raise EvidenceRejected("malformed_checkpoint", str(exc), checkpoint=size, member=rel) from None
    if checkpoint.origin != origin:
        raise EvidenceRejected(
            "origin_mismatch",
            f"the checkpoint is of log {checkpoint.origin!r}, not {origin!r}",
            checkpoint=size,
            member=rel,
        )
    if checkpoint.size != size:
        raise EvidenceRejected(
            "checkpoint_name_mismatch",
            f"{rel} holds a checkpoint of tree size {checkpoint.size}",
            checkpoint=size,
            member=rel,
        )
    cosigned = []
    for sig in note.unverified:
        witness = witness_keys.get((sig.name, sig.key_id))
        if witness is None:
            continue  # an unknown cosigner proves nothing and is ignored
        try:
            timestamp = verify_cosignature(note.text, sig.line, witness)
        except NoteError:
            raise EvidenceRejected(
                "bad_cosignature",
                f"the cosignature of witness {sig.name}+{sig.key_id:08x} does not verify",
                checkpoint=size,
                member=rel,
            ) from None
        cosigned.append(WitnessCosignature(KeyRef(sig.name, f"{sig.key_id:08x}"), timestamp))
    signed_by = tuple(KeyRef(s.name, f"{s.key_id:08x}") for s in note.signatures)
    return Opened(checkpoint, signed_by, tuple(cosigned))
