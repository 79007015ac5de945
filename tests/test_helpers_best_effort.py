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
from zoneinfo import ZoneInfo

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    policy = IdentifierPolicy().with_systems({"STATEMEDICAID": "urn:oid:1.2.840.99999.1"})
    assert policy.canonical_system("StateMedicaid") == "urn:oid:1.2.840.99999.1"
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


def test_the_coverage_tool_finds_every_patient_naming_input_audited() -> None:
    import auditsvc_sdk

    from tests.helper_coverage import measure

    report = measure(auditsvc_sdk)
    for row in report.values():
        assert row["not_audited"] == []
        assert row["patients_with_an_event"] == row["patients_named"] > 0


# --- properties: real-shaped messages, mutated ----------------------------------------------------
# What the site may do to a message: drop fields, add Z-segments, change separators and encodings,
# truncate. Whatever it does, a message that still names a patient must give that patient an event.

_SEPARATOR_CHARS = "|^~\\&#$*!@%"
MRNS = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=4, max_size=12).filter(
    lambda v: not IdentifierPolicy().is_placeholder(v)
)


@st.composite
def hl7_messages(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(message text, the patient's MRN, whether an authority for it can be found)."""
    chars = draw(st.permutations(_SEPARATOR_CHARS))
    field, comp, rep, esc, sub = chars[:5]
    mrn = draw(MRNS)
    app = draw(st.sampled_from(["", "EPIC", "CERNER"]))
    facility = draw(st.sampled_from(["", "MAINHOSP", f"{comp}2.16.840.1.113883.19.5{comp}ISO"]))
    when = draw(st.sampled_from(["", "20240301120000-0500", "20240301120000", "20110613122406637", "202403", "2024X"]))
    msg_type = draw(st.sampled_from([f"ADT{comp}A08", f"ORU{comp}R01{comp}ORU_R01", f"VXU{comp}V04", ""]))
    version = draw(st.sampled_from(["2.3", "2.5.1", "2.8", ""]))
    msh = field.join(["MSH", comp + rep + esc + sub, app, facility, "LAB", "", when, "", msg_type, "C1", "P", version])
    authority = draw(st.sampled_from(["", "MAINHOSP", f"{sub}1.2.3.4{sub}ISO"]))
    id_type = draw(st.sampled_from(["", "MR", "PI"]))
    cx = mrn + (comp * 3 + authority + comp + id_type if authority or id_type else "")
    pid_fields = ["PID", "1", "", cx, "", f"ZZPROP{comp}TEST", "", "19800101", "F"]
    pid = field.join(pid_fields[: draw(st.integers(min_value=4, max_value=len(pid_fields)))])
    segments = [msh]
    if draw(st.booleans()):
        segments.append(field.join(["EVN", "A08", draw(st.sampled_from(["", "20240301115900-0500"]))]))
    if draw(st.booleans()):
        segments.append("PID" + field)  # an empty PID before the real one
    segments.append(pid)
    tail = [field.join(["PV1", "1", "I"]), field.join(["OBX", "1", "NM", "X", "", "5"])]
    tail += [
        field.join([f"Z{c}{d}", "1", "Y"])
        for c, d in draw(st.lists(st.tuples(st.sampled_from("XYZ"), st.sampled_from("0123456789")), max_size=3))
    ]
    segments += draw(st.permutations(tail))[: draw(st.integers(min_value=0, max_value=len(tail)))]
    terminator = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    text = terminator.join(segments) + terminator
    known_authority = bool(authority or facility or app)
    return text, mrn, known_authority


def _frame(draw: st.DrawFn, text: str) -> str | bytes:
    if draw(st.booleans()):
        text = "\x0b" + text + "\x1c\r"
    encoding = draw(st.sampled_from([None, "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text if encoding is None else text.encode(encoding)


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_a_mutated_message_that_names_a_patient_yields_an_event_for_them(data: st.DataObject) -> None:
    text, mrn, known_authority = data.draw(hl7_messages())
    found = read_hl7v2(_frame(data.draw, text), actor=CHANNEL, default_tz=UTC, clock=lambda: FIXED)
    (event,) = found.events
    assert found.refusals == ()
    values = [i.value for i in event.patient.identifiers]
    if known_authority:
        assert mrn in values
    else:
        assert assumed_codes(event)[-2:] == ["authority_unknown", "patient_unidentified"]


@given(st.data())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_a_batch_gives_every_patient_message_its_event(data: st.DataObject) -> None:
    messages = data.draw(st.lists(hl7_messages(), min_size=1, max_size=4))
    # One field separator for the batch file: each message keeps its own encoding characters.
    ack = "MSH|^~\\&|LIS|LAB|EPIC|MAINHOSP|20240301120000-0500||ACK|A1|P|2.5\rMSA|AA|C1\r"
    texts = [m[0] for m in messages]
    position = data.draw(st.integers(min_value=0, max_value=len(texts)))
    texts.insert(position, ack)
    found = read_hl7v2("".join(texts), actor=CHANNEL, source="engine", default_tz=UTC, clock=lambda: FIXED)
    assert found.units == len(texts)
    assert [(r.index, r.cause) for r in found.refusals] == [(position, Cause.NO_PATIENT)]
    assert len(found.events) >= 1
    assert position not in found.event_units
    for (text, mrn, _), unit in zip(messages, [u for u in range(len(texts)) if u != position], strict=True):
        assert unit in found.event_units, text
        mine = [e for e, u in zip(found.events, found.event_units, strict=True) if u == unit]
        assert any(mrn in [i.value for i in e.patient.identifiers] for e in mine)


@given(st.binary(max_size=400) | st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_property_any_input_gives_a_result_and_never_raises(data: str | bytes) -> None:
    found = read_hl7v2(b"MSH|^~\\&|A|B|C|D|" + data if isinstance(data, bytes) else data, actor=CHANNEL)
    assert all(r.cause in Cause.ALL for r in found.refusals)
    found_fhir = read_fhir(data, source="s", destination="d", actor=CHANNEL)
    assert all(r.cause in Cause.ALL for r in found_fhir.refusals)


@st.composite
def fhir_inputs(draw: st.DrawFn) -> tuple[Any, str, bool]:
    """(input, the patient's MRN, whether the MRN itself is still there to link by)."""
    mrn = draw(MRNS)
    pid = draw(st.sampled_from(["p1", "p_1", "P-1.x", "1"]))
    base = "https://fhir.example.org/R4"
    masked = draw(st.booleans())
    ident: dict[str, Any] = {"system": "urn:oid:2.16.840.1.113883.3.7777.1", "value": mrn}
    if masked:
        ident = {"system": ident["system"], "_value": {"extension": [{"url": "x", "valueCode": "masked"}]}}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "identifier": [ident]}
    ref = draw(st.sampled_from([f"Patient/{pid}", f"{base}/Patient/{pid}", "urn:uuid:a1", "Patient/", "#nope"]))
    observation = {"resourceType": "Observation", "status": "final", "subject": {"reference": ref}}
    entries: list[Any] = [
        {"fullUrl": "urn:uuid:a1" if ref == "urn:uuid:a1" else f"{base}/Patient/{pid}", "resource": patient},
        {"resource": observation},
    ]
    if draw(st.booleans()):
        entries.insert(draw(st.integers(0, 2)), draw(st.sampled_from(["junk", {"resource": {"status": "x"}}, {}])))
    shape = draw(st.sampled_from(["bundle", "parameters", "patient"]))
    doc: Any
    if shape == "bundle":
        doc = {
            "resourceType": "Bundle",
            "type": draw(st.sampled_from(["searchset", "collection", "batch"])),
            "entry": entries,
        }
    elif shape == "parameters":
        doc = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "p", "resource": patient},
                {"name": "o", "part": [{"name": "x", "resource": observation}]},
            ],
        }
    else:
        doc = patient
    if draw(st.booleans()):
        text = json.dumps(doc)
        doc = draw(st.sampled_from([text, "\ufeff" + text, text.encode(), b"\xef\xbb\xbf" + text.encode()]))
    return doc, mrn, not masked


@given(fhir_inputs())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_a_mutated_fhir_input_naming_a_patient_yields_an_event_for_them(case: tuple[Any, str, bool]) -> None:
    doc, mrn, linkable = case
    found = read_fhir(doc, source="epic-fhir", destination="app", actor=CHANNEL)
    assert found.events, found.refusals
    assert all(r.cause == Cause.BAD_ENTRY for r in found.refusals)
    values = [i.value for e in found.events for i in e.patient.identifiers]
    if linkable:
        assert mrn in values


def test_the_sdk_readme_channel_settings_read_real_traffic_without_assumptions() -> None:
    readme = (Path(__file__).resolve().parent.parent / "sdk" / "README.md").read_text()
    block = readme[readme.index("CHANNEL = {") : readme.index("\n}\n", readme.index("CHANNEL = {")) + 2]
    namespace: dict[str, Any] = {"ZoneInfo": ZoneInfo}
    exec(block, namespace)  # noqa: S102 - our own README
    channel = namespace["CHANNEL"]
    # A batch whose second message has no offset in MSH-7 and no CX-4 authority.
    batch = msg(PID) + msg("PID|1||900002^^^^MR", msh="MSH|^~\\&|||LAB|LABFAC|20240301120000||ADT^A01|C2|P|2.3")
    found = read_hl7v2(batch, destination="lab-lis", **channel)
    assert found.ok and len(found.events) == 2
    assert [assumed_codes(e) for e in found.events] == [[], []]
    second = found.events[1]
    assert second.occurred_at == datetime(2024, 3, 1, 18, tzinfo=UTC)  # Chicago, winter
    assert second.source.system_id == "epic-adt"
    assert (second.patient.identifiers[0].system, second.patient.identifiers[0].value) == (
        "urn:oid:2.16.840.1.113883.3.1234.1.1",
        "900002",
    )


def test_a_caller_with_many_attributes_still_gets_the_event_and_the_flags() -> None:
    many = {f"k{n}": n for n in range(31)}
    (event,) = read_hl7v2(msg(PID, msh="MSH|^~\\&|A|B|C|D|||ADT^A01|C1|P|2.5"), actor=CHANNEL, attributes=many).events
    assert event.attributes["assumed"] == "time_of_processing"
    assert len(event.attributes) == 32 and all(event.attributes[k] == v for k, v in many.items())
    (event,) = read_fhir(
        {"resourceType": "Patient", "id": "p"}, source="s", destination="d", actor=CHANNEL, attributes=many
    ).events
    assert event.attributes["assumed"] == "base_from_source"
    assert len(event.attributes) == 32
    # The caller alone over the bound is the caller's error, said without values.
    found = read_hl7v2(msg(PID), actor=CHANNEL, attributes={f"k{n}": n for n in range(33)})
    assert [r.cause for r in found.refusals] == [Cause.INVALID_EVENT]
