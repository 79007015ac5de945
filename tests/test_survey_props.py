"""Property tests: the survey reads mutated real-shaped traffic without crashing and prints no value of it."""

from __future__ import annotations

import json

from auditsvc_sdk._survey import Survey
from auditsvc_sdk._survey_read import read_bytes
from auditsvc_sdk.survey import render_html
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Distinctive synthetic values: any hit in an output is a leak.
MRN, SSN, NAME, DOB = "QX7K29M4", "471209385", "VELLACOURT", "19561103"
SEGMENTS = [
    "MSH|^~\\&|EPIC|MAINHOSP|LAB|LABFAC|20250712083015-0500||ADT^A08^ADT_A01|C0001|P|2.5.1",
    "EVN|A08|20250712083015",
    f"PID|1||{MRN}^^^MAINHOSP^MR~{SSN}^^^SSA^SS||{NAME}^ODALYS||{DOB}|F",
    "PV1|1|I|4N^401^A",
    "OBX|1|TX|NOTE^Note||line one",
    "ZPD|1|VIP",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    segments = list(SEGMENTS)
    # Drop fields here and there (never the MSH header's first two).
    for i in range(len(segments)):
        fields = segments[i].split("|")
        keep_from = 3 if i == 0 else 1
        drops = draw(st.lists(st.integers(keep_from, max(keep_from, len(fields) - 1)), max_size=2))
        for d in sorted(set(drops), reverse=True):
            if d < len(fields):
                fields[d] = ""
        segments[i] = "|".join(fields)
    # Z-segments and empty PIDs added anywhere after MSH.
    for extra in draw(st.lists(st.sampled_from(["ZIN|PLAN-A", "PID|", "ZXX|1|2|3", "NTE|1||free text"]), max_size=3)):
        segments.insert(draw(st.integers(1, len(segments))), extra)
    text = draw(st.sampled_from(["\r", "\n", "\r\n"])).join(segments)
    # Other separators, used consistently.
    fs, cs = draw(st.sampled_from([("|", "^"), ("#", "$"), ("!", "@")]))
    if fs != "|":
        text = text.replace("|", "\x00").replace("^", cs).replace("\x00", fs)
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-8-sig", "utf-16"]))
    data = text.encode(encoding)
    container = draw(st.sampled_from(["plain", "mllp", "batch", "mirth"]))
    if container == "mllp":
        data = b"\x0b" + data + b"\x1c\r"
    elif container == "batch":
        data = b"FHS|^~\\&\rBHS|^~\\&\r" + data + b"\rBTS|1\rFTS|1"
    elif container == "mirth":
        body = text.replace("&", "&amp;").replace("<", "&lt;").replace("\r", "&#13;")
        data = (
            "<message><connectorMessages><entry><connectorMessage><metaDataId>0</metaDataId>"
            f"<raw><content>{body}</content></raw></connectorMessage></entry></connectorMessages></message>"
        ).encode()
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return data if cut is None else data[:cut]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_never_crash_and_never_leak(data: bytes) -> None:
    run = Survey()
    for item in read_bytes(data):
        run.add(item)
    report = run.report()
    outputs = json.dumps(report) + render_html(report)
    for secret in (MRN, SSN, NAME, DOB):
        assert secret not in outputs


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    run = Survey()
    for item in read_bytes(data):
        run.add(item)
    json.dumps(run.report())


def test_a_value_written_in_the_authority_component_is_printed_as_a_shape() -> None:
    message = f"MSH|^~\\&|EPIC|MAINHOSP|||20250101||ADT^A01|1|P|2.5.1\rPID|1||X^^^{SSN}^MR||{NAME}"
    run = Survey()
    for item in read_bytes(message.encode()):
        run.add(item)
    report = run.report()
    assert [r["authority"] for r in report["hl7v2"]["identifiers"]] == ["(digits: 9 digits)"]
    assert SSN not in json.dumps(report)
