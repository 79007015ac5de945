"""RFC 6962 / RFC 9162 Merkle tree: published vectors, hostile vectors, properties.

The published vectors (tests/vectors/merkle/rfc6962.json) come from
transparency-dev/merkle; the node-id tables below are ported from its
proof/proof_test.go. The reference tree here follows the recursive
definitions of RFC 9162 section 2.1 literally, independently of the module
under test.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import pytest
from auditsvc_sdk._chain import leaf_hash
from auditsvc_sdk._merkle import (
    EMPTY_ROOT,
    RFC6962,
    CompactRange,
    NodeID,
    ProofError,
    ProofLengthError,
    ProofNodes,
    RootMismatchError,
    consistency_nodes,
    consistency_proof_size,
    frontier_nodes,
    hash_children,
    hash_leaf,
    inclusion_nodes,
    inclusion_proof_size,
    range_nodes,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS = json.loads((Path(__file__).parent / "vectors" / "merkle" / "rfc6962.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
LEAF_HASHES = [hash_leaf(x) for x in LEAVES]
ROOTS = {int(size): bytes.fromhex(root) for size, root in VECTORS["roots"].items()}
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- the reference tree: RFC 9162 2.1 taken literally --------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(hashes: list[bytes]) -> bytes:
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = _split(n)
    return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()


def ref_path(m: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    n = len(hashes)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, hashes[:k]), mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), mth(hashes[:k])]


def ref_proof(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1 (0 < m <= n)."""

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, d[:k], b), mth(d[k:])]
        return [*subproof(m - k, d[k:], False), mth(d[:k])]

    return subproof(m, hashes, True)


TREE = [hash_leaf(b"leaf %d" % i) for i in range(512)]


@cache
def node_hash(level: int, index: int) -> bytes:
    """What storage would hold for a perfect node of TREE."""
    if level == 0:
        return TREE[index]
    return hash_children(node_hash(level - 1, 2 * index), node_hash(level - 1, 2 * index + 1))


def fetch(nodes: ProofNodes, size: int) -> list[bytes]:
    """Play the server: look up every node id, which must be a perfect node of the tree of ``size``."""
    hashes = []
    for node in nodes.ids:
        end = node.coverage()[1]
        assert end <= size, f"{node} is not a perfect node of a tree of size {size}"
        hashes.append(node_hash(node.level, node.index))
    return hashes


def build_inclusion(index: int, size: int) -> list[bytes]:
    nodes = inclusion_nodes(index, size)
    return nodes.rehash(fetch(nodes, size))


def build_consistency(size1: int, size2: int) -> list[bytes]:
    nodes = consistency_nodes(size1, size2)
    return nodes.rehash(fetch(nodes, size2))


def flip(h: bytes, bit: int = 3) -> bytes:
    return bytes((h[0] ^ (1 << bit),)) + h[1:]


# --- hashing --------------------------------------------------------------------


def test_hashes_are_rfc6962():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hash_leaf(b"abc") == leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert hash_children(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert RFC6962.hash_leaf(b"abc") == hash_leaf(b"abc")
    assert RFC6962.hash_children(b"L" * 32, b"R" * 32) == hash_children(b"L" * 32, b"R" * 32)
    assert RFC6962.empty_root() == EMPTY_ROOT
    assert RFC6962.size == 32


# --- published vectors ---------------------------------------------------------------


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_published_trees(size):
    assert root_from_leaf_hashes(LEAF_HASHES[:size]) == ROOTS[size]
    assert mth(LEAF_HASHES[:size]) == ROOTS[size]
    r = CompactRange()
    r.extend(LEAF_HASHES[:size])
    assert r.root() == ROOTS[size]


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_published_inclusion_proofs(vector):
    index, size = vector["index"], vector["size"]
    proof = [bytes.fromhex(h) for h in vector["proof"]]
    reference = [mth(LEAF_HASHES[b:e]) for b, e in (n.coverage() for n in inclusion_nodes(index, size).ids)]
    proof_nodes = inclusion_nodes(index, size)
    assert proof_nodes.rehash(reference) == proof  # construction gives the published proof
    assert root_from_inclusion_proof(LEAF_HASHES[index], index, size, proof) == ROOTS[size]
    verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])
    assert inclusion_proof_size(index, size) == len(proof)


@pytest.mark.parametrize("vector", VECTORS["consistency"], ids=lambda v: f"{v['size1']}-to-{v['size2']}")
def test_published_consistency_proofs(vector):
    size1, size2 = vector["size1"], vector["size2"]
    proof = [bytes.fromhex(h) for h in vector["proof"]]
    proof_nodes = consistency_nodes(size1, size2)
    reference = [mth(LEAF_HASHES[b:e]) for b, e in (n.coverage() for n in proof_nodes.ids)]
    assert proof_nodes.rehash(reference) == proof
    verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])
    assert root_from_consistency_proof(size1, size2, proof, ROOTS[size1]) == ROOTS[size2]
    assert consistency_proof_size(size1, size2) == len(proof)


# --- node ids (transparency-dev/merkle proof/proof_test.go) ---------------------------


def ids(*pairs: tuple[int, int]) -> tuple[NodeID, ...]:
    return tuple(NodeID(level, index) for level, index in pairs)


INCLUSION_NODES = [
    # (size, index, node ids, (begin, end) of the ephemeral node's pieces or None)
    (1, 0, ids(), None),
    (2, 0, ids((0, 1)), None),
    (2, 1, ids((0, 0)), None),
    (3, 1, ids((0, 0), (0, 2)), None),
    (7, 0, ids((0, 1), (1, 1), (0, 6), (1, 2)), (2, 4)),
    (7, 1, ids((0, 0), (1, 1), (0, 6), (1, 2)), (2, 4)),
    (7, 2, ids((0, 3), (1, 0), (0, 6), (1, 2)), (2, 4)),
    (7, 3, ids((0, 2), (1, 0), (0, 6), (1, 2)), (2, 4)),
    (7, 4, ids((0, 5), (0, 6), (2, 0)), None),
    (7, 5, ids((0, 4), (0, 6), (2, 0)), None),
    (7, 6, ids((1, 2), (2, 0)), None),
    (4, 2, ids((0, 3), (1, 0)), None),
    (5, 3, ids((0, 2), (1, 0), (0, 4)), None),
    (6, 3, ids((0, 2), (1, 0), (1, 2)), None),
    (6, 4, ids((0, 5), (2, 0)), None),
    (15, 10, ids((0, 11), (1, 4), (0, 14), (1, 6), (3, 0)), (2, 4)),
    (31, 24, ids((0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)), (2, 4)),
    (95, 81, ids((0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)), (3, 6)),
]

CONSISTENCY_NODES = [
    (1, 2, ids((0, 1)), None),
    (1, 4, ids((0, 1), (1, 1)), None),
    (1, 6, ids((0, 1), (1, 1), (1, 2)), None),
    (2, 3, ids((0, 2)), None),
    (2, 8, ids((1, 1), (2, 1)), None),
    (3, 7, ids((0, 2), (0, 3), (1, 0), (0, 6), (1, 2)), (3, 5)),
    (4, 7, ids((0, 6), (1, 2)), (0, 2)),
    (5, 7, ids((0, 4), (0, 5), (0, 6), (2, 0)), None),
    (6, 7, ids((1, 2), (0, 6), (2, 0)), None),
    (7, 8, ids((0, 6), (0, 7), (1, 2), (2, 0)), None),
    (1, 1, ids(), None),
    (2, 2, ids(), None),
    (3, 3, ids(), None),
    (8, 8, ids(), None),
    (2, 4, ids((1, 1)), None),
    (3, 5, ids((0, 2), (0, 3), (1, 0), (0, 4)), None),
    (3, 6, ids((0, 2), (0, 3), (1, 0), (1, 2)), None),
    (4, 6, ids((1, 2)), None),
    (1, 7, ids((0, 1), (1, 1), (0, 6), (1, 2)), (2, 4)),
    (10, 15, ids((1, 4), (1, 5), (0, 14), (1, 6), (3, 0)), (2, 4)),
    (24, 31, ids((3, 2), (0, 30), (1, 14), (2, 6), (4, 0)), (1, 4)),
    (81, 95, ids((0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)), (4, 7)),
]


@pytest.mark.parametrize(("size", "index", "want", "rehash"), INCLUSION_NODES)
def test_inclusion_nodes(size, index, want, rehash):
    nodes = inclusion_nodes(index, size)
    assert nodes.ids == want
    assert ((nodes.begin, nodes.end) if nodes.ephemeral else None) == rehash


@pytest.mark.parametrize(("size1", "size2", "want", "rehash"), CONSISTENCY_NODES)
def test_consistency_nodes(size1, size2, want, rehash):
    nodes = consistency_nodes(size1, size2)
    assert nodes.ids == want
    assert ((nodes.begin, nodes.end) if nodes.ephemeral else None) == rehash


def test_ephemeral_node_is_the_parent_of_its_pieces():
    nodes = inclusion_nodes(81, 95)
    assert nodes.ephemeral == NodeID(3, 11)  # covers [88, 96): incomplete in a tree of 95
    assert nodes.ephemeral.coverage() == (88, 96)
    pieces = nodes.ids[nodes.begin : nodes.end]
    assert {p.coverage() for p in pieces} == {(94, 95), (92, 94), (88, 92)}


def test_rehash_folds_the_ephemeral_pieces():
    h = [hash_leaf(b"Hash %d" % i) for i in range(1, 6)]
    assert inclusion_nodes(3, 8).rehash(h[:3]) == h[:3]
    assert inclusion_nodes(9, 15).rehash(h[:5]) == [h[0], h[1], hash_children(h[3], h[2]), h[4]]
    assert inclusion_nodes(2, 7).rehash(h[:4]) == [h[0], h[1], hash_children(h[3], h[2])]
    with pytest.raises(ValueError, match="got 3 hashes for 4 proof nodes"):
        inclusion_nodes(2, 7).rehash(h[:3])


def test_range_and_frontier_nodes():
    assert frontier_nodes(0) == []
    assert frontier_nodes(13) == [NodeID(3, 0), NodeID(2, 2), NodeID(0, 12)]
    assert range_nodes(6, 29) == [NodeID(1, 3), NodeID(3, 1), NodeID(3, 2), NodeID(2, 6), NodeID(0, 28)]
    with pytest.raises(ValueError):
        range_nodes(5, 4)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (3, 0), (8, 7), (7, 7)])
def test_inclusion_nodes_refuse_an_index_outside_the_tree(index, size):
    with pytest.raises(ValueError, match=f"leaf index {index} is not below tree size {size}"):
        inclusion_nodes(index, size)


@pytest.mark.parametrize(("size1", "size2"), [(5, 0), (9, 8), (2, 1)])
def test_consistency_nodes_refuse_a_shrinking_tree(size1, size2):
    with pytest.raises(ValueError, match=f"first tree size {size1} is larger than second tree size {size2}"):
        consistency_nodes(size1, size2)


def test_node_functions_refuse_non_integers_and_huge_sizes():
    with pytest.raises(TypeError):
        inclusion_nodes(True, 2)
    with pytest.raises(ValueError):
        inclusion_nodes(0, 1 << 64)
    with pytest.raises(ValueError):
        consistency_nodes(-1, 3)


def test_consistency_nodes_from_the_empty_tree_are_empty():
    assert consistency_nodes(0, 0) == ProofNodes(())
    assert consistency_nodes(0, 17) == ProofNodes(())


# --- hostile vectors ---------------------------------------------------------------------


def test_inclusion_rejects_a_flipped_bit_in_each_proof_hash():
    index, size = 5, 8
    proof = build_inclusion(index, size)
    for i in range(len(proof)):
        bad = [*proof]
        bad[i] = flip(bad[i])
        with pytest.raises(RootMismatchError):
            verify_inclusion(LEAF_HASHES_8[index], index, size, bad, ROOT_8)


LEAF_HASHES_8 = TREE[:8]
ROOT_8 = mth(TREE[:8])


def test_inclusion_rejects_a_flipped_leaf_and_a_flipped_root():
    proof = build_inclusion(2, 8)
    with pytest.raises(RootMismatchError) as leaf_err:
        verify_inclusion(flip(TREE[2]), 2, 8, proof, ROOT_8)
    assert leaf_err.value.expected == ROOT_8
    with pytest.raises(RootMismatchError) as root_err:
        verify_inclusion(TREE[2], 2, 8, proof, flip(ROOT_8, 0))
    err = root_err.value
    assert err.expected == flip(ROOT_8, 0)
    assert err.computed == ROOT_8
    assert ROOT_8.hex() in str(err) and flip(ROOT_8, 0).hex() in str(err)


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("one too long (trailing garbage)", lambda p: [*p, SOME_HASH]),
        ("trailing root", lambda p: [*p, ROOT_8]),
        ("trailing empty hash", lambda p: [*p, b""]),
        ("preceding garbage", lambda p: [SOME_HASH, *p]),
        ("one too short", lambda p: p[:-1]),
        ("empty", lambda p: []),
    ],
)
def test_inclusion_rejects_a_proof_of_the_wrong_length_before_hashing(name, mutate):
    proof = build_inclusion(3, 8)
    with pytest.raises(ProofLengthError) as err:
        verify_inclusion(TREE[3], 3, 8, mutate(proof), ROOT_8)
    assert err.value.want == 3
    assert "wrong proof length" in str(err.value)


def test_inclusion_rejects_index_equal_to_size():
    with pytest.raises(ProofError, match="leaf index 8 is not below tree size 8"):
        verify_inclusion(TREE[7], 8, 8, build_inclusion(7, 8), ROOT_8)


@pytest.mark.parametrize("wrong", [0, 1, 4, 7])
def test_inclusion_rejects_the_wrong_index(wrong):
    proof = build_inclusion(6, 8)  # same length for every index of a perfect tree
    with pytest.raises(RootMismatchError):
        verify_inclusion(TREE[6], wrong, 8, proof, ROOT_8)


def test_inclusion_rejects_hashes_of_the_wrong_size():
    proof = build_inclusion(1, 8)
    with pytest.raises(ProofError, match="leaf hash must be 32 bytes"):
        verify_inclusion(b"WrongLeaf", 1, 8, proof, ROOT_8)
    with pytest.raises(ProofError, match="root must be 32 bytes"):
        verify_inclusion(TREE[1], 1, 8, proof, b"")
    with pytest.raises(ProofError, match=r"proof\[1\] must be 32 bytes"):
        verify_inclusion(TREE[1], 1, 8, [proof[0], proof[1][:31], proof[2]], ROOT_8)
    with pytest.raises(ProofError, match="sequence of hashes"):
        verify_inclusion(TREE[1], 1, 8, b"".join(proof), ROOT_8)  # type: ignore[arg-type]


def test_single_leaf_tree():
    h = hash_leaf(b"data")
    verify_inclusion(h, 0, 1, [], h)
    with pytest.raises(RootMismatchError):
        verify_inclusion(h, 0, 1, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(h, 0, 1, [], b"")


def test_consistency_rejects_swapped_roots():
    root3, root7 = mth(TREE[:3]), mth(TREE[:7])
    proof = build_consistency(3, 7)
    verify_consistency(3, 7, proof, root3, root7)
    with pytest.raises(RootMismatchError) as err:
        verify_consistency(3, 7, proof, root7, root3)
    assert err.value.what == "first root"
    assert err.value.expected == root7 and err.value.computed == root3


def test_consistency_rejects_a_flipped_bit_in_each_proof_hash():
    root5, root13 = mth(TREE[:5]), mth(TREE[:13])
    proof = build_consistency(5, 13)
    for i in range(len(proof)):
        bad = [*proof]
        bad[i] = flip(bad[i], 4)
        with pytest.raises(RootMismatchError):
            verify_consistency(5, 13, bad, root5, root13)


def test_consistency_rejects_flipped_roots():
    root5, root13 = mth(TREE[:5]), mth(TREE[:13])
    proof = build_consistency(5, 13)
    with pytest.raises(RootMismatchError, match="first root mismatch"):
        verify_consistency(5, 13, proof, flip(root5), root13)
    with pytest.raises(RootMismatchError, match="second root mismatch") as err:
        verify_consistency(5, 13, proof, root5, flip(root13))
    assert err.value.computed == root13


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p, r1, r2: [*p, SOME_HASH],  # trailing garbage
        lambda p, r1, r2: [*p, r1],  # trailing root1
        lambda p, r1, r2: [*p, r2],  # trailing root2
        lambda p, r1, r2: [r1, *p],  # preceding root1
        lambda p, r1, r2: [p[0], *p],  # preceding proof[0]
        lambda p, r1, r2: p[:-1],  # truncated
        lambda p, r1, r2: [],  # empty
    ],
)
def test_consistency_rejects_a_proof_of_the_wrong_length(mutate):
    root6, root8 = mth(TREE[:6]), mth(TREE[:8])
    proof = build_consistency(6, 8)
    with pytest.raises(ProofLengthError):
        verify_consistency(6, 8, mutate(proof, root6, root8), root6, root8)


def test_consistency_rejects_size1_larger_than_size2():
    with pytest.raises(ProofError, match="first tree size 8 is larger than second tree size 6"):
        verify_consistency(8, 6, build_consistency(6, 8), mth(TREE[:8]), mth(TREE[:6]))


def test_consistency_of_equal_sizes_needs_equal_roots_and_no_proof():
    root = mth(TREE[:5])
    verify_consistency(5, 5, [], root, root)
    with pytest.raises(RootMismatchError):
        verify_consistency(5, 5, [], root, SOME_HASH)
    with pytest.raises(ProofLengthError):
        verify_consistency(5, 5, [EMPTY_ROOT], root, root)


def test_consistency_from_the_empty_tree():
    # RFC 9162: the empty tree is a prefix of every tree; the proof is empty.
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 1, [], EMPTY_ROOT, TREE[0])
    verify_consistency(0, 300, [], EMPTY_ROOT, SOME_HASH)
    with pytest.raises(ProofLengthError):
        verify_consistency(0, 1, [EMPTY_ROOT], EMPTY_ROOT, TREE[0])
    with pytest.raises(RootMismatchError, match="first root"):
        verify_consistency(0, 5, [], SOME_HASH, mth(TREE[:5]))
    with pytest.raises(RootMismatchError, match="second root"):
        verify_consistency(0, 0, [], EMPTY_ROOT, SOME_HASH)
    with pytest.raises(ProofError, match="does not determine"):
        root_from_consistency_proof(0, 5, [], EMPTY_ROOT)


def corrupt_inclusion(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    """transparency-dev/merkle's corruptInclusionProof probes."""
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    for i in range(len(proof)):
        bad = [*proof]
        bad[i] = flip(bad[i])
        probes.append((index, size, root, leaf, bad))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


def corrupt_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]):
    """transparency-dev/merkle's corruptConsistencyProof probes."""
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, b""]),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [*proof, root2]),
        (size1, size2, root1, root2, [b"", *proof]),
        (size1, size2, root1, root2, [root1, *proof]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = [*proof]
        bad[i] = flip(bad[i], 4)
        probes.append((size1, size2, root1, root2, bad))
    return probes


@pytest.mark.parametrize("size", range(1, 33))
def test_every_corrupted_inclusion_proof_is_refused(size):
    root = mth(TREE[:size])
    for index in range(size):
        proof = build_inclusion(index, size)
        verify_inclusion(TREE[index], index, size, proof, root)
        for i, n, r, leaf, probe in corrupt_inclusion(index, size, proof, root, TREE[index]):
            if i < 0:
                continue
            with pytest.raises(ProofError):
                verify_inclusion(leaf, i, n, probe, r)


@pytest.mark.parametrize("size2", range(2, 33))
def test_every_corrupted_consistency_proof_is_refused(size2):
    root2 = mth(TREE[:size2])
    for size1 in range(1, size2):
        root1 = mth(TREE[:size1])
        proof = build_consistency(size1, size2)
        verify_consistency(size1, size2, proof, root1, root2)
        for s1, s2, r1, r2, probe in corrupt_consistency(size1, size2, root1, root2, proof):
            if s1 < 0 or (s1, s2, r1, r2, probe) == (size1, size2, root1, root2, proof):
                continue
            with pytest.raises(ProofError):
                verify_consistency(s1, s2, probe, r1, r2)


# --- construction agrees with RFC 9162's definitions ---------------------------------------


@pytest.mark.parametrize("size", range(1, 70))
def test_inclusion_proofs_match_rfc9162_path(size):
    for index in range(size):
        proof = build_inclusion(index, size)
        assert proof == ref_path(index, TREE[:size])
        assert len(proof) == inclusion_proof_size(index, size)


@pytest.mark.parametrize("size2", range(1, 50))
def test_consistency_proofs_match_rfc9162_proof(size2):
    for size1 in range(1, size2 + 1):
        proof = build_consistency(size1, size2)
        assert proof == ref_proof(size1, TREE[:size2])
        assert len(proof) == consistency_proof_size(size1, size2)


# --- properties -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_inclusion_from_fetched_nodes_verifies(size, data):
    index = data.draw(st.integers(0, size - 1))
    proof = build_inclusion(index, size)
    root = root_from_leaf_hashes(TREE[:size])
    assert root == mth(TREE[:size])
    verify_inclusion(TREE[index], index, size, proof, root)


@settings(max_examples=300, deadline=None)
@given(size2=st.integers(1, 300), data=st.data())
def test_consistency_from_fetched_nodes_verifies(size2, data):
    size1 = data.draw(st.integers(0, size2))
    proof = build_consistency(size1, size2)
    root1, root2 = root_from_leaf_hashes(TREE[:size1]), root_from_leaf_hashes(TREE[:size2])
    verify_consistency(size1, size2, proof, root1, root2)
    if size1:
        assert root_from_consistency_proof(size1, size2, proof, root1) == root2


@settings(max_examples=50, deadline=None)
@given(size=st.integers(0, 300))
def test_compact_range_root_matches_every_prefix(size):
    r = CompactRange()
    assert r.root() == EMPTY_ROOT
    for n in range(size):
        r.append(TREE[n])
        assert r.root() == mth(TREE[: n + 1])
    assert r.size == size
    assert r.frontier == tuple(node_hash(n.level, n.index) for n in frontier_nodes(size))


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 300), data=st.data())
def test_resuming_from_a_frontier_equals_straight_computation(size, data):
    cut = data.draw(st.integers(0, size))
    frontier = [node_hash(n.level, n.index) for n in frontier_nodes(cut)]
    resumed = CompactRange.from_frontier(cut, frontier)
    assert resumed.root() == mth(TREE[:cut])
    resumed.extend(TREE[cut:size])
    assert resumed.size == size
    assert resumed.root() == root_from_leaf_hashes(TREE[:size])


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 300), cut=st.integers(0, 300))
def test_visitor_sees_every_perfect_node_once_children_first(size, cut):
    cut = min(cut, size)
    seen: list[tuple[int, int, bytes]] = []
    r = CompactRange.from_frontier(
        cut, [node_hash(n.level, n.index) for n in frontier_nodes(cut)], visitor=lambda *node: seen.append(node)
    )
    r.extend(TREE[cut:size])
    want = {
        (level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
        if (index + 1) << level > cut  # completed after the cut
    }
    assert [(level, index) for level, index, _ in seen if (level, index) in want] == [
        (level, index) for level, index, _ in seen
    ]
    assert sorted((level, index) for level, index, _ in seen) == sorted(want)
    for level, index, h in seen:
        assert h == node_hash(level, index)
    position = {(level, index): i for i, (level, index, _) in enumerate(seen)}
    for level, index in want:
        if level:
            for child in (2 * index, 2 * index + 1):
                if (level - 1, child) in position:
                    assert position[(level - 1, child)] < position[(level, index)]


def test_a_failing_visitor_leaves_the_range_consistent():
    calls = 0

    def visitor(level: int, index: int, h: bytes) -> None:
        nonlocal calls
        calls += 1
        if level == 2 and index == 0:
            raise RuntimeError("storage is down")

    r = CompactRange(visitor=visitor)
    with pytest.raises(RuntimeError):
        r.extend(TREE[:8])
    assert r.size == 3  # leaf 3 completes node (2, 0): not appended
    assert r.root() == mth(TREE[:3])
    r.visitor = None
    r.extend(TREE[3:8])
    assert r.root() == ROOT_8


def test_compact_range_copy_and_errors():
    r = CompactRange()
    r.extend(TREE[:5])
    c = r.copy()
    c.append(TREE[5])
    assert r.size == 5 and c.size == 6
    assert c.root() == mth(TREE[:6])
    with pytest.raises(ValueError, match="32 bytes"):
        r.append(b"short")
    assert r.size == 5
    with pytest.raises(ValueError, match="frontier of 2 hashes, got 1"):
        CompactRange.from_frontier(5, [TREE[0]])
    with pytest.raises(ValueError, match="frontier"):
        CompactRange.from_frontier(1, [b"x"])


def test_a_custom_hasher_is_used_throughout():
    class Tagged:
        size = 32

        def empty_root(self) -> bytes:
            return hashlib.sha256(b"tagged").digest()

        def hash_leaf(self, data: bytes) -> bytes:
            return hashlib.sha256(b"L" + data).digest()

        def hash_children(self, left: bytes, right: bytes) -> bytes:
            return hashlib.sha256(b"N" + left + right).digest()

    hasher = Tagged()
    leaves = [hasher.hash_leaf(b"%d" % i) for i in range(11)]
    root = root_from_leaf_hashes(leaves, hasher=hasher)
    assert root != root_from_leaf_hashes(leaves)
    assert root_from_leaf_hashes([], hasher=hasher) == hasher.empty_root()

    def hashes_of(nodes: ProofNodes) -> list[bytes]:
        return [root_from_leaf_hashes(leaves[b:e], hasher=hasher) for b, e in (n.coverage() for n in nodes.ids)]

    nodes = inclusion_nodes(6, 11)
    proof = nodes.rehash(hashes_of(nodes), hasher=hasher)
    verify_inclusion(leaves[6], 6, 11, proof, root, hasher=hasher)
    with pytest.raises(RootMismatchError):
        verify_inclusion(leaves[6], 6, 11, proof, root)
    nodes = consistency_nodes(5, 11)
    proof = nodes.rehash(hashes_of(nodes), hasher=hasher)
    verify_consistency(5, 11, proof, root_from_leaf_hashes(leaves[:5], hasher=hasher), root, hasher=hasher)
