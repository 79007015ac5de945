"""Offline verification of evidence packages (auditsvc_sdk._evidence, auditsvc-verify).

No database: packages are built here with the SDK's own chain, Merkle and
signed-note functions, then altered the ways an attacker (or a bad disk)
would alter them.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from auditsvc_sdk._chain import canonical_record, chain_hash, genesis_hash, leaf_hash, make_record
from auditsvc_sdk._evidence import (
    EVIDENCE_FORMAT,
    EvidenceError,
    EvidenceLimits,
    EvidenceRejected,
    EvidenceReport,
    EvidenceUnreadable,
    verify_package,
)
from auditsvc_sdk._merkle import NodeID, consistency_nodes, frontier_nodes, root_from_leaf_hashes
from auditsvc_sdk._note import Checkpoint, CosignatureSigner, NoteSigner, cosign, sign_note

ORIGIN = "hospital.example/audit"
PREFIX = "auditsvc-evidence/"
VERIFY = Path(sys.executable).with_name("auditsvc-verify")

# Fixed keys, so a failing test is reproducible.
LOG_KEY = NoteSigner(ORIGIN, bytes(range(32)))
LOG_KEY_2 = NoteSigner(ORIGIN, bytes(range(1, 33)))  # after a key rotation
OTHER_KEY = NoteSigner(ORIGIN, bytes(range(2, 34)))  # not the log's: an attacker's
WITNESS = CosignatureSigner("witness.example/w1", bytes(range(3, 35)))
WITNESS_2 = CosignatureSigner("witness.example/w2", bytes(range(4, 36)))


# --- a synthetic log ----------------------------------------------------------------


def _ciphertext(seq: int, which: str) -> str:
    # What an identifier looks like when the service encrypts it at rest: opaque
    # to the auditor, and never needed to verify.
    raw = hashlib.sha256(f"{which}:{seq}".encode()).digest() + bytes(12)
    return "enc:v1:k1:" + base64.b64encode(raw).decode()


def _event(seq: int) -> dict[str, Any]:
    return {
        "event_id": f"0190f3c8-6a4b-7c2d-8e9f-{seq:012x}",
        "occurred_at": f"2024-05-14T09:{seq // 60 % 60:02d}:{seq % 60:02d}.123456Z",
        "action": "R",
        "event_type": "hl7v2-message" if seq % 2 else "fhir-rest",
        "patient": {
            "identifiers": [
                {"system": "urn:oid:2.16.840.1.113883.19.5", "value": _ciphertext(seq, "mrn")},
                {"system": "https://empi.example.org/id", "value": _ciphertext(seq, "empi")},
            ]
        },
        "data_elements": ["PID-3", "PID-5", "OBX"] if seq % 2 else ["Observation"],
        "source": {"system_id": "ehr-main"},
        "destination": {"system_id": "lab-lis"},
        "actor": {"id": "svc:interface-engine", "type": "system"},
        "outcome": 0,
    }


@dataclass
class Log:
    origin: str
    records: list[bytes] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    chains: list[bytes] = field(default_factory=list)

    def node(self, node: NodeID) -> bytes:
        begin, end = node.coverage()
        return root_from_leaf_hashes(self.leaves[begin:end])

    def root(self, size: int) -> bytes:
        return root_from_leaf_hashes(self.leaves[:size])


def make_log(n: int, origin: str = ORIGIN) -> Log:
    log = Log(origin)
    previous = genesis_hash(origin)
    for seq in range(n):
        data = canonical_record(
            make_record(_event(seq), seq=seq, received_at="2024-05-14T10:00:00.000000Z", emitter="3f9a1c0e7b2d4a58")
        )
        leaf = leaf_hash(data)
        previous = chain_hash(previous, leaf)
        log.records.append(data)
        log.leaves.append(leaf)
        log.chains.append(previous)
    return log


def checkpoint_note(
    log: Log,
    size: int,
    signers: list[NoteSigner] | None = None,
    witnesses: tuple[CosignatureSigner, ...] = (),
    *,
    root: bytes | None = None,
    origin: str | None = None,
) -> bytes:
    body = Checkpoint(origin or log.origin, size, log.root(size) if root is None else root).body()
    note = sign_note(body, signers or [LOG_KEY])
    for witness in witnesses:
        note += cosign(body, witness, 1_715_680_000)
    return note.encode()


# --- packages -------------------------------------------------------------------------


@dataclass
class Package:
    """An evidence package as members (paths relative to the package directory)."""

    members: dict[str, bytes]
    manifest: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.members["records.jsonl"].splitlines()]

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.members["records.jsonl"] = b"".join(orjson.dumps(r) + b"\n" for r in rows)

    def files(self) -> dict[str, str]:
        return {rel: hashlib.sha256(data).hexdigest() for rel, data in self.members.items()}

    def build(
        self, *, files: dict[str, str] | None = None, extra: Sequence[tuple[tarfile.TarInfo, bytes]] = ()
    ) -> bytes:
        """The .tar.gz, with the manifest's file list recomputed unless ``files`` is given."""
        manifest = {**self.manifest, "files": self.files() if files is None else files}
        entries = [(PREFIX + "manifest.json", orjson.dumps(manifest))]
        entries += [(PREFIX + rel, data) for rel, data in self.members.items()]
        return tar_gz([(_info(name, data), data) for name, data in entries] + list(extra))


def _info(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.mtime = 1_715_680_000
    return info


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buffer.getvalue(), mtime=0)


def make_package(
    log: Log,
    a: int,
    b: int,
    notes: dict[int, bytes],
    *,
    log_keys: tuple[NoteSigner, ...] = (LOG_KEY,),
    witness_keys: tuple[CosignatureSigner, ...] = (),
) -> Package:
    members: dict[str, bytes] = {}
    members["records.jsonl"] = b"".join(
        orjson.dumps(
            {
                "seq": seq,
                "record": log.records[seq].decode(),
                "leaf_hash": log.leaves[seq].hex(),
                "chain_hash": log.chains[seq].hex(),
            }
        )
        + b"\n"
        for seq in range(a, b + 1)
    )
    previous = genesis_hash(log.origin) if a == 0 else log.chains[a - 1]
    frontier = [log.node(node).hex() for node in frontier_nodes(a)]
    members["start.json"] = orjson.dumps({"previous_chain_hash": previous.hex(), "left_frontier": frontier})
    for size, note in notes.items():
        members[f"checkpoints/{size}.note"] = note
        if size > b + 1:
            nodes = consistency_nodes(b + 1, size)
            proof = nodes.rehash([log.node(node) for node in nodes.ids])
            members[f"proofs/consistency-{b + 1}-{size}.json"] = orjson.dumps(
                {"first": b + 1, "second": size, "hashes": [h.hex() for h in proof]}
            )
    members["keys/log.vkeys"] = "".join(k.vkey + "\n" for k in log_keys).encode()
    members["keys/witnesses.vkeys"] = "".join(k.vkey + "\n" for k in witness_keys).encode()
    manifest = {
        "format": EVIDENCE_FORMAT,
        "chain_format": 1,
        "origin": log.origin,
        "created_at": "2024-05-15T08:00:00Z",
        "from_seq": a,
        "to_seq": b,
    }
    return Package(members, manifest)


def full_package(n: int = 10) -> tuple[Log, Package]:
    log = make_log(n)
    return log, make_package(log, 0, n - 1, {4: checkpoint_note(log, 4), n: checkpoint_note(log, n)})


def middle_package() -> tuple[Log, Package]:
    """Records 5..12 of a log of 21, a checkpoint inside the range and two after it."""
    log = make_log(21)
    notes = {size: checkpoint_note(log, size, witnesses=(WITNESS,)) for size in (9, 16, 21)}
    return log, make_package(log, 5, 12, notes, witness_keys=(WITNESS,))


def rejected(data: bytes, kind: str, **kwargs: Any) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as info:
        verify_package(data, **kwargs)
    assert info.value.kind == kind, info.value
    assert info.value.exit_code == 1
    return info.value


def unreadable(data: bytes | str | Path, kind: str, **kwargs: Any) -> EvidenceUnreadable:
    with pytest.raises(EvidenceUnreadable) as info:
        verify_package(data, **kwargs)
    assert info.value.kind == kind, info.value
    assert info.value.exit_code == 2
    return info.value


# --- what a good package proves ----------------------------------------------------------


def test_full_log_from_seq_0_is_proven_without_any_decryption_key() -> None:
    log, package = full_package(10)
    report = verify_package(package.build())
    assert isinstance(report, EvidenceReport)
    assert (report.origin, report.from_seq, report.to_seq, report.event_count) == (ORIGIN, 0, 9, 10)
    assert report.root_hash == log.root(10).hex()
    assert report.head_chain_hash == log.chains[9].hex()
    assert report.proven_by == (10,)
    assert [(cp.size, cp.covers_to_seq, cp.proof) for cp in report.checkpoints] == [(4, 3, "root"), (10, 9, "root")]
    assert [str(k) for k in report.checkpoints[1].signed_by] == [f"{ORIGIN}+{LOG_KEY.key_id:08x}"]
    assert report.log_keys_pinned is False
    assert report.decryption_key_needed is False
    # The records hold ciphertext identifiers only; verification never looked inside them.
    assert b"enc:v1:k1:" in package.members["records.jsonl"]
    assert b"MRN" not in package.members["records.jsonl"]
    out = report.to_json()
    assert out["verified"] is True and out["event_count"] == 10 and out["log_keys_pinned"] is False
    json.dumps(out)


def test_pinned_key_is_reported_as_pinned(tmp_path: Path) -> None:
    _, package = full_package(10)
    path = tmp_path / "evidence.tar.gz"
    path.write_bytes(package.build())
    report = verify_package(path, trusted_log_keys=[LOG_KEY.vkey])
    assert report.log_keys_pinned is True
    assert verify_package(str(path), trusted_log_keys=[LOG_KEY.verifier]).proven_by == (10,)


def test_middle_range_is_proven_by_later_checkpoints_through_consistency_proofs() -> None:
    log, package = middle_package()
    report = verify_package(package.build(), trusted_log_keys=[LOG_KEY.vkey])
    assert (report.from_seq, report.to_seq, report.event_count, report.tree_size) == (5, 12, 8, 13)
    assert report.root_hash == log.root(13).hex()
    assert [(cp.size, cp.covers_to_seq, cp.proof) for cp in report.checkpoints] == [
        (9, 8, "root"),
        (16, 12, "consistency"),
        (21, 12, "consistency"),
    ]
    assert report.proven_by == (16, 21)


def test_checkpoint_exactly_at_the_end_of_a_middle_range() -> None:
    log = make_log(12)
    report = verify_package(make_package(log, 3, 7, {8: checkpoint_note(log, 8)}).build())
    assert report.proven_by == (8,)
    assert report.checkpoints[0].proof == "root"


def test_key_rotation_old_checkpoints_verify_with_the_old_key() -> None:
    log = make_log(12)
    notes = {6: checkpoint_note(log, 6, [LOG_KEY]), 12: checkpoint_note(log, 12, [LOG_KEY_2])}
    package = make_package(log, 0, 11, notes, log_keys=(LOG_KEY, LOG_KEY_2))
    report = verify_package(package.build(), trusted_log_keys=[LOG_KEY.vkey, LOG_KEY_2.vkey])
    assert [cp.signed_by[0].key_id for cp in report.checkpoints] == [f"{LOG_KEY.key_id:08x}", f"{LOG_KEY_2.key_id:08x}"]
    assert verify_package(package.build()).proven_by == (12,)  # the package's own two keys
    # Pinning only the new key: the old checkpoint is not signed by a trusted key.
    error = rejected(package.build(), "unknown_key", trusted_log_keys=[LOG_KEY_2.vkey])
    assert error.checkpoint == 6


def test_witness_cosignatures_are_reported_and_unknown_cosigners_ignored() -> None:
    log = make_log(8)
    notes = {8: checkpoint_note(log, 8, witnesses=(WITNESS, WITNESS_2))}  # WITNESS_2's key is not given
    package = make_package(log, 0, 7, notes, witness_keys=(WITNESS,))
    report = verify_package(package.build(), trusted_witness_keys=[WITNESS.verifier.vkey])
    assert [str(w) for w in report.witnesses] == [f"witness.example/w1+{WITNESS.key_id:08x}"]
    cosig = report.checkpoints[0].cosigned_by[0]
    assert (cosig.timestamp, cosig.time) == (1_715_680_000, "2024-05-14T09:46:40Z")
    assert report.witness_keys_pinned is True
    assert report.to_json()["checkpoints"][0]["cosigned_by"][0]["name"] == "witness.example/w1"


def test_a_bad_cosignature_by_a_known_witness_is_rejected() -> None:
    log = make_log(8)
    note = checkpoint_note(log, 8, witnesses=(WITNESS,)).decode()
    body, sigs = note.split("\n\n")
    lines = sigs.splitlines()
    raw = bytearray(base64.b64decode(lines[1].split(" ")[2]))
    raw[-1] ^= 1
    lines[1] = f"{lines[1].rsplit(' ', 1)[0]} {base64.b64encode(bytes(raw)).decode()}"
    tampered = f"{body}\n\n" + "\n".join(lines) + "\n"
    package = make_package(log, 0, 7, {8: tampered.encode()}, witness_keys=(WITNESS,))
    assert rejected(package.build(), "bad_cosignature").checkpoint == 8


# --- altered records ----------------------------------------------------------------------


def test_a_changed_byte_in_a_record_is_found_at_its_seq() -> None:
    _, package = full_package()
    rows = package.rows()
    rows[3]["record"] = rows[3]["record"].replace('"action":"R"', '"action":"D"')
    package.set_rows(rows)
    assert rejected(package.build(), "leaf_hash_mismatch").seq == 3


def test_a_deleted_record_is_found() -> None:
    _, package = full_package()
    rows = package.rows()
    del rows[6]
    package.set_rows(rows)
    assert rejected(package.build(), "missing_row").seq == 6


def test_a_deleted_last_record_is_found() -> None:
    _, package = full_package()
    package.set_rows(package.rows()[:-1])
    assert rejected(package.build(), "missing_row").seq == 9


def test_a_forged_record_inserted_with_consistent_hashes_is_found() -> None:
    log, package = full_package()
    rows = package.rows()
    forged = canonical_record(make_record(_event(99), seq=5, received_at="2024-05-14T10:00:00.000000Z", emitter="x"))
    leaf = leaf_hash(forged)
    rows.insert(
        5,
        {
            "seq": 5,
            "record": forged.decode(),
            "leaf_hash": leaf.hex(),
            "chain_hash": chain_hash(log.chains[4], leaf).hex(),
        },
    )
    package.set_rows(rows)
    assert rejected(package.build(), "duplicate_seq").seq == 5


def test_a_forged_record_inserted_and_the_chain_rewritten_is_caught_by_the_checkpoint() -> None:
    # The attacker renumbers and rehashes everything after the insertion: the
    # chain verifies again, only the signed root can tell.
    log = make_log(10)
    events = [_event(seq) for seq in range(10)]
    events.insert(5, _event(99))
    rewritten = Log(ORIGIN)
    previous = genesis_hash(ORIGIN)
    for seq, event in enumerate(events):
        data = canonical_record(make_record(event, seq=seq, received_at="2024-05-14T10:00:00.000000Z", emitter="x"))
        previous = chain_hash(previous, leaf_hash(data))
        rewritten.records.append(data)
        rewritten.leaves.append(leaf_hash(data))
        rewritten.chains.append(previous)
    package = make_package(rewritten, 0, 9, {10: checkpoint_note(log, 10)})
    error = rejected(package.build(), "root_mismatch")
    assert (error.seq, error.checkpoint) == (None, 10)


def test_two_swapped_records_are_found() -> None:
    _, package = full_package()
    rows = package.rows()
    rows[2], rows[3] = rows[3], rows[2]
    package.set_rows(rows)
    assert rejected(package.build(), "missing_row").seq == 2
    # Only the record texts swapped, the seq column left in order:
    _, package = full_package()
    rows = package.rows()
    rows[2]["record"], rows[3]["record"] = rows[3]["record"], rows[2]["record"]
    package.set_rows(rows)
    assert rejected(package.build(), "record_mismatch").seq == 2


def test_a_chain_hash_edited_is_found() -> None:
    _, package = full_package()
    rows = package.rows()
    rows[7]["chain_hash"] = "00" * 32
    package.set_rows(rows)
    assert rejected(package.build(), "chain_hash_mismatch").seq == 7


def test_a_record_changed_with_its_hashes_recomputed_is_caught_by_the_signed_root() -> None:
    log, package = full_package()
    rows = package.rows()
    previous = log.chains[3]
    for row in rows[4:]:
        if row["seq"] == 4:
            row["record"] = row["record"].replace('"outcome":0', '"outcome":8')
        leaf = leaf_hash(row["record"].encode())
        previous = chain_hash(previous, leaf)
        row["leaf_hash"], row["chain_hash"] = leaf.hex(), previous.hex()
    package.set_rows(rows)
    error = rejected(package.build(), "root_mismatch")
    # The checkpoint of size 4 still matches: the change is in seq 4..9.
    assert error.checkpoint == 10 and "seq 4..9" in error.detail


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda r: r.update(record=re.sub(r'"v":[12]}$', '"v":9}', r["record"])), "unsupported_version"),
        (lambda r: r.update(record=r["record"].replace('"seq":2', '"seq":3')), "record_mismatch"),
        (lambda r: r.update(record="[1, 2]"), "malformed_record"),
        (lambda r: r.update(record="{not json"), "malformed_record"),
        (lambda r: r.update(leaf_hash="AB" * 32), "malformed_row"),
        (lambda r: r.update(seq=2.0), "malformed_row"),
        (lambda r: r.update(extra=1), "malformed_row"),
    ],
)
def test_malformed_rows_and_records_are_found_at_their_seq(edit: Callable[[dict[str, Any]], None], kind: str) -> None:
    _, package = full_package()
    rows = package.rows()
    edit(rows[2])
    package.set_rows(rows)
    assert rejected(package.build(), kind).seq == 2


def test_a_line_that_is_not_utf8_json_is_malformed() -> None:
    _, package = full_package()
    lines = package.members["records.jsonl"].splitlines(keepends=True)
    lines[1] = b'{"seq": 1, "record": "\xff\xfe"}\n'
    package.members["records.jsonl"] = b"".join(lines)
    assert rejected(package.build(), "malformed_row").seq == 1


def test_extra_rows_past_to_seq_are_rejected() -> None:
    _, package = full_package(10)
    package.manifest["to_seq"] = 8
    assert rejected(package.build(), "unexpected_row").seq == 9


def test_a_chain_not_starting_at_genesis_is_rejected() -> None:
    _, package = full_package()
    package.members["start.json"] = orjson.dumps({"previous_chain_hash": "11" * 32, "left_frontier": []})
    assert rejected(package.build(), "genesis_mismatch").seq == 0


def test_a_wrong_frontier_is_caught_by_the_signed_root() -> None:
    _, package = middle_package()
    start = json.loads(package.members["start.json"])
    start["left_frontier"][0] = "22" * 32
    package.members["start.json"] = orjson.dumps(start)
    assert rejected(package.build(), "root_mismatch").checkpoint == 9


# --- checkpoints and proofs -----------------------------------------------------------------


def test_a_checkpoint_signed_by_another_key_fails_against_the_pinned_key() -> None:
    log = make_log(10)
    # The attacker signs with its own key and ships that key in the package.
    package = make_package(log, 0, 9, {10: checkpoint_note(log, 10, [OTHER_KEY])}, log_keys=(OTHER_KEY,))
    assert rejected(package.build(), "unknown_key", trusted_log_keys=[LOG_KEY.vkey]).checkpoint == 10
    # Without pinning, it "verifies": and the report says the keys were not pinned.
    assert verify_package(package.build()).log_keys_pinned is False


def test_a_checkpoint_with_a_broken_signature_is_rejected() -> None:
    _, package = full_package()
    note = package.members["checkpoints/10.note"].decode()
    body, signature_line = note.split("\n\n")
    prefix, b64 = signature_line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 0x80  # a bit of the Ed25519 signature
    package.members["checkpoints/10.note"] = f"{body}\n\n{prefix} {base64.b64encode(raw).decode()}\n".encode()
    assert rejected(package.build(), "bad_signature").checkpoint == 10
    # The root rewritten in the text, the signature kept:
    forged = Checkpoint(ORIGIN, 10, bytes(32)).body()
    package.members["checkpoints/10.note"] = f"{forged}\n{signature_line}".encode()
    assert rejected(package.build(), "bad_signature").checkpoint == 10
    package.members["checkpoints/10.note"] = b"10\n\xff\n"
    rejected(package.build(), "malformed_checkpoint")


def test_a_pax_header_bomb_stops_at_the_limit() -> None:
    _, package = full_package()
    info = _info(PREFIX + "checkpoints/77.note", b"")
    info.pax_headers = {"comment": "x" * (3 << 20)}
    data = package.build(extra=[(info, b"")])
    unreadable(data, "too_large", limits=EvidenceLimits(max_member_bytes=1 << 20))


def test_a_signed_checkpoint_whose_root_disagrees_is_rejected() -> None:
    log = make_log(10)
    package = make_package(log, 0, 9, {10: checkpoint_note(log, 10, root=b"\x42" * 32)})
    error = rejected(package.build(), "root_mismatch")
    assert error.checkpoint == 10 and error.seq is None


def test_a_checkpoint_of_another_log_or_size_is_rejected() -> None:
    log = make_log(10)
    package = make_package(log, 0, 9, {10: checkpoint_note(log, 10, origin="other.example/log")})
    rejected(package.build(), "origin_mismatch")
    package = make_package(log, 0, 9, {10: checkpoint_note(log, 9)})
    rejected(package.build(), "checkpoint_name_mismatch")


def test_a_bad_consistency_proof_is_rejected() -> None:
    _, package = middle_package()
    proof = json.loads(package.members["proofs/consistency-13-21.json"])
    proof["hashes"][0] = "33" * 32
    package.members["proofs/consistency-13-21.json"] = orjson.dumps(proof)
    assert rejected(package.build(), "consistency_failure").checkpoint == 21
    proof["hashes"] = proof["hashes"][1:]
    package.members["proofs/consistency-13-21.json"] = orjson.dumps(proof)
    rejected(package.build(), "consistency_failure")  # wrong length
    proof["second"] = 20
    package.members["proofs/consistency-13-21.json"] = orjson.dumps(proof)
    rejected(package.build(), "malformed_proof")
    del package.members["proofs/consistency-13-21.json"]
    assert rejected(package.build(), "missing_proof").checkpoint == 21


def test_a_checkpoint_of_a_later_tree_that_does_not_extend_the_records_is_rejected() -> None:
    _, package = middle_package()
    other = make_log(21, origin=ORIGIN)
    other.leaves[14] = b"\x44" * 32  # a later tree that rewrote history after seq 12
    package.members["checkpoints/21.note"] = checkpoint_note(other, 21)
    rejected(package.build(), "consistency_failure")


def test_records_no_signed_checkpoint_covers_are_unproven() -> None:
    log = make_log(10)
    package = make_package(log, 0, 9, {6: checkpoint_note(log, 6)})
    error = rejected(package.build(), "unproven")
    assert error.seq == 6
    error = rejected(make_package(log, 0, 9, {}).build(), "unproven")
    assert error.seq == 0


# --- the package itself ---------------------------------------------------------------------


def test_a_member_that_does_not_match_the_manifest_hash_is_rejected() -> None:
    _, package = full_package()
    files = package.files()
    package.members["keys/log.vkeys"] = OTHER_KEY.vkey.encode() + b"\n"
    error = rejected(package.build(files=files), "file_hash_mismatch")
    assert error.member == "keys/log.vkeys"


def test_an_unlisted_member_is_rejected() -> None:
    log, package = full_package()
    files = package.files()
    package.members["checkpoints/5.note"] = checkpoint_note(log, 5)
    assert rejected(package.build(files=files), "unlisted_member").member == "checkpoints/5.note"


def test_a_listed_member_that_is_absent_is_rejected() -> None:
    _, package = full_package()
    files = package.files()
    del package.members["checkpoints/4.note"]
    rejected(package.build(files=files), "missing_member")
    del package.members["start.json"]
    rejected(package.build(), "missing_member")


@pytest.mark.parametrize(
    ("info", "kind"),
    [
        (_info(PREFIX + "../evil.json", b"x"), "unsafe_member"),
        (_info("../../etc/cron.d/evil", b"x"), "unsafe_member"),
        (_info("/etc/passwd", b"x"), "unsafe_member"),
        (_info(PREFIX + "checkpoints/./4.note", b"x"), "unsafe_member"),
        (_info(PREFIX + "caf\u00e9.json", b"x"), "unsafe_member"),
        (_info(PREFIX + "keys/log.vkeys.bak", b"x"), "unexpected_member"),
        (_info("elsewhere/manifest.json", b"x"), "unexpected_member"),
        (_info(PREFIX + "link.note", kind=tarfile.SYMTYPE), "unsafe_member"),
        (_info(PREFIX + "checkpoints/11.note", kind=tarfile.SYMTYPE), "unsafe_member"),
        (_info(PREFIX + "checkpoints/12.note", kind=tarfile.LNKTYPE), "unsafe_member"),
        (_info(PREFIX + "checkpoints/13.note", kind=tarfile.CHRTYPE), "unsafe_member"),
        (_info(PREFIX + "checkpoints/14.note", kind=tarfile.FIFOTYPE), "unsafe_member"),
        (_info(PREFIX + "records.jsonl", b"{}\n"), "duplicate_member"),
        (_info(PREFIX + "secrets", kind=tarfile.DIRTYPE), "unexpected_member"),
    ],
)
def test_hostile_members_are_rejected(info: tarfile.TarInfo, kind: str) -> None:
    if info.issym() or info.islnk():
        info.linkname = "/etc/passwd"
    _, package = full_package()
    data = b"x" * info.size
    rejected(package.build(extra=[(info, data)]), kind)


def test_directory_entries_for_the_layout_are_accepted() -> None:
    _, package = full_package()
    dirs = [(_info(PREFIX.rstrip("/"), kind=tarfile.DIRTYPE), b"")]
    dirs += [(_info(PREFIX + d, kind=tarfile.DIRTYPE), b"") for d in ("checkpoints", "keys", "proofs")]
    assert verify_package(package.build(extra=dirs)).proven_by == (10,)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"format": "auditsvc-evidence/v2"}, "unsupported_format"),
        ({"format": None}, "unsupported_format"),
        ({"chain_format": 2}, "unsupported_format"),
        ({"chain_format": True}, "unsupported_format"),
        ({"from_seq": 5, "to_seq": 4}, "malformed_manifest"),
        ({"created_at": "yesterday"}, "malformed_manifest"),
        ({"comment": "hi"}, "malformed_manifest"),
    ],
)
def test_an_unknown_format_version_or_bad_manifest_cannot_be_verified(change: dict[str, Any], kind: str) -> None:
    _, package = full_package()
    package.manifest.update(change)
    unreadable(package.build(), kind)


def test_not_a_package() -> None:
    unreadable(b"PK\x03\x04 a zip file", "not_a_package")
    unreadable(gzip.compress(b"just some text"), "corrupt_archive")
    no_manifest = tar_gz([(_info(PREFIX + "start.json", b"{}"), b"{}")])
    unreadable(no_manifest, "not_a_package")
    garbage = tar_gz([(_info(PREFIX + "manifest.json", b"[1]"), b"[1]")])
    unreadable(garbage, "not_a_package")


def test_an_unreadable_file(tmp_path: Path) -> None:
    unreadable(tmp_path / "missing.tar.gz", "unreadable_file")
    unreadable(tmp_path, "unreadable_file")  # a directory


@pytest.mark.parametrize("cut", [10, 100, 0.5, -9, -4, -1])
def test_a_truncated_gzip_cannot_be_verified(cut: float) -> None:
    _, package = full_package()
    data = package.build()
    end = int(len(data) * cut) if isinstance(cut, float) else cut
    unreadable(data[:end], "corrupt_archive")


def test_trailing_garbage_after_the_gzip_stream_cannot_be_verified() -> None:
    _, package = full_package()
    unreadable(package.build() + b"garbage", "corrupt_archive")


def test_a_decompression_bomb_stops_at_the_limit() -> None:
    _, package = full_package()
    package.members["checkpoints/99.note"] = bytes(4 << 20)  # 4 MiB of zeros, a few KiB compressed
    data = package.build()
    assert len(data) < 64 << 10
    unreadable(data, "too_large", limits=EvidenceLimits(max_unpacked_bytes=1 << 20))
    unreadable(data, "too_large", limits=EvidenceLimits(max_member_bytes=1 << 20))
    unreadable(data, "too_large", limits=EvidenceLimits(max_members=3))


def test_an_overlong_record_line_is_rejected() -> None:
    _, package = full_package()
    rows = package.rows()
    rows[1]["record"] = "x" * 5000
    package.set_rows(rows)
    assert rejected(package.build(), "malformed_row", limits=EvidenceLimits(max_line_bytes=4096)).seq == 1


def test_malformed_keys_and_trusted_keys() -> None:
    _, package = full_package()
    package.members["keys/log.vkeys"] = b"not a key\n"
    rejected(package.build(), "malformed_keys")
    package.members["keys/log.vkeys"] = WITNESS.vkey.encode()  # a cosignature key is not a log key
    rejected(package.build(), "malformed_keys")
    with pytest.raises(ValueError):
        verify_package(package.build(), trusted_log_keys=["garbage"])
    with pytest.raises(ValueError):
        verify_package(package.build(), trusted_log_keys=[])


def test_random_corruption_never_escapes_as_another_exception() -> None:
    """Flip bytes of the tar (then recompress, so gzip's CRC does not hide it): every
    outcome is a verified package or an EvidenceError, never a crash."""
    _, package = middle_package()
    tar = gzip.decompress(package.build())
    rng = random.Random(1234)
    outcomes: dict[str, int] = {}
    for _ in range(300):
        data = bytearray(tar)
        for _ in range(rng.choice((1, 1, 2, 8))):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            verify_package(gzip.compress(bytes(data)))
            outcomes["verified"] = outcomes.get("verified", 0) + 1
        except EvidenceError as exc:
            outcomes[exc.kind] = outcomes.get(exc.kind, 0) + 1
    assert len(outcomes) > 3, outcomes


def test_the_report_is_a_value_not_the_package() -> None:
    _, package = full_package()
    before = copy.deepcopy(package.members)
    verify_package(package.build())
    assert package.members == before


# --- the command line --------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VERIFY), *args], capture_output=True, text=True, timeout=60, check=False)


def test_cli_exit_codes_and_output(tmp_path: Path) -> None:
    _, package = middle_package()
    good = tmp_path / "good.tar.gz"
    good.write_bytes(package.build())

    proc = run_cli(str(good), "--key", LOG_KEY.vkey, "--witness-key", WITNESS.verifier.vkey)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PROVEN: 8 events, seq 5..12")
    assert "consistency proof 13 -> 21 verified" in proc.stdout
    assert "cosigned by witness witness.example/w1" in proc.stdout
    assert "No decryption key was needed" in proc.stdout
    assert "NOT pinned" not in proc.stdout

    proc = run_cli(str(good))
    assert proc.returncode == 0
    assert "log keys NOT pinned" in proc.stdout

    proc = run_cli(str(good), "--json", "--key", LOG_KEY.vkey)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert out["verified"] is True and (out["from_seq"], out["to_seq"], out["proven_by"]) == (5, 12, [16, 21])
    assert out["log_keys_pinned"] is True and out["decryption_key_needed"] is False

    rows = package.rows()
    rows[3]["record"] = rows[3]["record"].replace('"outcome":0', '"outcome":4')
    package.set_rows(rows)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(package.build())
    proc = run_cli(str(bad))
    assert proc.returncode == 1
    assert proc.stdout.startswith("FAILED: leaf_hash_mismatch at seq 8:")
    proc = run_cli(str(bad), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout) | {"detail": ""} == {
        "verified": False,
        "kind": "leaf_hash_mismatch",
        "seq": 8,
        "checkpoint": None,
        "member": None,
        "detail": "",
    }

    proc = run_cli(str(good), "--key", OTHER_KEY.vkey)
    assert proc.returncode == 1 and "FAILED: unknown_key at checkpoint 9" in proc.stdout

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[:-20])
    proc = run_cli(str(truncated))
    assert proc.returncode == 2 and proc.stdout.startswith("CANNOT VERIFY: corrupt_archive")

    package.manifest["format"] = "auditsvc-evidence/v9"
    future = tmp_path / "future.tar.gz"
    future.write_bytes(package.build())
    proc = run_cli(str(future), "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["kind"] == "unsupported_format"

    assert run_cli(str(tmp_path / "nope.tar.gz")).returncode == 2
    proc = run_cli(str(good), "--key", "not-a-key")
    assert proc.returncode == 2 and "bad key" in proc.stderr
    assert run_cli().returncode == 2  # usage
