"""The helpers' best-effort contract (issue 18): every input that names a patient yields an event.

The corpus ``tests/corpus/{hl7v2,fhir}/best_effort/`` holds one synthetic
input per failure mode found on real traffic; its ``MANIFEST.json`` says which
mode each covers, whether it names a patient, and what the helper must do.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from auditsvc_sdk.helpers import (
    UNLINKED_SYSTEM,
    US_MBI,
    US_MEDICARE_HICN,
    US_NPI,
    US_SSN,
    Assumed,
    Cause,
    HelperResult,
    IdentifierPolicy,
    Refusal,
    assumed_codes,
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
