"""Reading captures for the survey: framing, exports, hostile XML, shapes."""

from __future__ import annotations

import base64

import pytest
from auditsvc_sdk._survey_read import Item, Unreadable, read_bytes
from auditsvc_sdk._survey_recommend import candidate_zones
from auditsvc_sdk._survey_shape import is_placeholder, value_shape

MSG = "MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|20250101120000||ADT^A01|1|P|2.5.1\rPID|1||M1234567^^^MAINHOSP^MR||DOE^JANE"


def _items(data: bytes) -> list[Item | Unreadable]:
    return list(read_bytes(data))


def test_mllp_frames_are_messages_and_a_cut_frame_is_reported() -> None:
    stream = (b"\x0b" + MSG.encode() + b"\r\x1c\r") * 3 + b"\x0bMSH|^~\\&|CUT"
    items = _items(stream)
    assert [i.container for i in items if isinstance(i, Item)] == ["mllp"] * 3
    assert [i.cause for i in items if isinstance(i, Unreadable)] == ["mllp-truncated-frame"]
    first = items[0]
    assert isinstance(first, Item) and first.data.startswith(b"MSH|") and b"\x0b" not in first.data


def test_batch_envelopes_are_dropped_and_each_msh_is_a_message() -> None:
    batch = "\n".join(["FHS|^~\\&", "BHS|^~\\&", MSG.replace("\r", "\n"), MSG.replace("\r", "\n"), "BTS|2", "FTS|1"])
    items = _items(batch.encode())
    assert [(i.kind, i.container) for i in items if isinstance(i, Item)] == [("hl7v2", "batch")] * 2
    assert all(b"BTS" not in i.data for i in items if isinstance(i, Item))


def test_mirth_export_counts_the_source_message_once() -> None:
    def connector(meta: int, content: str) -> str:
        return (
            f"<entry><int>{meta}</int><connectorMessage><metaDataId>{meta}</metaDataId>"
            f"<raw><content>{content.replace('&', '&amp;').replace(chr(13), '&#13;')}</content></raw>"
            "</connectorMessage></entry>"
        )

    one = (
        '<?xml version="1.0"?><message><messageId>7</messageId><connectorMessages>'
        + connector(1, "destination copy")
        + connector(0, MSG)
        + "</connectorMessages></message>"
    )
    items = _items((one + one).encode())  # two exported messages concatenated in one file
    assert [(i.kind, i.container) for i in items if isinstance(i, Item)] == [("hl7v2", "mirth")] * 2
    assert all(isinstance(i, Item) and i.data.startswith(b"MSH|") for i in items)


def test_other_engines_xml_bodies_plain_and_base64() -> None:
    doc = (
        "<messages><message><body><![CDATA[" + MSG.replace("\r", "\n") + "]]></body></message>"
        f'<message><body encoding="base64">{base64.b64encode(MSG.encode()).decode()}</body></message>'
        '<message><body>{"resourceType": "Patient", "id": "p1"}</body></message></messages>'
    )
    items = _items(doc.encode())
    assert [(i.kind, i.container) for i in items if isinstance(i, Item)] == [
        ("hl7v2", "xml-export"),
        ("hl7v2", "xml-export"),
        ("fhir", "xml-export"),
    ]


@pytest.mark.parametrize(
    "doc",
    [
        # billion laughs: refused before any entity is declared, let alone expanded
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><m>&b;&b;</m>',
        # external entity: never fetched or read
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><m>&x;</m>',
        # a DTD without an internal subset, in lower case
        '<!doctype m SYSTEM "http://example.invalid/m.dtd"><m/>',
    ],
)
def test_xml_with_a_document_type_declaration_is_refused(doc: str) -> None:
    assert _items(doc.encode()) == [Unreadable("xml-export", "xml-dtd-refused")]


def test_an_undeclared_entity_is_malformed_not_fetched() -> None:
    assert _items(b"<m>&x;</m>") == [Unreadable("xml-export", "xml-malformed")]


def test_fhir_json_array_ndjson_and_bom() -> None:
    bom = b'\xef\xbb\xbf{"resourceType": "Patient", "id": "p1"}'
    assert _items(bom) == [Item("fhir", bom, "json")]
    nd = b'{"resourceType": "Patient"}\n{"resourceType": "Observation"}\n'
    assert [i.container for i in _items(nd) if isinstance(i, Item)] == ["ndjson", "ndjson"]
    arr = b'[{"resourceType": "Patient"}, {"nope": 1}]'
    assert [type(i).__name__ for i in _items(arr)] == ["Item", "Unreadable"]


def test_text_that_is_neither_is_reported_by_cause() -> None:
    assert _items(b"hello") == [Unreadable("file", "not-hl7v2-or-fhir")]
    assert _items(b"  \n") == [Unreadable("file", "empty-file")]


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("123456789", "9 digits"),
        ("A1234567", "A + 7 digits"),
        ("987-65-4320", "3 digits + - + 2 digits + - + 4 digits"),
        ("MRN00042", "AAA + 5 digits"),
        ("HOSPX12", "5 letters + 2 digits"),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", "UUID"),
        ("Ab#1", "AA + symbol + 1 digit"),
    ],
)
def test_value_shapes_keep_no_character_of_the_value(value: str, shape: str) -> None:
    assert value_shape(value) == shape


def test_placeholders() -> None:
    assert is_placeholder("REDACTED") and is_placeholder("000000000") and is_placeholder("unknown")
    assert not is_placeholder("987654320")


def test_zone_inference_from_offsets_by_month() -> None:
    from collections import Counter

    assert candidate_zones({"2025-01": Counter({"-0600": 3}), "2025-07": Counter({"-0500": 2})})[0] == "America/Chicago"
    assert "America/Phoenix" in candidate_zones({"2025-01": Counter({"-0700": 1}), "2025-07": Counter({"-0700": 1})})
    assert candidate_zones({"2025-07": Counter({"-0500": 1, "+0100": 1})}) == []
