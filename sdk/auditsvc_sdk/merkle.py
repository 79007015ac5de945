"""The RFC 6962 / RFC 9162 Merkle tree, as a public surface (docs/chain-format.md §11).

Proof construction names the node ids it needs and never touches storage
(``inclusion_nodes``, ``consistency_nodes``, ``frontier_nodes``); the caller
fetches those hashes, and pure functions verify (``verify_inclusion``,
``verify_consistency``). ``CompactRange`` folds leaf hashes into a root in
O(log n) memory, for verifying a whole log as it streams past.
"""

from __future__ import annotations

from ._merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeID,
    ProofError,
    ProofLengthError,
    RootMismatchError,
    consistency_nodes,
    frontier_nodes,
    inclusion_nodes,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "NodeID",
    "ProofError",
    "ProofLengthError",
    "RootMismatchError",
    "consistency_nodes",
    "frontier_nodes",
    "inclusion_nodes",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]
