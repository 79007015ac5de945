"""What the survey counts in HL7 v2 messages: structure and fill, never values.

:class:`HL7Stats` reads each message with a plain split on its own
separators (fast, and independent of the helpers, so a message the helpers
refuse is still described) and keeps only counts, codes the standard
defines (message types, versions, segment ids, charsets, time zone
offsets), the names of sending systems and assigning authorities, and the
*shapes* of identifier values. Values themselves are held only as keyed
hashes in memory, to notice one identifier shared by differently named
patients (a placeholder that would link them), and never leave the object.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from typing import Any

from ._survey_shape import placeholder_label, value_shape
from .helpers import IdentifierPolicy

__all__ = ["TRACKED_FIELDS", "HL7Stats"]

# The fields the helpers read (see _hl7v2's docstring), in report order.
TRACKED_FIELDS = (
    ("MSH", 3),
    ("MSH", 4),
    ("MSH", 5),
    ("MSH", 6),
    ("MSH", 7),
    ("MSH", 9),
    ("MSH", 10),
    ("MSH", 12),
    ("MSH", 18),
    ("EVN", 2),
    ("PID", 2),
    ("PID", 3),
    ("PID", 4),
    ("PID", 5),
    ("PID", 7),
    ("MRG", 1),
    ("QPD", 3),
    ("QRD", 8),
)
_TRACKED = defaultdict(list)
for _seg, _num in TRACKED_FIELDS:
    _TRACKED[_seg].append(_num)

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_CODE = re.compile(r"[A-Z0-9]{3}")
_VERSION = re.compile(r"\d\.\d{1,2}(?:\.\d{1,2})?")
_TS = re.compile(r"(\d{4,})(\.\d{1,9})?([+-]\d{4})?")
_NAME = re.compile(r"[^A-Za-z0-9_.:/+~@ -]+")
_CHARSETS = {"ASCII", "8859/1", "8859/15", "UNICODE UTF-8", "UNICODE", "UTF-8", "ISO IR6", "ISO IR100", "ISO IR192"}
_IDENTIFIER_FIELDS = (("PID", 3), ("PID", 2), ("PID", 4), ("MRG", 1))


def _name(value: str, limit: int = 64) -> str:
    """A system or authority name as a label: printable, bounded."""
    return _NAME.sub("-", value.strip())[:limit] or "(empty)"


# What an assigning authority looks like; anything else in CX-4 may be a misplaced value and is shown as a shape.
_UNIVERSAL_ID = re.compile(
    r"urn:oid:[0-2](\.\d+)+|urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|(?!urn:oid:|urn:uuid:)[A-Za-z][A-Za-z0-9+.-]*:[^\s]*[A-Za-z][^\s]*"
)
_VALUE_LIKE = re.compile(r"[^A-Za-z]*\d[^A-Za-z]*\d[^A-Za-z]*\d[^A-Za-z]*\d[^A-Za-z]*")


def _authority_name(namespace: str) -> str:
    """A CX-4 namespace as printed: itself, unless it is made of digits (a value written in the wrong place)."""
    namespace = namespace.strip()
    if _VALUE_LIKE.fullmatch(namespace):
        return f"(digits: {value_shape(namespace)})"
    return _name(namespace) if namespace else ""


def _filled(value: str) -> bool:
    return bool(value) and value != '""' and value.strip("^~&\\ ") != ""


class HL7Stats:
    """Counts over HL7 v2 messages; ``add`` one message at a time."""

    def __init__(self, policy: IdentifierPolicy | None = None) -> None:
        self.policy = policy or IdentifierPolicy()
        self.messages = 0
        self.last_type = ""
        self.names_patient = 0
        self.message_types: Counter[str] = Counter()
        self.structures: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.charsets: Counter[str] = Counter()
        self.senders: Counter[str] = Counter()
        self.segment_messages: Counter[str] = Counter()
        self.segment_occurrences: Counter[str] = Counter()
        self.with_segment: Counter[str] = Counter()
        self.field_filled: Counter[str] = Counter()
        self.times: Counter[str] = Counter()
        self.time_precision: Counter[str] = Counter()
        self.offsets: Counter[str] = Counter()
        self.offsets_by_month: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.identifiers: defaultdict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        self.identifier_reps: Counter[str] = Counter()
        self.cx4_filled: Counter[str] = Counter()
        self.cx5_filled: Counter[str] = Counter()
        self.placeholders: Counter[str] = Counter()
        self.no_authority_senders: Counter[str] = Counter()
        self.malformed_segment_ids = 0
        self.empty_pid_segments = 0
        self._key = os.urandom(16)
        self._people_by_identifier: defaultdict[bytes, set[bytes]] = defaultdict(set)
        self._identifier_label: dict[bytes, tuple[str, str]] = {}

    # --- one message -------------------------------------------------------------

    def add(self, data: bytes) -> bool:
        """Count one message; True when it names a patient (an identifier in PID, MRG, QPD-3 or QRD-8)."""
        text = data.decode("utf-8", errors="replace")
        lines = [line for line in re.split(r"\r\n|\r|\n", text) if line]
        msh = lines[0]
        fs = msh[3]
        enc = msh.split(fs)[1] if len(msh.split(fs)) > 1 else ""
        cs = enc[0] if len(enc) > 0 else "^"
        rs = enc[1] if len(enc) > 1 else "~"
        ss = enc[3] if len(enc) > 3 else "&"
        self.messages += 1
        seen: set[str] = set()
        filled: set[str] = set()
        names_patient = False
        msh_fields = [fs, *msh.split(fs)[1:]]  # msh_fields[n - 1] is MSH-n
        msh_fields.insert(0, "MSH")
        for line in lines:
            seg = line[:3]
            if not _SEGMENT_ID.fullmatch(seg) or line[3:4] not in ("", fs):
                self.malformed_segment_ids += 1
                continue
            self.segment_occurrences[seg] += 1
            seen.add(seg)
            numbers = _TRACKED.get(seg)
            if not numbers:
                continue
            fields = msh_fields if seg == "MSH" else line.split(fs)
            for n in numbers:
                if n < len(fields) and _filled(fields[n]):
                    filled.add(f"{seg}-{n}")
            if seg == "PID":
                if not any(_filled(f) for f in fields[1:]):
                    self.empty_pid_segments += 1
                    continue
                names_patient |= self._identifiers(fields, seg, msh_fields, cs, rs, ss, lines)
            elif seg == "MRG":
                names_patient |= self._identifiers(fields, seg, msh_fields, cs, rs, ss, lines)
            elif (seg == "QPD" and len(fields) > 3 and _filled(fields[3].split(cs)[0])) or (
                seg == "QRD" and len(fields) > 8 and _filled(fields[8])
            ):
                names_patient = True
        for seg in seen:
            self.segment_messages[seg] += 1
            if seg in _TRACKED:
                self.with_segment[seg] += 1
        self.field_filled.update(filled)
        self._header(msh_fields, cs)
        self._time(msh_fields, lines, fs, cs)
        self.names_patient += names_patient
        return names_patient

    def _header(self, msh: list[str], cs: str) -> None:
        def get(n: int) -> str:
            return msh[n] if n < len(msh) else ""

        msg_type = get(9).split(cs)
        code = msg_type[0] if msg_type and _CODE.fullmatch(msg_type[0]) else "?"
        trigger = msg_type[1] if len(msg_type) > 1 and _CODE.fullmatch(msg_type[1]) else ""
        self.last_type = f"{code}^{trigger}" if trigger else code
        self.message_types[self.last_type] += 1
        if len(msg_type) > 2 and msg_type[2]:
            self.structures[msg_type[2] if re.fullmatch(r"[A-Z0-9_]{3,7}", msg_type[2]) else "?"] += 1
        version = get(12).split(cs)[0]
        self.versions[version if _VERSION.fullmatch(version) else ("(empty)" if not version else "?")] += 1
        charset = get(18).split(cs)[0].strip().upper()
        if charset:
            self.charsets[charset if charset in _CHARSETS else "other"] += 1
        self.senders[self.sender(msh, cs)] += 1

    @staticmethod
    def sender(msh: list[str], cs: str) -> str:
        app = msh[3].split(cs)[0] if len(msh) > 3 else ""
        facility = msh[4].split(cs)[0] if len(msh) > 4 else ""
        if app and facility:
            return _name(f"{app}@{facility}")
        return _name(app or facility) if (app or facility) else "(none)"

    def _time(self, msh: list[str], lines: list[str], fs: str, cs: str) -> None:
        value = msh[7].split(cs)[0] if len(msh) > 7 else ""
        source = "MSH-7"
        if not value:
            evn = next((line for line in lines if line.startswith("EVN" + fs)), None)
            evn_fields = evn.split(fs) if evn else []
            value = evn_fields[2].split(cs)[0] if len(evn_fields) > 2 else ""
            source = "EVN-2"
        if not value:
            self.times["no MSH-7 and no EVN-2"] += 1
            return
        match = _TS.fullmatch(value)
        if match is None:
            self.times[f"{source} unreadable"] += 1
            return
        digits, fraction, offset = match.groups()
        if len(digits) > 14:
            self.times[f"{source} fraction without '.'"] += 1
            digits = digits[:14]
        elif offset:
            self.times[f"{source} with offset"] += 1
        else:
            self.times[f"{source} without offset"] += 1
        precision = {4: "year", 6: "month", 8: "day", 10: "hour", 12: "minute", 14: "second"}.get(len(digits), "other")
        self.time_precision[precision + (" + fraction" if fraction else "")] += 1
        if offset:
            self.offsets[offset] += 1
            if len(digits) >= 6:
                self.offsets_by_month[f"{digits[:4]}-{digits[4:6]}"][offset] += 1

    def _identifiers(
        self, fields: list[str], seg: str, msh: list[str], cs: str, rs: str, ss: str, lines: list[str]
    ) -> bool:
        named = False
        person = self._person(fields) if seg == "PID" else None
        for fseg, number in _IDENTIFIER_FIELDS:
            if fseg != seg or number >= len(fields):
                continue
            label = f"{seg}-{number}"
            for rep in fields[number].split(rs):
                cx = rep.split(cs)
                value = cx[0]
                if not _filled(value):
                    continue
                named = True
                self.identifier_reps[label] += 1
                hd = cx[3].split(ss) if len(cx) > 3 else [""]
                id_type = _name(cx[4], 8) if len(cx) > 4 and cx[4] else ""
                authority = self._authority(hd)
                if authority == "(none)":
                    self.no_authority_senders[self.sender(msh, cs)] += 1
                else:
                    self.cx4_filled[label] += 1
                if id_type:
                    self.cx5_filled[label] += 1
                if self.policy.is_placeholder(value):
                    self.placeholders[placeholder_label(value, self.policy.placeholders)] += 1
                    self.identifiers[(authority, id_type, label)]["placeholder"] += 1
                    continue
                self.identifiers[(authority, id_type, label)][value_shape(value)] += 1
                if person is not None:
                    key = hashlib.blake2b(f"{authority}\x00{id_type}\x00{value}".encode(), key=self._key).digest()
                    self._people_by_identifier[key].add(person)
                    self._identifier_label.setdefault(key, (authority, value_shape(value)))
        return named

    def _person(self, fields: list[str]) -> bytes | None:
        """A keyed hash of name and birth date: tells people apart, reveals neither."""
        name = fields[5].strip().upper() if len(fields) > 5 else ""
        birth = fields[7][:8] if len(fields) > 7 else ""
        if not name and not birth:
            return None
        return hashlib.blake2b(f"{name}\x00{birth}".encode(), key=self._key, digest_size=8).digest()

    @staticmethod
    def _authority(hd: list[str]) -> str:
        namespace = _authority_name(hd[0]) if hd else ""
        universal = hd[1].strip() if len(hd) > 1 else ""
        utype = hd[2].strip().upper() if len(hd) > 2 else ""
        if universal:
            prefix = {"ISO": "urn:oid:", "UUID": "urn:uuid:"}.get(utype, "")
            uid = universal if universal.startswith(prefix) else prefix + universal
            uid = _name(uid) if _UNIVERSAL_ID.fullmatch(uid) else f"(universal id: {value_shape(universal)})"
            return f"{namespace} ({uid})" if namespace else uid
        return namespace or "(none)"

    # --- results -------------------------------------------------------------------

    def shared_identifiers(self) -> Counter[tuple[str, str]]:
        """(authority, shape) of identifier values carried by more than one name and birth date."""
        shared: Counter[tuple[str, str]] = Counter()
        for key, people in self._people_by_identifier.items():
            if len(people) > 1:
                shared[self._identifier_label[key]] += 1
        return shared

    def to_dict(self) -> dict[str, Any]:
        fill = []
        for seg, number in TRACKED_FIELDS:
            with_segment = self.with_segment[seg]
            fill.append(
                {"field": f"{seg}-{number}", "filled": self.field_filled[f"{seg}-{number}"], "of": with_segment}
            )
        identifiers = [
            {
                "field": label,
                "authority": authority,
                "type": id_type,
                "count": sum(shapes.values()),
                "shapes": dict(shapes.most_common()),
            }
            for (authority, id_type, label), shapes in sorted(
                self.identifiers.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])
            )
        ]
        return {
            "messages": self.messages,
            "naming_a_patient": self.names_patient,
            "message_types": dict(self.message_types.most_common()),
            "message_structures": dict(self.structures.most_common()),
            "versions": dict(self.versions.most_common()),
            "charsets": dict(self.charsets.most_common()),
            "sending_systems": dict(self.senders.most_common()),
            "segments": {
                seg: {"messages": self.segment_messages[seg], "occurrences": self.segment_occurrences[seg]}
                for seg, _ in self.segment_messages.most_common()
            },
            "z_segments": {
                seg: {"messages": self.segment_messages[seg], "occurrences": self.segment_occurrences[seg]}
                for seg, _ in self.segment_messages.most_common()
                if seg.startswith("Z")
            },
            "malformed_segment_lines": self.malformed_segment_ids,
            "empty_pid_segments": self.empty_pid_segments,
            "field_fill": fill,
            "identifier_fill": {
                label: {"repetitions": n, "with_authority": self.cx4_filled[label], "with_type": self.cx5_filled[label]}
                for label, n in sorted(self.identifier_reps.items())
            },
            "message_time": dict(self.times.most_common()),
            "message_time_precision": dict(self.time_precision.most_common()),
            "utc_offsets": dict(self.offsets.most_common()),
            "identifiers": identifiers,
            "identifiers_without_authority_by_sender": dict(self.no_authority_senders.most_common()),
            "placeholders": dict(self.placeholders.most_common()),
            "shared_identifiers": [
                {"authority": authority, "shape": shape, "values": n}
                for (authority, shape), n in self.shared_identifiers().most_common()
            ],
        }
