"""``events`` partitioned by ``seq`` range (migration 0010), at 200 rows a partition.

Appends, duplicates, proofs, checkpoints, verification, reports and evidence
export across partition boundaries; the append-only triggers on every
partition; partitions created ahead of need by the service (the runtime role,
through the owner's SECURITY DEFINER function); concurrent OS processes
crossing boundaries; a store with rows upgraded from 0006.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from auditsvc_sdk._merkle import verify_consistency, verify_inclusion
from auditsvc_sdk._note import open_checkpoint

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import asyncpg_dsn, runtime_url
from auditsvc.store.migrate import alembic_config, upgrade_head

from .conftest import (
    TEST_SECRET_KEY,
    Service,
    _admin,
    _with_database,
    as_superuser,
    event,
    query,
    run_cli,
    running_service,
)
from .test_checkpoints import log_verifier, sign_now
from .test_concurrency import BATCH, BATCHES, _append_worker, assert_one_linear_history
from .test_export import offline_verify

ROWS = 200  # the narrowest partitions the function allows are 100 rows
MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-PART-1")
# Batches (in events) posted in order: the 600 is wider than a partition,
# so its group finds no room under the lock and the partitions are extended first.
SIZES = (150, 150, 150, 600, 150, 37)
SIZE = sum(SIZES)


@pytest.fixture
def narrow(settings: Settings) -> Settings:
    return settings.model_copy(update={"partition_rows": ROWS})


def post(service: Service, events: list[dict[str, Any]]) -> dict[str, Any]:
    with service.client(service.token(Role.EMITTER, ["epic-adt"])) as client:
        response = client.post("/v1/events", json={"events": events})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def fill(service: Service) -> list[dict[str, Any]]:
    """SIZE events; every 7th is the same patient's, so it has events in every partition."""
    sent: list[dict[str, Any]] = []
    for size in SIZES:
        batch = [
            event([MRN] if (len(sent) + i) % 7 == 0 else [("urn:oid:1.2.3", f"MRN-PX-{len(sent) + i}")])
            for i in range(size)
        ]
        post(service, batch)
        sent += batch
    return sent


def partitions(url: str) -> list[tuple[str, int, int]]:
    rows = query(url, "SELECT name, lower, upper FROM event_partitions ORDER BY lower")
    return [(r["name"], r["lower"], r["upper"]) for r in rows]


def attached(url: str) -> set[str]:
    rows = query(url, "SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = 'events'::regclass")
    return {r["name"] for r in rows}


def verify(settings: Settings) -> tuple[int, dict[str, Any]]:
    result = run_cli(settings, "verify", "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def across(narrow: Settings) -> Iterator[tuple[Service, list[dict[str, Any]]]]:
    with running_service(narrow) as service:
        yield service, fill(service)


def test_appends_cross_partitions_and_the_next_is_made_ahead_of_need(
    across: tuple[Service, list[dict[str, Any]]],
) -> None:
    service, _ = across
    url = str(service.settings.database_url)
    made = partitions(url)
    # Contiguous from 0, ROWS wide, every one attached, and at least one whole partition of room past the head.
    assert [(lo, hi) for _, lo, hi in made] == [(i * ROWS, (i + 1) * ROWS) for i in range(len(made))]
    assert attached(url) == {name for name, _, _ in made}
    assert made[-1][2] >= SIZE + ROWS
    counts = query(url, "SELECT tableoid::regclass::text AS part, count(*) AS n FROM events GROUP BY 1")
    assert {r["part"]: r["n"] for r in counts} == {name: min(hi, SIZE) - lo for name, lo, hi in made if lo < SIZE}
    rows = query(url, "SELECT seq FROM events ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(SIZE))
    # The partitions belong to the owner role, though the runtime role had them made.
    owners = query(
        url,
        "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = ANY($1::text[])",
        [name for name, _, _ in made],
    )
    assert [r["owner"] for r in owners] == [service.settings.owner_role]


def test_an_event_resent_after_the_boundary_is_a_duplicate_and_found_by_id(
    across: tuple[Service, list[dict[str, Any]]],
) -> None:
    service, sent = across
    again = [sent[3], sent[450], sent[-1]]  # in partitions 0, 2 and the last
    body = post(service, [*again, event()])
    assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate", "duplicate", "accepted"]
    assert [r["seq"] for r in body["results"]] == [3, 450, SIZE - 1, SIZE]
    assert body["head"]["tree_size"] == SIZE + 1
    with service.client(service.token(Role.AUDITOR)) as auditor:
        for seq in (3, 450, SIZE - 1):
            found = auditor.get(f"/v1/events/{sent[seq]['event_id']}").json()
            assert found["seq"] == seq and found["record"]["event_id"] == sent[seq]["event_id"]
    # (each read above is itself on the record)
    [counts] = query(
        str(service.settings.database_url),
        "SELECT (SELECT count(*) FROM event_ids) AS ids, (SELECT count(*) FROM events) AS events",
    )
    assert counts["ids"] == counts["events"] == SIZE + 1 + 3


def test_proofs_checkpoints_verify_report_and_export_span_partitions(
    across: tuple[Service, list[dict[str, Any]]], tmp_path: Path
) -> None:
    service, sent = across
    first = open_checkpoint(sign_now(service), [log_verifier(service)])[0]
    post(service, [event() for _ in range(250)])  # into the next partitions
    second = open_checkpoint(sign_now(service), [log_verifier(service)])[0]
    assert (first.size, second.size) == (SIZE, SIZE + 250)
    with service.client(service.token(Role.AUDITOR)) as auditor:
        for seq in (0, 199, 200, 255, 256, 399, 400, 1000, SIZE - 1, SIZE + 249):
            body = auditor.get("/v1/proofs/inclusion", params={"seq": seq, "tree_size": second.size}).json()
            proof = [bytes.fromhex(h) for h in body["hashes"]]
            verify_inclusion(bytes.fromhex(body["leaf_hash"]), seq, second.size, proof, second.root_hash)
        body = auditor.get("/v1/proofs/consistency", params={"first": first.size, "second": second.size}).json()
        proof = [bytes.fromhex(h) for h in body["hashes"]]
        verify_consistency(first.size, second.size, proof, first.root_hash, second.root_hash)

    code, report = verify(service.settings)
    assert code == 0, report
    assert report["rows_checked"] == second.size and report["index_checked"] is True

    mine = [e for e in sent if e["patient"]["identifiers"] == [{"system": MRN[0], "value": MRN[1]}]]
    with service.client(service.token(Role.PRIVACY_OFFICER)) as officer:
        seen: list[str] = []
        cursor = None
        while True:
            page = officer.post(
                "/v1/reports/patient-access",
                json={"identifier": {"system": MRN[0], "value": MRN[1]}, "limit": 100, "cursor": cursor},
            ).json()
            seen += [e["event_id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(e["event_id"] for e in mine)
        assert sum(s["count"] for s in page["systems"] if s["system_id"] == "epic-adt") == len(mine)

    package = tmp_path / "evidence.tar.gz"
    result = run_cli(service.settings, "export", "--out", str(package), "--from-seq", "150", "--to-seq", "1050")
    assert result.returncode == 0, result.stderr
    code, exported = offline_verify(package)
    assert code == 0, exported
    assert (exported["from_seq"], exported["to_seq"], exported["event_count"]) == (150, 1050, 901)


@pytest.mark.parametrize(
    ("statements", "seq", "kind"),
    [
        (
            ["UPDATE events SET record = replace(record, '\"lab-lis\"', '\"lab-lix\"') WHERE seq = 1030"],
            1030,
            "leaf_hash_mismatch",
        ),
        (["DELETE FROM events WHERE seq = 801"], 801, None),
        (["DELETE FROM event_ids WHERE seq = 999"], 999, "read_model_mismatch"),
        # A second row for an event under another id: no record names it.
        (
            ["INSERT INTO event_ids SELECT log_id, gen_random_uuid(), seq FROM event_ids WHERE seq = 1111"],
            1111,
            "read_model_mismatch",
        ),
    ],
    ids=["changed record", "deleted row", "event id row deleted", "event id row added"],
)
def test_tampering_in_a_later_partition_is_found_at_its_seq(
    across: tuple[Service, list[dict[str, Any]]], statements: list[str], seq: int, kind: str | None
) -> None:
    service, _ = across
    as_superuser(str(service.settings.database_url), *statements)
    code, report = verify(service.settings)
    assert code == 1, report
    assert report["first_bad_seq"] == seq, report
    if kind is not None:
        assert report["kind"] == kind, report


def test_every_partition_refuses_update_delete_and_truncate_and_the_runtime_role(
    across: tuple[Service, list[dict[str, Any]]],
) -> None:
    service, _ = across
    url, settings = str(service.settings.database_url), service.settings
    names = [name for name, _, _ in partitions(url)]
    triggers = query(
        url,
        "SELECT tgrelid::regclass::text AS part, tgname, tgenabled::text AS on FROM pg_trigger "
        "WHERE tgrelid = ANY($1::regclass[]) AND NOT tgisinternal",
        names,
    )
    for name in names:
        mine = {(r["tgname"], r["on"]) for r in triggers if r["part"] == name}
        assert mine == {("events_no_update_delete", "O"), ("events_no_truncate", "O")}, (name, mine)

    async def attempt(dsn: str, sql: str) -> BaseException | None:
        conn = await asyncpg.connect(asyncpg_dsn(dsn))
        try:
            async with conn.transaction():
                await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()
        return None

    later = names[3]  # holds rows
    for sql in (f"UPDATE {later} SET log_id = log_id", f"DELETE FROM {later}", f"TRUNCATE {later}"):
        error = asyncio.run(attempt(url, f"SET LOCAL ROLE {settings.owner_role}; {sql}"))
        assert isinstance(error, asyncpg.InsufficientPrivilegeError) and "append-only" in str(error), (sql, error)
    for sql in (
        f"SELECT count(*) FROM {later}",
        f"DELETE FROM {later}",
        f"TRUNCATE {later}",
        f"DROP TABLE {later}",
        "CREATE TABLE events_x (LIKE events)",
        f"ALTER TABLE events DETACH PARTITION {later}",
    ):
        error = asyncio.run(attempt(runtime_url(settings), sql))
        assert isinstance(error, asyncpg.InsufficientPrivilegeError), (sql, error)
    assert query(url, "SELECT count(*) AS n FROM events")[0]["n"] == SIZE
    # The partitions' bookkeeping: only the function writes it, and it only grows.
    for sql in (
        "UPDATE event_partitions SET upper = upper + 1",
        "DELETE FROM event_partitions",
        "TRUNCATE event_partitions",
    ):
        error = asyncio.run(attempt(url, f"SET LOCAL ROLE {settings.owner_role}; {sql}"))
        assert isinstance(error, asyncpg.InsufficientPrivilegeError) and "append-only" in str(error), (sql, error)
    error = asyncio.run(attempt(runtime_url(settings), "INSERT INTO event_partitions VALUES ('x', 10000, 10001)"))
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error


def test_the_runtime_role_extends_the_partitions_within_bounds(narrow: Settings) -> None:
    with running_service(narrow) as service:
        post(service, [event()])
        url = str(service.settings.database_url)
        assert [(lo, hi) for _, lo, hi in partitions(url)] == [(0, ROWS), (ROWS, 2 * ROWS)]

        async def call(*args: Any) -> Any:
            conn = await asyncpg.connect(asyncpg_dsn(runtime_url(narrow)))
            try:
                return await conn.fetchval("SELECT auditsvc_extend_partitions($1, $2)", *args)
            finally:
                await conn.close()

        assert asyncio.run(call(2 * ROWS, None)) == 2 * ROWS  # covered already: nothing made
        assert asyncio.run(call(2 * ROWS + 1, None)) == 3 * ROWS  # as wide as the last
        assert asyncio.run(call(3 * ROWS + 1, 500)) == 3 * ROWS + 500
        for args in ((10**9, None), (4 * ROWS, 99)):  # too far ahead of the head; too narrow
            with pytest.raises(asyncpg.InvalidParameterValueError):
                asyncio.run(call(*args))
        assert attached(url) == {name for name, _, _ in partitions(url)}
        post(service, [event() for _ in range(ROWS)])
    code, report = verify(narrow)
    assert code == 0 and report["rows_checked"] == ROWS + 1, report


def test_four_processes_crossing_partition_boundaries_make_one_gapless_chain(narrow: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    workers = 4
    start = context.Barrier(workers + 1)
    assert narrow.secret_key is not None
    payload = json.dumps({**narrow.model_dump(mode="json"), "secret_key": narrow.secret_key.get_secret_value()})
    processes = [context.Process(target=_append_worker, args=(payload, w, start)) for w in range(workers)]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    for process in processes:
        process.join(timeout=180)
        assert process.exitcode == 0
    size = workers * BATCHES * BATCH + BATCH
    assert_one_linear_history(narrow, size)
    made = partitions(str(narrow.database_url))
    assert made[-1][2] >= size and len(made) >= size // ROWS


def test_a_store_with_rows_at_0006_becomes_the_first_partition(empty_db: str, db_url: str, tmp_path: Path) -> None:
    from .test_migrations import OLD_LOG_TABLES, copy_rows, fill_through_the_api

    settings = Settings(
        database_url=empty_db,
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        log_name="m.auditsvc.local/log",
        partition_rows=ROWS,
    )
    command.upgrade(alembic_config(settings, empty_db), "0006")
    fill_through_the_api(settings.model_copy(update={"database_url": db_url}))
    tables = (*OLD_LOG_TABLES, "event_facts", "patient_events", "read_model_backfill", "api_tokens")
    asyncio.run(copy_rows(db_url, empty_db, tables))
    before = query(empty_db, "SELECT seq, event_id, record, chain_hash FROM events ORDER BY seq")
    head = len(before)

    upgrade_head(settings, empty_db)

    assert query(empty_db, "SELECT seq, event_id, record, chain_hash FROM events ORDER BY seq") == before
    assert partitions(empty_db) == [("events_" + "0" * 19, 0, head)]
    ids = query(empty_db, "SELECT event_id, seq FROM event_ids ORDER BY seq")
    assert [(r["event_id"], r["seq"]) for r in ids] == [(r["event_id"], r["seq"]) for r in before]
    with running_service(settings) as service:
        body = post(service, [{**event(), "event_id": str(before[5]["event_id"])}, *(event() for _ in range(ROWS))])
        assert body["results"][0] == {"event_id": str(before[5]["event_id"]), "status": "duplicate", "seq": 5}
        assert body["head"]["tree_size"] == head + ROWS
    made = partitions(empty_db)
    assert made[0] == ("events_" + "0" * 19, 0, head) and made[1][1:] == (head, head + ROWS)
    code, report = verify(settings)
    assert code == 0 and report["rows_checked"] == head + ROWS, report


@pytest.fixture
def empty_db(server_url: str) -> Iterator[str]:
    name = f"asvc_p_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name}")
    yield _with_database(server_url, name)
    _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
