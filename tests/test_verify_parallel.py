"""Verification split over worker processes finds exactly what the one-process
verification finds: the same damage, the same first bad seq, the same
checkpoint roots and resume state, for tampering inside a range, on either
side of a range boundary and at the ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from auditsvc_sdk import FORMAT_VERSION, canonical_json, chain_hash, genesis_hash, leaf_hash
from auditsvc_sdk._merkle import root_from_leaf_hashes
from auditsvc_sdk._note import Checkpoint, NoteSigner, sign_note

from auditsvc.domain.append_types import PendingBatch
from auditsvc.domain.ingest import parse_batch, prepare
from auditsvc.domain.verify import (
    CheckpointClaim,
    LogRef,
    ResumeState,
    VerifyOptions,
    VerifyReport,
    plan_ranges,
    range_size,
    verify_chain,
)
from auditsvc.domain.verify_range import identifier_lookup_keys, index_fingerprint
from auditsvc.keys import ServerKeys
from auditsvc.sealing import IdentifierSealer, StaticKeyProvider
from auditsvc.store.append import append_group
from auditsvc.store.engine import asyncpg_dsn
from auditsvc.store.logs import ensure_log
from auditsvc.store.verify import index_sum

from .conftest import as_superuser, event, query

pytestmark = pytest.mark.db

LOG = "auditsvc.test/parallel"
ROWS = 1500
RANGE = 256  # ranges [0,256), [256,512), ... [1280,1500)
KEYS = ServerKeys(b"k" * 32, b"t" * 32, IdentifierSealer(StaticKeyProvider({"k1": b"e" * 32}, "k1")))
SIGNER = NoteSigner.generate(LOG)


async def _fill(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        log_id = await ensure_log(conn, LOG, FORMAT_VERSION)
        for start in range(0, ROWS, 500):
            events = [
                event([("urn:oid:1.2.3", f"MRN-P{i % 97:04d}"), ("urn:oid:9.9", f"E{i % 31}")])
                for i in range(start, start + 500)
            ]
            body = json.dumps({"events": events}).encode()
            batch = PendingBatch(prepare(parse_batch(body, 1000), KEYS, "tok_parallel"))
            await append_group(conn, log_id, genesis_hash(LOG), [batch])
        return log_id
    finally:
        await conn.close()


@pytest.fixture
def log(db_url: str) -> tuple[str, int]:
    dsn = asyncpg_dsn(db_url)
    return dsn, asyncio.run(_fill(dsn))


async def _leaf_hashes(dsn: str, log_id: int) -> list[bytes]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT leaf_hash FROM events WHERE log_id = $1 ORDER BY seq", log_id)
        return [bytes(r["leaf_hash"]) for r in rows]
    finally:
        await conn.close()


def _claims(leaves: list[bytes], sizes: list[int]) -> list[CheckpointClaim]:
    claims = []
    for size in sizes:
        root = root_from_leaf_hashes(leaves[:size])
        note = sign_note(Checkpoint(LOG, size, root).body(), [SIGNER])
        claims.append(CheckpointClaim(size, root, note, external=True))
    return claims


def _verify(
    dsn: str,
    log_id: int,
    *,
    parallel: bool,
    range_rows: int | None = RANGE,
    keys: ServerKeys | None = KEYS,
    **kwargs: Any,
) -> VerifyReport:
    async def _run() -> VerifyReport:
        conn = await asyncpg.connect(dsn)
        try:
            options = VerifyOptions(
                keys=keys,
                trusted_vkeys=(SIGNER.vkey,),
                dsn=dsn if parallel else None,
                workers=2 if parallel else 1,
                parallel_min_rows=0,
                range_rows=range_rows,
                **kwargs,
            )
            return await verify_chain(conn, LogRef.named(log_id, LOG), options)
        finally:
            await conn.close()

    return asyncio.run(_run())


def _same(dsn: str, log_id: int, **kwargs: Any) -> VerifyReport:
    """Parallel ranges, the same ranges in one process, and one range in one
    process all report the same."""
    fields = ("ok", "damage", "rows_checked", "head_chain_hash", "state", "index_checked", "tree_size")
    whole = _verify(dsn, log_id, parallel=False, range_rows=None, **kwargs)
    expected = {f: getattr(whole, f) for f in fields}
    serial = _verify(dsn, log_id, parallel=False, **kwargs)
    assert {f: getattr(serial, f) for f in fields} == expected
    parallel = _verify(dsn, log_id, parallel=True, **kwargs)
    assert {f: getattr(parallel, f) for f in fields} == expected
    return parallel


def test_ranges_align_to_a_power_of_two_after_an_unaligned_start() -> None:
    assert plan_ranges(0, 0, 256) == []
    assert plan_ranges(0, 100, 256) == [(0, 100)]
    assert plan_ranges(0, 1000, 256) == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert plan_ranges(300, 1000, 256) == [(300, 512), (512, 768), (768, 1000)]
    assert plan_ranges(300, 400, 256) == [(300, 400)]
    assert plan_ranges(512, 700, 256) == [(512, 700)]
    assert range_size(1_000_000, 2) == 1 << 15 and range_size(10_000, 2) == 1 << 12
    assert range_size(10**9, 1) == 1 << 16 and range_size(10**9, 8) == 1 << 17
    with pytest.raises(ValueError, match="power of two"):
        plan_ranges(0, 1000, 300)


def test_intact_log_verifies_alike_with_checkpoint_roots_at_every_kind_of_size(log: tuple[str, int]) -> None:
    dsn, log_id = log
    leaves = asyncio.run(_leaf_hashes(dsn, log_id))
    # Inside a range, on a boundary, one past one, a full power of two, the end.
    sizes = [1, 100, 256, 257, 511, 512, 1024, 1300, ROWS]
    report = _same(dsn, log_id, external=_claims(leaves, sizes))
    assert report.ok and report.rows_checked == ROWS and report.index_checked
    assert report.state is not None and report.state["tree_size"] == ROWS
    assert report.external_checked == len(sizes)


def test_a_wrong_root_in_any_range_is_found(log: tuple[str, int]) -> None:
    dsn, log_id = log
    leaves = asyncio.run(_leaf_hashes(dsn, log_id))
    claims = _claims(leaves, [300, 700])
    bad_root = root_from_leaf_hashes([*leaves[:699], leaf_hash(b"forged")])
    claims.append(CheckpointClaim(700, bad_root, sign_note(Checkpoint(LOG, 700, bad_root).body(), [SIGNER]), True))
    report = _same(dsn, log_id, external=claims)
    assert report.damage is not None and report.damage.kind == "rewritten" and report.damage.seq == 300


def test_resumed_verification_from_an_unaligned_checkpoint(log: tuple[str, int]) -> None:
    dsn, log_id = log
    leaves = asyncio.run(_leaf_hashes(dsn, log_id))
    first = _verify(dsn, log_id, parallel=True, external=_claims(leaves, [300]))
    assert first.ok and first.state is not None and first.state["tree_size"] == 300
    resume = ResumeState.from_json(first.state)
    again = _same(dsn, log_id, resume=resume, external=_claims(leaves, [300, 600, 1400]))
    assert again.ok and again.rows_checked == ROWS - 300 and again.resumed_from == 300
    assert again.state is not None and again.state["tree_size"] == 1400


def _change_field(dsn: str, seq: int) -> None:
    as_superuser(dsn, f"UPDATE events SET record = replace(record, '\"R\"', '\"D\"') WHERE seq = {seq}")


def _delete(dsn: str, seq: int) -> None:
    as_superuser(dsn, f"DELETE FROM events WHERE seq = {seq}")


def _rehash(dsn: str, seq: int) -> None:
    [row] = query(dsn, "SELECT record FROM events WHERE seq = $1", seq)
    [before] = query(dsn, "SELECT chain_hash FROM events WHERE seq = $1", seq - 1)
    record = json.loads(row["record"])
    record["action"] = "D"
    text = canonical_json(record).decode()
    leaf = leaf_hash(text.encode())
    as_superuser(
        dsn,
        f"UPDATE events SET record = '{text}', leaf_hash = '\\x{leaf.hex()}', "
        f"chain_hash = '\\x{chain_hash(bytes(before['chain_hash']), leaf).hex()}' WHERE seq = {seq}",
    )


def _drop_index_row(dsn: str, seq: int) -> None:
    as_superuser(
        dsn,
        "DELETE FROM event_identifiers WHERE ctid = (SELECT ei.ctid FROM event_identifiers ei "
        f"JOIN events e USING (log_id, event_id) WHERE e.seq = {seq} LIMIT 1)",
    )


def _truncate_tail(dsn: str, seq: int) -> None:
    as_superuser(dsn, f"DELETE FROM events WHERE seq >= {seq}")


TAMPERS: dict[str, tuple[Callable[[str, int], None], str, int]] = {
    # name: (how, expected kind, offset of the reported seq from the tampered one)
    "changed_field": (_change_field, "leaf_hash_mismatch", 0),
    "deleted_row": (_delete, "missing_row", 0),
    "recomputed_row": (_rehash, "chain_hash_mismatch", 1),
    "dropped_index_row": (_drop_index_row, "identifier_index_mismatch", 0),
}


@pytest.mark.parametrize("seq", [0, 255, 256, 700, ROWS - 2])
@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampering_is_found_alike_anywhere(log: tuple[str, int], name: str, seq: int) -> None:
    dsn, log_id = log
    how, kind, offset = TAMPERS[name]
    if name == "recomputed_row" and seq == 0:
        seq = 1
    how(dsn, seq)
    report = _same(dsn, log_id)
    assert report.damage is not None
    assert (report.damage.kind, report.damage.seq) == (kind, seq + offset)


def test_truncated_tail_is_found_alike(log: tuple[str, int]) -> None:
    dsn, log_id = log
    leaves = asyncio.run(_leaf_hashes(dsn, log_id))
    _truncate_tail(dsn, 900)
    report = _same(dsn, log_id, external=_claims(leaves, [512, ROWS]))
    assert report.damage is not None and (report.damage.kind, report.damage.seq) == ("truncated", 900)


def _rewrite(dsn: str, first: int, change: Callable[[int, dict[str, Any]], None]) -> None:
    """A knowledgeable rewrite: records from ``first`` on are changed by
    ``change(seq, record)`` and every hash from there is recomputed."""
    [before] = query(dsn, "SELECT chain_hash FROM events WHERE seq = $1", first - 1)
    previous = bytes(before["chain_hash"])
    statements = []
    for row in query(dsn, "SELECT seq, record FROM events WHERE seq >= $1 ORDER BY seq", first):
        record = json.loads(row["record"])
        change(row["seq"], record)
        text = canonical_json(record).decode()
        leaf = leaf_hash(text.encode())
        previous = chain_hash(previous, leaf)
        statements.append(
            f"UPDATE events SET record = '{text}', leaf_hash = '\\x{leaf.hex()}', "
            f"chain_hash = '\\x{previous.hex()}' WHERE seq = {row['seq']}"
        )
    as_superuser(dsn, *statements)


def _as_format_1(seq: int, record: dict[str, Any]) -> None:
    """The record as a store from before sealed identifiers wrote it: the
    identifiers in clear (the values ``_fill`` sent for this row)."""
    if seq % 3 == 0:
        values = {"urn:oid:1.2.3": f"MRN-P{seq % 97:04d}", "urn:oid:9.9": f"E{seq % 31}"}
        record["v"] = 1
        record["patient"]["identifiers"] = [
            {"system": i["system"], "value": values[i["system"]]} for i in record["patient"]["identifiers"]
        ]


def test_a_log_mixing_record_formats_verifies_alike(log: tuple[str, int]) -> None:
    """Format-1 records (identifiers in clear; their lookup keys need the
    server's key) among format-2 ones take the general way through a range
    and verify the same, in one process or many."""
    dsn, log_id = log
    _rewrite(dsn, 600, _as_format_1)
    report = _same(dsn, log_id)
    assert report.ok and report.rows_checked == ROWS and report.index_checked
    without_key = _same(dsn, log_id, keys=None)
    # Without the key the format-1 records' lookup keys cannot be recomputed:
    # the chain verifies, the index is reported unchecked.
    assert without_key.ok and without_key.rows_checked == ROWS and not without_key.index_checked


def test_a_format_1_record_whose_identifier_was_moved_is_found(log: tuple[str, int]) -> None:
    dsn, log_id = log

    def move(seq: int, record: dict[str, Any]) -> None:
        _as_format_1(seq, record)
        if seq == 900:  # a clear value the index does not hold for this event
            record["patient"]["identifiers"][0]["value"] = "MRN-P9999"

    _rewrite(dsn, 600, move)
    report = _same(dsn, log_id)
    assert report.damage is not None
    assert (report.damage.kind, report.damage.seq) == ("identifier_index_mismatch", 900)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda ids: ids[0].pop("value_hmac"),
        lambda ids: ids[0].update(value_hmac="not hex"),
        lambda ids: ids[0].update(value_hmac=7),
        lambda ids: ids.append("MRN-1"),
    ],
    ids=["no_value_hmac", "value_hmac_not_hex", "value_hmac_not_a_string", "identifier_not_an_object"],
)
def test_a_rewritten_record_with_malformed_identifiers_is_found(
    log: tuple[str, int], spoil: Callable[[list[Any]], None]
) -> None:
    dsn, log_id = log

    def change(seq: int, record: dict[str, Any]) -> None:
        if seq == 700:
            spoil(record["patient"]["identifiers"])

    _rewrite(dsn, 700, change)
    report = _same(dsn, log_id)
    assert report.damage is not None
    assert (report.damage.kind, report.damage.seq) == ("malformed_record", 700)


def test_a_rewritten_record_without_its_patient_is_found(log: tuple[str, int]) -> None:
    dsn, log_id = log

    def change(seq: int, record: dict[str, Any]) -> None:
        if seq == 256:
            del record["patient"]

    _rewrite(dsn, 256, change)
    report = _same(dsn, log_id)
    assert report.damage is not None
    assert (report.damage.kind, report.damage.seq) == ("malformed_record", 256)


def test_the_index_fingerprint_is_keyed_per_verification(log: tuple[str, int]) -> None:
    """The index side (SQL) and the records side (Python) agree under any
    key, and different keys give unrelated sums: rows made up to match one
    key's sum do not match the next verification's."""
    dsn, log_id = log

    async def sums(key: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
        conn = await asyncpg.connect(dsn)
        try:
            index = await index_sum(conn, log_id, key)
            count = total = 0
            for r in await conn.fetch("SELECT event_id, record FROM events WHERE log_id = $1", log_id):
                lookup = identifier_lookup_keys(json.loads(r["record"]), KEYS.identifier_key)
                assert lookup is not None
                count += len(lookup)
                total += index_fingerprint(key, r["event_id"].bytes, lookup)
            return index, (count, total)
        finally:
            await conn.close()

    index_a, records_a = asyncio.run(sums(b"a" * 16))
    index_b, records_b = asyncio.run(sums(b"b" * 16))
    assert index_a == records_a and index_b == records_b
    assert index_a[0] == index_b[0] and index_a[1] != index_b[1]
