"""map_audit_message: DICOM and RFC 3881 audit messages to events, and the events the service accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditsvc.domain.atna import AtnaOrigin, AtnaUnmappable, map_audit_message
from auditsvc.domain.ingest import EventBatch

CORPUS = Path(__file__).parent / "corpus" / "atna"
ORIGIN = AtnaOrigin(transport="tls", peer="ehr-app", msgid="IHE+RFC-3881")


def test_pix_query_maps_to_one_query_event_by_the_physician():
    [event] = map_audit_message((CORPUS / "dicom-pix-query.xml").read_bytes(), ORIGIN)
    assert event["event_type"] == "query"
    assert event["action"] == "E"
    assert event["occurred_at"] == "2026-11-24T14:30:00.123000Z"
    assert event["patient"]["identifiers"] == [
        {"system": "urn:oid:2.16.840.1.113883.3.72.5.9.1", "value": "SYN-MRN-0001"}
    ]
    assert event["actor"] == {"id": "dr.ana.ruiz", "type": "user", "role": "Physician"}
    assert event["source"] == {"system_id": "pix-consumer-ehr"}
    assert event["destination"] == {"system_id": "http://pixmgr.example.org/pix"}
    assert event["data_elements"] == ["Patient", "Query (PIX Query)"]
    attrs = event["attributes"]
    assert attrs["origin"] == "atna-syslog"
    assert attrs["atna_event_id"] == "110112"
    assert attrs["atna_event_type_codes"] == "ITI-9"
    assert attrs["atna_msgid"] == "IHE+RFC-3881"
    assert attrs["observer"] == "pix-consumer-ehr"
    assert attrs["phi_dropped"] == "ParticipantObjectDetail,ParticipantObjectQuery,UserName"
    assert "assumed" not in attrs
    # Free text is not stored anywhere in the event.
    text = json.dumps(event)
    assert "Ana Ruiz" not in text and "TVNI" not in text
    EventBatch.model_validate({"events": [event]})


def test_resend_with_a_bom_and_new_indentation_keeps_the_event_id():
    raw = (CORPUS / "dicom-pix-query.xml").read_bytes()
    again = b"\xef\xbb\xbf" + raw.replace(b"\n  ", b"\n\t\t") + b"\n"
    first = map_audit_message(raw, ORIGIN)
    second = map_audit_message(again, AtnaOrigin(transport="udp", peer="10.0.0.9", msgid="DICOM+RFC3881"))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    changed = raw.replace(b"09:30:00.123", b"09:30:00.124")
    assert map_audit_message(changed, ORIGIN)[0]["event_id"] != first[0]["event_id"]


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><AuditMessage/>', "xml_forbidden_construct"),
        (b"<AuditMessage><EventIdentification>", "xml_malformed"),
        (b"<Other/>", "unknown_schema"),
        (b"<a>" * 5000 + b"</a>" * 5000, "too_deep"),
        (b"<AuditMessage>" + b" " * 2_000_000 + b"x</AuditMessage>", "too_large"),
    ],
)
def test_hostile_or_broken_xml_is_refused_with_a_reason(msg, reason):
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(msg, ORIGIN)
    assert caught.value.reason == reason
