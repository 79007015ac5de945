"""The chain format, version 1, over records of format 1 and 2 (docs/chain-format.md is the normative text).

Every function here is pure: bytes in, bytes out, no storage and no clock,
so an auditor can verify rows read from anywhere with this module alone.

1. The *record* is the stored event: the client's fields plus the
   server-assigned ``seq``, ``received_at``, ``emitter`` and ``v`` (the
   format version).
2. *Leaf bytes* are the RFC 8785 (JCS) canonical JSON of the record, UTF-8.
3. ``leaf_hash = SHA-256(0x00 || leaf bytes)`` (RFC 6962 leaf hash).
4. ``chain_hash[n] = SHA-256(CHAIN_TAG || chain_hash[n-1] || leaf_hash[n])``
   where ``chain_hash[-1]`` is the log's genesis value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

__all__ = [
    "CHAIN_TAG",
    "FORMAT_VERSION",
    "RecordTemplate",
    "UnsupportedFormatVersion",
    "canonical_json",
    "canonical_record",
    "chain_hash",
    "check_format_version",
    "genesis_hash",
    "leaf_hash",
    "make_record",
]

FORMAT_VERSION = 1
"""The chain format: leaf and chain hashing, genesis (the log's and the
evidence package's ``chain_format``)."""
SEALED_RECORD_VERSION = 2
"""Record ``v`` 2: patient identifiers as ``{system, value_enc, value_hmac}``
(the value sealed with AES-256-GCM, and its lookup hash); ``v`` 1 records
carry ``{system, value}`` in clear. Both hash the same way."""
SUPPORTED_VERSIONS = frozenset({FORMAT_VERSION, SEALED_RECORD_VERSION})
"""Record format versions this code verifies."""
CHAIN_TAG = b"auditsvc:chain:v1\x00"
GENESIS_TAG = b"auditsvc:genesis:v1\x00"


class UnsupportedFormatVersion(ValueError):
    """A record or package declares a chain format this code does not know."""


def check_format_version(record: Mapping[str, Any]) -> None:
    version = record.get("v")
    # The JSON integer 1: in Python True == 1.0 == 1, so compare the type too.
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise UnsupportedFormatVersion(
            f"chain format version {version!r} is not supported (this verifier knows {known})"
        )


def _is_plain(obj: Any) -> bool:
    """True when orjson's sorted-keys output is byte-identical to RFC 8785 for
    ``obj``: only str/int/bool/None/list/dict, ASCII keys, integers a double
    holds exactly. Anything else (floats above all) goes to the reference
    encoder."""
    if isinstance(obj, str):
        return True
    if isinstance(obj, bool) or obj is None:
        return True
    if isinstance(obj, int):
        return -(2**53) < obj < 2**53
    if isinstance(obj, list):
        return all(_is_plain(item) for item in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, str) and k.isascii() and _is_plain(v) for k, v in obj.items())
    return False


def _dumps(obj: Any) -> bytes:
    # orjson writes UTF-8 without needless escapes and escapes exactly what
    # RFC 8785 does (the quote, the backslash, control characters, with the
    # same short forms and lowercase hex); with ASCII keys its byte-order key
    # sort is RFC 8785's UTF-16 order. tests/test_chain.py checks it.
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical JSON of ``obj``, as UTF-8 bytes.

    Records hold only strings, safe integers, booleans, lists and objects
    with ASCII keys. For those, orjson with sorted keys produces exactly the
    RFC 8785 bytes, many times faster; anything else goes through the
    ``rfc8785`` reference encoder. tests/test_chain.py checks the two agree
    on generated inputs.
    """
    if _is_plain(obj):
        try:
            return _dumps(obj)
        except TypeError:
            pass  # a lone surrogate: let the reference encoder name the problem
    return rfc8785.dumps(obj)


def canonical_record(record: dict[str, Any]) -> bytes:
    """Leaf bytes of a record built from a validated ``PhiAccess``.

    The event model already guarantees what ``canonical_json`` would check
    (ASCII attribute keys, safe integers, no floats, no lone surrogates), so
    this skips that walk on the service's hot path. The result is the same
    RFC 8785 bytes; tests/test_chain.py checks it on generated events.
    """
    return _dumps(record)


_SERVER_KEYS = ("emitter", "received_at", "seq", "v")


class RecordTemplate:
    """An event's leaf bytes with the append-time fields still open.

    RFC 8785 sorts members by key. ``received_at`` and ``seq`` are adjacent
    in that order (no event key sorts between them), so the record's bytes
    are: the members sorting before ``received_at`` (the event's and
    ``emitter``), then ``received_at`` and ``seq``, then the rest (the
    event's and ``v``). Encoding the two outer parts once, before the append
    lock, leaves only a splice for inside it: ``template.leaf_bytes(...)``
    equals ``canonical_record(make_record(...))`` byte for byte
    (tests/test_chain.py checks it).
    """

    __slots__ = ("_head", "_tail")

    def __init__(self, event: Mapping[str, Any], *, emitter: str, version: int = FORMAT_VERSION) -> None:
        if any(key in event for key in _SERVER_KEYS):
            raise ValueError("an event must not carry server-assigned fields")
        if any("received_at" < key < "seq" for key in event):
            raise ValueError("an event key sorts between received_at and seq")
        head = {key: value for key, value in event.items() if key < "received_at"}
        head["emitter"] = emitter
        tail = {key: value for key, value in event.items() if key > "seq"}
        tail["v"] = version
        self._head = _dumps(head)[:-1] + b',"received_at":'  # '{...' without its closing brace
        self._tail = b"," + _dumps(tail)[1:]  # '...}' without its opening brace

    def leaf_bytes(self, *, seq: int, received_at: str) -> bytes:
        return b"".join((self._head, _dumps(received_at), b',"seq":', str(seq).encode("ascii"), self._tail))


def leaf_hash(leaf_bytes: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf bytes)."""
    return hashlib.sha256(b"\x00" + leaf_bytes).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """SHA-256(CHAIN_TAG || previous chain hash || leaf hash)."""
    if len(previous) != 32 or len(leaf) != 32:
        raise ValueError("chain and leaf hashes are 32 bytes")
    return hashlib.sha256(CHAIN_TAG + previous + leaf).digest()


def genesis_hash(log_name: str) -> bytes:
    """The chain hash before the first record: SHA-256(GENESIS_TAG || log name).

    Binding the log's name into the genesis value means two logs never share
    a chain, so rows cannot be replayed from one log into another.
    """
    return hashlib.sha256(GENESIS_TAG + log_name.encode("utf-8")).digest()


def make_record(
    event: Mapping[str, Any], *, seq: int, received_at: str, emitter: str, version: int = FORMAT_VERSION
) -> dict[str, Any]:
    """The stored record: the event's JSON plus the server-assigned fields."""
    record = dict(event)
    record["seq"] = seq
    record["received_at"] = received_at
    record["emitter"] = emitter
    record["v"] = version
    return record
