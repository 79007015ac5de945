"""Tampering by a database superuser with the triggers disabled is found by
``auditsvc verify``: exit 1, the first bad seq and the kind of damage."""

from __future__ import annotations

import json

import pytest
from auditsvc_sdk import canonical_json, chain_hash, leaf_hash

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import Service, as_superuser, event, query, run_cli

N = 8


@pytest.fixture
def filled(service: Service) -> Settings:
    token = service.token(Role.EMITTER, ["epic-adt"])
    events = [event([("urn:oid:2.16.840.1.113883.3.1234.1.1", f"MRN-T{i:04d}")]) for i in range(N)]
    with service.client(token) as client:
        client.post("/v1/events", json={"events": events[:5]}).raise_for_status()
        client.post("/v1/events", json={"events": events[5:]}).raise_for_status()
    return service.settings


def tamper(settings: Settings, *statements: str) -> None:
    as_superuser(str(settings.database_url), *statements)


def verify(settings: Settings) -> tuple[int, dict[str, object]]:
    result = run_cli(settings, "verify", "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def assert_tampered(settings: Settings, seq: int, kind: str) -> None:
    code, report = verify(settings)
    assert code == 1, report
    assert report["ok"] is False
    assert (report["first_bad_seq"], report["kind"]) == (seq, kind)


def test_untouched_store_verifies(filled: Settings) -> None:
    code, report = verify(filled)
    assert code == 0
    assert report["ok"] is True and report["rows_checked"] == N and report["tree_size"] == N


def test_changed_field_is_found_at_its_row(filled: Settings) -> None:
    tamper(filled, "UPDATE events SET record = replace(record, '\"lab-lis\"', '\"lab-lix\"') WHERE seq = 3")
    assert_tampered(filled, 3, "leaf_hash_mismatch")


def test_changed_indexed_column_is_found_at_its_row(filled: Settings) -> None:
    # Moving an access in time hides it from date-range reports; the column
    # must agree with the hashed record.
    tamper(filled, "UPDATE events SET occurred_at = occurred_at - interval '1 year' WHERE seq = 6")
    assert_tampered(filled, 6, "record_mismatch")


def test_changed_row_with_recomputed_hashes_breaks_the_next_link(filled: Settings) -> None:
    row = query(str(filled.database_url), "SELECT record, chain_hash FROM events WHERE seq IN (1, 2) ORDER BY seq")
    forged = json.loads(row[1]["record"])
    forged["destination"] = {"system_id": "nowhere"}
    text = canonical_json(forged)
    leaf = leaf_hash(text)
    forged_chain = chain_hash(bytes(row[0]["chain_hash"]), leaf)
    tamper(
        filled,
        f"UPDATE events SET record = '{text.decode()}', leaf_hash = '\\x{leaf.hex()}', "
        f"chain_hash = '\\x{forged_chain.hex()}' WHERE seq = 2",
    )
    # Row 2 is self-consistent; row 3's chain hash committed to the original.
    assert_tampered(filled, 3, "chain_hash_mismatch")


def test_deleted_row_is_found_as_a_gap(filled: Settings) -> None:
    tamper(filled, "DELETE FROM events WHERE seq = 4")
    assert_tampered(filled, 4, "missing_row")


def test_deleted_first_row_is_found(filled: Settings) -> None:
    tamper(filled, "DELETE FROM events WHERE seq = 0")
    assert_tampered(filled, 0, "missing_row")


def test_forged_row_appended_with_made_up_hashes_is_found(filled: Settings) -> None:
    last = query(str(filled.database_url), f"SELECT record FROM events WHERE seq = {N - 1}")[0]
    forged = json.loads(last["record"])
    forged.update(seq=N, event_id="0192f3a4-1b2c-7d3e-8f40-000000000001")
    text = canonical_json(forged).decode()
    leaf = leaf_hash(text.encode())
    tamper(
        filled,
        "INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash) "
        f"SELECT log_id, {N}, '{forged['event_id']}', occurred_at, '{text}', '\\x{leaf.hex()}', "
        f"'\\x{'ab' * 32}' FROM events WHERE seq = {N - 1}",
    )
    assert_tampered(filled, N, "chain_hash_mismatch")


def test_forged_row_inserted_in_the_middle_is_found(filled: Settings) -> None:
    # A knowledgeable forger renumbers the later rows to make room and writes
    # a row whose leaf and chain hash are computed correctly from row 2.
    rows = query(str(filled.database_url), "SELECT record, chain_hash FROM events WHERE seq = 2")
    forged = json.loads(rows[0]["record"])
    forged.update(seq=3, event_id="0192f3a4-1b2c-7d3e-8f40-000000000002")
    text = canonical_json(forged).decode()
    leaf = leaf_hash(text.encode())
    forged_chain = chain_hash(bytes(rows[0]["chain_hash"]), leaf)
    tamper(
        filled,
        "UPDATE events SET seq = seq + 100 WHERE seq >= 3",
        "UPDATE events SET seq = seq - 99 WHERE seq >= 100",
        "INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash) "
        f"SELECT log_id, 3, '{forged['event_id']}', occurred_at, '{text}', '\\x{leaf.hex()}', "
        f"'\\x{forged_chain.hex()}' FROM events WHERE seq = 2",
    )
    # The forged row chains from row 2; the displaced original no longer fits.
    assert_tampered(filled, 4, "record_mismatch")


def test_swapped_rows_are_found_at_the_first(filled: Settings) -> None:
    tamper(
        filled,
        "UPDATE events SET seq = seq + 1000 WHERE seq IN (2, 5)",
        "UPDATE events SET seq = 5 WHERE seq = 1002",
        "UPDATE events SET seq = 2 WHERE seq = 1005",
    )
    assert_tampered(filled, 2, "record_mismatch")


def test_swapped_record_contents_are_found_at_the_first(filled: Settings) -> None:
    tamper(
        filled,
        "UPDATE events e SET record = o.record FROM events o WHERE (e.seq, o.seq) IN ((2, 5), (5, 2))",
    )
    assert_tampered(filled, 2, "record_mismatch")


def test_deleted_patient_index_row_is_found(filled: Settings) -> None:
    # Hiding an access from reports without touching the chain.
    tamper(filled, "DELETE FROM event_identifiers WHERE event_id = (SELECT event_id FROM events WHERE seq = 3)")
    assert_tampered(filled, 3, "identifier_index_mismatch")


def test_no_index_check_verifies_the_chain_alone_and_says_so(filled: Settings) -> None:
    tamper(filled, "DELETE FROM event_identifiers WHERE event_id = (SELECT event_id FROM events WHERE seq = 3)")
    result = run_cli(filled, "verify", "--json", "--no-index-check")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] is True and report["index_checked"] is False
    assert report["rows_checked"] == N
    text = run_cli(filled, "verify", "--no-index-check")
    assert text.returncode == 0 and "patient lookup index not checked" in text.stdout
    # The chain is still checked without the index.
    tamper(filled, "UPDATE events SET record = replace(record, '\"lab-lis\"', '\"lab-lix\"') WHERE seq = 4")
    result = run_cli(filled, "verify", "--json", "--no-index-check")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and (report["first_bad_seq"], report["kind"]) == (4, "leaf_hash_mismatch")


def test_patient_index_row_pointing_at_another_event_is_found(filled: Settings) -> None:
    tamper(
        filled,
        "UPDATE event_identifiers SET event_id = (SELECT event_id FROM events WHERE seq = 6) "
        "WHERE event_id = (SELECT event_id FROM events WHERE seq = 5)",
    )
    assert_tampered(filled, 5, "identifier_index_mismatch")


def test_patient_index_row_naming_no_stored_event_is_found(filled: Settings) -> None:
    # Reports join lookup rows to events, so such a row shows nothing; but the
    # index must hold exactly what the records say, no more.
    tamper(
        filled,
        "INSERT INTO event_identifiers (log_id, id_hmac, event_id) "
        "SELECT log_id, id_hmac, '00000000-0000-7000-8000-000000000000' FROM event_identifiers LIMIT 1",
    )
    assert_tampered(filled, N, "identifier_index_mismatch")
    _, report = verify(filled)
    damage = report["damage"]
    assert isinstance(damage, dict) and "not in the log" in str(damage["detail"])


def test_verify_that_cannot_reach_the_database_exits_2(filled: Settings) -> None:
    broken = filled.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/nothing"})
    result = run_cli(broken, "verify", "--json")
    assert result.returncode == 2
    assert "could not" in result.stderr or "cannot reach" in result.stderr
