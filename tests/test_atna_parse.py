"""map_audit_message against a corpus of DICOM and RFC 3881 audit messages, and each rule on its own.

Every corpus file ``tests/corpus/atna/NAME.xml`` has a sidecar ``NAME.json``
with the events expected from it, reviewed by hand against the message
(``<event_id>`` stands for the event's own id, the value of a stand-in
patient; the transport attributes are checked separately), or the reason it
is refused. All patients are synthetic.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from auditsvc.domain.atna import AtnaOrigin, AtnaUnmappable, map_audit_message
from auditsvc.domain.ingest import EventBatch, parse_batch

CORPUS = Path(__file__).parent / "corpus" / "atna"
FILES = sorted(CORPUS.glob("*.xml"))
ORIGIN = AtnaOrigin(transport="tls", peer="ehr-app", msgid="IHE+RFC-3881")
# Free text in the corpus that is PHI (names, base64 queries and HL7 details) or may be (descriptions).
FREE_TEXT = [
    "SYNTHETIC",
    "Ana Ruiz",
    "Kim Lee",
    "TVNI",
    "TVNH",
    "UURQ",
    "handshake failed",
    "CN mismatch",
    "Security Audit",
]


def mapped(name: str, origin: AtnaOrigin = ORIGIN) -> list[dict[str, Any]]:
    return map_audit_message((CORPUS / name).read_bytes(), origin)


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """The event as its sidecar writes it."""
    event = json.loads(json.dumps(event))
    own_id = event.pop("event_id")
    for identifier in event["patient"]["identifiers"]:
        if identifier["value"] == own_id:
            identifier["value"] = "<event_id>"
    for key in ("origin", "atna_msgid", "atna_transport"):
        event["attributes"].pop(key)
    return event


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_message_maps_to_the_reviewed_events(path: Path) -> None:
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    if "refused" in sidecar:
        with pytest.raises(AtnaUnmappable) as caught:
            map_audit_message(path.read_bytes(), ORIGIN)
        assert caught.value.reason == sidecar["refused"]
        assert [t for t in FREE_TEXT if t in str(caught.value)] == []
        return
    events = map_audit_message(path.read_bytes(), ORIGIN)
    expected = sidecar["events"]
    assert [comparable(e) for e in events] == expected
    for event in events:
        assert event["attributes"]["origin"] == "atna-syslog"
        assert event["attributes"]["atna_transport"] == "tls"
        assert event["attributes"]["atna_msgid"] == "IHE+RFC-3881"
        assert uuid.UUID(event["event_id"]).version == 5
    assert len({e["event_id"] for e in events}) == len(events)
    text = json.dumps(events)
    assert [t for t in FREE_TEXT if t in text] == []


MAPPED = [p for p in FILES if "events" in json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))]


def test_every_corpus_event_is_accepted_by_the_service_as_a_batch() -> None:
    events = [event for path in MAPPED for event in map_audit_message(path.read_bytes(), ORIGIN)]
    assert len(events) == 16
    body = json.dumps({"events": events}).encode()
    assert len(parse_batch(body, max_events=1000)) == len(events)
    EventBatch.model_validate({"events": events})


def test_the_corpus_covers_the_common_atna_events_in_both_namings() -> None:
    types = {e["event_type"] for path in MAPPED for e in map_audit_message(path.read_bytes(), ORIGIN)}
    assert {"patient-record", "query", "import", "export", "disclosure", "break-glass"} <= types
    event_ids = {code for p in FILES for code in re.findall(r'code="(1101\d\d)"', p.read_text(encoding="utf-8-sig"))}
    assert {"110113", "110114", "110101"} <= event_ids  # security alert, login, audit log used
    texts = [p.read_text(encoding="utf-8-sig") for p in FILES]
    assert any("csd-code=" in t for t in texts) and any(' code="' in t for t in texts)


def test_resend_with_a_bom_new_indentation_and_another_transport_keeps_the_event_ids() -> None:
    raw = (CORPUS / "rfc3881-pdq-several-patients.xml").read_bytes()
    again = b"\xef\xbb\xbf" + raw.replace(b"\n  ", b"\n\t\t").replace(b'" ', b'"  ') + b"\r\n"
    first = map_audit_message(raw, ORIGIN)
    second = map_audit_message(again, AtnaOrigin(transport="udp", peer="10.0.0.9", msgid="DICOM+RFC3881"))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert second[0]["attributes"]["atna_msgid"] == "DICOM+RFC3881"


def test_any_change_of_content_changes_the_event_ids() -> None:
    raw = (CORPUS / "dicom-pix-query.xml").read_bytes()
    first = map_audit_message(raw, ORIGIN)[0]["event_id"]
    for old, new in [
        (b"09:30:00.123", b"09:30:00.124"),
        (b"dr.ana.ruiz", b"dr.ana.ruiy"),
        (b"SYN-MRN-0001", b"SYN-MRN-0002"),
    ]:
        assert map_audit_message(raw.replace(old, new), ORIGIN)[0]["event_id"] != first


@pytest.mark.parametrize("name", ["dicom-login.xml", "dicom-security-alert.xml", "dicom-audit-log-used.xml"])
def test_messages_naming_no_patient_are_refused_for_quarantine(name: str) -> None:
    with pytest.raises(AtnaUnmappable) as caught:
        mapped(name)
    assert caught.value.reason == "no_patient"
    assert "ParticipantObjectTypeCodeRole 1" in caught.value.detail


def test_a_patient_whose_id_is_unusable_is_still_recorded_under_a_stand_in() -> None:
    objects = '<ParticipantObjectIdentification ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>'
    [event] = map_audit_message(_with(TEMPLATE, objects=objects), ORIGIN)
    assert event["patient"]["identifiers"] == [{"system": "urn:auditsvc:unlinked", "value": event["event_id"]}]
    assert event["attributes"]["assumed"] == "patient_unidentified"


def test_in_a_query_the_phi_flows_from_the_system_that_answered_to_the_one_that_asked() -> None:
    [query] = mapped("dicom-pix-query.xml")
    assert query["source"] == {"system_id": "http://pixmgr.example.org/pix"}  # 110152, the PIX manager
    assert query["destination"] == {"system_id": "pix-consumer-ehr"}  # 110153, the consumer that asked
    [export] = mapped("dicom-xds-export.xml")
    assert export["destination"] == {"system_id": "https://repo.hie.example/xds/iti41"}  # 110152


def test_disclosure_names_the_recipient_and_purpose_for_the_accounting() -> None:
    [event] = mapped("dicom-disclosure.xml")
    assert event["event_type"] == "disclosure"
    assert event["destination"] == {"system_id": "state-immunization-registry"}
    assert event["purpose_of_use"] == "PUBHLTH"
    assert event["attributes"]["atna_lifecycle"] == "disclosure"


def test_several_patients_are_one_event_each_and_a_repeated_patient_is_one() -> None:
    events = mapped("rfc3881-pdq-several-patients.xml")
    assert [e["attributes"]["patient_index"] for e in events] == [0, 1, 2]
    assert {e["attributes"]["patients_in_message"] for e in events} == {3}
    # The query is a data element of each; the other patients are not.
    assert {tuple(e["data_elements"]) for e in events} == {("Patient", "Query (ITI-21)")}
    assert events[2]["patient"]["identifiers"] == [
        {"system": "urn:oid:2.16.840.1.113883.3.72.5.9.9", "value": "SYN-C3"},
        {"system": "WESTCLINIC^MR", "value": "SYN-C3-MR"},
    ]


def test_the_requestor_person_is_the_actor_before_the_requesting_application() -> None:
    [event] = mapped("dicom-pix-query.xml")
    assert event["actor"] == {"id": "dr.ana.ruiz", "type": "user", "role": "Physician"}
    # The user's workstation address is not in this message (only the applications').
    assert "actor_network_access_point" not in event["attributes"]


def _with(template: str, **fields: str) -> bytes:
    base = {
        "action": 'EventActionCode="R"',
        "time": 'EventDateTime="2026-11-24T09:30:00Z"',
        "outcome": 'EventOutcomeIndicator="0"',
        "event_id": '<EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/>',
        "participants": '<ActiveParticipant UserID="u1" UserIsRequestor="true"/>'
        '<ActiveParticipant UserID="ehr-main"><RoleIDCode csd-code="110153"/></ActiveParticipant>'
        '<ActiveParticipant UserID="lab" UserIsRequestor="false"><RoleIDCode csd-code="110152"/></ActiveParticipant>',
        "source": '<AuditSourceIdentification AuditSourceID="ehr-main"/>',
        "objects": '<ParticipantObjectIdentification ParticipantObjectID="SYN-1^^^&amp;1.2.3&amp;ISO" '
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>',
    }
    base.update(fields)
    return template.format(**base).encode()


TEMPLATE = (
    "<AuditMessage><EventIdentification {action} {time} {outcome}>{event_id}</EventIdentification>"
    "{participants}{source}{objects}</AuditMessage>"
)


@pytest.mark.parametrize(
    ("participant_id", "system", "flags"),
    [
        ("SYN-1^^^&amp;1.2.3&amp;ISO^PI", "urn:oid:1.2.3", []),
        ("SYN-1^^^MAIN&amp;1.2.3&amp;ISO", "urn:oid:1.2.3", []),
        ("SYN-1^^^&amp;urn:oid:1.2.3&amp;ISO", "urn:oid:1.2.3", []),
        (
            "SYN-1^^^&amp;0F2A5C5E-8F3B-4C1D-9E7A-1B2C3D4E5F60&amp;UUID",
            "urn:uuid:0f2a5c5e-8f3b-4c1d-9e7a-1b2c3d4e5f60",
            [],
        ),
        ("SYN-1^^^&amp;https://ids.example.org/mrn&amp;URI", "https://ids.example.org/mrn", []),
        ("SYN-1^^^MAINHOSP^MR", "MAINHOSP^MR", []),
        ("SYN-1^^^MAINHOSP", "MAINHOSP", []),
        ("SYN-1^^^1.2.3", "urn:oid:1.2.3", []),
        ("SYN-1^^^SSA^SS", "http://hl7.org/fhir/sid/us-ssn", []),
        ("SYN-1", "urn:auditsvc:unknown-authority:ehr-main", ["authority_from_source"]),
        ("SYN\\S\\1^^^MAINHOSP^MR", "MAINHOSP^MR", []),
    ],
)
def test_participant_object_id_cx_forms(participant_id: str, system: str, flags: list[str]) -> None:
    objects = (
        f'<ParticipantObjectIdentification ParticipantObjectID="{participant_id}" '
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>'
    )
    [event] = map_audit_message(_with(TEMPLATE, objects=objects), ORIGIN)
    [identifier] = event["patient"]["identifiers"]
    assert identifier["system"] == system
    expected = {"SYN-1^^^SSA^SS": "SYN1", "SYN\\S\\1^^^MAINHOSP^MR": "SYN^1"}  # SSNs are written without dashes
    assert identifier["value"] == expected.get(participant_id, "SYN-1")
    assumed = event["attributes"].get("assumed", "").split(",")
    assert all(f in assumed for f in flags)


@pytest.mark.parametrize(
    ("time", "expected", "flag"),
    [
        ('EventDateTime="2026-11-24T09:30:00.123456789-05:00"', "2026-11-24T14:30:00.123456Z", None),
        ('EventDateTime="2026-11-24T09:30:00+0530"', "2026-11-24T04:00:00.000000Z", None),
        ('EventDateTime="2026-11-24 09:30:00Z"', "2026-11-24T09:30:00.000000Z", None),
        ('EventDateTime="2026-11-24T09:30"', "2026-11-24T09:30:00.000000Z", "time_zone_assumed_utc"),
    ],
)
def test_event_date_time_forms(time: str, expected: str, flag: str | None) -> None:
    [event] = map_audit_message(_with(TEMPLATE, time=time), ORIGIN)
    assert event["occurred_at"] == expected
    assert (flag in event["attributes"].get("assumed", "")) if flag else "assumed" not in event["attributes"]


@pytest.mark.parametrize(
    "time",
    [
        "",
        'EventDateTime="yesterday SYN-SECRET"',
        'EventDateTime="2026-02-30T00:00:00Z"',
        'EventDateTime="0001-01-01T00:00:00+05:00"',
    ],
)
def test_a_missing_or_unreadable_time_is_refused_without_quoting_it(time: str) -> None:
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(_with(TEMPLATE, time=time), ORIGIN)
    assert caught.value.reason == "bad_event_time"
    assert "EventDateTime" in caught.value.detail and "SYN" not in caught.value.detail


@pytest.mark.parametrize(
    ("outcome", "expected", "flag"),
    [
        ("", 0, "outcome_assumed_success"),
        ('EventOutcomeIndicator="8"', 8, None),
        ('EventOutcomeIndicator="1"', 4, "outcome_unrecognised"),
        ('EventOutcomeIndicator="failed"', 12, "outcome_unrecognised"),
    ],
)
def test_outcome_is_never_recorded_as_success_when_the_sender_said_otherwise(
    outcome: str, expected: int, flag: str | None
) -> None:
    [event] = map_audit_message(_with(TEMPLATE, outcome=outcome), ORIGIN)
    assert event["outcome"] == expected
    assert (flag in event["attributes"].get("assumed", "")) if flag else "assumed" not in event["attributes"]


def test_objects_are_named_by_their_id_type_code_never_the_senders_display_text() -> None:
    objects = (
        '<ParticipantObjectIdentification ParticipantObjectID="SYN-1^^^&amp;1.2.3&amp;ISO" '
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>'
        '<ParticipantObjectIdentification ParticipantObjectID="ACC-1" ParticipantObjectTypeCode="2" '
        'ParticipantObjectTypeCodeRole="3"><ParticipantObjectIDTypeCode csd-code="110180" originalText="Doe John"/>'
        "</ParticipantObjectIdentification>"
        '<ParticipantObjectIdentification ParticipantObjectID="X" ParticipantObjectTypeCode="2" '
        'ParticipantObjectTypeCodeRole="4"><ParticipantObjectIDTypeCode csd-code="LOCAL7" originalText="Doe Jane"/>'
        "</ParticipantObjectIdentification>"
    )
    [event] = map_audit_message(_with(TEMPLATE, objects=objects), ORIGIN)
    assert event["data_elements"] == ["Patient", "Report (Study Instance UID)", "Resource (LOCAL7)"]
    assert "Doe" not in json.dumps(event)


def test_an_unknown_event_id_still_maps_flagged_with_its_code() -> None:
    event_id = '<EventID csd-code="IHE0001" codeSystemName="IHE" originalText="Health Service Event"/>'
    [event] = map_audit_message(_with(TEMPLATE, event_id=event_id, action=""), ORIGIN)
    assert event["event_type"] == "atna-event"
    assert event["action"] == "R"
    assert event["attributes"]["atna_event_id"] == "IHE0001"
    assert set(event["attributes"]["assumed"].split(",")) == {"event_type_unknown", "action_from_event_id"}


def test_no_participant_makes_the_observer_the_actor_source_and_destination() -> None:
    [event] = map_audit_message(_with(TEMPLATE, participants=""), ORIGIN)
    assert event["actor"] == {"id": "ehr-main", "type": "system"}
    assert event["source"] == event["destination"] == {"system_id": "ehr-main"}
    assumed = event["attributes"]["assumed"].split(",")
    assert assumed == ["source_from_observer", "destination_from_source", "actor_from_observer"]


def test_without_a_requestor_the_source_participant_acts() -> None:
    participants = (
        '<ActiveParticipant UserID="someone" UserIsRequestor="false"/>'
        '<ActiveParticipant UserID="ehr-main"><RoleIDCode csd-code="110153"/></ActiveParticipant>'
    )
    [event] = map_audit_message(_with(TEMPLATE, participants=participants), ORIGIN)
    assert event["actor"] == {"id": "ehr-main", "type": "system"}
    assert "actor_not_requestor" in event["attributes"]["assumed"]


def test_user_type_code_two_makes_a_requestor_a_system() -> None:
    participants = '<ActiveParticipant UserID="batch-job-7" UserIsRequestor="1" UserTypeCode="2"/>'
    [event] = map_audit_message(_with(TEMPLATE, participants=participants), ORIGIN)
    assert event["actor"] == {"id": "batch-job-7", "type": "system"}


@pytest.mark.parametrize(
    ("event_id", "detail"),
    [("", "EventID"), ('<EventID codeSystemName="DCM"/>', "EventID")],
)
def test_a_message_without_event_id_is_refused(event_id: str, detail: str) -> None:
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(_with(TEMPLATE, event_id=event_id), ORIGIN)
    assert caught.value.reason == "no_event_identification" and detail in caught.value.detail


def test_the_public_names() -> None:
    import auditsvc.domain.atna as atna

    assert atna.__all__ == ["ORIGIN", "REASONS", "AtnaLimits", "AtnaOrigin", "AtnaUnmappable", "map_audit_message"]


def test_the_mapper_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for path in MAPPED:
        map_audit_message(path.read_bytes(), ORIGIN)
    with pytest.raises(AtnaUnmappable):
        mapped("dicom-login.xml")
    with pytest.raises(AtnaUnmappable):
        map_audit_message(b"<AuditMessage><SYN-SECRET", ORIGIN)
    assert caplog.records == []
