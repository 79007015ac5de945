"""The test witness (tests/witness.py) driven over HTTP with the SDK's checkpoint and proof code."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from auditsvc_sdk._merkle import consistency_nodes, hash_leaf, root_from_leaf_hashes
from auditsvc_sdk._note import (
    Checkpoint,
    CosignatureVerifier,
    NoteSigner,
    open_note,
    sign_checkpoint,
    verify_cosignature,
)

from .witness import RunningWitness, add_checkpoint_body, start_witness

ORIGIN = "log.example/audit"
NOW = 1_700_000_000
LEAVES = [hash_leaf(b"event %d" % i) for i in range(100)]
FORKED = [*LEAVES[:10], *(hash_leaf(b"rewritten %d" % i) for i in range(10, 100))]


def checkpoint(size: int, leaves: list[bytes] = LEAVES) -> Checkpoint:
    return Checkpoint(ORIGIN, size, root_from_leaf_hashes(leaves[:size]))


def proof(size1: int, size2: int, leaves: list[bytes] = LEAVES) -> list[bytes]:
    nodes = consistency_nodes(size1, size2)
    return nodes.rehash([root_from_leaf_hashes(leaves[slice(*n.coverage())]) for n in nodes.ids])


@pytest.fixture
def log() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


@pytest.fixture
def witness(log: NoteSigner) -> Iterator[RunningWitness]:
    with start_witness(log.vkey, clock=lambda: NOW) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def submit(client: httpx.Client, witness: RunningWitness, body: bytes) -> httpx.Response:
    return client.post(witness.url + "/add-checkpoint", content=body)


def advance(client, witness, log, old: int, new: int, leaves: list[bytes] = LEAVES) -> httpx.Response:
    note = sign_checkpoint(checkpoint(new, leaves), log)
    return submit(client, witness, add_checkpoint_body(old, proof(old, new, leaves), note))


def test_witness_cosigns_a_growing_log(log, witness, client):
    verifier = CosignatureVerifier.from_vkey(witness.vkey)
    sizes = [0, 3, 10, 10, 17, 64, 100]
    old = 0
    for size in sizes:
        note = sign_checkpoint(checkpoint(size), log)
        response = submit(client, witness, add_checkpoint_body(old, proof(old, size), note))
        assert response.status_code == 200, response.text
        line = response.text
        assert line.startswith("— witness.example/w1 ") and line.endswith("\n")
        assert verify_cosignature(checkpoint(size).body(), line, verifier) == NOW
        # As the spec suggests: append the response to the note and open it.
        cosigned = open_note(note + line, [verifier, log.verifier])
        assert len(cosigned.signatures) == 2
        old = size
    assert witness.witness.state[ORIGIN] == (100, checkpoint(100).root_hash)


def test_a_stale_old_size_gets_409_with_the_latest_size(log, witness, client):
    assert advance(client, witness, log, 0, 10).status_code == 200
    for stale in (0, 3, 12):
        response = advance(client, witness, log, stale, 20)
        assert response.status_code == 409
        assert response.headers["content-type"] == "text/x.tlog.size"
        assert response.text == "10\n"
    assert witness.witness.state[ORIGIN][0] == 10


def test_a_bad_consistency_proof_gets_422(log, witness, client):
    assert advance(client, witness, log, 0, 10).status_code == 200
    note = sign_checkpoint(checkpoint(23), log)
    good = proof(10, 23)
    flipped = [good[0], bytes((good[1][0] ^ 1,)) + good[1][1:], *good[2:]]
    for bad in (flipped, good[:-1], [*good, good[0]], []):
        response = submit(client, witness, add_checkpoint_body(10, bad, note))
        assert response.status_code == 422, response.text
    assert witness.witness.state[ORIGIN][0] == 10
    assert submit(client, witness, add_checkpoint_body(10, good, note)).status_code == 200


def test_a_rewritten_history_is_refused(log, witness, client):
    # The log signs a tree that rewrote entries after 10: no proof from the
    # witness's root of size 10 leads there.
    assert advance(client, witness, log, 0, 20).status_code == 200
    response = advance(client, witness, log, 20, 30, leaves=FORKED)
    assert response.status_code == 422
    assert "mismatch" in response.text


def test_a_proof_from_zero_must_be_empty(log, witness, client):
    note = sign_checkpoint(checkpoint(5), log)
    response = submit(client, witness, add_checkpoint_body(0, [LEAVES[0]], note))
    assert response.status_code == 422


def test_same_size_with_another_root_is_a_conflict(log, witness, client):
    assert advance(client, witness, log, 0, 10).status_code == 200
    assert advance(client, witness, log, 10, 10).status_code == 200  # same root: fine
    response = advance(client, witness, log, 10, 10, leaves=[hash_leaf(b"other %d" % i) for i in range(10)])
    assert response.status_code == 409


def test_an_unknown_log_gets_404(witness, client):
    other = NoteSigner.generate("log.example/other")
    note = sign_checkpoint(Checkpoint("log.example/other", 3, root_from_leaf_hashes(LEAVES[:3])), other)
    assert submit(client, witness, add_checkpoint_body(0, [], note)).status_code == 404


def test_a_checkpoint_not_signed_by_the_log_gets_403(log, witness, client):
    impostor = NoteSigner.generate(ORIGIN)  # same name, another key
    note = sign_checkpoint(checkpoint(3), impostor)
    assert submit(client, witness, add_checkpoint_body(0, [], note)).status_code == 403
    genuine = sign_checkpoint(checkpoint(3), log)
    text, line = genuine.rsplit("\n\n", 1)
    raw = bytearray(base64.b64decode(line.split()[-1]))
    raw[10] ^= 1
    forged = f"{text}\n\n— {ORIGIN} {base64.b64encode(bytes(raw)).decode()}\n"
    assert submit(client, witness, add_checkpoint_body(0, [], forged)).status_code == 403
    altered = genuine.replace("\n3\n", "\n4\n", 1)
    assert submit(client, witness, add_checkpoint_body(0, [], altered)).status_code == 403
    assert ORIGIN not in witness.witness.state


@pytest.mark.parametrize(
    "body",
    [
        b"old 0\n",
        b"old 01\n\n",
        b"old -1\n\n",
        b"old 5 \n\n",
        b"new 0\n\n",
        b"old 0\nnot base64!\n\n",
        b"old 0\n" + base64.b64encode(b"short") + b"\n\n",
        b"\xff\xfe",
    ],
    ids=[
        "no blank line",
        "leading zero",
        "negative",
        "trailing space",
        "not old",
        "bad base64",
        "short hash",
        "binary",
    ],
)
def test_malformed_requests_get_400(log, witness, client, body):
    note = sign_checkpoint(checkpoint(3), log).encode()
    assert submit(client, witness, body + note).status_code == 400


def test_more_limits_get_400(log, witness, client):
    note = sign_checkpoint(checkpoint(3), log)
    too_many = add_checkpoint_body(0, [LEAVES[0]] * 64, note)
    assert submit(client, witness, too_many).status_code == 400
    assert submit(client, witness, add_checkpoint_body(5, proof(3, 3), note)).status_code == 400  # old > size
    unsigned = add_checkpoint_body(0, [], checkpoint(3).body())
    assert submit(client, witness, unsigned).status_code == 400
    assert client.get(witness.url + "/add-checkpoint").status_code == 405
    assert client.post(witness.url + "/other", content=b"").status_code == 404


def test_concurrent_submissions_from_the_same_size_cosign_once(log, witness, client):
    assert advance(client, witness, log, 0, 10).status_code == 200

    def push(size: int) -> int:
        with httpx.Client(timeout=10) as c:
            return advance(c, witness, log, 10, size).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(push, range(11, 27)))
    assert statuses.count(200) == 1
    assert statuses.count(409) == len(statuses) - 1
    winner = 11 + statuses.index(200)
    assert witness.witness.state[ORIGIN] == (winner, checkpoint(winner).root_hash)
