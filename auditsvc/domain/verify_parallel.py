"""Cutting the log into ranges for ``verify_chain``, running them (in this
process or in worker processes on the same database snapshot) and joining
their Merkle frontiers back into the log's tree (docs/chain-format.md §15).

``domain/verify_range.py`` says why ranges can be checked independently:
each proves its rows chain from the stored hash before it, and a range
that starts at a multiple of a power of two ``C`` no smaller than itself is
a perfect subtree of the log's tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.util
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor

from auditsvc_sdk.merkle import CompactRange

from ..store import verify as store
from ..store.session import Connection
from .verify_range import RangeResult, RangeTask, check_range

SERIAL_RANGE_ROWS = 1 << 16


def plan_ranges(start: int, total: int, chunk: int) -> list[tuple[int, int]]:
    """Ranges covering ``[start, total)``: ``chunk`` rows (a power of two)
    starting at multiples of ``chunk``, after a first range up to the first
    multiple when ``start`` is not one (a resumed verification)."""
    if chunk.bit_count() != 1:
        raise ValueError("the range size must be a power of two")
    ranges = []
    aligned = min(-(-start // chunk) * chunk, total)
    if aligned > start:
        ranges.append((start, aligned))
    ranges.extend((a, min(a + chunk, total)) for a in range(aligned, total, chunk))
    return ranges


def range_size(rows: int, workers: int) -> int:
    """About eight ranges per worker process, so that the last ones finish
    close together (a worker keeps one connection for all its ranges, so a
    range costs little more than its rows); 65,536 rows in one process (the
    leaves of a range are held in memory)."""
    if workers <= 1:
        return SERIAL_RANGE_ROWS
    return 1 << max(12, min(17, (rows // (workers * 8)).bit_length() - 1))


class JoinedTree:
    """The log's tree as verified ranges are joined in order."""

    def __init__(self, size: int, frontier: tuple[bytes, ...], chunk: int) -> None:
        self.size, self.frontier, self.chunk = size, frontier, chunk
        self._chunks: CompactRange | None = None  # over C-leaf subtrees, while size is a multiple of C

    def joined(self, task: RangeTask, size: int, frontier: tuple[bytes, ...]) -> CompactRange:
        """The log's tree at ``size`` from a frontier ``task`` reported."""
        if task.base_size == task.start:
            return CompactRange.from_frontier(size, frontier)
        prefix = self._prefix(task)
        if size - task.start == self.chunk:  # the range's whole subtree: it may merge with the prefix
            assert self._chunks is not None
            chunks = self._chunks.copy()
            chunks.append(frontier[0])
            return CompactRange.from_frontier(size, chunks.frontier)
        return CompactRange.from_frontier(size, prefix + frontier)

    def _prefix(self, task: RangeTask) -> tuple[bytes, ...]:
        assert self.size == task.start and task.start % self.chunk == 0
        if self._chunks is None:
            self._chunks = CompactRange.from_frontier(self.size // self.chunk, self.frontier)
        return self._chunks.frontier

    def advance(self, task: RangeTask, result: RangeResult) -> None:
        end = task.start + result.checked
        if task.base_size == task.start:
            self.frontier = result.frontier
        elif result.checked == self.chunk:
            prefix = self._prefix(task)
            assert self._chunks is not None and len(prefix) == len(self._chunks.frontier)
            self._chunks.append(result.frontier[0])
            self.frontier = self._chunks.frontier
        else:
            self.frontier = self._prefix(task) + result.frontier
            self._chunks = None
        self.size = end


def _worker_context() -> multiprocessing.context.BaseContext:
    """fork where there is one: a worker is ready at once, with no interpreter
    start and no imports (about 0.3 s each otherwise). A worker opens its own
    event loop and connection (``start_worker``) and runs only
    ``check_range_in_worker`` on them; it touches nothing it inherited."""
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


async def run_ranges(
    conn: Connection,
    tasks: list[RangeTask],
    dsn: str | None,
    workers: int,
    total: int,
    progress: Callable[[int, int], None] | None,
    index: tuple[int, bytes] | None = None,
    fingerprint: list[tuple[int, int]] | None = None,
) -> AsyncGenerator[tuple[RangeTask, RangeResult], None]:
    """Yield ``(task, result)`` in order: in this process on ``conn`` for one
    range, else in worker processes on the snapshot ``conn`` exports. There,
    with ``index`` (log id, fingerprint key), ``conn`` sums the lookup index's fingerprint from
    the start (so it overlaps the ranges instead of following them) and it is
    appended to ``fingerprint`` once every range is through."""
    if len(tasks) <= 1 or dsn is None:
        report = None if progress is None else (lambda done: progress(done, total))
        async with store.text_as_bytes(conn):
            for task in tasks:
                yield task, await check_range(conn, task, report)
        return
    snapshot = await store.export_snapshot(conn)
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=_worker_context(),
        initializer=start_worker,
        initargs=(dsn, snapshot),
    )
    # The lookup index's fingerprint is summed by this connection's server
    # process, on the same snapshot, while the workers check the ranges.
    summing: asyncio.Future[tuple[int, int]] | None = None
    if index is not None and fingerprint is not None:
        summing = asyncio.ensure_future(store.index_sum(conn, *index))
    try:
        pending: list[Awaitable[RangeResult]] = [
            loop.run_in_executor(pool, check_range_in_worker, task) for task in tasks
        ]
        for task, future in zip(tasks, pending, strict=True):
            result = await future
            if progress is not None:
                progress(task.start + result.checked, total)
            yield task, result
        if summing is not None and fingerprint is not None:
            fingerprint.append(await summing)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if summing is not None and not summing.done():
            # Stopped early (damage found): let the query end rather than
            # cancel it, which would abort the caller's transaction.
            with contextlib.suppress(Exception):
                await summing


class _Worker:
    """A worker process's one connection, in a read-only transaction on the
    exported snapshot, and the event loop it runs on: opened once by
    ``start_worker`` (the pool's initializer) and used by every task the
    process runs, closed when the process exits."""

    def __init__(self, dsn: str, snapshot: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: Connection = self.loop.run_until_complete(store.connect_on_snapshot(dsn, snapshot))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.conn.close(timeout=5))
        self.loop.close()


_worker: _Worker | None = None


def start_worker(dsn: str, snapshot: str) -> None:
    """Process-pool initializer: this process's connection on ``snapshot``."""
    global _worker
    _worker = _Worker(dsn, snapshot)
    multiprocessing.util.Finalize(_worker, _worker.close, exitpriority=10)


def _this_worker() -> _Worker:
    if _worker is None:
        raise RuntimeError("not a verification worker process (start_worker was not run)")
    return _worker


def check_range_in_worker(task: RangeTask) -> RangeResult:
    """Process-pool entry: check one range on this worker's snapshot."""
    worker = _this_worker()
    return worker.loop.run_until_complete(check_range(worker.conn, task))
