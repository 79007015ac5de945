"""The RFC 6962 Merkle tree over the log's leaf hashes, on top of storage.

The SDK's ``_merkle`` says which perfect nodes a proof needs; this module
fetches their hashes:

* nodes of level ``STORED_LEVEL`` (256 leaves) and up come from
  ``merkle_nodes``, which ``extend_stored_tree`` fills as the log grows;
* lower nodes are hashed from the leaf hashes they cover (at most 128).

So a proof reads O(log n) stored hashes and at most a few short runs of
leaf hashes, whatever the size of the log.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditsvc_sdk.merkle import (
    CompactRange,
    NodeID,
    consistency_nodes,
    frontier_nodes,
    inclusion_nodes,
    root_from_leaf_hashes,
)

from ..store import tree as store
from ..store.events import committed_size
from ..store.locks import TREE_LOCK_CLASS, try_xact_lock, xact_lock
from ..store.session import Connection

STORED_LEVEL = 8
BLOCK = 1 << STORED_LEVEL
_BLOCKS_PER_READ = 64


class TreeRangeError(ValueError):
    """A proof asked about a tree size or index the log does not have."""


async def extend_stored_tree(conn: Connection, log_id: int, *, wait: bool = True) -> int:
    """Store every perfect node of level >= ``STORED_LEVEL`` that the committed
    leaves complete; returns the number of whole blocks stored. Runs in its
    own transaction under the tree lock (``wait=False``: skip if another
    process holds it)."""
    async with conn.transaction():
        if wait:
            await xact_lock(conn, TREE_LOCK_CLASS, log_id)
        elif not await try_xact_lock(conn, TREE_LOCK_CLASS, log_id):
            return await store.stored_blocks(conn, log_id, STORED_LEVEL)
        done = await store.stored_blocks(conn, log_id, STORED_LEVEL)
        full = await committed_size(conn, log_id) >> STORED_LEVEL
        if full <= done:
            return done
        # The tree of block roots: its "leaves" are level-8 nodes.
        frontier_ids = [NodeID(n.level + STORED_LEVEL, n.index) for n in frontier_nodes(done)]
        found = await store.stored_nodes(conn, log_id, [(n.level, n.index) for n in frontier_ids])
        missing = [n for n in frontier_ids if (n.level, n.index) not in found]
        if missing:
            raise LookupError(f"stored tree is missing node {missing[0]}: rebuild needed")
        new: list[tuple[int, int, bytes]] = []
        blocks = CompactRange.from_frontier(
            done,
            [found[(n.level, n.index)] for n in frontier_ids],
            visitor=lambda level, index, h: new.append((level + STORED_LEVEL, index, h)),
        )
        while blocks.size < full:
            first = blocks.size
            last = min(full, first + _BLOCKS_PER_READ)
            leaves = await store.leaf_hashes(conn, log_id, first * BLOCK, last * BLOCK)
            blocks.extend(root_from_leaf_hashes(leaves[i : i + BLOCK]) for i in range(0, len(leaves), BLOCK))
            await store.insert_nodes(conn, log_id, new)
            new.clear()
        return full


async def node_hashes(conn: Connection, log_id: int, ids: Sequence[NodeID]) -> list[bytes]:
    """The hashes of perfect nodes ``ids`` (stored ones read, low ones hashed
    from their leaves). The tree must have been extended over them."""
    high = [(n.level, n.index) for n in ids if n.level >= STORED_LEVEL]
    found = await store.stored_nodes(conn, log_id, high)
    # Low nodes: read the leaves of each, merging adjacent runs.
    runs: list[list[int]] = []
    for begin, end in sorted(n.coverage() for n in ids if n.level < STORED_LEVEL):
        if runs and begin <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([begin, end])
    leaves: dict[int, bytes] = {}
    for begin, end in runs:
        for offset, h in enumerate(await store.leaf_hashes(conn, log_id, begin, end)):
            leaves[begin + offset] = h
    out = []
    for n in ids:
        if n.level >= STORED_LEVEL:
            stored = found.get((n.level, n.index))
            if stored is None:
                raise LookupError(f"stored tree has no node {n}: extend it first")
            out.append(stored)
        else:
            begin, end = n.coverage()
            out.append(leaves[begin] if n.level == 0 else root_from_leaf_hashes(leaves[i] for i in range(begin, end)))
    return out


async def _ready(conn: Connection, log_id: int, tree_size: int) -> None:
    size = await committed_size(conn, log_id)
    if tree_size > size:
        raise TreeRangeError(f"tree_size {tree_size} is larger than the log ({size} events)")
    if await store.stored_blocks(conn, log_id, STORED_LEVEL) < tree_size >> STORED_LEVEL:
        await extend_stored_tree(conn, log_id)


async def root_at(conn: Connection, log_id: int, tree_size: int) -> bytes:
    """The Merkle tree hash of the first ``tree_size`` leaves."""
    await _ready(conn, log_id, tree_size)
    frontier = await node_hashes(conn, log_id, frontier_nodes(tree_size))
    return CompactRange.from_frontier(tree_size, frontier).root()


async def inclusion_proof(conn: Connection, log_id: int, index: int, tree_size: int) -> tuple[bytes, list[bytes]]:
    """(leaf hash, audit path) of leaf ``index`` in the tree of ``tree_size``."""
    if not 0 <= index < tree_size:
        raise TreeRangeError(f"seq {index} is not in a tree of size {tree_size}")
    await _ready(conn, log_id, tree_size)
    nodes = inclusion_nodes(index, tree_size)
    proof = nodes.rehash(await node_hashes(conn, log_id, nodes.ids))
    (leaf,) = await store.leaf_hashes(conn, log_id, index, index + 1)
    return leaf, proof


async def inclusion_proofs(
    conn: Connection, log_id: int, indexes: Sequence[int], tree_size: int
) -> dict[int, tuple[bytes, list[bytes]]]:
    """``inclusion_proof`` for many leaves at once: every node hash they need
    (their leaf hashes included) read in one pass, shared nodes once."""
    wanted = sorted(set(indexes))
    if wanted and not 0 <= wanted[0] <= wanted[-1] < tree_size:
        raise TreeRangeError(f"seq {wanted[0]}..{wanted[-1]} is not all in a tree of size {tree_size}")
    await _ready(conn, log_id, tree_size)
    plans = {i: inclusion_nodes(i, tree_size) for i in wanted}
    ids = list(dict.fromkeys([*(NodeID(0, i) for i in wanted), *(n for p in plans.values() for n in p.ids)]))
    hashes = dict(zip(ids, await node_hashes(conn, log_id, ids), strict=True))
    return {i: (hashes[NodeID(0, i)], p.rehash([hashes[n] for n in p.ids])) for i, p in plans.items()}


async def consistency_proof(conn: Connection, log_id: int, first: int, second: int) -> list[bytes]:
    """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    if not 0 <= first <= second:
        raise TreeRangeError(f"first ({first}) must be between 0 and second ({second})")
    await _ready(conn, log_id, second)
    nodes = consistency_nodes(first, second)
    return nodes.rehash(await node_hashes(conn, log_id, nodes.ids))
