"""RFC 6962 / RFC 9162 (section 2.1) Merkle tree: hashing, proofs, compact ranges.

Everything here is pure: no storage, no clock, no I/O.

The tree
--------
The tree over ``n`` leaf hashes ``d[0:n]`` has the Merkle Tree Hash

* ``MTH({}) = SHA-256()`` (the empty string; ``EMPTY_ROOT``),
* ``MTH({d0}) = d0`` (a leaf hash, ``SHA-256(0x00 || leaf bytes)``),
* ``MTH(d[0:n]) = SHA-256(0x01 || MTH(d[0:k]) || MTH(d[k:n]))`` where ``k``
  is the largest power of two smaller than ``n``.

The rule lives behind the tiny ``Hasher`` interface (``RFC6962`` is the one
instance this format uses); every function takes it as a keyword argument.

Node ids
--------
``NodeID(level, index)`` names the root of the *perfect* subtree over the
leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the
leaves. A perfect node's hash never changes once its last leaf exists, so it
is what a server stores. The nodes on the right border of a tree whose size
is not a power of two cover incomplete ranges: they are *ephemeral*, they
change as the tree grows, and are recomputed from perfect nodes when needed.

Proofs (after transparency-dev/merkle's ``proof`` package)
---------------------------------------------------------
``inclusion_nodes(index, size)`` and ``consistency_nodes(size1, size2)``
return a ``ProofNodes``: the ordered ids of the perfect nodes whose hashes
make the proof, plus where the ephemeral node sits among them. The caller
fetches those hashes from wherever it keeps them and ``ProofNodes.rehash``
folds them into the RFC 9162 proof. Construction never touches storage.

Verification (``verify_inclusion``, ``verify_consistency``) follows
RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step. Preconditions and the
proof's length are checked before any hashing; failures raise ``ProofError``
subclasses, and a wrong root raises ``RootMismatchError`` carrying both roots.

Compact ranges (after transparency-dev/merkle's ``compact`` package)
--------------------------------------------------------------------
The *frontier* of a tree of size ``n`` is the list of hashes of the perfect
subtrees that make up ``[0, n)``, left to right, one per set bit of ``n``
from the highest (``frontier_nodes(n)`` gives their ids). ``CompactRange``
keeps just that: appending a leaf hash costs one hash on average, the root
costs one hash per set bit of ``n``, and a visitor callback sees every
perfect node as it is completed. A frontier saved at a checkpoint resumes
the computation later (``CompactRange.from_frontier``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._chain import leaf_hash as _leaf_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "RFC6962",
    "CompactRange",
    "Hasher",
    "NodeID",
    "NodeVisitor",
    "ProofError",
    "ProofLengthError",
    "ProofNodes",
    "RFC6962Hasher",
    "RootMismatchError",
    "consistency_nodes",
    "consistency_proof_size",
    "frontier_nodes",
    "hash_children",
    "hash_leaf",
    "inclusion_nodes",
    "inclusion_proof_size",
    "range_nodes",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes and indices are uint64 in RFC 9162 and in every tlog format.
MAX_TREE_SIZE = (1 << 64) - 1

_sha256 = hashlib.sha256


# --- hashing ---------------------------------------------------------------


def hash_leaf(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data). Same as ``leaf_hash``."""
    return _leaf_hash(data)


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


class Hasher(Protocol):
    """The tree's hashing rule: the only thing that knows about SHA-256."""

    @property
    def size(self) -> int:
        """Length of every hash in bytes."""
        ...

    def empty_root(self) -> bytes:
        """The root of the tree with no leaves."""
        ...

    def hash_leaf(self, data: bytes) -> bytes:
        """The hash of a leaf from its bytes."""
        ...

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        """The hash of an interior node from its children's hashes."""
        ...


class RFC6962Hasher:
    """RFC 6962 / RFC 9162 SHA-256 hashing, with the 0x00 / 0x01 prefixes."""

    __slots__ = ()

    @property
    def size(self) -> int:
        return HASH_SIZE

    def empty_root(self) -> bytes:
        return EMPTY_ROOT

    def hash_leaf(self, data: bytes) -> bytes:
        return _leaf_hash(data)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        return _sha256(b"\x01" + left + right).digest()

    def __repr__(self) -> str:
        return "RFC6962"


RFC6962: Hasher = RFC6962Hasher()


def _children_fn(hasher: Hasher) -> Callable[[bytes, bytes], bytes]:
    # The module-level function skips a bound-method call on the hot path.
    return hash_children if type(hasher) is RFC6962Hasher else hasher.hash_children


# --- node ids ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class NodeID:
    """A perfect subtree's root: ``level`` above the leaves, ``index`` from the left."""

    level: int
    index: int

    def parent(self) -> NodeID:
        return NodeID(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeID:
        return NodeID(self.level, self.index ^ 1)

    def coverage(self) -> tuple[int, int]:
        """The leaves ``[begin, end)`` under this node."""
        return self.index << self.level, (self.index + 1) << self.level


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def _decompose(begin: int, end: int) -> tuple[int, int]:
    """Split ``[begin, end)`` into perfect subtrees, as two bit masks.

    Bit ``k`` set in ``left`` is a subtree of size ``2**k`` on the left part
    (sizes increasing from ``begin``); bit ``k`` in ``right`` is one on the
    right part (sizes decreasing towards ``end``).
    """
    if begin == 0:
        return 0, end
    xbegin = begin - 1
    # Where the paths to leaves begin-1 and end diverge: only nodes strictly
    # below that point lie inside the range.
    mask = (1 << ((xbegin ^ end).bit_length() - 1)) - 1
    return ~xbegin & mask, end & mask


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """Ids of the fewest perfect subtrees covering leaves ``[begin, end)``, left to right."""
    if not 0 <= begin <= end:
        raise ValueError(f"invalid range [{begin}, {end})")
    left, right = _decompose(begin, end)
    ids: list[NodeID] = []
    pos = begin
    while left:  # left border, lower levels first
        level = _trailing_zeros(left)
        ids.append(NodeID(level, pos >> level))
        pos += 1 << level
        left ^= 1 << level
    while right:  # right border, upper levels first
        level = right.bit_length() - 1
        ids.append(NodeID(level, pos >> level))
        pos += 1 << level
        right ^= 1 << level
    return ids


def frontier_nodes(size: int) -> list[NodeID]:
    """Ids of the perfect subtrees making up a tree of ``size`` leaves, left to right.

    Their hashes, in this order, are the frontier that ``CompactRange.from_frontier``
    resumes from.
    """
    return range_nodes(0, size)


# --- proof construction ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProofNodes:
    """How to build a proof from stored perfect-node hashes.

    ``ids`` are perfect nodes, in proof order, except that ``ids[begin:end]``
    (ordered from the lowest level up) are the perfect pieces of one
    ephemeral node, ``ephemeral``, which ``rehash`` folds into one hash. When
    ``begin == end`` there is nothing to fold and ``ephemeral`` is None.
    """

    ids: tuple[NodeID, ...]
    begin: int = 0
    end: int = 0
    ephemeral: NodeID | None = None

    def rehash(self, hashes: Sequence[bytes], *, hasher: Hasher = RFC6962) -> list[bytes]:
        """The proof, from the hashes of ``ids`` (same order, same length)."""
        if len(hashes) != len(self.ids):
            raise ValueError(f"got {len(hashes)} hashes for {len(self.ids)} proof nodes")
        hc = _children_fn(hasher)
        proof: list[bytes] = []
        i, n = 0, len(hashes)
        while i < n:
            h = hashes[i]
            if self.begin <= i < self.end:
                # Each next piece sits to the left of what is folded so far.
                for j in range(i + 1, self.end):
                    h = hc(hashes[j], h)
                i = self.end
            else:
                i += 1
            proof.append(h)
        return proof

    def _skip_first(self) -> ProofNodes:
        begin, end = (self.begin - 1, self.end - 1) if self.begin < self.end else (0, 0)
        return ProofNodes(self.ids[1:], begin, end, self.ephemeral if begin < end else None)


def _nodes(index: int, level: int, size: int) -> ProofNodes:
    """Nodes proving that node ``(level, index)`` is in the tree of ``size`` leaves,
    starting with that node itself."""
    # The fork is where the path from the root to (level, index) leaves the
    # path to leaf `size`; its sibling is the ephemeral node (if any).
    inner = (index ^ (size >> level)).bit_length() - 1
    fork = NodeID(level + inner, index >> inner)
    begin, end = fork.coverage()

    node = NodeID(level, index)
    ids = [node]
    while node.level < fork.level:  # siblings up to the fork
        ids.append(node.sibling())
        node = node.parent()
    first = len(ids)
    ids.extend(reversed(range_nodes(end, size)))  # the ephemeral node's pieces, lowest first
    last = len(ids)
    ids.extend(reversed(range_nodes(0, begin)))  # the left of the tree, lowest first
    if last - first < 2:
        # Zero pieces, or one that is the ephemeral node's hash as it stands.
        return ProofNodes(tuple(ids))
    return ProofNodes(tuple(ids), first, last, fork.sibling())


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ValueError(f"{name} {value} is outside [0, 2**64)")


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """Nodes of the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Requires ``0 <= index < size``.
    """
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ValueError(f"leaf index {index} is not below tree size {size}")
    return _nodes(index, 0, size)._skip_first()


def consistency_nodes(size1: int, size2: int) -> ProofNodes:
    """Nodes of the consistency proof from the tree of ``size1`` leaves to ``size2``.

    Requires ``size1 <= size2``. The proof is empty when ``size1 == size2``
    and when ``size1 == 0`` (an empty tree is a prefix of every tree).
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise ValueError(f"first tree size {size1} is larger than second tree size {size2}")
    if size1 == 0 or size1 == size2:
        return ProofNodes(())
    # The largest perfect subtree ending at size1: the proof starts from it
    # and proves its inclusion in the tree of size2.
    level = _trailing_zeros(size1)
    index = (size1 - 1) >> level
    nodes = _nodes(index, level, size2)
    if size1 == 1 << level:
        # size1 is a power of two: that subtree is the old root itself, which
        # the verifier already holds, so it is left out (RFC 9162 2.1.4.1).
        return nodes._skip_first()
    return nodes


def inclusion_proof_size(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of ``size``."""
    inner, border = _decompose_inclusion(index, size)
    return inner + border


def consistency_proof_size(size1: int, size2: int) -> int:
    """Number of hashes in the consistency proof from ``size1`` to ``size2``."""
    if size1 == 0 or size1 == size2:
        return 0
    inner, border = _decompose_inclusion(size1 - 1, size2)
    shift = _trailing_zeros(size1)
    return (0 if size1 == 1 << shift else 1) + inner - shift + border


def _decompose_inclusion(index: int, size: int) -> tuple[int, int]:
    # Below the point where the paths to leaves `index` and `size - 1` part,
    # every level has a sibling ("inner"); above it, only the levels where the
    # path turns right have one (the "border", all left siblings).
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


# --- verification -----------------------------------------------------------------


class ProofError(ValueError):
    """A proof does not verify, or its parameters make no sense.

    ProofError                  bad parameters (index >= size, size1 > size2,
    │                           a hash of the wrong length)
    ├── ProofLengthError        the proof has the wrong number of hashes
    └── RootMismatchError       the proof leads to another root
    """


class ProofLengthError(ProofError):
    """The proof has the wrong number of hashes for the tree sizes given."""

    def __init__(self, got: int, want: int) -> None:
        super().__init__(f"wrong proof length: {got} hashes, expected {want}")
        self.got = got
        self.want = want


class RootMismatchError(ProofError):
    """The root computed from the proof is not the root the caller expected."""

    def __init__(self, expected: bytes, computed: bytes, what: str = "root") -> None:
        super().__init__(f"{what} mismatch: computed {computed.hex()}, expected {expected.hex()}")
        self.expected = expected
        self.computed = computed
        self.what = what


def _check_proof_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{name} {value} is outside [0, 2**64)")


def _check_hash(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{name} must be {size} bytes, got {got}")


def _check_proof(proof: Sequence[bytes], want: int, size: int) -> None:
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        raise ProofError("proof must be a sequence of hashes")
    if len(proof) != want:
        raise ProofLengthError(len(proof), want)
    for i, h in enumerate(proof):
        _check_hash(f"proof[{i}]", h, size)


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], *, hasher: Hasher = RFC6962
) -> bytes:
    """The root that ``proof`` proves leaf ``index`` (``leaf_hash``) is under, in a tree of ``size``.

    Raises ``ProofError`` when ``index >= size``, a hash has the wrong length
    or the proof the wrong number of hashes (``ProofLengthError``).
    """
    # RFC 9162 2.1.3.2, with the preconditions and the length checked first.
    _check_proof_size("index", index)
    _check_proof_size("size", size)
    # 1. leaf_index must be below tree_size.
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash("leaf hash", leaf_hash, hasher.size)
    _check_proof(proof, inclusion_proof_size(index, size), hasher.size)
    hc = _children_fn(hasher)
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn, r = index, size - 1, leaf_hash
    # 4. For each p in the path:
    for p in proof:
        # a. sn == 0 means the proof is too long; the length check rules it out.
        if sn == 0:  # pragma: no cover - unreachable after the length check
            raise ProofLengthError(len(proof), inclusion_proof_size(index, size))
        # b. p is a left sibling when fn is a right child or on the right border...
        if fn & 1 or fn == sn:
            r = hc(p, r)
            if not fn & 1:
                # ...and on the border, climb past the levels with no sibling.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hc(r, p)
        # c. up one level.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 (guaranteed by the length check); the caller compares r.
    if sn != 0:  # pragma: no cover - unreachable after the length check
        raise ProofLengthError(len(proof), inclusion_proof_size(index, size))
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes, *, hasher: Hasher = RFC6962
) -> None:
    """Check that leaf ``index`` with ``leaf_hash`` is in the tree of ``size`` with ``root``.

    Returns None; raises ``ProofError`` (``ProofLengthError``,
    ``RootMismatchError``) otherwise.
    """
    _check_hash("root", root, hasher.size)
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof, hasher=hasher)
    if computed != root:
        raise RootMismatchError(root, computed)


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, *, hasher: Hasher = RFC6962
) -> bytes:
    """Check ``proof`` against the first tree's ``root1`` and return the second tree's root.

    Requires ``0 < size1 <= size2`` (from the empty tree the second root is
    not determined by the proof). Raises ``RootMismatchError`` (what="first
    root") when the proof does not lead back to ``root1``, and ``ProofError``
    / ``ProofLengthError`` for bad parameters.
    """
    _check_consistency_params(size1, size2, proof, root1, hasher)
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree does not determine the second root")
    return _consistency_root2(size1, size2, proof, root1, hasher)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes, *, hasher: Hasher = RFC6962
) -> None:
    """Check that the tree of ``size1`` with ``root1`` is a prefix of the tree of ``size2`` with ``root2``.

    ``size1 == size2`` needs an empty proof and equal roots. ``size1 == 0``
    needs an empty proof and ``root1 == EMPTY_ROOT`` (the empty tree's root
    is fixed, so another value is a caller's mistake worth reporting), and is
    then consistent with every tree. Returns None; raises ``ProofError``
    (``ProofLengthError``, ``RootMismatchError``) otherwise.
    """
    _check_consistency_params(size1, size2, proof, root1, hasher)
    _check_hash("second root", root2, hasher.size)
    if size1 == 0:
        empty = hasher.empty_root()
        if root1 != empty:
            raise RootMismatchError(root1, empty, "first root")
        if size2 == 0 and root2 != empty:
            raise RootMismatchError(root2, empty, "second root")
        return
    computed = _consistency_root2(size1, size2, proof, root1, hasher)
    if computed != root2:
        raise RootMismatchError(root2, computed, "second root")


def _check_consistency_params(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, hasher: Hasher) -> None:
    _check_proof_size("size1", size1)
    _check_proof_size("size2", size2)
    if size1 > size2:
        raise ProofError(f"first tree size {size1} is larger than second tree size {size2}")
    _check_hash("first root", root1, hasher.size)
    _check_proof(proof, consistency_proof_size(size1, size2), hasher.size)


def _consistency_root2(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, hasher: Hasher) -> bytes:
    """RFC 9162 2.1.4.2 for 0 < size1 <= size2, parameters already checked."""
    if size1 == size2:
        return root1
    hc = _children_fn(hasher)
    # 1. The path is not empty (the length check covers it).
    path = list(proof)
    # 2. If first is a power of two, its root is the path's first node.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = size1 - 1, size2 - 1
    # 4. Skip the levels where fn is a right child: the first node covers them.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first node.
    fr = sr = path[0]
    # 6. For each subsequent node c:
    for c in path[1:]:
        # a. sn == 0 means the path is too long; the length check rules it out.
        if sn == 0:  # pragma: no cover - unreachable after the length check
            raise ProofLengthError(len(proof), consistency_proof_size(size1, size2))
        # b. c is a left sibling, in both trees...
        if fn & 1 or fn == sn:
            fr = hc(c, fr)
            sr = hc(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            # ...or a right sibling, only in the second tree.
            sr = hc(sr, c)
        # c. Up one level.
        fn >>= 1
        sn >>= 1
    # 7. sn must be 0 and fr must be root1; the caller compares sr with root2.
    if sn != 0:  # pragma: no cover - unreachable after the length check
        raise ProofLengthError(len(proof), consistency_proof_size(size1, size2))
    if fr != root1:
        raise RootMismatchError(root1, fr, "first root")
    return sr


# --- compact ranges -------------------------------------------------------------

NodeVisitor = Callable[[int, int, bytes], None]
"""Called as ``visitor(level, index, hash)`` for every perfect node completed."""


class CompactRange:
    """The frontier of a growing tree: append leaf hashes, read the root at any size.

    ``visitor(level, index, hash)``, when given, is called for every perfect
    node as it is completed, the leaf itself (level 0) first and then each
    node the leaf completes, lowest first. If the visitor raises, the leaf
    being appended is not added (the nodes reported for it may be reported
    again when it is appended again).
    """

    __slots__ = ("_hasher", "_hashes", "_hc", "_size", "visitor")

    def __init__(self, *, hasher: Hasher = RFC6962, visitor: NodeVisitor | None = None) -> None:
        self._hasher = hasher
        self._hc = _children_fn(hasher)
        self._hashes: list[bytes] = []
        self._size = 0
        self.visitor = visitor

    @classmethod
    def from_frontier(
        cls, size: int, frontier: Sequence[bytes], *, hasher: Hasher = RFC6962, visitor: NodeVisitor | None = None
    ) -> CompactRange:
        """Resume a tree of ``size`` leaves from its frontier (see ``frontier_nodes``)."""
        _check_size("size", size)
        if len(frontier) != size.bit_count():
            raise ValueError(f"a tree of size {size} has a frontier of {size.bit_count()} hashes, got {len(frontier)}")
        for i, h in enumerate(frontier):
            if not isinstance(h, bytes) or len(h) != hasher.size:
                raise ValueError(f"frontier[{i}] is not a {hasher.size}-byte hash")
        r = cls(hasher=hasher, visitor=visitor)
        r._hashes = list(frontier)
        r._size = size
        return r

    @property
    def size(self) -> int:
        """Number of leaves appended so far (including those of the frontier resumed from)."""
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """Hashes of the perfect subtrees making up ``[0, size)``, left to right."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange.from_frontier(self._size, self._hashes, hasher=self._hasher, visitor=self.visitor)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash."""
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        hashes, hc, visitor, width = self._hashes, self._hc, self.visitor, self._hasher.size
        size = self._size
        pop, push = hashes.pop, hashes.append
        try:
            if visitor is None:
                for h in leaf_hashes:
                    if len(h) != width:
                        raise ValueError(f"leaf {size}: a leaf hash is {width} bytes, got {len(h)}")
                    # Each trailing one bit of the index is a full left
                    # sibling on the frontier that this leaf completes.
                    i = size
                    while i & 1:
                        h = hc(pop(), h)
                        i >>= 1
                    push(h)
                    size += 1
            else:
                for h in leaf_hashes:
                    if len(h) != width:
                        raise ValueError(f"leaf {size}: a leaf hash is {width} bytes, got {len(h)}")
                    visitor(0, size, h)
                    i, level, k = size, 0, len(hashes)
                    while i & 1:
                        k -= 1
                        h = hc(hashes[k], h)
                        i >>= 1
                        level += 1
                        visitor(level, i, h)
                    # Only now, with every visitor call made, change the frontier.
                    del hashes[k:]
                    push(h)
                    size += 1
        finally:
            self._size = size

    def root(self) -> bytes:
        """The tree's root hash (``EMPTY_ROOT`` for no leaves)."""
        hashes = self._hashes
        if not hashes:
            return self._hasher.empty_root()
        hc = self._hc
        h = hashes[-1]
        for i in range(len(hashes) - 2, -1, -1):
            h = hc(hashes[i], h)
        return h

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes], *, hasher: Hasher = RFC6962) -> bytes:
    """The Merkle Tree Hash (RFC 9162 2.1.1) of the leaf hashes, in order.

    Applied to the ``2**k`` hashes of consecutive level-``L`` nodes starting at
    a multiple of ``2**k``, it gives their level-``L+k`` ancestor.
    """
    r = CompactRange(hasher=hasher)
    r.extend(leaf_hashes)
    return r.root()
