"""A mixed, realistic, synthetic corpus for ``auditsvc-sdk survey``, with the counts it must report.

``generate(directory, messages=N, seed=S)`` writes a site's worth of
captured traffic, all synthetic (made-up names, identifiers and dates), in
every container the survey reads:

* ``hl7/`` single messages (CR, LF and CRLF line ends) and FHS/BHS batches;
* ``captures/`` an MLLP stream (0x0B message 0x1C 0x0D), with one frame cut
  short at the end;
* ``exports/`` Mirth Connect XStream exports (the source connector's raw
  message plus a destination's transformed copy, which must not be counted
  twice; one file per message and one file of several) and an XML export of
  another engine (Rhapsody-like: ``<message><body>``, plain and base64);
* ``fhir/`` resources, searchset and transaction Bundles, a Parameters
  (member-match) carrying a Patient, NDJSON, a file with a byte-order mark,
  and an identifier with a data-absent-reason instead of a value;
* noise: a text file, an XML document with a DTD (refused), a JSON file
  that is not FHIR.

The returned :class:`Expected` holds the counts the survey must report, kept
while generating (the generator decides every shape and field it writes),
and ``secrets``: every identifier value, name and birth date written, which
must appear in no output.

Run ``python -m tests.survey_corpus DIR [--messages N]`` to write one.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SURNAMES = ("QUILLFEATHER", "MARROWBY", "THISTLEWAITE", "OAKENSHAW", "PENDERGRAVE", "WINTERBOTTOM", "ASHBOURNE")
GIVEN = ("ODALYS", "TEODORO", "MAELLE", "RORIK", "ILSABET", "CASIMIR", "YSOLDE")

# (authority CX-4 as written, label the survey prints, CX-5, how to make a value, its shape)
MRN = ("MAINHOSP", "MAINHOSP", "MR")
EMPI = ("EMPI&2.16.840.1.113883.3.9999.1&ISO", "EMPI (urn:oid:2.16.840.1.113883.3.9999.1)", "PI")
SSN = ("SSA", "SSA", "SS")
DL = ("NY", "NY", "DL")
ACCOUNT = ("", "(none)", "AN")

OFFSET_BY_MONTH = {1: "-0600", 7: "-0500"}  # America/Chicago: CST in January, CDT in July


@dataclass
class Expected:
    """What the survey must report for the corpus (exact counts)."""

    hl7_messages: int = 0
    fhir_documents: int = 0
    naming_a_patient: int = 0
    fhir_naming_a_patient: int = 0
    message_types: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    segment_messages: Counter[str] = field(default_factory=Counter)
    segment_occurrences: Counter[str] = field(default_factory=Counter)
    field_filled: Counter[str] = field(default_factory=Counter)
    with_segment: Counter[str] = field(default_factory=Counter)
    identifiers: defaultdict[tuple[str, str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    placeholders: Counter[str] = field(default_factory=Counter)
    times: Counter[str] = field(default_factory=Counter)
    offsets: Counter[str] = field(default_factory=Counter)
    no_authority_by_sender: Counter[str] = field(default_factory=Counter)
    shared_identifiers: int = 0
    empty_pid_segments: int = 0
    containers: Counter[str] = field(default_factory=Counter)
    unreadable: Counter[str] = field(default_factory=Counter)
    fhir_top_level: Counter[str] = field(default_factory=Counter)
    fhir_identifiers: defaultdict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    fhir_identifiers_without_value: Counter[str] = field(default_factory=Counter)
    fhir_resources_inside_parameters: int = 0
    fhir_with_bom: int = 0
    secrets: set[str] = field(default_factory=set)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.expected = Expected()
        self.patients: list[dict[str, Any]] = []
        self.control = 0
        self.shared_mrn: str | None = None
        self.shared_mrn_people: set[tuple[str, str]] = set()

    # --- values with known shapes ---------------------------------------------------

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def secret(self, value: str) -> str:
        self.expected.secrets.add(value)
        return value

    def patient(self) -> dict[str, Any]:
        """A fresh synthetic patient (made-up MRN, EMPI id, SSN, licence, name and birth date)."""
        ssn = f"{self.rng.randint(400, 665)}{self.digits(6)}"
        p = {
            "mrn": self.secret("M" + str(self.rng.randint(1000000, 9999999))),
            "empi": self.secret(str(self.rng.randint(1000000000, 9999999999))),
            "ssn": self.secret(ssn),
            "ssn_dashed": self.secret(f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}"),
            "dl": self.secret(
                f"{self.rng.randint(100, 999)}-{self.rng.randint(100, 999)}-{self.rng.randint(100, 999)}"
            ),
            "account": self.secret(str(self.rng.randint(10000000, 99999999))),
            "family": self.secret(self.rng.choice(SURNAMES) + self.rng.choice(("", "-SMYTHE", "SON"))),
            "given": self.secret(self.rng.choice(GIVEN)),
            "dob": self.secret(
                f"{self.rng.randint(1930, 2020)}{self.rng.randint(1, 12):02d}{self.rng.randint(1, 28):02d}"
            ),
        }
        self.patients.append(p)
        return p

    # --- HL7 v2 ------------------------------------------------------------------------

    def hl7_message(self) -> str:
        """One message; its expected counts recorded."""
        e = self.expected
        r = self.rng.random()
        kind = (
            "ADT^A01" if r < 0.22 else
            "ADT^A08" if r < 0.40 else
            "ADT^A04" if r < 0.50 else
            "ORU^R01" if r < 0.68 else
            "SIU^S12" if r < 0.75 else
            "VXU^V04" if r < 0.82 else
            "ADT^A40" if r < 0.86 else
            "QBP^Q11" if r < 0.90 else
            "ACK" if r < 0.96 else
            "MFN^M02"
        )  # fmt: skip
        version = self.rng.choice(("2.3", "2.4", "2.5.1", "2.5.1", "2.6"))
        self.control += 1
        sender_empty = self.rng.random() < 0.05
        app, facility = ("", "") if sender_empty else self.rng.choice((("EPIC", "MAINHOSP"), ("LAB", "CENTRALLAB")))
        sender = f"{app}@{facility}" if app else "(none)"
        month = self.rng.choice((1, 7))
        base = f"2025{month:02d}{self.rng.randint(1, 28):02d}{self.rng.randint(0, 23):02d}{self.rng.randint(0, 59):02d}"
        form = self.rng.random()
        evn = (kind.startswith("ADT") and kind != "ADT^A40") or self.rng.random() < 0.1
        if form < 0.45:
            msh7, time_form = base + f"{self.rng.randint(0, 59):02d}", "MSH-7 without offset"
        elif form < 0.80:
            offset = OFFSET_BY_MONTH[month]
            msh7, time_form = base + f"{self.rng.randint(0, 59):02d}" + offset, "MSH-7 with offset"
            e.offsets[offset] += 1
        elif form < 0.90:
            msh7, time_form = base + f"{self.rng.randint(0, 59):02d}" + self.digits(3), "MSH-7 fraction without '.'"
        elif form < 0.95:
            msh7, time_form = base, "MSH-7 without offset"
        else:
            msh7 = ""
            time_form = "EVN-2 without offset" if evn else "no MSH-7 and no EVN-2"
        e.times[time_form] += 1
        trigger = kind.partition("^")[2]
        structure = {"ADT^A01": "ADT_A01", "ADT^A08": "ADT_A01", "ADT^A04": "ADT_A01", "ORU^R01": "ORU_R01"}.get(kind)
        msh9 = kind + (f"^{structure}" if structure and version != "2.3" else "")
        segments = [f"MSH|^~\\&|{app}|{facility}|RCV|RCVFAC|{msh7}||{msh9}|C{self.control:07d}|P|{version}"]
        filled = {"MSH-7"} if msh7 else set()
        filled |= {"MSH-9", "MSH-10", "MSH-12", "MSH-5", "MSH-6"} | ({"MSH-3", "MSH-4"} if app else set())
        if evn:
            segments.append(f"EVN|{trigger}|{base}")
            filled.add("EVN-2")
        names_patient = False
        if kind in ("ACK", "MFN^M02"):
            segments += ["MSA|AA|C0000001"] if kind == "ACK" else ["MFI|LOC||UPD", "MFE|MAD|||ROOM-12"]
        elif kind == "QBP^Q11":
            p = self.patient()
            segments.append(f"QPD|Z34^Request Immunization History^CDCPHINVS|Q{self.control}|{p['mrn']}^^^MAINHOSP^MR")
            segments.append("RCP|I|5^RD")
            filled.add("QPD-3")
            names_patient = True
        else:
            if self.rng.random() < 0.03:
                segments.append("PID|")
                e.empty_pid_segments += 1
            p = self.patient()
            segments.append(self.pid(p, sender, filled))
            names_patient = True
            if kind == "ADT^A40":
                old = self.secret("M" + str(self.rng.randint(1000000, 9999999)))
                segments.append(f"MRG|{old}^^^MAINHOSP^MR")
                e.identifiers[("MRG-1", "MAINHOSP", "MR")]["A + 7 digits"] += 1
                filled.add("MRG-1")
            if self.rng.random() < 0.3:
                segments.append("PV1|1|I|4N^401^A")
            if kind == "ORU^R01":
                segments.append("OBR|1|PL123|FL456|24331-1^Lipid panel^LN")
                for i in range(self.rng.randint(1, 3)):
                    segments.append(f"OBX|{i + 1}|NM|2093-3^Cholesterol^LN||{self.rng.randint(120, 260)}|mg/dL")
            if kind == "VXU^V04":
                segments.append("RXA|0|1|20250101||141^Influenza^CVX|0.5|mL")
            if kind == "SIU^S12":
                segments.insert(1, "SCH|A100|B200||||ROUTINE")
            if self.rng.random() < 0.25:
                segments.append(f"ZPD|1|{self.rng.choice(('VIP', 'STAFF', 'NONE'))}")
            if self.rng.random() < 0.1:
                segments.append("ZIN|PLAN-A")
        e.hl7_messages += 1
        e.naming_a_patient += names_patient
        e.message_types[kind] += 1
        e.versions[version] += 1
        ids = [s[:3] for s in segments]
        e.segment_messages.update(set(ids))
        e.segment_occurrences.update(ids)
        for seg in {"MSH", "EVN", "PID", "MRG", "QPD", "QRD"} & set(ids):
            e.with_segment[seg] += 1
        e.field_filled.update(filled)
        return "\r".join(segments)

    def pid(self, p: dict[str, Any], sender: str, filled: set[str]) -> str:
        e = self.expected
        reps = []
        r = self.rng.random()
        if r < 0.6:
            mrn = p["mrn"]
            if self.rng.random() < 0.04:  # the same MRN on two different people: a shared value
                if self.shared_mrn is None:
                    self.shared_mrn = mrn
                mrn = self.shared_mrn
                self.shared_mrn_people.add((p["family"] + "^" + p["given"], p["dob"]))
            reps.append(f"{mrn}^^^MAINHOSP^MR")
            e.identifiers[("PID-3", "MAINHOSP", "MR")]["A + 7 digits"] += 1
        elif r < 0.85:
            reps.append(f"{p['empi']}^^^{EMPI[0]}^PI")
            e.identifiers[("PID-3", EMPI[1], "PI")]["10 digits"] += 1
        else:
            reps.append(f"{p['account']}^^^^AN")
            e.identifiers[("PID-3", "(none)", "AN")]["8 digits"] += 1
            e.no_authority_by_sender[sender] += 1
        s = self.rng.random()
        if s < 0.15:
            reps.append(f"{p['ssn']}^^^SSA^SS")
            e.identifiers[("PID-3", "SSA", "SS")]["9 digits"] += 1
        elif s < 0.22:
            reps.append(f"{p['ssn_dashed']}^^^SSA^SS")
            e.identifiers[("PID-3", "SSA", "SS")]["3 digits + - + 2 digits + - + 4 digits"] += 1
        elif s < 0.27:
            placeholder = self.rng.choice(("123456789", "000000000", "REDACTED"))
            reps.append(f"{placeholder}^^^SSA^SS")
            e.identifiers[("PID-3", "SSA", "SS")]["placeholder"] += 1
            e.placeholders[placeholder] += 1
        if self.rng.random() < 0.1:
            reps.append(f"{p['dl']}^^^NY^DL")
            e.identifiers[("PID-3", "NY", "DL")]["3 digits + - + 3 digits + - + 3 digits"] += 1
        filled |= {"PID-3", "PID-5", "PID-7"}
        return f"PID|1||{'~'.join(reps)}||{p['family']}^{p['given']}||{p['dob']}|{self.rng.choice('MFU')}"

    # --- FHIR --------------------------------------------------------------------------

    def fhir_patient(self, p: dict[str, Any], *, masked: bool = False) -> dict[str, Any]:
        e = self.expected
        identifiers: list[dict[str, Any]] = [{"system": "urn:oid:2.16.840.1.113883.3.1234.1.1", "value": p["mrn"]}]
        e.fhir_identifiers[("urn:oid:2.16.840.1.113883.3.1234.1.1", "Patient")]["A + 7 digits"] += 1
        if masked:
            absent = {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}
            identifiers.append({"system": "http://hl7.org/fhir/sid/us-ssn", "_value": {"extension": [absent]}})
            e.fhir_identifiers_without_value["http://hl7.org/fhir/sid/us-ssn"] += 1
        elif self.rng.random() < 0.4:
            identifiers.append({"system": "http://hl7.org/fhir/sid/us-ssn", "value": p["ssn"]})
            e.fhir_identifiers[("http://hl7.org/fhir/sid/us-ssn", "Patient")]["9 digits"] += 1
        pid = self.secret(f"pat-{self.digits(6)}")
        return {
            "resourceType": "Patient",
            "id": pid,
            "identifier": identifiers,
            "name": [{"family": p["family"].title(), "given": [p["given"].title()]}],
            "birthDate": f"{p['dob'][:4]}-{p['dob'][4:6]}-{p['dob'][6:]}",
        }

    def fhir_documents(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        """(name, document) pairs; expected counts recorded."""
        e = self.expected
        docs: list[tuple[str, dict[str, Any]]] = []
        for i in range(n):
            r = self.rng.random()
            p = self.patient()
            if r < 0.3:
                doc = self.fhir_patient(p, masked=self.rng.random() < 0.1)
                label = "Patient"
            elif r < 0.55:
                doc = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "Glucose"},
                    "subject": {"reference": f"Patient/{self.secret('pat-' + self.digits(6))}"},
                }
                label = "Observation"
            elif r < 0.8:
                pat = self.fhir_patient(p)
                obs = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "Heart rate"},
                    "subject": {"reference": f"Patient/{pat['id']}"},
                }
                doc = {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [
                        {"fullUrl": f"https://fhir.example.org/r4/Patient/{pat['id']}", "resource": pat},
                        {"resource": obs},
                    ],
                }
                label = "Bundle (searchset)"
            elif r < 0.9:
                pat = self.fhir_patient(p)
                doc = {
                    "resourceType": "Parameters",
                    "parameter": [
                        {"name": "MemberPatient", "resource": pat},
                        {"name": "Consent", "valueString": "on file"},
                    ],
                }
                e.fhir_resources_inside_parameters += 1
                label = "Parameters"
            else:
                doc = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance"}
                label = "CapabilityStatement"
                self.patients.pop()
            e.fhir_documents += 1
            e.fhir_top_level[label] += 1
            e.fhir_naming_a_patient += label != "CapabilityStatement"
            docs.append((f"{label.split()[0].lower()}-{i:05d}.json", doc))
        return docs


def _mirth_message(message_id: int, raw: str, transformed: str) -> str:
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")

    def connector(meta: int, name: str, content: str, content_type: str) -> str:
        return (
            f"<entry><int>{meta}</int><connectorMessage><messageId>{message_id}</messageId>"
            f"<metaDataId>{meta}</metaDataId><channelId>0f3c2b1a</channelId><channelName>ADT-IN</channelName>"
            f"<connectorName>{name}</connectorName><serverId>srv-1</serverId><status>SENT</status>"
            f"<{content_type}><channelId>0f3c2b1a</channelId><messageId>{message_id}</messageId>"
            f"<metaDataId>{meta}</metaDataId><contentType>{content_type.upper()}</contentType>"
            f"<content>{esc(content)}</content><dataType>HL7V2</dataType><encrypted>false</encrypted>"
            f"</{content_type}></connectorMessage></entry>"
        )

    return (
        f"<message><messageId>{message_id}</messageId><serverId>srv-1</serverId><channelId>0f3c2b1a</channelId>"
        '<processed>true</processed><connectorMessages class="linked-hash-map">'
        + connector(0, "Source", raw, "raw")
        + connector(1, "Destination 1", transformed, "raw")
        + "</connectorMessages></message>"
    )


def generate(directory: Path, *, messages: int = 400, fhir: int = 60, seed: int = 18) -> Expected:
    """Write the corpus under ``directory`` and return what the survey must report."""
    gen = _Gen(seed)
    e = gen.expected
    hl7_dir, cap_dir, exp_dir, fhir_dir = (directory / d for d in ("hl7", "captures", "exports", "fhir"))
    for d in (hl7_dir, cap_dir, exp_dir, fhir_dir):
        d.mkdir(parents=True, exist_ok=True)
    all_messages = [gen.hl7_message() for _ in range(messages)]
    rng = gen.rng
    # Split the messages over the containers, in order: 30 % single files, 20 % batches, 20 % MLLP,
    # 15 % Mirth exports, 15 % another engine's XML export.
    cuts = [int(messages * f) for f in (0.30, 0.50, 0.70, 0.85)]
    singles, batched, framed, mirth, other = (
        all_messages[: cuts[0]],
        all_messages[cuts[0] : cuts[1]],
        all_messages[cuts[1] : cuts[2]],
        all_messages[cuts[2] : cuts[3]],
        all_messages[cuts[3] :],
    )
    for i, msg in enumerate(singles):
        ending = rng.choice(("\r", "\n", "\r\n"))
        (hl7_dir / f"msg-{i:05d}.hl7").write_bytes((msg.replace("\r", ending) + ending).encode())
    e.containers["file"] += len(singles)
    for b in range(0, len(batched), 25):
        chunk = batched[b : b + 25]
        body = "\r".join(["FHS|^~\\&|EPIC|MAINHOSP", "BHS|^~\\&|EPIC|MAINHOSP", *chunk, f"BTS|{len(chunk)}", "FTS|1"])
        (hl7_dir / f"batch-{b // 25:03d}.hl7").write_bytes(body.encode() + b"\r")
    e.containers["batch"] += len(batched)
    stream = b"".join(b"\x0b" + m.encode() + b"\r\x1c\r" for m in framed) + b"\x0bMSH|^~\\&|CUT"
    (cap_dir / "adt-feed.mllp").write_bytes(stream)
    e.containers["mllp"] += len(framed)
    e.unreadable["mllp-truncated-frame"] += 1
    half = len(mirth) // 2
    for i, msg in enumerate(mirth[:half]):
        (exp_dir / f"mirth-{i:05d}.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n' + _mirth_message(i + 1, msg, msg.replace("RCVFAC", "OUTFAC"))
        )
    concatenated = "".join(
        '<?xml version="1.0" encoding="UTF-8"?>\n' + _mirth_message(1000 + i, msg, "transformed")
        for i, msg in enumerate(mirth[half:])
    )
    (exp_dir / "mirth-batch-export.xml").write_text(concatenated)
    e.containers["mirth"] += len(mirth)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<messages>"]
    for i, msg in enumerate(other):
        if i % 2:
            body = f'<body encoding="base64">{base64.b64encode(msg.encode()).decode()}</body>'
        else:
            body = "<body><![CDATA[" + msg.replace("\r", "\n") + "]]></body>"
        parts.append(
            f'<message id="{i + 1}"><properties><property name="InputTime">0</property></properties>{body}</message>'
        )
    parts.append("</messages>")
    (exp_dir / "rhapsody-export.xml").write_text("\n".join(parts))
    e.containers["xml-export"] += len(other)
    # FHIR
    docs = gen.fhir_documents(fhir)
    ndjson, files = docs[: fhir // 5], docs[fhir // 5 :]
    for name, doc in files:
        (fhir_dir / name).write_text(json.dumps(doc, indent=1))
    e.containers["json"] += len(files)
    (fhir_dir / "export.ndjson").write_text("".join(json.dumps(d) + "\n" for _, d in ndjson))
    e.containers["ndjson"] += len(ndjson)
    first = sorted(files)[0][0]
    (fhir_dir / first).write_bytes(b"\xef\xbb\xbf" + (fhir_dir / first).read_bytes())
    e.fhir_with_bom += 1
    # Noise the survey must count and skip.
    (directory / "README.txt").write_text("Captured from the ADT feed, test week.\n")
    e.unreadable["not-hl7v2-or-fhir"] += 1
    (exp_dir / "with-dtd.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><m>&b;</m>'
    )
    e.unreadable["xml-dtd-refused"] += 1
    (fhir_dir / "settings.json").write_text('{"channel": "ADT-IN"}')
    e.unreadable["json-not-a-fhir-resource"] += 1
    e.shared_identifiers = 1 if len(gen.shared_mrn_people) > 1 else 0
    return e


def main() -> None:
    parser = argparse.ArgumentParser(description="write a synthetic corpus for auditsvc-sdk survey")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--fhir", type=int, default=60)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    e = generate(args.directory, messages=args.messages, fhir=args.fhir, seed=args.seed)
    print(f"{e.hl7_messages} HL7 v2 messages, {e.fhir_documents} FHIR documents in {args.directory}")


if __name__ == "__main__":
    main()
