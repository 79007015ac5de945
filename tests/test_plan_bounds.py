"""The plan-bounds harness (tests/plan_bounds.py) catches plans whose cost grows
with the table, including one that degrades only once the generic plan is
cached, and passes plans bounded by the rows they return."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from auditsvc.store.engine import asyncpg_dsn

from .conftest import _admin, _with_database
from .plan_bounds import PlanNotBounded, assert_plan_bounded, walk_plan

pytestmark = pytest.mark.db

TABLE_ROWS = 200_000
PATIENTS = 10_000  # 20 rows per patient

# One table shaped like the report's problem: rows of many patients in time
# order, an index per patient and one on time.
_SCHEMA = f"""
CREATE TABLE plan_t (
    seq bigint PRIMARY KEY,
    patient int NOT NULL,
    occurred_at timestamptz NOT NULL,
    note text NOT NULL
);
INSERT INTO plan_t
SELECT g, g % {PATIENTS}, timestamptz '2026-01-01' + g * interval '1 minute', md5(g::text)
FROM generate_series(0, {TABLE_ROWS - 1}) g;
CREATE INDEX plan_t_patient ON plan_t (patient, occurred_at, seq);
CREATE INDEX plan_t_occurred_at ON plan_t (occurred_at);
ANALYZE plan_t;
"""


@pytest.fixture(scope="module")
def plan_db(server_url: str) -> Iterator[str]:
    """A database with one 200,000-row table, shared by this module's tests
    (filled in SQL in well under a second)."""
    name = f"asvc_plan_{secrets.token_hex(5)}"
    _admin(server_url, f"CREATE DATABASE {name}")
    url = _with_database(server_url, name)
    try:

        async def _fill() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                await conn.execute(_SCHEMA)
            finally:
                await conn.close()

        asyncio.run(_fill())
        yield url
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def conn(plan_db: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(plan_db))
    try:
        yield connection
    finally:
        await connection.close()


async def test_an_index_range_scan_for_one_patient_passes(conn: asyncpg.Connection) -> None:
    report = await assert_plan_bounded(
        conn,
        "SELECT seq, note FROM plan_t WHERE patient = $1 ORDER BY occurred_at, seq LIMIT $2",
        (42, 50),
        bound=2,
        constant=10,
    )
    for result in report.results:
        assert result.rows_returned == TABLE_ROWS // PATIENTS
        assert result.worst.reads <= 2 * result.rows_returned + 10
    assert {r.mode for r in report.results} == {"force_generic_plan", "auto"}
    # The generic plan really was in use in the forced mode.
    assert report.result("force_generic_plan").generic_plans


async def test_a_plan_that_walks_the_table_fails_naming_the_node(conn: asyncpg.Connection) -> None:
    # Nothing indexes ``note``: every plan reads all 200,000 rows for one.
    with pytest.raises(PlanNotBounded) as caught:
        await assert_plan_bounded(conn, "SELECT seq FROM plan_t WHERE note = $1", (_md5(7),))
    message = str(caught.value)
    assert "Seq Scan on plan_t" in message
    assert "plan_cache_mode=force_generic_plan" in message
    assert "plan_cache_mode=auto" in message
    assert "removed by filter" in message
    worst = caught.value.report.result("force_generic_plan").worst
    assert worst.reads >= TABLE_ROWS - 1
    assert caught.value.report.result("auto").rows_returned == 1


async def test_a_plan_that_degrades_only_when_generic_is_caught(conn: asyncpg.Connection) -> None:
    # With the value known (a custom plan) ``$1 IS NULL`` folds away and the
    # patient index serves the query; the generic plan cannot fold it and
    # reads the whole table: fine in a test run of a few executions, linear
    # once the generic plan is cached.
    sql = """
        SELECT seq FROM plan_t
        WHERE ($1::int IS NULL OR patient = $1)
        ORDER BY occurred_at LIMIT 1000
    """
    await assert_plan_bounded(conn, sql, (42,), modes=("force_custom_plan",))
    with pytest.raises(PlanNotBounded) as caught:
        await assert_plan_bounded(conn, sql, (42,), modes=("force_generic_plan",))
    message = str(caught.value)
    assert "plan_cache_mode=force_generic_plan" in message
    assert "on plan_t" in message
    assert caught.value.report.result("force_generic_plan").worst.reads >= TABLE_ROWS - 1


async def test_an_aggregate_is_bounded_by_the_rows_it_must_read(conn: asyncpg.Connection) -> None:
    sql = "SELECT count(*), max(occurred_at) FROM plan_t WHERE patient = $1"
    # One row returned from 20 read: bounded only against the rows it must read.
    with pytest.raises(PlanNotBounded):
        await assert_plan_bounded(conn, sql, (42,), bound=2, constant=5)
    await assert_plan_bounded(conn, sql, (42,), bound=2, constant=5, rows=TABLE_ROWS // PATIENTS)


async def test_the_plan_cache_mode_is_restored(conn: asyncpg.Connection) -> None:
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    with pytest.raises(PlanNotBounded):
        await assert_plan_bounded(conn, "SELECT seq FROM plan_t WHERE note = $1", (_md5(3),))
    assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"


async def test_bad_arguments_are_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="more than ten"):
        await assert_plan_bounded(conn, "SELECT 1", executions=10)
    with pytest.raises(ValueError, match="modes must be among"):
        await assert_plan_bounded(conn, "SELECT 1", modes=("generic; DROP TABLE plan_t",))


def test_nodes_count_filtered_rows_per_loop_and_heap_fetches() -> None:
    plan = {
        "Node Type": "Nested Loop",
        "Actual Rows": 10,
        "Actual Loops": 1,
        "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "a", "Actual Rows": 5, "Actual Loops": 1},
            {
                "Node Type": "Index Only Scan",
                "Index Name": "b_pkey",
                "Relation Name": "b",
                "Actual Rows": 2,
                "Actual Loops": 5,
                "Rows Removed by Filter": 3,
                "Heap Fetches": 4,
            },
        ],
    }
    nodes = list(walk_plan(plan))
    assert [n.label for n in nodes] == ["Nested Loop", "Seq Scan on a", "Index Only Scan using b_pkey on b"]
    assert nodes[2].reads == 2 * 5 + 3 * 5 + 4
    assert nodes[2].path == "Nested Loop > Index Only Scan using b_pkey on b"


def _md5(n: int) -> str:
    import hashlib

    return hashlib.md5(str(n).encode()).hexdigest()  # noqa: S324 - the table's synthetic notes
