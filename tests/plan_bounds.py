"""Plans that cannot degrade: assert that a statement's cost is bounded by the
rows it returns, whatever plan PostgreSQL caches for it.

The service runs its queries as prepared statements (asyncpg prepares every
statement). After five executions PostgreSQL may switch a prepared statement
to a *generic* plan, planned without the parameter values; a generic plan
that walks a whole index (issue 14: 1,000,091 rows read for 309 returned)
makes a report's cost grow with the log instead of with the patient. Small
test logs never show it, so this helper makes it visible on a table of any
size:

1. prepare the statement on ``conn`` (a named server-side statement, as the
   service's driver does) and execute it more than ten times with
   ``plan_cache_mode`` set to each of ``modes`` (``force_generic_plan``: the
   plan a long-lived connection may end up with; ``auto``: PostgreSQL's own
   choice after its five custom plans);
2. ``EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE`` that very statement;
3. for every plan node (init plans and sub plans included), count the rows
   it read: ``Actual Rows x Actual Loops``, plus the rows it threw away
   (``Rows Removed by Filter``, ``... by Join Filter``, ``... by Index
   Recheck``, each per loop, so times the loops) and its ``Heap Fetches``;
4. fail, naming the node and the mode, when a node read more than
   ``bound x rows + constant``, where ``rows`` is the statement's rows
   returned, or the ``rows`` the caller passes for a statement whose answer
   is smaller than what it must read (an aggregate over a patient's events
   returns a few rows but has to read each event once: pass that count).

Use::

    from .plan_bounds import assert_plan_bounded

    await assert_plan_bounded(conn, SQL, (log_id, hmacs, start, end), bound=4)
    await assert_plan_bounded(conn, SUMMARY_SQL, params, rows=patient_events)

``conn`` is a plain asyncpg connection (``asyncpg.connect(asyncpg_dsn(url))``);
the helper restores its ``plan_cache_mode`` afterwards. The table should be
large compared with ``constant`` (tens of thousands of rows at least), and
ANALYZEd, or a linear plan cannot be told from a bounded one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import pytest

from auditsvc.store.engine import asyncpg_dsn

T = TypeVar("T")

DEFAULT_MODES = ("force_generic_plan", "auto")
_MODES = ("force_generic_plan", "auto", "force_custom_plan")
EXECUTIONS = 12  # "more than ten": past the five custom plans PostgreSQL tries before it may go generic

_REMOVED_KEYS = ("Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck")


@dataclass(frozen=True)
class NodeReads:
    """What one plan node read, and from which counters."""

    path: str  # e.g. "Limit > Index Scan using events_occurred_at on events"
    label: str
    actual_rows: float
    loops: float
    removed: float  # rows removed by filters / rechecks, over all loops
    heap_fetches: float

    @property
    def reads(self) -> float:
        return self.actual_rows * self.loops + self.removed + self.heap_fetches

    def explain(self) -> str:
        parts = [f"{self.actual_rows:,.0f} rows x {self.loops:,.0f} loops"]
        if self.removed:
            parts.append(f"{self.removed:,.0f} removed by filter/recheck")
        if self.heap_fetches:
            parts.append(f"{self.heap_fetches:,.0f} heap fetches")
        return " + ".join(parts)


@dataclass(frozen=True)
class ModeResult:
    """One mode's EXPLAIN ANALYZE: the rows returned, the budget, every node."""

    mode: str
    rows_returned: int
    rows: int  # what the budget is computed from: rows returned, or the caller's ``rows``
    budget: float
    nodes: list[NodeReads]
    generic_plans: int | None  # from pg_prepared_statements (PostgreSQL 14+), None if unknown
    custom_plans: int | None
    plan: list[dict[str, Any]] = field(repr=False)

    @property
    def worst(self) -> NodeReads:
        return max(self.nodes, key=lambda n: n.reads)

    @property
    def over_budget(self) -> list[NodeReads]:
        return [n for n in self.nodes if n.reads > self.budget]


@dataclass(frozen=True)
class PlanBoundsReport:
    results: list[ModeResult]

    def result(self, mode: str) -> ModeResult:
        return next(r for r in self.results if r.mode == mode)


class PlanNotBounded(AssertionError):
    """A plan node read more rows than the bound allows."""

    def __init__(self, message: str, report: PlanBoundsReport) -> None:
        super().__init__(message)
        self.report = report


def _label(node: dict[str, Any]) -> str:
    label = str(node.get("Node Type", "?"))
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    if "CTE Name" in node:
        label += f" on CTE {node['CTE Name']}"
    if "Subplan Name" in node:
        label = f"{node['Subplan Name']}: {label}"
    return label


def walk_plan(node: dict[str, Any], parent: str = "") -> Iterator[NodeReads]:
    """Every node of an EXPLAIN (ANALYZE, FORMAT JSON) plan tree with its reads."""
    label = _label(node)
    path = f"{parent} > {label}" if parent else label
    loops = float(node.get("Actual Loops", 0))
    # The removed-row counters are printed per loop (divided by the loops).
    removed = sum(float(node.get(key, 0)) for key in _REMOVED_KEYS) * loops
    yield NodeReads(
        path=path,
        label=label,
        actual_rows=float(node.get("Actual Rows", 0)),
        loops=loops,
        removed=removed,
        heap_fetches=float(node.get("Heap Fetches", 0)),
    )
    for child in node.get("Plans", ()):
        yield from walk_plan(child, path)


async def _literal(conn: asyncpg.Connection, value: Any, type_name: str) -> str:
    """``value`` as an SQL literal of ``type_name``, rendered by the server from
    the value asyncpg encodes (so bytea arrays, timestamps and the like come out
    exactly as the driver sends them)."""
    if value is None:
        return f"NULL::{type_name}"
    text = await conn.fetchval(f"SELECT quote_literal(($1::{type_name})::text)", value)
    return f"{text}::{type_name}"


async def _run_mode(
    conn: asyncpg.Connection, sql: str, params: Sequence[Any], mode: str, executions: int
) -> tuple[list[dict[str, Any]], int | None, int | None]:
    await conn.execute(f"SET plan_cache_mode = {mode}")
    name = f"plan_bounds_{secrets.token_hex(6)}"
    stmt = await conn.prepare(sql, name=name)
    for _ in range(executions):
        await stmt.fetch(*params)
    types = await conn.fetchval("SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = $1", name)
    if types is None:
        raise RuntimeError(f"prepared statement {name} not found in pg_prepared_statements")
    args = [await _literal(conn, value, type_name) for value, type_name in zip(params, types, strict=True)]
    execute = f"EXECUTE {name}({', '.join(args)})" if args else f"EXECUTE {name}"
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
    plan = json.loads(raw) if isinstance(raw, str) else raw
    counts = await conn.fetchrow(
        "SELECT to_jsonb(p) ->> 'generic_plans' AS generic, to_jsonb(p) ->> 'custom_plans' AS custom "
        "FROM pg_prepared_statements p WHERE name = $1",
        name,
    )
    generic = int(counts["generic"]) if counts and counts["generic"] is not None else None
    custom = int(counts["custom"]) if counts and counts["custom"] is not None else None
    return plan, generic, custom


def _message(sql: str, failed: list[ModeResult], bound: float, constant: int) -> str:
    lines = ["plan not bounded by the rows returned:"]
    for result in failed:
        plans = ""
        if result.generic_plans is not None:
            plans = f", {result.generic_plans} generic / {result.custom_plans} custom plans so far"
        lines.append(
            f"  plan_cache_mode={result.mode}{plans}: {result.rows_returned:,} rows returned; "
            f"budget {bound:g} x {result.rows:,} + {constant:,} = {result.budget:,.0f} rows per node"
        )
        for node in result.over_budget:
            lines.append(f"    node '{node.label}' read {node.reads:,.0f} rows ({node.explain()})")
            lines.append(f"      at {node.path}")
    lines.append("  plan tree (rows read per node):")
    for node in failed[0].nodes:
        depth = node.path.count(" > ")
        lines.append(f"    {'  ' * depth}{node.label}: {node.reads:,.0f}")
    lines.append("  statement: " + " ".join(sql.split())[:400])
    return "\n".join(lines)


async def assert_plan_bounded(
    conn: asyncpg.Connection,
    sql: str,
    params: Sequence[Any] = (),
    *,
    bound: float = 10.0,
    constant: int = 1000,
    rows: int | None = None,
    modes: Sequence[str] = DEFAULT_MODES,
    executions: int = EXECUTIONS,
) -> PlanBoundsReport:
    """Fail unless, in every one of ``modes``, each node of the plan of ``sql``
    (prepared and executed ``executions`` times on ``conn``) read at most
    ``bound x rows + constant`` rows; ``rows`` defaults to the rows the
    statement returned. Returns what was measured, to print or check further."""
    if executions <= 10:
        raise ValueError("executions must be more than ten, or the generic plan may never be tried")
    unknown = [m for m in modes if m not in _MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be among {', '.join(_MODES)}; got {unknown or 'none'}")
    original = await conn.fetchval("SHOW plan_cache_mode")
    results: list[ModeResult] = []
    try:
        for mode in modes:
            plan, generic, custom = await _run_mode(conn, sql, params, mode, executions)
            top = plan[0]["Plan"]
            nodes = list(walk_plan(top))
            returned = int(float(top.get("Actual Rows", 0)) * float(top.get("Actual Loops", 1)))
            basis = returned if rows is None else rows
            results.append(
                ModeResult(
                    mode=mode,
                    rows_returned=returned,
                    rows=basis,
                    budget=bound * basis + constant,
                    nodes=nodes,
                    generic_plans=generic,
                    custom_plans=custom,
                    plan=plan,
                )
            )
    finally:
        await conn.execute(f"SET plan_cache_mode = {original}")
    report = PlanBoundsReport(results)
    failed = [r for r in results if r.over_budget]
    if failed:
        raise PlanNotBounded(_message(sql, failed, bound, constant), report)
    return report


# ---- a large log for the plan-bound tests of the service's statements ------


def log_filled_by(statements: Sequence[str]) -> Any:
    """A module-scoped ``big_log`` fixture: the URL of a database of the
    module's own, made from the migrated template and filled by
    ``statements`` (a large log written straight into the tables, then
    ANALYZEd), dropped after the module's tests. Use::

        big_log = log_filled_by(FILL)
    """

    @pytest.fixture(scope="module")
    def big_log(server_url: str, template_db: str) -> Iterator[str]:
        from .conftest import _admin, _with_database

        name = f"asvc_plans_{secrets.token_hex(4)}"
        _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
        url = _with_database(server_url, name)

        async def fill(conn: asyncpg.Connection) -> None:
            for statement in statements:
                await conn.execute(statement)

        on(url, fill)
        try:
            yield url
        finally:
            _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return big_log


def on(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """``work`` done on a connection of its own to ``url``."""

    async def go() -> T:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def bounded(url: str, sql: str, params: Sequence[Any], **kw: Any) -> PlanBoundsReport:
    """``assert_plan_bounded`` on a connection of its own to ``url``."""
    return on(url, lambda conn: assert_plan_bounded(conn, sql, params, **kw))
