"""events_from_hl7v2 against a corpus of vendor-shaped HL7 v2 messages, and each quirk on its own.

Every corpus file ``tests/corpus/hl7v2/NAME.hl7`` has a sidecar ``NAME.json``
with the arguments of the call (``args``) and the expected events, written by
hand from the message: common fields at the top, per-event fields (and any
override of a common one) in ``events``. All patients are synthetic.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from auditsvc_sdk import PhiAccess
from auditsvc_sdk.helpers import US_SSN, Cause, HL7v2Error, events_from_hl7v2, parse_hl7_timestamp, read_hl7v2

CORPUS = Path(__file__).parent / "corpus" / "hl7v2"
FILES = sorted(CORPUS.glob("*.hl7"))
CHANNEL = {"id": "mirth/ADT-IN", "type": "system"}
NY = ZoneInfo("America/New_York")


def load_case(path: Path) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    args = dict(sidecar["args"])
    if "default_tz" in args:
        args["default_tz"] = ZoneInfo(args["default_tz"])
    return path.read_bytes(), args, sidecar["expected"]


def summary(event: PhiAccess) -> dict[str, Any]:
    """The fields the corpus pins, in the sidecar's compact form."""
    data = event.to_json()
    return {
        "identifiers": [[i["system"], i["value"]] for i in data["patient"]["identifiers"]],
        "data_elements": data["data_elements"],
        "source": data["source"]["system_id"],
        "destination": data["destination"]["system_id"],
        "message_id": data.get("message_id"),
        "action": data["action"],
        "occurred_at": data["occurred_at"],
        "attributes": data.get("attributes", {}),
        "event_type": data["event_type"],
    }


def expected_events(expected: dict[str, Any]) -> list[dict[str, Any]]:
    common = {k: v for k, v in expected.items() if k != "events"}
    common.setdefault("event_type", "hl7v2-message")
    return [{**common, **event} for event in expected["events"]]


def msg(*segments: str, msh: str = "MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|20240301120000-0500||ADT^A01|C1|P|2.5.1") -> str:
    return "\r".join((msh, *segments)) + "\r"


PID = "PID|1||900001^^^MAINHOSP^MR||ZZTEST^PATIENT||19800101|F"


def events(message: str | bytes, **kwargs: Any) -> list[PhiAccess]:
    return events_from_hl7v2(message, actor=kwargs.pop("actor", CHANNEL), **kwargs)


# --- the corpus ------------------------------------------------------------------


def test_corpus_is_large_and_varied() -> None:
    assert len(FILES) >= 30
    raw = [p.read_bytes() for p in FILES]
    versions: set[str] = set()
    for path in FILES:
        _, _, expected = load_case(path)
        versions.update(e["attributes"]["hl7_version"] for e in expected_events(expected))
    assert versions >= {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"}
    assert any(b"\r\n" in r for r in raw)
    assert any(b"\n" in r and b"\r" not in r for r in raw)
    assert any(r.startswith(b"\x0b") and r.endswith(b"\x1c\r") for r in raw)
    assert any(r.startswith(b"\xef\xbb\xbf") for r in raw)
    assert any(r.startswith(b"MSH#") for r in raw)
    assert any(b"\nZ" in r or b"\rZ" in r for r in raw)
    assert any(r.startswith(b"FHS") for r in raw)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_message(path: Path) -> None:
    data, args, expected = load_case(path)
    produced = events(data, **args)
    assert [summary(e) for e in produced] == expected_events(expected)
    for event in produced:
        # Each event survives the trip through its JSON form unchanged.
        assert PhiAccess.model_validate(event.to_json()) == event
        assert event.actor.id == "mirth/ADT-IN"
        assert event.outcome == 0


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_message_as_text_gives_the_same_events(path: Path) -> None:
    data, args, _ = load_case(path)
    text = data.decode("latin-1") if b"8859/1" in data else data.decode("utf-8-sig")
    assert [summary(e) for e in events(text, **args)] == [summary(e) for e in events(data, **args)]


# --- framing, separators, encodings --------------------------------------------------

FRAMINGS = {
    "cr": lambda m: m,
    "lf": lambda m: m.replace("\r", "\n"),
    "crlf": lambda m: m.replace("\r", "\r\n"),
    "mllp": lambda m: "\x0b" + m + "\x1c\r",
    "bom-and-blank-lines": lambda m: "\ufeff" + m + "\r\n\r\n  \n",
    "mixed": lambda m: m.replace("\r", "\r\n", 1).replace("PV1", "\nPV1"),
}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_segment_separators_and_framing_do_not_change_the_event(framing: str) -> None:
    message = msg("EVN|A01|20240301115900-0500", PID, "PV1|1|I", "ZPD|1|Y")
    (event,) = events(FRAMINGS[framing](message))
    assert summary(event)["identifiers"] == [["MAINHOSP^MR", "900001"]]
    assert event.data_elements == ["MSH", "EVN", "PID", "PV1", "ZPD"]
    assert event.message_id == "C1"


def test_bytes_with_mllp_framing_and_bom() -> None:
    data = b"\x0b\xef\xbb\xbf" + msg(PID).encode() + b"\x1c\r"
    (event,) = events(data)
    assert event.patient.identifiers[0].value == "900001"


def test_declared_charset_is_honoured_and_undeclared_falls_back_to_cp1252() -> None:
    # 0xA4 is the euro sign in ISO 8859-15 and the currency sign in cp1252 / latin-1.
    body = "PID|1||900001^^^CAISSE\xa4^MR"
    declared = msg(body, msh="MSH|^~\\&|A|B|C|D|20240301120000-0500||ADT^A08|C1|P|2.5||||||8859/15")
    (event,) = events(declared.encode("latin-1"))
    assert event.patient.identifiers[0].system == "CAISSE\u20ac^MR"
    (event,) = events(msg(body).encode("latin-1"))
    assert event.patient.identifiers[0].system == "CAISSE\xa4^MR"
    (event,) = events(declared.encode("latin-1"), encoding="latin-1")
    assert event.patient.identifiers[0].system == "CAISSE\xa4^MR"


def test_utf8_bytes_are_read_as_utf8_when_nothing_is_declared() -> None:
    (event,) = events(msg("PID|1||900001^^^CLÍNICA^MR").encode("utf-8"))
    assert event.patient.identifiers[0].system == "CLÍNICA^MR"


def test_unknown_encoding_argument_is_a_clear_error() -> None:
    with pytest.raises(HL7v2Error, match="cannot be decoded as no-such-codec"):
        events(msg(PID).encode(), encoding="no-such-codec")


def test_escape_sequences_are_decoded_in_values() -> None:
    pid = r"PID|1||A\F\1\S\2\T\3\R\4\E\5\X41\6\H\7\N\^^^AUTH\T\X^MR"
    (event,) = events(msg(pid))
    assert event.patient.identifiers[0].value == "A|1^2&3~4\\5A67"
    assert event.patient.identifiers[0].system == "AUTH&X^MR"


def test_an_unterminated_or_unknown_escape_is_kept_as_sent() -> None:
    (event,) = events(msg(r"PID|1||C:\TEMP\QQ^^^AUTH^MR~D:\X^^^AUTH^MR"))
    assert [i.value for i in event.patient.identifiers] == [r"C:\TEMP\QQ", r"D:\X"]


def test_non_default_encoding_characters() -> None:
    message = (
        "MSH#$*!@#APP#FAC#RCV#RFAC#20240301120000-0500##ADT$A04#C9#P#2.4\r"
        "PID#1##X1$$$AUTH@1.2.3@ISO$MR*X!F!2$$$LOCAL$PI\r"
    )
    (event,) = events(message)
    assert summary(event)["identifiers"] == [["urn:oid:1.2.3", "X1"], ["LOCAL^PI", "X#2"]]
    assert event.attributes["message_type"] == "ADT^A04"
    assert event.source.system_id == "APP@FAC"


def test_a_line_that_is_not_a_segment_continues_the_previous_one() -> None:
    message = msg(PID, "OBX|1|TX|X||first line", "second line of the same text||||||F", "NTE|1||n")
    (event,) = events(message)
    assert event.data_elements == ["MSH", "PID", "OBX", "NTE"]


# --- identifiers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cx", "system"),
    [
        ("V1^^^MAINHOSP^MR", "MAINHOSP^MR"),
        ("V1^^^MAINHOSP", "MAINHOSP"),
        ("V1^^^MAINHOSP&2.16.840.1.113883.19.5&ISO^MR", "urn:oid:2.16.840.1.113883.19.5"),
        ("V1^^^&2.16.840.1.113883.19.5&ISO^PI", "urn:oid:2.16.840.1.113883.19.5"),
        ("V1^^^&urn:oid:2.16.840.1.113883.19.5&ISO", "urn:oid:2.16.840.1.113883.19.5"),
        ("V1^^^X&NOT-AN-OID&ISO^MR", "X^MR"),
        ("V1^^^&https://id.example.org/mrn&URI^MR", "https://id.example.org/mrn"),
        ("V1^^^&hosp.example.org&DNS^MR", "hosp.example.org^MR"),
        ("V1^^^^MR", "MAINHOSP^MR"),
        ("V1", "MAINHOSP"),
        ("V1^^^^SS", US_SSN),
        ("V1^^^SSA^SS", US_SSN),
        ("V1^^^&2.16.840.1.113883.4.1&ISO^SS", US_SSN),
        ("V1^^^&2.16.840.1.113883.4.1&ISO", US_SSN),
        ("V1^^^SSN", US_SSN),
        ("V1^^^&1.2.3&ISO^SS", "urn:oid:1.2.3"),
        ("V1^^^MAINHOSP^NPI", "http://hl7.org/fhir/sid/us-npi"),
        ("V1^^^NY^DL", "urn:oid:2.16.840.1.113883.4.3.36"),
        ("V1^^^XX^DL", "XX^DL"),
        ("V1^^^EPIC^mr", "EPIC^MR"),
    ],
)
def test_identifier_system_from_assigning_authority_and_type(cx: str, system: str) -> None:
    (event,) = events(msg(f"PID|1||{cx}"))
    assert summary(event)["identifiers"] == [[system, "V1"]]


def test_without_authority_the_application_is_used_when_there_is_no_facility() -> None:
    (event,) = events(msg("PID|1||V1^^^^MR", msh="MSH|^~\\&|APP||RCV||20240301120000-0500||ADT^A01|C1|P|2.3"))
    assert summary(event)["identifiers"] == [["APP^MR", "V1"]]


def test_pid3_then_pid2_then_pid4_then_mrg_in_order_without_duplicates() -> None:
    message = msg(
        "PID|1|OLD1^^^H^PT|V1^^^H^MR~V2^^^H^PI~V1^^^H^MR|ALT1^^^H^AN",
        "MRG|PRIOR1^^^H^MR~V1^^^H^MR|PRIORALT^^^H^AN||PRIOROLD^^^H^PT",
        msh="MSH|^~\\&|A|B|C|D|20240301120000-0500||ADT^A40|C1|P|2.5",
    )
    (event,) = events(message)
    assert [i.value for i in event.patient.identifiers] == [
        "V1",
        "V2",
        "OLD1",
        "ALT1",
        "PRIOR1",
        "PRIORALT",
        "PRIOROLD",
    ]
    assert event.action == "U"


def test_empty_null_oversized_and_control_character_repetitions_are_skipped() -> None:
    pid = 'PID|1||~^^^H^MR~""^^^H^MR~' + "9" * 129 + "^^^H^MR~BAD\\X00\\^^^H^MR~  ^^^H^MR~KEEP^^^H^MR"
    (event,) = events(msg(pid))
    assert summary(event)["identifiers"] == [["H^MR", "KEEP"]]


def test_at_most_twenty_identifiers_first_ones_kept() -> None:
    pid = "PID|1||" + "~".join(f"ID{n:02d}^^^H^MR" for n in range(25))
    (event,) = events(msg(pid))
    assert [i.value for i in event.patient.identifiers] == [f"ID{n:02d}" for n in range(20)]


def test_several_patients_give_one_event_each_and_repeated_patients_merge() -> None:
    message = msg(
        "EVN|A17|20240301115900-0500",
        "PID|1||P1^^^H^MR",
        "PV1|1|I",
        "PID|2||P2^^^H^MR",
        "PV1|2|I",
        "OBX|1|ST|X||y",
        "PID|3||P3^^^H^MR~P1^^^H^MR",
        "ZXX|1",
        msh="MSH|^~\\&|A|B|C|D|20240301120000-0500||ADT^A17|C1|P|2.5",
    )
    produced = events(message)
    assert [summary(e)["identifiers"] for e in produced] == [
        [["H^MR", "P2"]],
        [["H^MR", "P1"], ["H^MR", "P3"]],
    ]
    assert produced[0].data_elements == ["MSH", "EVN", "PID", "PV1", "OBX"]
    assert produced[1].data_elements == ["MSH", "EVN", "PID", "PV1", "ZXX"]


# --- time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC)),
        ("202403", datetime(2024, 3, 1, tzinfo=UTC)),
        ("20240302", datetime(2024, 3, 2, tzinfo=UTC)),
        ("2024030213", datetime(2024, 3, 2, 13, tzinfo=UTC)),
        ("202403021314", datetime(2024, 3, 2, 13, 14, tzinfo=UTC)),
        ("20240302131415", datetime(2024, 3, 2, 13, 14, 15, tzinfo=UTC)),
        ("20240302131415.1", datetime(2024, 3, 2, 13, 14, 15, 100000, tzinfo=UTC)),
        ("20240302131415.1234567", datetime(2024, 3, 2, 13, 14, 15, 123456, tzinfo=UTC)),
        ("20240302131415-0500", datetime(2024, 3, 2, 18, 14, 15, tzinfo=UTC)),
        ("20240302131415+0530", datetime(2024, 3, 2, 7, 44, 15, tzinfo=UTC)),
        ("202403021314-0030", datetime(2024, 3, 2, 13, 44, tzinfo=UTC)),
        ("20240302131415-05:00", datetime(2024, 3, 2, 18, 14, 15, tzinfo=UTC)),
    ],
)
def test_hl7_timestamps(value: str, expected: datetime) -> None:
    assert parse_hl7_timestamp(value, UTC) == expected


def test_the_offset_in_the_timestamp_wins_over_default_tz() -> None:
    assert parse_hl7_timestamp("20240302131415-0500", NY).utcoffset() == timedelta(hours=-5)
    assert parse_hl7_timestamp("20240702131415", NY) == datetime(2024, 7, 2, 17, 14, 15, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "2024-03-02", "20241302", "20240230", "202403021", "20240302131415+2400", "x"])
def test_invalid_hl7_timestamps_are_clear_errors(value: str) -> None:
    with pytest.raises(HL7v2Error, match="MSH-7"):
        parse_hl7_timestamp(value, UTC, "MSH-7")


def test_timestamp_without_offset_is_read_in_default_tz_else_the_local_zone_flagged() -> None:
    message = msg(PID, msh="MSH|^~\\&|A|B|C|D|20240301120000||ADT^A01|C1|P|2.3")
    (event,) = events(message, default_tz=NY)
    assert event.occurred_at == datetime(2024, 3, 1, 17, tzinfo=UTC)
    assert "assumed" not in event.attributes
    (event,) = events(message)
    assert event.occurred_at == datetime(2024, 3, 1, 12).astimezone()
    assert event.attributes["assumed"] == "local_time_zone"
    (event,) = events(message, occurred_at=datetime(2024, 3, 1, 12, 0, 1, tzinfo=UTC))
    assert event.occurred_at == datetime(2024, 3, 1, 12, 0, 1, tzinfo=UTC)
    assert "assumed" not in event.attributes


def test_fractional_seconds_without_a_dot() -> None:
    assert parse_hl7_timestamp("20110613122406637", UTC) == datetime(2011, 6, 13, 12, 24, 6, 637000, tzinfo=UTC)
    message = msg(PID, msh="MSH|^~\\&|A|B|C|D|20110613122406637||ADT^A01|C1|P|2.3")
    (event,) = events(message, default_tz=UTC)
    assert event.occurred_at == datetime(2011, 6, 13, 12, 24, 6, 637000, tzinfo=UTC)


def test_msh7_wins_over_evn2_then_evn2_then_the_time_of_processing() -> None:
    (event,) = events(msg("EVN|A01|20240101000000+0000", PID))
    assert event.occurred_at == datetime(2024, 3, 1, 17, tzinfo=UTC)
    assert "assumed" not in event.attributes
    no_msh7 = msg("EVN|A01|20240101000000+0000", PID, msh="MSH|^~\\&|A|B|C|D|||ADT^A01|C1|P|2.5")
    (event,) = events(no_msh7)
    assert event.occurred_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert event.attributes["assumed"] == "time_from_evn"
    bad_msh7 = msg("EVN|A01|20240101000000+0000", PID, msh="MSH|^~\\&|A|B|C|D|20241301||ADT^A01|C1|P|2.5")
    assert events(bad_msh7)[0].occurred_at == datetime(2024, 1, 1, tzinfo=UTC)
    processing = datetime(2026, 12, 5, 18, 0, 0, 123456, tzinfo=UTC)
    (event,) = events(msg(PID, msh="MSH|^~\\&|A|B|C|D|||ADT^A01|C1|P|2.5"), clock=lambda: processing)
    assert event.occurred_at == processing
    assert event.attributes["assumed"] == "time_of_processing"


# --- action, attributes, overrides ------------------------------------------------------


@pytest.mark.parametrize(
    ("msh9", "extra", "action"),
    [
        ("ADT^A01", "", "C"),
        ("ADT^A04", "", "C"),
        ("ADT^A05", "", "C"),
        ("ADT^A28", "", "C"),
        ("ADT^A02", "", "U"),
        ("ADT^A03", "", "U"),
        ("ADT^A08", "", "U"),
        ("ADT^A31", "", "U"),
        ("ADT^A40", "", "U"),
        ("ADT^A23", "", "D"),
        ("ADT^A29", "", "D"),
        ("ORM^O01", "ORC|NW|1", "C"),
        ("ORM^O01", "ORC|XO|1", "U"),
        ("OML^O21", "ORC|DC|1", "U"),
        ("RDE^O11", "", "C"),
        ("ORU^R01", "", "C"),
        ("SIU^S12", "", "C"),
        ("SIU^S15", "", "U"),
        ("SIU^S17", "", "D"),
        ("MDM^T02", "", "C"),
        ("MDM^T11", "", "D"),
        ("DFT^P03", "", "C"),
        ("BAR^P01", "", "C"),
        ("BAR^P05", "", "U"),
        ("VXU^V04", "", "C"),
        ("RSP^K22", "", "R"),
        ("QRY^A19", "", "R"),
        ("ZZZ^Z99", "", "R"),
    ],
)
def test_default_action_by_trigger(msh9: str, extra: str, action: str) -> None:
    segments = [PID, extra] if extra else [PID]
    (event,) = events(msg(*segments, msh=f"MSH|^~\\&|A|B|C|D|20240301120000-0500||{msh9}|C1|P|2.5"))
    assert event.action == action


def test_caller_arguments_override_what_the_message_says() -> None:
    (event,) = events(
        msg(PID),
        action="R",
        source={"system_id": "epic-adt", "name": "Epic ADT"},
        destination="lab-lis",
        occurred_at=datetime(2024, 5, 1, 8, 0),
        default_tz=timezone(timedelta(hours=-4)),
        purpose_of_use="TREAT",
        outcome=4,
        attributes={"channel": "ADT-IN", "message_type": "custom"},
        event_type="hl7v2-relay",
        actor={"id": "rhapsody/route-7", "type": "system", "name": "Route 7"},
    )
    data = event.to_json()
    assert data["action"] == "R"
    assert data["source"] == {"system_id": "epic-adt", "name": "Epic ADT"}
    assert data["destination"] == {"system_id": "lab-lis"}
    assert data["occurred_at"] == "2024-05-01T12:00:00.000000Z"
    assert data["purpose_of_use"] == "TREAT"
    assert data["outcome"] == 4
    assert data["event_type"] == "hl7v2-relay"
    assert data["actor"] == {"id": "rhapsody/route-7", "type": "system", "name": "Route 7"}
    assert data["attributes"] == {
        "message_type": "custom",
        "trigger_event": "A01",
        "hl7_version": "2.5.1",
        "processing_id": "P",
        "channel": "ADT-IN",
    }


def test_system_ids_are_sanitised_to_the_system_id_pattern() -> None:
    message = msg(
        PID, msh="MSH|^~\\&|Lab App (v2)|St. Mary's @ North||_ Hosp 2 _|20240301120000-0500||ADT^A01|C1|P|2.5"
    )
    (event,) = events(message)
    assert event.source.system_id == "Lab-App-v2@St.-Mary-s-North"
    assert event.destination.system_id == "Hosp-2"


def test_msh_universal_id_names_the_system_when_there_is_no_namespace() -> None:
    message = msg(PID, msh="MSH|^~\\&|^1.2.840.1^ISO|FAC|RCV|^2.16.840.1.99^ISO|20240301120000-0500||ADT^A01|C1|P|2.5")
    (event,) = events(message)
    assert (event.source.system_id, event.destination.system_id) == ("1.2.840.1@FAC", "RCV@2.16.840.1.99")


# --- clear errors, no PHI ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("", "no MSH segment"),
        ("   \r\n\r\n", "no MSH segment"),
        ("hello world", "no MSH segment"),
        (b"\x00\xff\xfe garbage \x81", "no MSH segment"),
        ("MSH", "MSH-1 .* missing"),
        ("MSHA^~\\&", "MSH-1 .* missing"),
        (msg("EVN|A01"), "no PID segment names a patient"),
        (msg("PID|1"), r"no PID segment names a patient \(1 empty PID segment\)"),
        (msg("QPD|Q|1|^^^H^MR", msh="MSH|^~\\&|A|B|C|D|20240301120000-0500||QBP^Q23|C1|P|2.5"), "QPD-3"),
        (msg(PID), "attributes: Dictionary should have at most 32 items"),
    ],
)
def test_clear_errors(message: str | bytes, error: str) -> None:
    with pytest.raises(HL7v2Error, match=error):
        events(message, attributes={f"k{n}": n for n in range(40)} if "32" in error else None)


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="no PID segment"):
        events(msg("EVN|A01"))


def test_a_bad_message_in_a_batch_does_not_refuse_the_others() -> None:
    batch = "BHS|^~\\&|A|B\r" + msg(PID) + msg("EVN|A01") + "BTS|2\r"
    (event,) = events(batch)
    assert event.patient.identifiers[0].value == "900001"
    found = read_hl7v2(batch, actor=CHANNEL)
    assert (found.units, found.event_units) == (2, (0,))
    (refusal,) = found.refusals
    assert (refusal.index, refusal.cause) == (1, Cause.NO_PATIENT)
    assert "no PID segment" in refusal.message


def test_a_batch_of_only_bad_messages_raises_naming_the_first() -> None:
    batch = "BHS|^~\\&|A|B\r" + msg("EVN|A01") + msg("EVN|A02") + "BTS|2\r"
    with pytest.raises(HL7v2Error, match=r"^message 1 of 2: no PID segment"):
        events(batch)


def test_refusals_never_contain_values_from_the_message() -> None:
    secrets = ["SECRET-MRN-777", "ZZSECRET", "19451231", "SECRETAUTH"]
    bad = [
        msg("EVN|A01|19451231", "NK1|1|ZZSECRET^SPOUSE|SECRET-MRN-777"),
        msg("QPD|Q|ZZSECRET|", msh="MSH|^~\\&|A|B|C|D|19451231||QBP^Q23|SECRET-MRN-777"),
        "ZZSECRET|SECRET-MRN-777\rMSH|^~\\&|A",
        "MSHZZSECRET|SECRET-MRN-777\rPID|1||SECRET-MRN-777^^^SECRETAUTH^MR\r",
        "MSH|^~\\&|A|B|C|D|20240301120000-0500||ADT^A01|C1\rPID|1||SECRET-MRN-777^^^SECRETAUTH^MR\r"
        + "BHS|^~\\&|A\rPID|1||SECRET-MRN-777\r",
        "SECRET-MRN-777 ZZSECRET 19451231",
    ]
    seen = 0
    for message in bad:
        found = read_hl7v2(message, actor=CHANNEL, attributes={"k": "v"})
        for refusal in found.refusals:
            text = str(refusal) + repr(refusal)
            assert not any(secret in text for secret in secrets), text
            seen += 1
    assert seen >= len(bad)


def test_an_invalid_caller_attribute_is_reported_without_the_message_values() -> None:
    with pytest.raises(HL7v2Error, match="attributes: Dictionary should have at most 32 items") as info:
        events(msg("PID|1||SECRET-MRN-777^^^H^MR"), attributes={f"k{n}": n for n in range(40)})
    assert "SECRET-MRN-777" not in str(info.value)


def test_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events(msg(r"PID|1||V1\Zfoo\\ \\X4\\^^^H^MR||ZZTEST\H\X\N\^P"))
    assert caplog.records == []


def test_message_must_be_text_or_bytes() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        events_from_hl7v2(123, actor=CHANNEL)  # type: ignore[arg-type,unused-ignore]


def test_damaged_messages_give_events_or_refusals_and_nothing_else() -> None:
    """Random byte damage to the corpus (seeded): read_hl7v2 never raises, and every unit is accounted for."""
    rng = random.Random(20240301)
    corpus = [p.read_bytes() for p in FILES]
    alphabet = b'|^~\\&#$\r\n\x0b\x1cMSHPID0123456789AZ"- '
    outcomes = {"events": 0, "refused": 0}
    for _ in range(1500):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                del data[pos : pos + rng.randint(1, 20)]
        found = read_hl7v2(bytes(data), actor=CHANNEL, default_tz=UTC)
        refused_units = {r.index for r in found.refusals}
        assert set(found.event_units) | refused_units == set(range(found.units)) or found.units == 0
        assert not set(found.event_units) & refused_units
        outcomes["events"] += bool(found.events)
        outcomes["refused"] += bool(found.refusals)
    assert outcomes["events"] > 1000 and outcomes["refused"] > 100


# --- event ids for re-runs ----------------------------------------------------------


def test_event_ids_are_new_each_time_by_default() -> None:
    message = msg("EVN|A01|20240301115900-0500", PID)
    assert events(message)[0].event_id != events(message)[0].event_id


def test_event_ids_from_the_message_are_stable_across_reruns_and_framings() -> None:
    message = msg("EVN|A01|20240301115900-0500", PID, "PV1|1|I")
    first = events(message, event_ids="from-message")
    again = events(("\x0b" + message.replace("\r", "\r\n") + "\x1c\r").encode(), event_ids="from-message")
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id.version == 5


def test_event_ids_from_the_message_differ_by_patient_control_id_destination_and_actor() -> None:
    batch = "\r".join(
        [
            "FHS|^~\\&|EPIC|MAINHOSP",
            "BHS|^~\\&|EPIC|MAINHOSP",
            msg(PID).rstrip("\r"),
            msg("PID|1||900002^^^MAINHOSP^MR||ZZTEST^OTHER").rstrip("\r"),
            "BTS|2",
            "FTS|1",
        ]
    )
    two = events(batch, event_ids="from-message")
    assert len(two) == 2 and two[0].event_id != two[1].event_id
    base = events(msg(PID), event_ids="from-message")[0].event_id
    other_id = msg(PID, msh="MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|20240301120000-0500||ADT^A01|C2|P|2.5.1")
    assert events(other_id, event_ids="from-message")[0].event_id != base
    assert events(msg(PID), event_ids="from-message", destination="ris")[0].event_id != base
    assert events(msg(PID), event_ids="from-message", actor={"id": "other", "type": "system"})[0].event_id != base


def test_event_ids_from_a_message_without_control_id_hash_the_message() -> None:
    no_id = msg(PID, msh="MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|20240301120000-0500||ADT^A01||P|2.5.1")
    first = events(no_id, event_ids="from-message")
    again = events(no_id.replace("\r", "\r\n"), event_ids="from-message")
    assert first[0].event_id == again[0].event_id
    assert first[0].attributes["assumed"] == "event_id_from_content"
    other = events(no_id.replace("900001", "900002"), event_ids="from-message")
    assert other[0].event_id != first[0].event_id
    with pytest.raises(ValueError, match="event_ids"):
        events(msg(PID), event_ids="sometimes")


def test_event_ids_from_the_message_do_not_depend_on_the_time_of_processing() -> None:
    no_time = msg(PID, msh="MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|||ADT^A01|C7|P|2.5.1")
    one = events(no_time, event_ids="from-message", clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    two = events(no_time, event_ids="from-message", clock=lambda: datetime(2026, 1, 2, tzinfo=UTC))
    assert one[0].event_id == two[0].event_id
