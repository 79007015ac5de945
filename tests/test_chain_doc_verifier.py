"""docs/chain-format.md's own reference verifier (section 10), taken from the
page, run over the format-2 vector and over rows the service wrote.

An auditor implements from that page; if the page's code refuses what the
service writes, every live record fails their check. The code is found by
its marker (``<!-- reference-verifier -->``), never copied into a test, so
the page cannot drift from the service unnoticed. Real service, real
PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest
from auditsvc_sdk import PhiAccess, canonical_json, chain_hash, leaf_hash, make_record
from auditsvc_sdk.chain import SEALED_RECORD_VERSION, format_timestamp

from auditsvc.domain.tokens import Role
from auditsvc.sealing import IdentifierSealer, StaticKeyProvider

from .conftest import Service, event, query

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "chain-format.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
MARKER = "<!-- reference-verifier -->"
V1 = json.loads((ROOT / "tests" / "vectors" / "chain-v1.json").read_text(encoding="utf-8"))
V2 = json.loads((ROOT / "tests" / "vectors" / "chain-format2-v1.json").read_text(encoding="utf-8"))
[SEALED] = V2["records"]
MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"


def doc_verifier() -> dict[str, Any]:
    """The page's marked code block, executed: its ``verify`` and ``Damage``."""
    assert DOC.count(MARKER) == 1, f"the page marks its reference verifier once with {MARKER}"
    found = re.match(r"\s*```python\n(.*?)```", DOC.split(MARKER)[1], flags=re.DOTALL)
    assert found, f"a ```python block follows {MARKER}"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), f"{DOC_PATH}#reference-verifier", "exec"), namespace)  # noqa: S102 - our own doc, under test
    return namespace


def vector_rows(vectors: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "seq": r["seq"],
            "event_id": r["record"]["event_id"],
            "occurred_at": r["record"]["occurred_at"],
            "record": r["leaf_bytes"].encode("utf-8"),
            "leaf_hash": r["leaf_hash"],
            "chain_hash": r["chain_hash"],
        }
        for r in vectors["records"]
    ]


def stored_rows(service: Service) -> list[dict[str, Any]]:
    """The service's rows, as section 6 describes them (lowercase UUID, 2.2 timestamps, hex hashes)."""
    rows = query(
        str(service.settings.database_url),
        "SELECT seq, event_id, occurred_at, record, leaf_hash, chain_hash FROM events ORDER BY seq",
    )
    return [
        {
            "seq": r["seq"],
            "event_id": str(r["event_id"]),
            "occurred_at": format_timestamp(r["occurred_at"]),
            "record": r["record"].encode("utf-8"),
            "leaf_hash": bytes(r["leaf_hash"]).hex(),
            "chain_hash": bytes(r["chain_hash"]).hex(),
        }
        for r in rows
    ]


def append(service: Service, token: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    with service.client(token) as http:
        answer = http.post("/v1/events", json={"events": events})
    assert answer.status_code == 200, answer.text
    return answer.json()["head"]  # type: ignore[no-any-return]


# --- the page's code over the vectors ------------------------------------------------------------


def test_the_page_verifies_a_log_of_format_1_records_then_a_format_2_record() -> None:
    verify = doc_verifier()["verify"]
    assert verify(V1["log_name"], vector_rows(V1)) == (V1["head"]["tree_size"], V1["head"]["chain_hash"])
    assert V2["log_name"] == V1["log_name"] and V2["previous_chain_hash"] == V1["head"]["chain_hash"]
    both = vector_rows(V1) + vector_rows(V2)
    assert verify(V1["log_name"], both) == (V2["head"]["tree_size"], V2["head"]["chain_hash"])
    assert f"# ({V2['head']['tree_size']}, '{V2['head']['chain_hash']}')" in DOC


@pytest.mark.parametrize("version", [0, 3, "2", 2.0, True, None])
def test_the_page_refuses_other_format_versions(version: Any) -> None:
    verifier = doc_verifier()
    rows = vector_rows(V1) + vector_rows(V2)
    record = json.loads(rows[3]["record"])
    record["v"] = version
    rows[3]["record"] = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(verifier["Damage"]) as caught:
        verifier["verify"](V1["log_name"], rows)
    assert (caught.value.seq, caught.value.kind) == (3, "unsupported_version")


# --- the format-2 vector is a real sealed record --------------------------------------------------


def test_the_format_2_vector_is_a_sealed_record_that_opens_with_its_keys() -> None:
    keys = V2["keys"]
    sealer = IdentifierSealer(
        StaticKeyProvider({keys["sealing_key_id"]: base64.b64decode(keys["sealing_key_b64"])}, keys["sealing_key_id"])
    )
    hmac_key = base64.b64decode(keys["identifier_hmac_key_b64"])
    event_json = PhiAccess.model_validate(SEALED["event_input"]).to_json()
    stored = SEALED["record"]["patient"]["identifiers"]
    sent = event_json["patient"]["identifiers"]
    assert len(stored) == len(sent) == 2
    for clear, sealed in zip(sent, stored, strict=True):
        assert sealed.keys() == {"system", "value_enc", "value_hmac"}
        assert sealed["system"] == clear["system"]
        assert sealer.open(sealed["system"], sealed["value_enc"]) == clear["value"]
        expected_hmac = hmac.digest(hmac_key, f"{clear['system']}\x00{clear['value']}".encode(), "sha256")
        assert sealed["value_hmac"] == expected_hmac.hex()
        assert clear["value"] not in SEALED["leaf_bytes"]
    event_json["patient"] = {"identifiers": stored}
    record = make_record(
        event_json,
        seq=SEALED["seq"],
        received_at=SEALED["received_at"],
        emitter=SEALED["emitter"],
        version=SEALED_RECORD_VERSION,
    )
    assert record == SEALED["record"] and record["v"] == 2
    data = SEALED["leaf_bytes"].encode("utf-8")
    assert canonical_json(record) == data == bytes.fromhex(SEALED["leaf_bytes_hex"])
    assert SEALED["leaf_bytes_length"] == len(data)
    leaf = leaf_hash(data)
    assert leaf.hex() == SEALED["leaf_hash"] == hashlib.sha256(b"\x00" + data).hexdigest()
    current = chain_hash(bytes.fromhex(V2["previous_chain_hash"]), leaf)
    assert current.hex() == SEALED["chain_hash"] == V2["head"]["chain_hash"]


def test_the_page_shows_the_format_2_vector() -> None:
    assert f"\n{SEALED['leaf_bytes']}\n" in DOC
    assert f"({SEALED['leaf_bytes_length']} bytes of UTF-8" in DOC
    for value in (SEALED["leaf_hash"], SEALED["chain_hash"]):
        assert f"`{value}`" in DOC


# --- the page's code over rows the service wrote --------------------------------------------------


def test_the_page_verifies_rows_the_service_wrote(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    append(service, token, [event([(MRN, f"MRN-DOC-{i:04d}")]) for i in range(3)])
    head = append(
        service,
        token,
        [event([(MRN, "MRN-DOC-0100"), ("https://empi.example.org/id", " EMPI-DOC-01 ")], purpose_of_use="TREAT")],
    )
    rows = stored_rows(service)
    assert [json.loads(r["record"])["v"] for r in rows] == [2, 2, 2, 2]
    assert all("value_enc" in r["record"].decode() and "MRN-DOC" not in r["record"].decode() for r in rows)
    verify = doc_verifier()["verify"]
    assert (
        verify(service.settings.log_name, rows)
        == (head["tree_size"], head["chain_hash"])
        == (4, rows[-1]["chain_hash"])
    )


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda record: record.update(v=3), "unsupported_version"),
        (lambda record: record.update(v=1), "leaf_hash_mismatch"),
        (lambda record: record["patient"]["identifiers"][0].update(value_hmac="0" * 64), "leaf_hash_mismatch"),
    ],
    ids=["version-3", "relabelled-format-1", "lookup-hash-edited"],
)
def test_the_page_finds_an_edited_service_row(service: Service, edit: Any, kind: str) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    append(service, token, [event([(MRN, f"MRN-DOCX-{i:04d}")]) for i in range(3)])
    rows = stored_rows(service)
    record = json.loads(rows[1]["record"])
    edit(record)
    rows[1]["record"] = canonical_json(record)
    verifier = doc_verifier()
    with pytest.raises(verifier["Damage"]) as caught:
        verifier["verify"](service.settings.log_name, rows)
    assert (caught.value.seq, caught.value.kind) == (1, kind)
