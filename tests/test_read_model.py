"""The reports' read model (migration 0006): written with the chain rows,
checked by ``verify``, backfilled for rows stored before it, resumably."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest

from auditsvc.domain.backfill import lookup_keys
from auditsvc.domain.tokens import Role
from auditsvc.keys import load_keys
from auditsvc.settings import Settings
from auditsvc.store import readmodel
from auditsvc.store.engine import asyncpg_dsn

from .conftest import Service, as_superuser, event, query, run_cli, running_service

MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-RM-0001")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-RM-0001")
OTHER = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-RM-0002")

FACTS = ", ".join(readmodel.FACT_COLUMNS)


def _events() -> list[dict[str, Any]]:
    return [
        event([MRN, EMPI], occurred_at="2026-11-01T08:00:00Z"),
        event(
            [MRN],
            source="lab-lis",
            destination="epic-adt",
            occurred_at="2026-11-02T09:00:00Z",
            action="C",
            event_type="break-glass",
            purpose_of_use="ETREAT",
            data_elements=["OBR", "OBX"],
            actor={"id": "u-dr-1", "type": "user", "role": "physician", "name": "Dr. Test"},
        ),
        event([OTHER], occurred_at="2026-11-03T10:00:00Z", outcome=4, attributes={"break_glass": True}),
        *[event([OTHER], occurred_at=f"2026-11-04T10:{i:02d}:00Z") for i in range(7)],
    ]


@pytest.fixture
def filled(service: Service) -> Service:
    token = service.token(Role.EMITTER, ["epic-adt", "lab-lis"])
    events = _events()
    with service.client(token) as client:
        client.post("/v1/events", json={"events": events[:3]}).raise_for_status()
        client.post("/v1/events", json={"events": events[3:]}).raise_for_status()
    return service


def facts(url: str) -> list[dict[str, Any]]:
    return [dict(r) for r in query(url, f"SELECT {FACTS} FROM event_facts ORDER BY seq")]


def patient_rows(url: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in query(url, "SELECT log_id, id_hmac, occurred_at, seq FROM patient_events ORDER BY 4, 2")]


def verify(settings: Settings) -> tuple[int, dict[str, Any]]:
    result = run_cli(settings, "verify", "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_append_writes_the_records_fields_and_one_patient_row_per_identifier(filled: Service) -> None:
    url = str(filled.settings.database_url)
    records = {r["seq"]: json.loads(r["record"]) for r in query(url, "SELECT seq, record FROM events")}
    rows = facts(url)
    assert [r["seq"] for r in rows] == sorted(records)
    for row in rows:
        record = records[row["seq"]]
        assert row["event_type"] == record["event_type"] and row["action"] == record["action"]
        assert (row["source_system"], row["destination_system"]) == (
            record["source"]["system_id"],
            record["destination"]["system_id"],
        )
        assert (row["actor_id"], row["actor_type"], row["actor_role"], row["actor_name"]) == (
            record["actor"]["id"],
            record["actor"]["type"],
            record["actor"].get("role"),
            record["actor"].get("name"),
        )
        assert row["data_elements"] == record["data_elements"]
        assert row["outcome"] == record["outcome"] and row["emitter"] == record["emitter"]
        assert row["purpose_of_use"] == record.get("purpose_of_use")
    assert [r["break_glass"] for r in rows[:4]] == [False, True, True, False]
    assert rows[2]["outcome"] == 4
    expected = sorted(
        (1, bytes.fromhex(i["value_hmac"]), row["occurred_at"], row["seq"])
        for row in rows
        for i in records[row["seq"]]["patient"]["identifiers"]
    )
    assert sorted((r[0], bytes(r[1]), r[2], r[3]) for r in patient_rows(url)) == expected
    assert len(expected) == len(rows) + 1  # the first event names two identifiers


def test_intact_read_model_verifies(filled: Service) -> None:
    code, report = verify(filled.settings)
    assert code == 0, report
    assert report["index_checked"] is True


@pytest.mark.parametrize(
    ("statement", "seq", "detail"),
    [
        # Moving an access to another system hides it from that system's report.
        ("UPDATE event_facts SET source_system = 'elsewhere' WHERE seq = 1", 1, "differ"),
        ("UPDATE event_facts SET break_glass = false WHERE seq = 1", 1, "differ"),
        ("UPDATE event_facts SET occurred_at = occurred_at - interval '1 year' WHERE seq = 2", 2, "differ"),
        ("UPDATE event_facts SET data_elements = '{OBR}' WHERE seq = 1", 1, "differ"),
        ("DELETE FROM event_facts WHERE seq = 4", 4, "no row"),
        (
            "INSERT INTO event_facts SELECT log_id, outcome, break_glass, 99, occurred_at, event_type, action, "
            "purpose_of_use, source_system, destination_system, actor_id, actor_type, actor_role, actor_name, "
            "emitter, data_elements FROM event_facts WHERE seq = 0",
            99,
            "not in the log",
        ),
        # Deleting a patient's index row hides the access from the patient's report.
        ("DELETE FROM patient_events WHERE seq = 1", 1, "lacks"),
        ("UPDATE patient_events SET occurred_at = occurred_at + interval '1 day' WHERE seq = 3", 3, "lacks"),
        ("UPDATE patient_events SET seq = 5 WHERE seq = 3", 3, "lacks"),
        (
            "INSERT INTO patient_events SELECT log_id, id_hmac, occurred_at, 2 FROM patient_events WHERE seq = 0 "
            "LIMIT 1",
            2,
            "do not name",
        ),
    ],
)
def test_a_tampered_read_model_fails_verify(filled: Service, statement: str, seq: int, detail: str) -> None:
    as_superuser(str(filled.settings.database_url), statement)
    code, report = verify(filled.settings)
    assert code == 1, report
    assert (report["first_bad_seq"], report["kind"]) == (seq, "read_model_mismatch"), report
    assert detail in report["damage"]["detail"]


def test_no_index_check_skips_the_read_model_too(filled: Service) -> None:
    as_superuser(str(filled.settings.database_url), "DELETE FROM patient_events WHERE seq = 1")
    result = run_cli(filled.settings, "verify", "--json", "--no-index-check")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["index_checked"] is False


def _forget_read_model(url: str) -> None:
    """The state migration 0006 leaves a log filled before it: rows, no read model, a pending backfill."""
    as_superuser(
        url,
        "DELETE FROM event_facts",
        "DELETE FROM patient_events",
        "DELETE FROM read_model_backfill",
        "INSERT INTO read_model_backfill (log_id, upto, complete) SELECT log_id, 0, false FROM logs",
    )


async def _backfill(url: str, settings: Settings, **kw: Any) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await readmodel.backfill(conn, 1, lookup_keys(load_keys(settings, sealing=False)), **kw)
    finally:
        await conn.close()


def test_backfill_resumes_where_it_stopped_and_reports_wait_for_it(filled: Service) -> None:
    url = str(filled.settings.database_url)
    before_facts, before_patients = facts(url), patient_rows(url)
    _forget_read_model(url)

    officer = filled.client(filled.token(Role.PRIVACY_OFFICER))
    identifier = {"system": MRN[0], "value": MRN[1]}
    pending = officer.post("/v1/reports/patient-access", json={"identifier": identifier})
    assert pending.status_code == 503, pending.text
    assert "report index" in pending.json()["detail"] and MRN[1] not in pending.text

    # Interrupted after two batches of three: six rows in, progress recorded.
    assert asyncio.run(_backfill(url, filled.settings, batch_rows=3, max_batches=2)) is False
    assert [r["seq"] for r in facts(url)] == list(range(6))
    assert query(url, "SELECT max(upto) AS m FROM read_model_backfill")[0]["m"] == 6
    # A partial read model verifies as far as it goes.
    code, report = verify(filled.settings)
    assert code == 0, report
    assert officer.post("/v1/reports/patient-access", json={"identifier": identifier}).status_code == 503

    # The service appends meanwhile (the report audit events above are
    # appended too); the backfill takes the rest, the tail under the lock.
    assert asyncio.run(_backfill(url, filled.settings, batch_rows=3)) is True
    after = facts(url)
    assert after[: len(before_facts)] == before_facts
    assert [r["seq"] for r in after] == list(range(len(after)))
    assert patient_rows(url)[: len(before_patients)] == before_patients
    assert query(url, "SELECT count(*) AS n FROM read_model_backfill WHERE complete")[0]["n"] == 1

    answer = officer.post("/v1/reports/patient-access", json={"identifier": identifier})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["events"]) == 2
    code, report = verify(filled.settings)
    assert code == 0, report


def test_migrate_runs_the_backfill_to_the_end(filled: Service) -> None:
    url = str(filled.settings.database_url)
    before = facts(url)
    _forget_read_model(url)
    result = run_cli(filled.settings, "migrate")
    assert result.returncode == 0, result.stderr
    assert facts(url) == before
    complete = query(url, "SELECT bool_or(complete) AS c FROM read_model_backfill")[0]["c"]
    assert complete is True


def test_the_service_backfills_in_the_background(filled: Service, settings: Settings) -> None:
    url = str(filled.settings.database_url)
    before = facts(url)
    _forget_read_model(url)
    with running_service(settings) as second:
        officer = second.client(second.token(Role.PRIVACY_OFFICER))
        for _ in range(100):
            answer = officer.post(
                "/v1/reports/patient-access", json={"identifier": {"system": MRN[0], "value": MRN[1]}}
            )
            if answer.status_code == 200:
                break
            assert answer.status_code == 503
            time.sleep(0.1)
        assert answer.status_code == 200, answer.text
    assert facts(url)[: len(before)] == before


@pytest.mark.parametrize("tampered_seq", [1, 8])
def test_ranges_compared_on_several_connections_find_the_same_row(
    filled: Service, monkeypatch: pytest.MonkeyPatch, tampered_seq: int
) -> None:
    url = str(filled.settings.database_url)
    monkeypatch.setattr(readmodel, "PARALLEL_MIN_ROWS", 0)

    async def check() -> readmodel.ReadModelMismatch | None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await readmodel.first_mismatch(conn, 1, 10, asyncpg_dsn(url), workers=3)
        finally:
            await conn.close()

    assert asyncio.run(check()) is None
    [original] = query(url, f"SELECT action FROM event_facts WHERE seq = {tampered_seq}")
    as_superuser(url, f"UPDATE event_facts SET action = 'D' WHERE seq = {tampered_seq}")
    assert asyncio.run(check()) == readmodel.ReadModelMismatch(tampered_seq, "the report facts differ from the record")
    # Put back; a row past the log's end is found by the last range.
    as_superuser(
        url,
        f"UPDATE event_facts SET action = '{original['action']}' WHERE seq = {tampered_seq}",
        "INSERT INTO event_facts SELECT log_id, outcome, break_glass, 50, occurred_at, event_type, action, "
        "purpose_of_use, source_system, destination_system, actor_id, actor_type, actor_role, actor_name, "
        "emitter, data_elements FROM event_facts WHERE seq = 0",
    )
    assert asyncio.run(check()) == readmodel.ReadModelMismatch(
        50, "the report facts have a row naming an event that is not in the log"
    )
