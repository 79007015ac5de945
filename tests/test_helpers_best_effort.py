"""The helpers' best-effort contract (issue 18): every input that names a patient yields an event.

The corpus ``tests/corpus/{hl7v2,fhir}/best_effort/`` holds one synthetic
input per failure mode found on real traffic; its ``MANIFEST.json`` says which
mode each covers, whether it names a patient, and what the helper must do.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from auditsvc_sdk.helpers import (
    UNLINKED_SYSTEM,
    US_MBI,
    US_MEDICARE_HICN,
    US_NPI,
    US_SSN,
    Assumed,
    Cause,
    FHIRError,
    HelperResult,
    HL7v2Error,
    IdentifierPolicy,
    Refusal,
    assumed_codes,
    events_from_fhir,
    events_from_hl7v2,
    read_fhir,
    read_hl7v2,
)

CHANNEL = {"id": "mirth/ADT-IN", "type": "system"}
FIXED = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)


def msg(*segments: str, msh: str = "MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|20240301120000-0500||ADT^A01|C1|P|2.5.1") -> str:
    return "\r".join((msh, *segments)) + "\r"


PID = "PID|1||900001^^^MAINHOSP^MR||ZZTEST^PATIENT||19800101|F"


# --- the result API ---------------------------------------------------------------------------


def test_result_of_a_good_message_has_events_and_no_refusals() -> None:
    found = read_hl7v2(msg(PID), actor=CHANNEL)
    assert isinstance(found, HelperResult)
    assert found.ok and found.units == 1 and found.event_units == (0,)
    assert found.units_with_events == 1
    assert found.refusal_causes() == {}


def test_unreadable_input_is_one_refusal_of_the_whole_input() -> None:
    found = read_hl7v2("hello world", actor=CHANNEL)
    assert found.events == () and found.units == 0
    assert found.refusals == (Refusal(None, Cause.NOT_HL7V2, found.refusals[0].message),)
    assert "hello" not in str(found.refusals[0])


def test_fhir_input_naming_no_patient_is_refused_as_such() -> None:
    found = read_fhir({"resourceType": "Practitioner", "id": "x"}, source="s", destination="d", actor=CHANNEL)
    assert found.events == ()
    assert [r.cause for r in found.refusals] == [Cause.NO_PATIENT]


def test_refusal_causes_and_assumptions_are_counted() -> None:
    batch = msg(PID) + msg("EVN|A01") + msg("MSA|AA|C1")
    found = read_hl7v2(batch, actor=CHANNEL)
    assert found.units == 3 and found.units_with_events == 1
    assert found.refusal_causes() == {Cause.NO_PATIENT: 2}
    assert [r.index for r in found.refusals] == [1, 2]


def test_every_cause_and_assumption_code_is_a_distinct_snake_case_string() -> None:
    causes = [v for k, v in vars(Cause).items() if k.isupper() and k != "ALL"]
    assumed = [v for k, v in vars(Assumed).items() if k.isupper()]
    assert set(causes) == Cause.ALL
    for codes in (causes, assumed):
        assert len(set(codes)) == len(codes)
        assert all(c.replace("_", "").isalnum() and c.islower() for c in codes)


# --- identifier policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "canonical"),
    [
        ("http://hl7.org/fhir/sid/us-ssn", US_SSN),
        ("urn:oid:2.16.840.1.113883.4.1", US_SSN),
        ("2.16.840.1.113883.4.1", US_SSN),
        ("SSN", US_SSN),
        ("ssn", US_SSN),
        ("urn:oid:2.16.840.1.113883.4.6", US_NPI),
        ("NPI", US_NPI),
        ("urn:oid:2.16.840.1.113883.4.927", US_MBI),
        ("urn:oid:2.16.840.1.113883.4.572", US_MEDICARE_HICN),
        ("2.16.840.1.113883.4.3.36", "urn:oid:2.16.840.1.113883.4.3.36"),
        ("urn:oid:1.2.3.4", "urn:oid:1.2.3.4"),
        ("MAINHOSP^MR", "MAINHOSP^MR"),
    ],
)
def test_known_systems_have_one_canonical_spelling(system: str, canonical: str) -> None:
    assert IdentifierPolicy().canonical_system(system) == canonical


def test_ssn_npi_and_medicare_values_are_written_without_separators() -> None:
    policy = IdentifierPolicy()
    assert policy.canonical("urn:oid:2.16.840.1.113883.4.1", "987-65-4320") == (US_SSN, "987654320")
    assert policy.canonical("SSN", " 987 65 4320 ") == (US_SSN, "987654320")
    assert policy.canonical("MAINHOSP^MR", "A-1 2") == ("MAINHOSP^MR", "A-1 2")
    assert policy.canonical("MBI", "1eg4-te5-mk73") == (US_MBI, "1EG4TE5MK73")


@pytest.mark.parametrize(
    "value", ["REDACTED", "redacted", "UNKNOWN", "123456789", "123-45-6789", "000000000", "000-00-0000",
              "999-99-9999", "XXX-XX-XXXX", "***-**-1234", "N/A", "", "   "]
)  # fmt: skip
def test_placeholders_are_never_identifiers(value: str) -> None:
    assert IdentifierPolicy().canonical(US_SSN, value) is None


@pytest.mark.parametrize("value", ["987-65-4320", "900001", "A12345", "1EG4TE5MK73", "10000", "X1"])
def test_real_looking_values_are_not_placeholders(value: str) -> None:
    assert IdentifierPolicy().canonical(US_SSN, value) is not None


def test_the_policy_is_configurable() -> None:
    policy = IdentifierPolicy().with_systems({"STATEMEDICAID": "urn:oid:2.16.840.1.113883.3.249.15"})
    assert policy.canonical_system("StateMedicaid") == "urn:oid:2.16.840.1.113883.3.249.15"
    assert policy.canonical_system("SSN") == US_SSN
    assert policy.with_placeholders({"NOSSN"}).is_placeholder("nossn")
    only = IdentifierPolicy().with_placeholders({"NOSSN"}, replace_defaults=True)
    assert not only.is_placeholder("REDACTED") and only.is_placeholder("NOSSN")
    assert IdentifierPolicy(placeholder_patterns=()).is_placeholder("000000000")  # still in the value list
    assert not IdentifierPolicy(placeholder_patterns=()).is_placeholder("000-000-000-0")


def test_medicare_type_tells_mbi_from_hicn_by_shape() -> None:
    policy = IdentifierPolicy()
    assert policy.system_for_type("MC", "1EG4-TE5-MK73") == US_MBI
    assert policy.system_for_type("MC", "987654320A") == US_MEDICARE_HICN
    assert policy.system_for_type("SS") == US_SSN
    assert policy.system_for_type("MR") is None
    assert policy.state_driver_licence("ny") == "urn:oid:2.16.840.1.113883.4.3.36"


def test_unlinked_system_is_a_urn() -> None:
    assert UNLINKED_SYSTEM.startswith("urn:")
    assert assumed_codes(read_hl7v2(msg(PID), actor=CHANNEL).events[0]) == []


# --- the best-effort corpus --------------------------------------------------------------------

CORPUS = Path(__file__).parent / "corpus"
HL7_MODES = {
    "no_cx4_authority_and_empty_msh3_msh4", "msh7_empty_and_no_evn2", "msh7_fraction_without_dot",
    "one_bad_message_in_batch", "patient_named_outside_pid", "empty_pid_before_real_pid", "no_default_tz",
    "ssn_under_three_systems", "placeholder_identifiers", "names_no_patient",
}  # fmt: skip
FHIR_MODES = {
    "utf8_bom", "identifier_without_value", "resources_inside_parameters", "server_id_with_underscore",
    "one_unusable_reference_in_bundle", "ssn_under_three_systems", "names_no_patient",
}  # fmt: skip


def manifest(kind: str) -> list[dict[str, Any]]:
    data = json.loads((CORPUS / kind / "best_effort" / "MANIFEST.json").read_text())
    return list(data["inputs"])


def run(kind: str, entry: dict[str, Any]) -> HelperResult:
    data = (CORPUS / kind / "best_effort" / entry["file"]).read_bytes()
    if kind == "hl7v2":
        return read_hl7v2(data, actor=CHANNEL, destination="lab-lis", clock=lambda: FIXED, **entry["args"])
    return read_fhir(data, actor=CHANNEL, source="epic-fhir", destination="care-app", **entry["args"])


def compact(found: HelperResult) -> dict[str, Any]:
    def ident(i: Any, event: Any) -> list[str]:
        if i.system == UNLINKED_SYSTEM:
            assert i.value == str(event.event_id)
            return ["<unlinked>", "<event_id>"]
        return [i.system, i.value]

    return {
        "events": [
            {"identifiers": [ident(i, e) for i in e.patient.identifiers], "assumed": assumed_codes(e)}
            for e in found.events
        ],
        "refusals": [[r.index, r.cause] for r in found.refusals],
    }


def test_the_corpus_covers_every_failure_mode_of_the_issue() -> None:
    for kind, modes in (("hl7v2", HL7_MODES), ("fhir", FHIR_MODES)):
        entries = manifest(kind)
        assert {e["mode"] for e in entries} == modes
        files = {p.name for p in (CORPUS / kind / "best_effort").iterdir()} - {"MANIFEST.json"}
        assert files == {e["file"] for e in entries}
        assert any(not e["names_patient"] for e in entries)


CASES = [(kind, e) for kind in ("hl7v2", "fhir") for e in manifest(kind)]


@pytest.mark.parametrize(("kind", "entry"), CASES, ids=[f"{k}-{e['file']}" for k, e in CASES])
def test_best_effort_corpus(kind: str, entry: dict[str, Any]) -> None:
    found = run(kind, entry)
    assert compact(found) == entry["expected"]
    # A patient named is a patient recorded; only inputs naming no patient are refused whole.
    assert bool(found.events) == entry["names_patient"]
    text = (CORPUS / kind / "best_effort" / entry["file"]).read_bytes().decode("utf-8", "replace")
    values = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9-]{4,}", text)) - set(re.findall(r"\b[A-Z]{3}\b", text))
    for refusal in found.refusals:
        assert refusal.cause in Cause.ALL
        words = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9-]{4,}", str(refusal)))
        leaked = {w for w in words & values if any(c.isdigit() for c in w) or w.isupper()}
        assert not leaked, (refusal, leaked)


def test_one_ssn_under_three_systems_is_one_identifier() -> None:
    (entry,) = [e for e in manifest("hl7v2") if e["file"] == "ssn_three_systems.hl7"]
    found = run("hl7v2", entry)
    ssns = {(i.system, i.value) for e in found.events for i in e.patient.identifiers if i.system == US_SSN}
    assert ssns == {(US_SSN, "987654325")}
    (fhir,) = [e for e in manifest("fhir") if e["file"] == "ssn_oid_and_placeholder.json"]
    assert (US_SSN, "987654325") in {(i.system, i.value) for i in run("fhir", fhir).events[0].patient.identifiers}


def test_a_message_without_time_is_recorded_at_the_time_of_processing() -> None:
    (entry,) = [e for e in manifest("hl7v2") if e["file"] == "msh7_empty_no_evn.hl7"]
    (event,) = run("hl7v2", entry).events
    assert event.occurred_at == FIXED


def test_the_old_functions_return_the_events_of_the_good_messages() -> None:
    data = (CORPUS / "hl7v2" / "best_effort" / "batch_mixed.hl7").read_bytes()
    produced = events_from_hl7v2(data, actor=CHANNEL)
    assert [e.patient.identifiers[0].value for e in produced] == ["77001301", "77001302"]
    with pytest.raises(HL7v2Error, match="no PID segment names a patient") as info:
        events_from_hl7v2((CORPUS / "hl7v2" / "best_effort" / "ack_no_patient.hl7").read_bytes(), actor=CHANNEL)
    assert info.value.cause == Cause.NO_PATIENT
    data = (CORPUS / "fhir" / "best_effort" / "capabilitystatement_no_patient.json").read_bytes()
    assert events_from_fhir(data, source="s", destination="d", actor=CHANNEL) == []
    with pytest.raises(FHIRError, match="not valid JSON") as fhir_info:
        events_from_fhir(b"\xef\xbb\xbf{", source="s", destination="d", actor=CHANNEL)
    assert fhir_info.value.cause == Cause.NOT_JSON


def test_default_authority_names_identifiers_without_cx4_and_is_not_flagged() -> None:
    message = msg("PID|1||V1^^^^MR~V2")
    found = read_hl7v2(message, actor=CHANNEL, default_authority="MAINHOSP")
    assert [(i.system, i.value) for i in found.events[0].patient.identifiers] == [
        ("MAINHOSP^MR", "V1"),
        ("MAINHOSP", "V2"),
    ]
    assert assumed_codes(found.events[0]) == []
    found = read_hl7v2(message, actor=CHANNEL, default_authority="2.16.840.1.113883.19.5")
    assert {i.system for i in found.events[0].patient.identifiers} == {"urn:oid:2.16.840.1.113883.19.5"}
    found = read_hl7v2(message, actor=CHANNEL)
    assert assumed_codes(found.events[0]) == ["authority_from_sender"]


def test_the_identifier_policy_is_the_callers() -> None:
    policy = IdentifierPolicy().with_systems({"MAINHOSP": "urn:oid:2.16.840.1.113883.19.5"}).with_placeholders({"V2"})
    found = read_hl7v2(msg("PID|1||V1^^^MAINHOSP^MR~V2^^^MAINHOSP^MR"), actor=CHANNEL, identifier_policy=policy)
    (event,) = found.events
    assert [(i.system, i.value) for i in event.patient.identifiers] == [("urn:oid:2.16.840.1.113883.19.5", "V1")]
    assert assumed_codes(event) == ["placeholder_identifier"]
    patient = {"resourceType": "Patient", "identifier": [{"system": "MAINHOSP", "value": "V1"}]}
    (event,) = read_fhir(patient, source="s", destination="d", actor=CHANNEL, identifier_policy=policy).events
    assert [(i.system, i.value) for i in event.patient.identifiers] == [("urn:oid:2.16.840.1.113883.19.5", "V1")]


def test_placeholders_never_link_two_patients_in_one_message() -> None:
    message = msg("PID|1||P1^^^H^MR~000000000^^^SSA^SS", "PV1|1", "PID|2||P2^^^H^MR~000000000^^^SSA^SS")
    produced = read_hl7v2(message, actor=CHANNEL).events
    assert [[i.value for i in e.patient.identifiers] for e in produced] == [["P1"], ["P2"]]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": US_SSN, "value": "REDACTED"}, {"system": "urn:x", "value": n}],
                }
            }
            for n in ("A", "B")
        ],
    }
    assert len(read_fhir(bundle, source="s", destination="d", actor=CHANNEL).events) == 2
