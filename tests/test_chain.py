"""Chain format v1 (docs/chain-format.md): vectors, the doc, canonical JSON, event normal forms.

No database: everything here is pure functions of bytes and the event model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785
from auditsvc_sdk import (
    FORMAT_VERSION,
    PhiAccess,
    UnsupportedFormatVersion,
    canonical_json,
    chain_hash,
    check_format_version,
    genesis_hash,
    leaf_hash,
    make_record,
    root_from_leaf_hashes,
)
from auditsvc_sdk._chain import CHAIN_TAG, GENESIS_TAG
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
VECTORS_PATH = ROOT / "tests" / "vectors" / "chain-v1.json"
DOC_PATH = ROOT / "docs" / "chain-format.md"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
DOC = DOC_PATH.read_text(encoding="utf-8")
RECORDS: list[dict[str, Any]] = VECTORS["records"]
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")

MAX_SAFE = 2**53 - 1
SECRET = "MRN-SECRET-0042"


def _event(**overrides: Any) -> dict[str, Any]:
    """A valid event in its JSON shape (synthetic patient); keyword arguments replace fields."""
    event: dict[str, Any] = {
        "event_id": "0190f3c8-6a4b-7c2d-8e9f-0a1b2c3d4e5f",
        "occurred_at": "2024-05-14T09:29:59.5Z",
        "action": "R",
        "event_type": "fhir-rest",
        "patient": {"identifiers": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-000123"}]},
        "data_elements": ["Observation"],
        "source": {"system_id": "ehr-main"},
        "destination": {"system_id": "portal-web"},
        "actor": {"id": "user:zmuller", "type": "user"},
    }
    event.update(overrides)
    return event


def _identifiers(*values: str, system: str = "urn:oid:2.16.840.1.113883.19.5") -> dict[str, Any]:
    return {"identifiers": [{"system": system, "value": v} for v in values]}


def _occurred_at(value: Any) -> str:
    return PhiAccess.model_validate(_event(occurred_at=value)).to_json()["occurred_at"]


def _vector_rows() -> list[dict[str, Any]]:
    """The vectors as database rows, in the shape the doc's reference verifier reads."""
    return [
        {
            "seq": r["seq"],
            "event_id": r["record"]["event_id"],
            "occurred_at": r["record"]["occurred_at"],
            "record": r["leaf_bytes"].encode("utf-8"),
            "leaf_hash": r["leaf_hash"],
            "chain_hash": r["chain_hash"],
        }
        for r in RECORDS
    ]


# --- (a) the vectors file is what the code computes -------------------------------------------


def test_vector_tags_and_genesis_are_what_the_code_uses() -> None:
    assert VECTORS["version"] == FORMAT_VERSION == 1
    assert bytes.fromhex(VECTORS["chain_tag_hex"]) == CHAIN_TAG == b"auditsvc:chain:v1\x00"
    assert bytes.fromhex(VECTORS["genesis_tag_hex"]) == GENESIS_TAG == b"auditsvc:genesis:v1\x00"
    assert VECTORS["log_name"] == "auditsvc.local/log"
    expected = hashlib.sha256(GENESIS_TAG + VECTORS["log_name"].encode("utf-8")).digest()
    assert genesis_hash(VECTORS["log_name"]) == expected
    assert VECTORS["genesis_hash"] == expected.hex()


@pytest.mark.parametrize("vector", RECORDS, ids=lambda r: f"seq{r['seq']}")
def test_vector_record_is_what_the_event_model_and_make_record_produce(vector: dict[str, Any]) -> None:
    event = PhiAccess.model_validate(vector["event_input"]).to_json()
    record = make_record(event, seq=vector["seq"], received_at=vector["received_at"], emitter=vector["emitter"])
    assert record == vector["record"]
    assert record["v"] == 1
    assert not {"leaf_hash", "chain_hash"} & record.keys()


@pytest.mark.parametrize("vector", RECORDS, ids=lambda r: f"seq{r['seq']}")
def test_vector_leaf_bytes_are_the_rfc8785_encoding_of_the_record(vector: dict[str, Any]) -> None:
    leaf_bytes = vector["leaf_bytes"].encode("utf-8")
    assert canonical_json(vector["record"]) == leaf_bytes
    assert rfc8785.dumps(vector["record"]) == leaf_bytes
    assert bytes.fromhex(vector["leaf_bytes_hex"]) == leaf_bytes
    assert vector["leaf_bytes_length"] == len(leaf_bytes)


def test_vector_hashes_recompute_from_the_records() -> None:
    previous = genesis_hash(VECTORS["log_name"])
    for seq, vector in enumerate(RECORDS):
        assert vector["seq"] == vector["record"]["seq"] == seq
        leaf_bytes = canonical_json(vector["record"])
        leaf = leaf_hash(leaf_bytes)
        assert leaf == hashlib.sha256(b"\x00" + leaf_bytes).digest()
        assert vector["leaf_hash"] == leaf.hex()
        current = chain_hash(previous, leaf)
        assert current == hashlib.sha256(CHAIN_TAG + previous + leaf).digest()
        assert vector["chain_hash"] == current.hex()
        previous = current
    assert VECTORS["head"] == {"tree_size": len(RECORDS), "chain_hash": previous.hex()}


def test_vectors_cover_non_ascii_attributes_and_an_offset_with_nanoseconds() -> None:
    leaf_texts = [r["leaf_bytes"] for r in RECORDS]
    assert any("Zoë Müller-Ōta" in text for text in leaf_texts)
    attributes = [r["record"].get("attributes", {}) for r in RECORDS]
    values = [v for attrs in attributes for v in attrs.values()]
    assert any(type(v) is int for v in values)
    assert any(type(v) is bool for v in values)
    offsets = [r for r in RECORDS if r["event_input"]["occurred_at"].endswith("+05:30")]
    assert offsets
    assert offsets[0]["event_input"]["occurred_at"] == "2024-05-14T15:04:05.123456789+05:30"
    assert offsets[0]["record"]["occurred_at"] == "2024-05-14T09:34:05.123456Z"


# --- (b) the doc shows the same values, so it cannot drift --------------------------------------


def test_doc_shows_every_vector_hash_and_tag() -> None:
    expected = [VECTORS["genesis_hash"], VECTORS["chain_tag_hex"], VECTORS["genesis_tag_hex"]]
    expected += [r[k] for r in RECORDS for k in ("leaf_hash", "chain_hash")]
    for value in expected:
        assert f"`{value}`" in DOC, value


def test_doc_has_no_hash_that_the_vectors_do_not_have() -> None:
    known = {VECTORS["genesis_hash"]} | {r[k] for r in RECORDS for k in ("leaf_hash", "chain_hash")}
    tree = json.loads((Path(__file__).parent / "vectors" / "tree-v1.json").read_text(encoding="utf-8"))
    known |= set(tree["roots"].values()) | set(tree["inclusion"]["hashes"]) | set(tree["consistency"]["hashes"])
    known.add(tree["key_seed_hex"])
    format2 = json.loads((Path(__file__).parent / "vectors" / "chain-format2-v1.json").read_text(encoding="utf-8"))
    for record in format2["records"]:  # the format-2 record: its hashes and its identifiers' lookup hashes
        known |= {record["leaf_hash"], record["chain_hash"]}
        known |= {i["value_hmac"] for i in record["record"]["patient"]["identifiers"]}
    shown = set(HEX64.findall(DOC))
    assert shown, "the doc shows no hashes"
    assert shown <= known, f"stale hashes in the doc: {sorted(shown - known)}"


@pytest.mark.parametrize("vector", RECORDS, ids=lambda r: f"seq{r['seq']}")
def test_doc_shows_each_vector_leaf_bytes_verbatim(vector: dict[str, Any]) -> None:
    assert f"\n{vector['leaf_bytes']}\n" in DOC
    assert f"({vector['leaf_bytes_length']} bytes of UTF-8" in DOC


def test_doc_names_every_damage_kind_the_verifier_reports() -> None:
    for kind in (
        "missing_row",
        "duplicate_seq",
        "record_mismatch",
        "leaf_hash_mismatch",
        "chain_hash_mismatch",
        "unsupported_version",
        "malformed_record",
    ):
        assert f"`{kind}`" in DOC, kind


def _doc_reference_verifier() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL)
    source = next(block for block in blocks if "def verify(" in block)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOC_PATH), "exec"), namespace)  # noqa: S102 - our own doc, under test
    return namespace


def test_doc_reference_verifier_accepts_the_vectors() -> None:
    verifier = _doc_reference_verifier()
    assert verifier["verify"](VECTORS["log_name"], _vector_rows()) == (
        VECTORS["head"]["tree_size"],
        VECTORS["head"]["chain_hash"],
    )
    assert f"# ({VECTORS['head']['tree_size']}, '{VECTORS['head']['chain_hash']}')" in DOC


def _tamper_record(rows: list[dict[str, Any]], index: int, **changes: Any) -> None:
    record = json.loads(rows[index]["record"])
    record.update(changes)
    rows[index]["record"] = canonical_json(record)


def _rehash(rows: list[dict[str, Any]], index: int) -> None:
    """Recompute the leaf hash of one row as a forger would, leaving its chain hash alone."""
    rows[index]["leaf_hash"] = leaf_hash(rows[index]["record"]).hex()


@pytest.mark.parametrize(
    ("damage", "seq", "kind"),
    [
        (lambda rows: rows.pop(1), 1, "missing_row"),
        (lambda rows: rows.insert(2, copy.deepcopy(rows[1])), 1, "duplicate_seq"),
        (lambda rows: rows[1].update(record=b"[1,2]"), 1, "malformed_record"),
        (lambda rows: rows[1].update(record=b"\xff{}"), 1, "malformed_record"),
        (lambda rows: _tamper_record(rows, 1, v=3), 1, "unsupported_version"),
        (lambda rows: _tamper_record(rows, 1, v=True), 1, "unsupported_version"),
        (lambda rows: _tamper_record(rows, 2, seq=1), 2, "record_mismatch"),
        (lambda rows: rows[1].update(occurred_at="2024-05-14T09:30:00.000002Z"), 1, "record_mismatch"),
        (lambda rows: _tamper_record(rows, 0, outcome=8), 0, "leaf_hash_mismatch"),
        (lambda rows: (_tamper_record(rows, 0, outcome=8), _rehash(rows, 0)), 0, "chain_hash_mismatch"),
        (lambda rows: rows[2].update(chain_hash=rows[1]["chain_hash"]), 2, "chain_hash_mismatch"),
    ],
    ids=[
        "deleted-row",
        "inserted-copy",
        "record-not-an-object",
        "record-not-utf8",
        "version-3",
        "version-true",
        "record-seq-differs",
        "column-occurred-at-differs",
        "edited-record",
        "edited-record-with-leaf-rehashed",
        "edited-chain-hash",
    ],
)
def test_doc_reference_verifier_names_the_first_damaged_seq_and_kind(damage: Any, seq: int, kind: str) -> None:
    verifier = _doc_reference_verifier()
    rows = _vector_rows()
    damage(rows)
    with pytest.raises(verifier["Damage"]) as caught:
        verifier["verify"](VECTORS["log_name"], rows)
    assert (caught.value.seq, caught.value.kind) == (seq, kind)


def test_truncating_the_tail_is_invisible_to_the_chain_alone() -> None:
    """Documented limitation (doc section 7): only an external head catches it."""
    verifier = _doc_reference_verifier()
    size, head = verifier["verify"](VECTORS["log_name"], _vector_rows()[:2])
    assert (size, head) == (2, RECORDS[1]["chain_hash"])
    assert (size, head) != (VECTORS["head"]["tree_size"], VECTORS["head"]["chain_hash"])


# --- (c) canonical_json is RFC 8785 -------------------------------------------------------------

SPECIAL_CHARS = [
    '"',
    "\\",
    "/",
    "\x00",
    "\x01",
    "\x08",
    "\t",
    "\n",
    "\x0b",
    "\x0c",
    "\r",
    "\x1f",
    "\x7f",
    "\x80",
    "\u2028",
    "\u2029",
    "\ue000",
    "\ufeff",
    "\ufffe",
    "\uffff",
    "\U0001f600",
    "\U0010ffff",
    "ë",
    "Ō",
]
# Any code point but a surrogate: lone surrogates have no UTF-8 form (and are rejected at input).
TEXT = st.text(
    alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(SPECIAL_CHARS)),
    max_size=24,
)
ASCII_KEYS = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=10)
ANY_KEYS = st.text(alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(SPECIAL_CHARS)))
SAFE_INTS = st.one_of(
    st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE),
    st.sampled_from([0, -1, MAX_SAFE, -MAX_SAFE, 10**15, -(10**15), 2**31, 2**32]),
)
SCALARS = st.one_of(st.none(), st.booleans(), SAFE_INTS, TEXT)


def _json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys, children, max_size=5),
        ),
        max_leaves=25,
    )


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(ASCII_KEYS, _json_values(ASCII_KEYS), max_size=8))
def test_canonical_json_equals_rfc8785_for_record_like_objects(obj: dict[str, Any]) -> None:
    assert canonical_json(obj) == rfc8785.dumps(obj)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_canonical_json_equals_rfc8785_for_any_string(text: str) -> None:
    assert canonical_json(text) == rfc8785.dumps(text)
    assert canonical_json({"k": [text]}) == rfc8785.dumps({"k": [text]})


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(ANY_KEYS, _json_values(ANY_KEYS), max_size=8))
def test_canonical_json_equals_rfc8785_with_non_ascii_keys(obj: dict[str, Any]) -> None:
    assert canonical_json(obj) == rfc8785.dumps(obj)


def test_non_ascii_keys_are_ordered_by_utf16_code_units_not_code_points() -> None:
    obj = {"\ue000": 3, "\U0001f600": 2, "é": 1, "a": 0}
    expected = '{"a":0,"é":1,"\U0001f600":2,"\ue000":3}'.encode()
    assert canonical_json(obj) == rfc8785.dumps(obj) == expected
    # Code-point order (what orjson's and json.dumps' key sort give) puts U+E000
    # before U+1F600: this is the case the fallback to the reference encoder exists for.
    assert orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) != expected
    assert json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() != expected


def test_record_strings_are_escaped_as_rfc8785_requires() -> None:
    obj = {"s": '"\\/\x00\x08\t\n\x0b\x0c\r\x1f\x7f\u2028ë\U0001f600'}
    expected = '{"s":"\\"\\\\/\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\x7f\u2028ë\U0001f600"}'.encode()
    assert canonical_json(obj) == rfc8785.dumps(obj) == expected


def test_integers_beyond_two_to_the_53_are_refused() -> None:
    for value in (2**53, -(2**53), 2**64):
        with pytest.raises(rfc8785.IntegerDomainError):
            canonical_json({"n": value})


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json({"s": "\ud800"})


def test_floats_take_the_reference_encoder_path() -> None:
    obj = {"f": 1.5, "g": 1.0, "h": 1e21}
    assert canonical_json(obj) == rfc8785.dumps(obj) == b'{"f":1.5,"g":1,"h":1e+21}'


# --- (d) hostile inputs to the hash functions ---------------------------------------------------


@pytest.mark.parametrize(
    ("previous_len", "leaf_len"), [(31, 32), (32, 31), (33, 32), (32, 33), (0, 32), (32, 0), (64, 0)]
)
def test_chain_hash_refuses_inputs_that_are_not_32_bytes(previous_len: int, leaf_len: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        chain_hash(b"\x01" * previous_len, b"\x02" * leaf_len)


@pytest.mark.parametrize("version", [3, 0, -1, "1", "2", True, 2.0, None], ids=repr)
def test_records_of_other_format_versions_are_refused(version: Any) -> None:
    record = copy.deepcopy(RECORDS[0]["record"])
    record["v"] = version
    with pytest.raises(UnsupportedFormatVersion):
        check_format_version(record)


def test_a_record_without_a_version_is_refused() -> None:
    record = copy.deepcopy(RECORDS[0]["record"])
    del record["v"]
    with pytest.raises(UnsupportedFormatVersion):
        check_format_version(record)


def test_format_versions_one_and_two_are_accepted() -> None:
    check_format_version(RECORDS[0]["record"])
    check_format_version({**RECORDS[0]["record"], "v": 2})


@pytest.mark.parametrize("version", [True, 1.0], ids=repr)
def test_version_must_be_the_json_integer_one(version: Any) -> None:
    with pytest.raises(UnsupportedFormatVersion):
        check_format_version({"v": version})


def test_flipping_any_bit_of_the_leaf_bytes_changes_the_leaf_hash() -> None:
    leaf_bytes = RECORDS[0]["leaf_bytes"].encode("utf-8")
    original = leaf_hash(leaf_bytes)
    seen = {original}
    for index in range(len(leaf_bytes)):
        for bit in range(8):
            flipped = bytearray(leaf_bytes)
            flipped[index] ^= 1 << bit
            digest = leaf_hash(bytes(flipped))
            assert digest not in seen
            seen.add(digest)
    assert len(seen) == 8 * len(leaf_bytes) + 1


def test_leaf_hash_is_the_rfc6962_leaf_hash_not_plain_sha256() -> None:
    data = RECORDS[0]["leaf_bytes"].encode("utf-8")
    assert leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()
    assert leaf_hash(data) != hashlib.sha256(data).digest()


def test_logs_with_different_names_have_different_genesis_values() -> None:
    names = ["auditsvc.local/log", "auditsvc.local/log2", "auditsvc.local/lo", "example.org/audit"]
    assert len({genesis_hash(name) for name in names}) == len(names)


def test_server_fields_overwrite_anything_in_the_event() -> None:
    record = make_record({"seq": 99, "v": 2, "emitter": "x"}, seq=0, received_at="r", emitter="e")
    assert record == {"seq": 0, "v": FORMAT_VERSION, "emitter": "e", "received_at": "r"}


# --- (e) PhiAccess normal forms -----------------------------------------------------------------


def test_sub_microsecond_digits_are_truncated_not_rounded() -> None:
    assert _occurred_at("2024-05-14T09:29:59.9999999Z") == "2024-05-14T09:29:59.999999Z"
    assert _occurred_at("2024-05-14T09:29:59.123456789Z") == "2024-05-14T09:29:59.123456Z"
    assert _occurred_at("2024-12-31T23:59:59.9999995Z") == "2024-12-31T23:59:59.999999Z"


def test_timestamps_always_have_six_fractional_digits_and_z() -> None:
    assert _occurred_at("2024-05-14T09:29:59Z") == "2024-05-14T09:29:59.000000Z"
    assert _occurred_at("2024-05-14T09:29:59.5Z") == "2024-05-14T09:29:59.500000Z"
    assert _occurred_at("2024-05-14T09:29:59.000001+00:00") == "2024-05-14T09:29:59.000001Z"


def test_offsets_are_converted_to_utc() -> None:
    assert _occurred_at("2024-05-14T15:04:05.123456789+05:30") == "2024-05-14T09:34:05.123456Z"
    assert _occurred_at("2024-05-13T23:30:00-08:00") == "2024-05-14T07:30:00.000000Z"
    assert _occurred_at("2024-01-01T01:00:00.9999999+01:00") == "2024-01-01T00:00:00.999999Z"


def test_timestamps_without_an_offset_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PhiAccess.model_validate(_event(occurred_at="2024-05-14T09:29:59"))


# 1700000000.9999995 is a double whose exact value is 1700000000.99999952316...
@pytest.mark.parametrize("value", [1700000000.9999995, "1700000000.9999999"], ids=["json-number", "numeric-string"])
def test_numeric_timestamps_are_not_rounded(value: Any) -> None:
    try:
        normalised = _occurred_at(value)
    except ValidationError:
        return  # refusing numbers is a fine fix too
    assert normalised == "2023-11-14T22:13:20.999999Z"


def test_early_years_still_have_four_digits() -> None:
    assert _occurred_at("0999-06-01T00:00:00Z") == "0999-06-01T00:00:00.000000Z"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:30", "9999-12-31T23:59:59-05:00"])
def test_out_of_range_timestamps_are_a_validation_error(value: str) -> None:
    with pytest.raises(ValidationError):
        PhiAccess.model_validate(_event(occurred_at=value))


def test_event_id_is_recorded_in_lower_case() -> None:
    event = PhiAccess.model_validate(_event(event_id="0190F3C8-6A4B-7C2D-8E9F-0A1B2C3D4E5F"))
    assert event.to_json()["event_id"] == "0190f3c8-6a4b-7c2d-8e9f-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    "event",
    [
        _event(seq=7),
        _event(v=1),
        _event(mrn="MRN-000123"),
        _event(patient={"identifiers": [{"system": "s", "value": "v", "type": "MR"}]}),
        _event(actor={"id": "u", "type": "user", "email": "x@example.org"}),
        _event(source={"system_id": "ehr-main", "url": "https://ehr.example.org"}),
    ],
    ids=["seq", "v", "top-level", "identifier", "actor", "source"],
)
def test_unknown_fields_are_rejected(event: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        PhiAccess.model_validate(event)
    assert {e["type"] for e in caught.value.errors()} == {"extra_forbidden"}


@pytest.mark.parametrize(
    "patient",
    [{"identifiers": []}, _identifiers(""), _identifiers("   "), _identifiers("MRN-1", system=" \t"), {}],
    ids=["no-identifiers", "empty-value", "blank-value", "blank-system", "no-list"],
)
def test_empty_identifiers_are_rejected(patient: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PhiAccess.model_validate(_event(patient=patient))


@pytest.mark.parametrize(
    "overrides",
    [
        {"patient": _identifiers("MRN-\x00000123")},
        {"data_elements": ["Observation\x00"]},
        {"actor": {"id": "u", "type": "user", "name": "Zoë\x00"}},
        {"attributes": {"note": "a\x00b"}},
        {"message_id": "\x00"},
    ],
    ids=["identifier", "data-element", "actor-name", "attribute", "message-id"],
)
def test_nul_characters_are_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PhiAccess.model_validate(_event(**overrides))


def test_lone_surrogates_in_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PhiAccess.model_validate(_event(patient=_identifiers("MRN-\ud800")))


def test_identifier_values_are_stripped_and_deduplicated_in_first_seen_order() -> None:
    patient = {
        "identifiers": [
            {"system": " urn:oid:2.16.840.1.113883.19.5 ", "value": " MRN-000123\t"},
            {"system": "https://empi.example.org/id", "value": "EMPI-9F2C71"},
            {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-000123"},
            {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "mrn-000123"},
            {"system": "https://empi.example.org/id", "value": "\u3000EMPI-9F2C71 "},
        ]
    }
    record = PhiAccess.model_validate(_event(patient=patient)).to_json()
    assert record["patient"]["identifiers"] == [
        {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-000123"},
        {"system": "https://empi.example.org/id", "value": "EMPI-9F2C71"},
        {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "mrn-000123"},
    ]


def test_absent_null_and_empty_optionals_give_the_same_leaf_bytes() -> None:
    bare = PhiAccess.model_validate(_event()).to_json()
    nulls = PhiAccess.model_validate(
        _event(
            attributes={},
            purpose_of_use=None,
            message_id=None,
            trace_id=None,
            span_id=None,
            actor={"id": "user:zmuller", "type": "user", "role": None, "name": None},
            source={"system_id": "ehr-main", "name": None},
        )
    ).to_json()
    assert nulls == bare
    assert canonical_json(nulls) == canonical_json(bare)
    assert not {"attributes", "purpose_of_use", "message_id", "trace_id", "span_id"} & bare.keys()
    assert bare["outcome"] == 0
    assert None not in bare.values()


def test_attribute_strings_are_kept_exactly_and_bools_stay_bools() -> None:
    attributes = {"note": "  padded  ", "flag": True, "zero": 0, "one": 1, "max": MAX_SAFE}
    record = PhiAccess.model_validate(_event(attributes=attributes)).to_json()
    assert record["attributes"] == attributes
    assert [type(record["attributes"][k]) for k in ("flag", "zero", "one")] == [bool, int, int]


@pytest.mark.parametrize("value", [1.0, 0.0], ids=repr)
def test_float_attribute_values_are_rejected(value: float) -> None:
    with pytest.raises(ValidationError):
        PhiAccess.model_validate(_event(attributes={"k": value}))


@pytest.mark.parametrize(
    "overrides",
    [
        {"patient": _identifiers(SECRET + "\x00")},
        {"patient": _identifiers(SECRET * 10)},
        {"patient": _identifiers("MRN-000123", system=SECRET * 20)},
        {"event_id": SECRET},
        {"occurred_at": SECRET},
        {"event_type": SECRET + " x"},
        {"action": SECRET},
        {"trace_id": SECRET},
        {"source": {"system_id": SECRET + "/ \x00"}},
        {"actor": {"id": SECRET, "type": SECRET}},
        {"data_elements": [SECRET * 10]},
        {"attributes": {"note": SECRET + "\x00"}},
        {"outcome": SECRET},
    ],
    ids=[
        "nul-in-identifier",
        "identifier-too-long",
        "system-too-long",
        "event-id",
        "occurred-at",
        "event-type",
        "action",
        "trace-id",
        "system-id",
        "actor-type",
        "data-element",
        "attribute",
        "outcome",
    ],
)
def test_validation_error_messages_never_contain_the_offending_value(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        PhiAccess.model_validate(_event(**overrides))
    errors = caught.value.errors()
    assert errors
    for error in errors:
        assert SECRET not in error["msg"]
        assert SECRET not in repr(error.get("ctx", {}))


def test_fast_record_encoding_equals_rfc8785_on_a_day_of_varied_events() -> None:
    from auditsvc_sdk import canonical_record, make_record
    from auditsvc_sdk._event import events_to_json

    from auditsvc.demo import generate_day

    events = [PhiAccess.model_validate(e) for e in generate_day(seed=3, scale=0.3)]
    events.append(
        PhiAccess.model_validate(
            _event(attributes={"note": 'Zoë \u2028 "q" \\ \x1f 😀', "n": -(2**53 - 1), "flag": True})
        )
    )
    for seq, data in enumerate(events_to_json(events)):
        record = make_record(data, seq=seq, received_at="2026-11-24T00:00:00.000000Z", emitter="tok")
        assert canonical_record(record) == rfc8785.dumps(record)


def test_record_template_splices_the_same_bytes_as_encoding_the_whole_record() -> None:
    from auditsvc_sdk import RecordTemplate, canonical_record, make_record
    from auditsvc_sdk._event import events_to_json

    from auditsvc.demo import generate_day

    events = [PhiAccess.model_validate(e) for e in generate_day(seed=9, scale=0.2)]
    events.append(PhiAccess.model_validate(_event(attributes={"zz": "é", "a": 1}, purpose_of_use="ETREAT")))
    for seq, data in enumerate(events_to_json(events)):
        expected = canonical_record(make_record(data, seq=seq, received_at="2026-11-24T01:02:03.000004Z", emitter="t1"))
        spliced = RecordTemplate(data, emitter="t1").leaf_bytes(seq=seq, received_at="2026-11-24T01:02:03.000004Z")
        assert (
            spliced
            == expected
            == rfc8785.dumps(make_record(data, seq=seq, received_at="2026-11-24T01:02:03.000004Z", emitter="t1"))
        )


def test_record_template_refuses_an_event_carrying_server_fields() -> None:
    from auditsvc_sdk import RecordTemplate

    with pytest.raises(ValueError, match="server-assigned"):
        RecordTemplate({"seq": 1}, emitter="t1")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        ASCII_KEYS.filter(lambda k: not ("received_at" <= k <= "seq") and k not in ("emitter", "v")),
        _json_values(ASCII_KEYS),
        max_size=10,
    ),
    TEXT,
    st.integers(min_value=0, max_value=MAX_SAFE),
)
def test_record_template_equals_rfc8785_for_generated_records(event: dict[str, Any], emitter: str, seq: int) -> None:
    from auditsvc_sdk import RecordTemplate, make_record

    received_at = "2026-11-24T01:02:03.000004Z"
    spliced = RecordTemplate(event, emitter=emitter).leaf_bytes(seq=seq, received_at=received_at)
    assert spliced == rfc8785.dumps(make_record(event, seq=seq, received_at=received_at, emitter=emitter))


def test_tree_and_checkpoint_vectors_in_the_docs_hold() -> None:
    """docs/chain-format.md §11-12: roots, proofs and a signed checkpoint over the §9 records."""
    from auditsvc_sdk import Checkpoint, NoteSigner, open_checkpoint, sign_note, verify_consistency, verify_inclusion

    vectors_dir = Path(__file__).parent / "vectors"
    tree = json.loads((vectors_dir / "tree-v1.json").read_text(encoding="utf-8"))
    chain = json.loads((vectors_dir / "chain-v1.json").read_text(encoding="utf-8"))
    leaves = [bytes.fromhex(r["leaf_hash"]) for r in chain["records"]]
    assert [h.hex() for h in leaves] == tree["leaf_hashes"]
    for size, root in tree["roots"].items():
        assert root_from_leaf_hashes(leaves[: int(size)]).hex() == root
    root3 = bytes.fromhex(tree["roots"]["3"])
    verify_inclusion(leaves[1], 1, 3, [bytes.fromhex(h) for h in tree["inclusion"]["hashes"]], root3)
    root2 = bytes.fromhex(tree["roots"]["2"])
    verify_consistency(2, 3, [bytes.fromhex(h) for h in tree["consistency"]["hashes"]], root2, root3)
    signer = NoteSigner(chain["log_name"], bytes.fromhex(tree["key_seed_hex"]))
    assert signer.vkey == tree["vkey"]
    assert Checkpoint(chain["log_name"], 3, root3).body() == tree["checkpoint_body"]
    assert sign_note(tree["checkpoint_body"], [signer]) == tree["signed_note"]
    checkpoint, _ = open_checkpoint(tree["signed_note"], [signer.verifier], origin=chain["log_name"])
    assert (checkpoint.size, checkpoint.root_hash) == (3, root3)
    docs = (Path(__file__).parent.parent / "docs" / "chain-format.md").read_text(encoding="utf-8")
    assert tree["signed_note"] in docs and tree["vkey"] in docs and tree["roots"]["3"] in docs
