"""``auditsvc-verify``: verify an evidence package offline, with the SDK alone.

Exit status: 0 verified, 1 verification failed (altered, incomplete or
unproven), 2 could not verify (unreadable file, not a package, an unknown
format version, a malformed key on the command line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._evidence import EvidenceError, EvidenceLimits, EvidenceReport, verify_package
from ._note import CosignatureVerifier, KeyFormatError, NoteVerifier

EXIT_VERIFIED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditsvc-verify",
        description="Verify an auditsvc evidence package (auditsvc export) offline: no database, no network, "
        "no decryption key.",
        epilog="Exit status: 0 verified, 1 verification failed, 2 could not verify.",
    )
    parser.add_argument("file", metavar="FILE", help="the evidence package (.tar.gz)")
    parser.add_argument(
        "--key",
        metavar="VKEY",
        action="append",
        default=None,
        help="a log verifier key you trust, obtained out of band (<name>+<hex id>+<base64>); repeat for rotated "
        "keys. Without it the package's own keys are used, which proves integrity but not who signed.",
    )
    parser.add_argument(
        "--witness-key",
        metavar="VKEY",
        action="append",
        default=None,
        help="a witness cosignature verifier key you trust; repeat for several. "
        "Without it the package's keys/witnesses.vkeys are used.",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--max-size",
        metavar="BYTES",
        type=int,
        default=EvidenceLimits().max_unpacked_bytes,
        help="refuse packages that unpack to more than this (default %(default)s)",
    )
    return parser


def _summary(report: EvidenceReport) -> str:
    lines = [
        f"PROVEN: {report.event_count} events, seq {report.from_seq}..{report.to_seq} of log {report.origin!r}, "
        f"are exactly those the log's signed checkpoints commit to.",
        f"  package created {report.created_at}; chain format {report.chain_format}; "
        f"Merkle root at tree size {report.tree_size}: {report.root_hash}",
    ]
    for cp in report.checkpoints:
        signers = ", ".join(str(k) for k in cp.signed_by)
        how = {
            "root": "its root is the records' root",
            "consistency": f"consistency proof {report.tree_size} -> {cp.size} verified",
            "none": "older than this range",
        }[cp.proof]
        covers = "" if cp.covers_to_seq is None else f" commits to seq {report.from_seq}..{cp.covers_to_seq};"
        lines.append(
            f"  checkpoint tree size {cp.size}, root {cp.root_hash[:16]}...:{covers} {how}; signed by {signers}"
        )
        for c in cp.cosigned_by:
            lines.append(f"    cosigned by witness {c.witness} at {c.time}")
    witnesses = ", ".join(str(w) for w in report.witnesses)
    lines.append(f"  witnesses: {witnesses}" if witnesses else "  witnesses: none cosigned the range")
    if report.log_keys_pinned:
        lines.append("  log keys: pinned (given with --key)")
    else:
        lines.append(
            "  WARNING: log keys NOT pinned: the package's own keys/log.vkeys were trusted. This proves the package "
            "is self-consistent, not who signed it: pass the log's published verifier key with --key."
        )
    if report.witnesses and not report.witness_keys_pinned:
        lines.append("  witness keys NOT pinned: taken from the package's keys/witnesses.vkeys (pass --witness-key)")
    lines.append(
        "  No decryption key was needed: records are verified as stored (patient identifiers in them may be encrypted)."
    )
    return "\n".join(lines)


def _failure(error: EvidenceError) -> str:
    where = (
        f" at seq {error.seq}"
        if error.seq is not None
        else f" at checkpoint {error.checkpoint}"
        if error.checkpoint is not None
        else ""
    )
    label = "FAILED" if error.exit_code == EXIT_FAILED else "CANNOT VERIFY"
    return f"{label}: {error.kind}{where}: {error.detail}"


def _print_json(payload: dict[str, object]) -> None:
    print(json.dumps(payload, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (the console script exits with it)."""
    args = _parser().parse_args(argv)
    try:
        log_keys = None if args.key is None else [NoteVerifier.from_vkey(k) for k in args.key]
        witness_keys = (
            None if args.witness_key is None else [CosignatureVerifier.from_vkey(k) for k in args.witness_key]
        )
    except KeyFormatError as exc:
        message = f"bad key on the command line: {exc}"
        if args.json:
            _print_json({"verified": False, "kind": "bad_key", "detail": message})
        else:
            print(f"CANNOT VERIFY: {message}", file=sys.stderr)
        return EXIT_ERROR
    try:
        report = verify_package(
            args.file, log_keys, witness_keys, limits=EvidenceLimits(max_unpacked_bytes=args.max_size)
        )
    except EvidenceError as exc:
        if args.json:
            _print_json(exc.to_json())
        else:
            print(_failure(exc))
        return exc.exit_code
    except Exception as exc:
        # A bug, not a verdict: exit 2 ("could not verify"), never 1 ("tampered").
        message = f"internal error: {type(exc).__name__}: {exc}"
        if args.json:
            _print_json({"verified": False, "kind": "internal_error", "detail": message})
        else:
            print(f"CANNOT VERIFY: {message}")
        return EXIT_ERROR
    if args.json:
        _print_json(report.to_json())
    else:
        print(_summary(report))
    return EXIT_VERIFIED


if __name__ == "__main__":
    sys.exit(main())
