"""events_from_fhir: PHI access events from FHIR R4 resources and Bundles.

The corpus in tests/corpus/fhir is synthetic (invented patients, MRNs and
ids). Each file's expected events are spelled out below, in full.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from auditsvc_sdk import Actor, PhiAccess, SystemRef
from auditsvc_sdk.helpers import FHIRError, assumed_codes, events_from_fhir, read_fhir

CORPUS = Path(__file__).parent / "corpus" / "fhir"

A = "https://fhir.example-hospital.org"
B = "https://fhir.facility-b.example.org/fhir/R4"
PAYER = "https://api.example-health-plan.com/fhir"
MRN_A = "urn:oid:2.16.840.1.113883.3.1234.1.1"
MRN_B = "urn:oid:2.16.840.1.113883.3.5678.2.1"
EMPI = "urn:oid:2.16.840.1.113883.3.9999.0"
SSN = "http://hl7.org/fhir/sid/us-ssn"
MEMBER = "https://payer.example-health-plan.com/member-id"
STATE_DL = "urn:oid:2.16.840.1.113883.4.3.25"

KW: dict[str, Any] = {
    "source": "epic-fhir",
    "destination": "fhir-patient-app",
    "actor": {"id": "u-dr-0042", "type": "user", "role": "physician"},
    "occurred_at": "2026-11-24T09:30:00-05:00",
}


def els(rtype: str, *names: str) -> list[str]:
    return [rtype, *(f"{rtype}.{n}" for n in names)]


VITAL = ("category", "code", "effective[x]", "status", "subject", "value[x]")
PATIENT_BASICS = ("active", "birthDate", "gender", "identifier", "name")
COMPOSITION_DOC = [
    *els("Composition", "author", "date", "section", "status", "subject", "title", "type"),
    *els("Patient", "birthDate", "gender", "identifier", "name"),
    *els("AllergyIntolerance", "code", "patient"),
    *els("MedicationStatement", "medication[x]", "status", "subject"),
]

# file -> (message_id, [(identifiers, data_elements, resource_count), ...] in order, extra attributes)
EXPECTED: dict[str, tuple[str | None, list[tuple[list[tuple[str, str]], list[str], int]], dict[str, Any]]] = {
    "patient-multi-identifier.json": (
        None,  # a Patient's own id is a patient identifier, never the (clear) message_id
        [
            (
                [
                    (MRN_A, "MRN-0001234"),
                    (MRN_B, "B7730012"),
                    (SSN, "999123456"),  # the canonical SSN form: dashes removed
                    (EMPI, "E-55012871"),
                    (STATE_DL, "S99988801"),
                    (f"{A}/Patient", "pat-0001"),
                ],
                els(
                    "Patient",
                    "active",
                    "address",
                    "birthDate",
                    "deceased[x]",
                    "extension",
                    "gender",
                    "generalPractitioner",
                    "identifier",
                    "multipleBirth[x]",
                    "name",
                    "telecom",
                    "text",
                ),
                1,
            )
        ],
        {"resource_type": "Patient"},
    ),
    "observation-vitals.json": (
        "obs-bp-778",
        [
            (
                [(f"{A}/Patient", "pat-0001")],
                els(
                    "Observation",
                    "category",
                    "code",
                    "effective[x]",
                    "encounter",
                    "performer",
                    "status",
                    "subject",
                    "value[x]",
                ),
                1,
            )
        ],
        {"resource_type": "Observation"},
    ),
    "condition-diabetes.json": (
        "cond-31",
        [
            (
                [(f"{A}/Patient", "pat-0002")],
                els(
                    "Condition",
                    "clinicalStatus",
                    "code",
                    "onset[x]",
                    "recordedDate",
                    "recorder",
                    "subject",
                    "verificationStatus",
                ),
                1,
            )
        ],
        {"resource_type": "Condition"},
    ),
    "encounter-inpatient.json": (
        "enc-5501",
        [
            (
                [(f"{A}/Patient", "pat-0002")],
                els("Encounter", "class", "participant", "period", "serviceProvider", "status", "subject"),
                1,
            )
        ],
        {},
    ),
    "medicationrequest-metformin.json": (
        "medrx-9120",
        [
            (
                [(f"{A}/Patient", "pat-0002"), (MRN_A, "MRN-0002871")],
                els(
                    "MedicationRequest",
                    "authoredOn",
                    "dosageInstruction",
                    "intent",
                    "medication[x]",
                    "requester",
                    "status",
                    "subject",
                ),
                1,
            )
        ],
        {},
    ),
    "diagnosticreport-absolute-ref.json": (
        "dr-lab-3391",
        [
            (
                [(f"{B}/Patient", "b-88120")],
                els(
                    "DiagnosticReport",
                    "code",
                    "conclusion",
                    "effective[x]",
                    "issued",
                    "result",
                    "status",
                    "subject",
                ),
                1,
            )
        ],
        {},
    ),
    "immunization-influenza.json": (
        "imm-2026-551",
        [
            (
                [(f"{A}/Patient", "pat-0003")],
                els(
                    "Immunization",
                    "lotNumber",
                    "occurrence[x]",
                    "patient",
                    "performer",
                    "primarySource",
                    "status",
                    "vaccineCode",
                ),
                1,
            )
        ],
        {},
    ),
    # The subscriber (a parent, pat-0009) is not whose coverage this is.
    "coverage-beneficiary.json": (
        "cov-771",
        [
            (
                [(f"{A}/Patient", "pat-0003")],
                els("Coverage", "beneficiary", "payor", "relationship", "status", "subscriber", "subscriberId"),
                1,
            )
        ],
        {},
    ),
    "claim-professional.json": (
        "clm-20261123-0042",
        [
            (
                [(f"{A}/Patient", "pat-0001"), (MRN_A, "MRN-0001234")],
                els(
                    "Claim",
                    "created",
                    "insurance",
                    "item",
                    "patient",
                    "priority",
                    "provider",
                    "status",
                    "type",
                    "use",
                ),
                1,
            )
        ],
        {},
    ),
    "eob-logical-reference.json": (
        "eob-88-3310",
        [
            (
                [(MEMBER, "M-700012")],
                els(
                    "ExplanationOfBenefit",
                    "created",
                    "insurance",
                    "insurer",
                    "outcome",
                    "patient",
                    "provider",
                    "status",
                    "total",
                    "type",
                    "use",
                ),
                1,
            )
        ],
        {},
    ),
    "allergyintolerance-typed-logical.json": (
        "alg-12",
        [
            (
                [(EMPI, "E-55012871")],
                els("AllergyIntolerance", "clinicalStatus", "code", "patient", "reaction", "recordedDate"),
                1,
            )
        ],
        {},
    ),
    # A contained patient has no logical id; the contained resource counts as accessed.
    "documentreference-contained-patient.json": (
        "docref-ccda-5012",
        [
            (
                [(MRN_B, "B7730012")],
                [
                    *els("DocumentReference", "author", "content", "date", "status", "subject", "type"),
                    *els("Patient", "birthDate", "identifier", "name"),
                ],
                1,
            )
        ],
        {},
    ),
    "searchset-two-patients-include.json": (
        "srch-7f3c2a",
        [
            (
                [(MRN_A, "MRN-0001234"), (EMPI, "E-55012871"), (f"{A}/Patient", "pat-0001")],
                [*els("Observation", *VITAL), *els("Patient", *PATIENT_BASICS)],
                3,
            ),
            (
                [(MRN_A, "MRN-0002871"), (f"{A}/Patient", "pat-0002")],
                [*els("Observation", *VITAL), *els("Patient", *PATIENT_BASICS)],
                3,
            ),
        ],
        {"bundle_type": "searchset", "entry_count": 7, "resources_without_patient": 1, "patient_count": 2},
    ),
    # urn:uuid fullUrls are not server ids: no logical-id identifier; the delete names an Observation only.
    "transaction-urn-uuid.json": (
        "txn-adt-a01-551",
        [
            (
                [(MRN_A, "MRN-0005510"), (EMPI, "E-60022119")],
                [
                    *els("Patient", "birthDate", "gender", "identifier", "name"),
                    *els("Encounter", "class", "status", "subject"),
                    *els("Condition", "code", "encounter", "subject"),
                    *els("Observation", *VITAL),
                ],
                4,
            )
        ],
        {"bundle_type": "transaction", "entry_count": 5, "resources_without_patient": 1},
    ),
    "document-bundle-composition.json": (
        "doc-discharge-20261123-17",
        [([(MRN_B, "B4400917")], COMPOSITION_DOC, 4)],
        {"bundle_type": "document", "entry_count": 5, "resources_without_patient": 1},
    ),
    "collection-group-location-device-subjects.json": (None, [], {}),
    "searchset-empty.json": (None, [], {}),
    "practitioner.json": (None, [], {}),
    "capabilitystatement.json": (None, [], {}),
    "observation-group-subject.json": (None, [], {}),
    # Two versions and a delete of one patient: one event, three resources.
    "history-patient-with-delete.json": (
        "hist-pat-0004",
        [
            (
                [(MRN_A, "MRN-0004410"), (f"{A}/Patient", "pat-0004")],
                els("Patient", "active", "birthDate", "gender", "identifier", "name", "telecom"),
                3,
            )
        ],
        {"bundle_type": "history", "entry_count": 3, "resources_without_patient": 0},
    ),
    "collection-nested-bundles.json": (
        "hie-package-3301",
        [
            ([(MRN_B, "B4400917")], COMPOSITION_DOC, 4),
            ([(f"{A}/Patient", "pat-0003")], els("Observation", *VITAL), 1),
        ],
        {"bundle_type": "collection", "entry_count": 2, "resources_without_patient": 1, "patient_count": 2},
    ),
    # Patient/123 on facility A's server and on facility B's are two people.
    "searchset-two-servers-same-id.json": (
        "hie-srch-991",
        [
            ([(f"{A}/Patient", "123")], els("Condition", "code", "subject"), 1),
            (
                [(MRN_B, "B1200456"), (f"{B}/Patient", "123")],
                [*els("Condition", "code", "subject"), *els("Patient", *PATIENT_BASICS)],
                2,
            ),
        ],
        {"resources_without_patient": 0, "patient_count": 2},
    ),
    # The EOB's logical reference and the Patient entry share the member id: one patient.
    "payer-searchset-logical-merge.json": (
        "payer-srch-55",
        [
            (
                [(MEMBER, "M-700012"), (f"{PAYER}/Patient", "mem-700012")],
                [
                    *els("ExplanationOfBenefit", "created", "outcome", "patient", "status", "use"),
                    *els("Coverage", "beneficiary", "payor", "status"),
                    *els("Patient", *PATIENT_BASICS),
                ],
                3,
            )
        ],
        {"entry_count": 3, "patient_count": 1},
    ),
    "transaction-conditional-reference.json": (
        "txn-oru-8812",
        [([(MRN_A, "MRN-0002871")], [*els("Observation", *VITAL), "Patient"], 2)],
        {"bundle_type": "transaction", "resources_without_patient": 0},
    ),
    "appointment-participants.json": (
        "appt-20261201-0930",
        [
            (
                [(f"{A}/Patient", "pat-0002")],
                els("Appointment", "end", "participant", "serviceType", "start", "status"),
                1,
            )
        ],
        {},
    ),
    "task-for-referral.json": (
        "task-ref-301",
        [
            (
                [(f"{A}/Patient", "pat-0001")],
                els("Task", "authoredOn", "code", "for", "intent", "requester", "status"),
                1,
            )
        ],
        {},
    ),
}


def _ids(event: PhiAccess) -> list[tuple[str, str]]:
    return [(i.system, i.value) for i in event.patient.identifiers]


def _run(data: Any, **kw: Any) -> list[PhiAccess]:
    return events_from_fhir(data, **{**KW, **kw})


def _error(data: Any, **kw: Any) -> FHIRError:
    with pytest.raises(FHIRError) as info:
        _run(data, **kw)
    return info.value


def test_corpus_is_covered() -> None:
    files = sorted(p.name for p in CORPUS.glob("*.json"))
    assert len(files) >= 20
    assert files == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_gives_the_expected_events(name: str) -> None:
    message_id, patients, extra = EXPECTED[name]
    raw = (CORPUS / name).read_bytes()
    events = _run(raw, fhir_base=A)

    assert [(_ids(e), e.data_elements, e.attributes["resource_count"]) for e in events] == patients
    rtype = json.loads(raw)["resourceType"]
    for event in events:
        assert event.message_id == message_id
        assert event.event_type == "fhir-rest"
        assert event.action == "R"
        assert event.source == SystemRef(system_id="epic-fhir")
        assert event.occurred_at == datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
        assert event.attributes["resource_type"] == rtype
        assert event.attributes["patient_count"] == len(patients)
        assert {k: event.attributes[k] for k in extra} == extra
        # Every event is a valid PhiAccess once more, through its JSON form.
        assert PhiAccess.model_validate_json(json.dumps(event.to_json())) == event
    assert len({e.event_id for e in events}) == len(events)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_text_bytes_and_dict_give_the_same_events(name: str) -> None:
    raw = (CORPUS / name).read_bytes()

    def shape(events: list[PhiAccess]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.to_json().items() if k != "event_id"} for e in events]

    as_bytes = shape(_run(raw, fhir_base=A))
    assert shape(_run(raw.decode(), fhir_base=A)) == as_bytes
    assert shape(_run(json.loads(raw), fhir_base=A)) == as_bytes


# -- finding the patient ----------------------------------------------------------------------------------------


def _obs(subject: Any, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o-1", "status": "final", "subject": subject, **extra}


PATIENT = {
    "resourceType": "Patient",
    "id": "pat-77",
    "identifier": [{"system": MRN_A, "value": "MRN-0077001"}],
    "name": [{"family": "Testperson", "given": ["Synthia"]}],
}


@pytest.mark.parametrize(
    "reference",
    ["Patient/pat-77", "Patient/pat-77/_history/4", f"{A}/Patient/pat-77", f"{A}/Patient/pat-77/_history/1"],
)
def test_a_reference_gives_the_same_identifier_as_the_patient_itself(reference: str) -> None:
    (patient,) = _run(PATIENT, fhir_base=A + "/")
    (observed,) = _run(_obs({"reference": reference}), fhir_base=A)
    assert _ids(patient) == [(MRN_A, "MRN-0077001"), (f"{A}/Patient", "pat-77")]
    assert _ids(observed) == [(f"{A}/Patient", "pat-77")]


def test_relative_reference_resolves_against_the_entry_fullurl_not_fhir_base() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"fullUrl": f"{B}/Observation/o-1", "resource": _obs({"reference": "Patient/pat-77"})}],
    }
    (event,) = _run(bundle, fhir_base=A)
    assert _ids(event) == [(f"{B}/Patient", "pat-77")]


def test_entries_without_fullurl_resolve_by_type_and_id() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": _obs({"reference": "Patient/pat-77"})}, {"resource": PATIENT}],
    }
    (event,) = _run(bundle)  # no base anywhere: the MRN is the only identifier
    assert _ids(event) == [(MRN_A, "MRN-0077001")]
    assert event.data_elements == [
        "Observation",
        "Observation.status",
        "Observation.subject",
        *els("Patient", "identifier", "name"),
    ]
    assert event.attributes["resource_count"] == 2


def test_without_a_base_a_relative_reference_is_qualified_by_the_source_and_flagged() -> None:
    (event,) = _run(_obs({"reference": "Patient/pat-77"}))
    assert _ids(event) == [("epic-fhir/Patient", "pat-77")]
    assert assumed_codes(event) == ["base_from_source"]


def test_without_a_base_a_reference_with_an_identifier_uses_the_identifier() -> None:
    (event,) = _run(_obs({"reference": "Patient/pat-77", "identifier": {"system": EMPI, "value": "E-1"}}))
    assert _ids(event) == [(EMPI, "E-1")]


def test_a_patient_without_identifiers_or_base_is_qualified_by_the_source() -> None:
    (event,) = _run({"resourceType": "Patient", "id": "pat-77", "name": [{"family": "Testperson"}]})
    assert _ids(event) == [("epic-fhir/Patient", "pat-77")]
    assert assumed_codes(event) == ["base_from_source"]
    # Only when nothing else identifies the patient: an identifier wins, and nothing is flagged.
    (event,) = _run(PATIENT)
    assert _ids(event) == [(MRN_A, "MRN-0077001")]
    assert assumed_codes(event) == []


@pytest.mark.parametrize(
    "subject",
    [
        {"reference": "Group/cohort-1"},
        {"reference": "Device/pump-1"},
        {"reference": f"{A}/Location/icu-3"},
        {"reference": "Practitioner/prac-1"},
        {"type": "Group", "identifier": {"system": "urn:x", "value": "cohort-1"}},
        {"type": "Device", "reference": "urn:uuid:0e1b8d5a-0000-4000-8000-000000000009"},
    ],
)
def test_a_subject_that_is_not_a_patient_gives_no_event(subject: dict[str, Any]) -> None:
    assert _run(_obs(subject), fhir_base=A) == []


def test_an_untyped_logical_reference_is_taken_as_the_patient() -> None:
    (event,) = _run(_obs({"identifier": {"system": MRN_A, "value": "MRN-0077001"}}))
    assert _ids(event) == [(MRN_A, "MRN-0077001")]


def test_identifiers_without_system_are_skipped() -> None:
    patient = copy.deepcopy(PATIENT)
    patient["identifier"].insert(0, {"value": "CHART-12"})
    (event,) = _run(patient, fhir_base=A)
    assert _ids(event) == [(MRN_A, "MRN-0077001"), (f"{A}/Patient", "pat-77")]


def test_references_and_patient_entries_that_share_identifiers_are_one_patient() -> None:
    bundle = {
        "resourceType": "Bundle",
        "id": "b-1",
        "type": "collection",
        "entry": [
            {"resource": _obs({"identifier": {"system": EMPI, "value": "E-9"}})},
            {"resource": _obs({"identifier": {"system": MRN_B, "value": "B-9"}})},
            {
                "fullUrl": f"{A}/Patient/pat-9",
                "resource": {
                    "resourceType": "Patient",
                    "id": "pat-9",
                    "identifier": [{"system": MRN_B, "value": "B-9"}, {"system": EMPI, "value": "E-9"}],
                },
            },
            {"resource": {"resourceType": "Condition", "subject": {"reference": f"{A}/Patient/pat-9"}}},
        ],
    }
    (event,) = _run(bundle)
    assert _ids(event) == [(EMPI, "E-9"), (MRN_B, "B-9"), (f"{A}/Patient", "pat-9")]
    assert [d for d in event.data_elements if "." not in d] == ["Observation", "Patient", "Condition"]
    assert event.attributes["resource_count"] == 4


def test_patient_link_is_not_followed() -> None:
    patient = dict(PATIENT, link=[{"other": {"reference": "Patient/pat-78"}, "type": "seealso"}])
    (event,) = _run(patient, fhir_base=A)
    assert _ids(event) == [(MRN_A, "MRN-0077001"), (f"{A}/Patient", "pat-77")]


def test_an_account_with_two_patient_subjects_gives_two_events() -> None:
    account = {
        "resourceType": "Account",
        "id": "acct-1",
        "status": "active",
        "subject": [{"reference": "Patient/p-1"}, {"reference": "Patient/p-2"}, {"reference": "Location/l-1"}],
    }
    events = _run(account, fhir_base=A)
    assert [_ids(e) for e in events] == [[(f"{A}/Patient", "p-1")], [(f"{A}/Patient", "p-2")]]
    assert [e.attributes["patient_count"] for e in events] == [2, 2]


def test_a_conditional_reference_gives_its_identifier() -> None:
    (event,) = _run(_obs({"reference": f"Patient?identifier={MRN_A}|MRN-0077001"}))
    assert _ids(event) == [(MRN_A, "MRN-0077001")]


# -- Bundles ----------------------------------------------------------------------------------------------------


def test_entries_without_resource_count_only_when_they_name_a_patient() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Patient/pat-77"}},
            {"request": {"method": "DELETE", "url": "Observation/o-9"}},
            {"request": {"method": "GET", "url": "Patient?name=smith"}},
            {"request": {"method": "POST", "url": "Patient/$match"}},
        ],
    }
    (event,) = _run(bundle, fhir_base=A)
    assert _ids(event) == [(f"{A}/Patient", "pat-77")]
    assert event.data_elements == ["Patient"]
    assert event.attributes["resources_without_patient"] == 3
    assert event.message_id is None


def test_nested_bundles_deeper_than_the_bound_are_refused() -> None:
    bundle: dict[str, Any] = _obs({"reference": "Patient/p"})
    for _ in range(20):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bundle}]}
    err = _error(bundle, fhir_base=A)
    assert err.path.startswith("entry[0].resource.entry[0].resource")
    assert "nested" in str(err)


def test_a_urn_reference_resolves_only_within_its_own_bundle() -> None:
    urn = "urn:uuid:3d2b6c1e-0000-4000-8000-000000000001"
    inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _obs({"reference": urn})}]}
    outer = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": urn, "resource": PATIENT}, {"resource": inner}],
    }
    patient, unknown = _run(outer)
    assert _ids(patient) == [(MRN_A, "MRN-0077001")]
    assert _ids(unknown)[0][0] == "urn:auditsvc:unlinked"
    assert assumed_codes(unknown) == ["reference_unresolved", "patient_unidentified"]


# -- the events -------------------------------------------------------------------------------------------------


def test_caller_fields_are_passed_through_and_caller_attributes_win() -> None:
    at = datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC)
    (event,) = events_from_fhir(
        json.dumps(_obs({"reference": "Patient/pat-77"})),
        source=SystemRef(system_id="hie-gateway", name="Regional HIE"),
        destination={"system_id": "epic-ehr"},
        actor=Actor(id="svc-bulk", type="system"),
        action="E",
        event_type="export",
        purpose_of_use="HOPERAT",
        occurred_at=at,
        outcome=4,
        message_id="req-0001",
        attributes={"resource_type": "override", "http_status": 200},
        fhir_base=A,
    )
    assert event.to_json()["occurred_at"] == "2026-11-24T01:02:03.456789Z"
    assert (event.action, event.event_type, event.purpose_of_use, event.outcome) == ("E", "export", "HOPERAT", 4)
    assert event.source.name == "Regional HIE" and event.destination.system_id == "epic-ehr"
    assert event.actor.id == "svc-bulk"
    assert event.message_id == "req-0001"
    assert event.attributes == {
        "resource_type": "override",
        "http_status": 200,
        "patient_count": 1,
        "resource_count": 1,
    }


def test_occurred_at_defaults_to_now_and_is_shared() -> None:
    bundle = json.loads((CORPUS / "searchset-two-patients-include.json").read_bytes())
    before = datetime.now(UTC)
    events = events_from_fhir(bundle, source="a", destination="b", actor={"id": "x", "type": "system"})
    assert len(events) == 2
    assert before <= events[0].occurred_at == events[1].occurred_at <= datetime.now(UTC)


def test_element_names_can_be_left_out() -> None:
    bundle = json.loads((CORPUS / "transaction-urn-uuid.json").read_bytes())
    (event,) = _run(bundle, element_names=False)
    assert event.data_elements == ["Patient", "Encounter", "Condition", "Observation"]


def test_data_elements_are_bounded_types_first() -> None:
    wide = {"resourceType": "Basic", "id": "b", "subject": {"reference": "Patient/p"}}
    wide.update({f"field{n:03d}": n for n in range(250)})
    contained = [{"resourceType": "Binary", "id": "c"}, {"resourceType": "Media", "id": "m", "note": []}]
    (event,) = _run(dict(wide, contained=contained), fhir_base=A)
    assert len(event.data_elements) == 200
    assert event.data_elements[:2] == ["Basic", "Basic.field000"]
    assert event.data_elements[-2:] == ["Binary", "Media"]
    # 251 Basic names (field000..field249, subject) + Media.note, 197 kept.
    assert event.attributes["data_elements_omitted"] == 55


def test_identifiers_are_bounded_the_resource_own_first() -> None:
    patient = dict(PATIENT, identifier=[{"system": f"urn:oid:1.2.3.{n}", "value": f"V{n}"} for n in range(25)])
    (event,) = _run(patient, fhir_base=A)
    assert _ids(event) == [(f"urn:oid:1.2.3.{n}", f"V{n}") for n in range(20)]
    assert event.attributes["identifiers_omitted"] == 6


def test_element_names_map_choices_and_primitive_extensions() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "meta": {},
        "language": "en",
        "_birthDate": {"extension": []},
        "deceasedDateTime": "2020-01-01",
        "multipleBirthBoolean": False,
        "fhir_comments": ["x"],
    }
    (event,) = _run(patient, fhir_base=A)
    assert event.data_elements == ["Patient", "Patient.birthDate", "Patient.deceased[x]", "Patient.multipleBirth[x]"]


# -- errors -----------------------------------------------------------------------------------------------------

SECRET = "MRN-SECRET-4411"
NAME = "Zebedee Secretperson"


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        (b'{"resourceType": "Patient", "name": "' + NAME.encode() + b'"', "", "not valid JSON"),
        (f'["{SECRET}"]', "", "must be a JSON object"),
        (42, "", "must be a mapping"),
        ({"id": SECRET, "name": [{"family": NAME}]}, "", "has no resourceType"),
        ({"resourceType": SECRET}, "resourceType", "not a FHIR resource type"),
        ({"resourceType": "Bundle", "entry": {"resource": SECRET}}, "entry", "must be a list"),
        ({"resourceType": "Bundle", "entry": [SECRET]}, "entry[0]", "must be an object"),
        ({"resourceType": "Bundle", "entry": [{"resource": {"name": NAME}}]}, "entry[0].resource", "no resourceType"),
    ],
)
def test_input_that_cannot_be_read_is_a_clear_error_naming_the_path_and_no_values(
    data: Any, path: str, problem: str
) -> None:
    err = _error(data, fhir_base=A)
    assert isinstance(err, ValueError)
    assert err.path == path
    assert problem in str(err)
    assert str(err).startswith(f"{path or '(root)'}: ")
    for secret in (SECRET, NAME, "Secretperson", "MRN-0077001", "Synthia"):
        assert secret not in str(err)
    assert err.__cause__ is None


UNRESOLVED = ["reference_unresolved", "patient_unidentified"]


@pytest.mark.parametrize(
    ("data", "assumed"),
    [
        ({"resourceType": "Bundle", "entry": [{}, {}, {}, {"resource": _obs({"reference": 7})}]}, UNRESOLVED),
        (_obs({"reference": f"Patient {SECRET}"}), UNRESOLVED),
        (_obs(SECRET), UNRESOLVED),
        (_obs({"display": NAME}), UNRESOLVED),
        (_obs({"reference": "#p1"}), UNRESOLVED),
        (_obs({"reference": "urn:uuid:0000"}), UNRESOLVED),
        (_obs({"reference": "Patient?name=Secretperson"}), UNRESOLVED),
        (_obs({"identifier": {"system": MRN_A}}), ["identifier_without_value", *UNRESOLVED]),
        (_obs({"identifier": {"system": MRN_A, "value": "  "}}), ["identifier_without_value", *UNRESOLVED]),
        (_obs({"identifier": {"system": 5, "value": SECRET}}), ["unusable_identifier", *UNRESOLVED]),
        (_obs({"identifier": SECRET}), ["unusable_identifier", *UNRESOLVED]),
        (_obs({"identifier": {"system": MRN_A, "value": SECRET * 10}}), ["unusable_identifier", *UNRESOLVED]),
    ],
)
def test_a_patient_reference_that_leads_nowhere_is_recorded_unlinked(data: Any, assumed: list[str]) -> None:
    found = read_fhir(data, **{**KW, "fhir_base": A})
    (event,) = found.events
    assert found.refusals == ()
    (ident,) = event.patient.identifiers
    assert (ident.system, ident.value) == ("urn:auditsvc:unlinked", str(event.event_id))
    assert assumed_codes(event) == assumed
    assert SECRET not in json.dumps(event.to_json())


@pytest.mark.parametrize(
    ("data", "assumed"),
    [
        (
            dict(PATIENT, identifier=[PATIENT["identifier"][0], {"type": {"text": "SSN"}, "system": SSN}]),
            ["identifier_without_value"],
        ),
        (dict(PATIENT, identifier={"system": MRN_A, "value": "MRN-0077001"}), []),
        (dict(PATIENT, id=f"{SECRET}/x"), ["unusable_identifier"]),
    ],
)
def test_an_unusable_identifier_of_a_patient_is_left_out_and_flagged(data: Any, assumed: list[str]) -> None:
    (event,) = _run(data, fhir_base=A)
    assert (MRN_A, "MRN-0077001") in _ids(event)
    assert assumed_codes(event) == assumed
