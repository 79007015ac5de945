"""The error tree of evidence verification (drawn in the package docstring)."""

from __future__ import annotations

from typing import Any, ClassVar


class EvidenceError(ValueError):
    """The package could not be verified, or does not prove what it claims.

    ``kind`` names the failure; ``seq`` is the first bad record where one is
    known; ``checkpoint`` the tree size of the checkpoint concerned;
    ``member`` the package file concerned. ``exit_code`` is the CLI's.
    """

    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        seq: int | None = None,
        checkpoint: int | None = None,
        member: str | None = None,
    ) -> None:
        where = (
            f" at seq {seq}" if seq is not None else f" at checkpoint {checkpoint}" if checkpoint is not None else ""
        )
        super().__init__(f"{kind}{where}: {detail}")
        self.kind = kind
        self.detail = detail
        self.seq = seq
        self.checkpoint = checkpoint
        self.member = member

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": False,
            "kind": self.kind,
            "seq": self.seq,
            "checkpoint": self.checkpoint,
            "member": self.member,
            "detail": self.detail,
        }


class EvidenceUnreadable(EvidenceError):
    """Could not verify: unreadable, not a package, an unknown format version, too large.

    Kinds: ``unreadable_file``, ``corrupt_archive``, ``not_a_package``,
    ``unsupported_format``, ``malformed_manifest``, ``too_large``.
    """

    exit_code = 2


class EvidenceRejected(EvidenceError):
    """The package is readable but does not prove what it claims.

    Package: ``unsafe_member``, ``unexpected_member``, ``duplicate_member``,
    ``unlisted_member``, ``missing_member``, ``file_hash_mismatch``,
    ``malformed_start``, ``genesis_mismatch``, ``malformed_keys``.
    Records (with ``seq``): ``malformed_row``, ``missing_row``,
    ``duplicate_seq``, ``unexpected_row``, ``malformed_record``,
    ``unsupported_version``, ``record_mismatch``, ``leaf_hash_mismatch``,
    ``chain_hash_mismatch``. Checkpoints (with ``checkpoint``):
    ``malformed_checkpoint``, ``checkpoint_name_mismatch``,
    ``origin_mismatch``, ``unknown_key``, ``bad_signature``,
    ``bad_cosignature``, ``root_mismatch``, ``missing_proof``,
    ``malformed_proof``, ``consistency_failure``. And ``unproven`` (with the
    first ``seq`` no signed checkpoint commits to).
    """


def show(name: str) -> str:
    # Member names come from a hostile archive: never print them raw.
    text = ascii(name)
    return text if len(text) <= 120 else text[:117] + "..."
