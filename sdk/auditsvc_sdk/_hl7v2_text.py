"""HL7 v2 text: bytes to characters, input to messages, python-hl7's tree to values, timestamps.

Nothing here decides what a message means for the audit log (``_hl7v2``
does); everything here is about reading what was sent, as sites send it.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import hl7

from ._exceptions import AuditError
from ._results import Cause

__all__ = ["HL7v2Error", "Reader", "Unit", "decode", "parse_hl7_timestamp", "read_timestamp", "split_units"]

_HEADERS = ("MSH", "BHS", "FHS")
_ENVELOPES = ("BHS", "BTS", "FHS", "FTS")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Seconds may carry a fraction with or without its dot: 20110613122406.637 and 20110613122406637 are sent.
_TIMESTAMP = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.?(\d{1,9}))?)?)?)?)?)?"
    r"(?:([+-])(\d{2}):?(\d{2}))?"
)
_CHARSETS = {"ASCII": "ascii", "ISO IR6": "ascii", "ISO IR100": "latin-1", "ISO IR192": "utf-8"}
_CHARSETS |= {"UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UNICODE": "utf-8"}
_CHARSETS |= {f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)}
DEFAULT_ENCODING_CHARACTERS = "^~\\&"


class HL7v2Error(AuditError, ValueError):
    """The message cannot be turned into PHI access events.

    The text names the message, segment, field or repetition and the
    problem, never a value from the message; ``cause`` is the
    :class:`~auditsvc_sdk.helpers.Cause` code.
    """

    def __init__(self, message: str, cause: str = Cause.NO_PATIENT) -> None:
        super().__init__(message)
        self.cause = cause


# --- bytes ---------------------------------------------------------------------------------------


def decode(data: bytes, encoding: str | None) -> str:
    """Characters from bytes: ``encoding`` if given, else a BOM, else MSH-18, else UTF-8, cp1252, latin-1."""
    boms = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
    for bom, codec in boms:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], encoding or codec
            break
    if encoding is not None:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            raise HL7v2Error(f"the message cannot be decoded as {encoding}", Cause.UNDECODABLE) from None
    declared = _declared_charset(data)
    for codec in (*([declared] if declared else []), "utf-8", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _declared_charset(data: bytes) -> str | None:
    """The Python codec for MSH-18 (its first repetition), read before decoding."""
    start = data.find(b"MSH")
    line = re.split(rb"[\r\n\x1c]", data[start:], maxsplit=1)[0].decode("latin-1") if start >= 0 else ""
    if len(line) < 8:
        return None
    fields = line.split(line[3])
    if len(fields) < 18 or len(fields[1]) < 2:
        return None
    charset = fields[17].split(fields[1][1])[0].split(fields[1][0])[0].strip().upper()
    return _CHARSETS.get(charset)


# --- messages ------------------------------------------------------------------------------------


@dataclass
class Unit:
    """One message's segment lines (MSH first), or text outside any message (``refusal`` set)."""

    lines: list[str] = field(default_factory=list)
    refusal: HL7v2Error | None = None


def split_units(text: str) -> list[Unit]:
    """The messages of an input, in order, envelopes (FHS/BHS/BTS/FTS) dropped, continuation lines joined.

    Every MSH starts a message. Text that belongs to no message (before the
    first MSH, after a batch trailer) becomes a unit of its own, refused, so
    that it neither hides nor spoils the messages around it. Raises
    :class:`HL7v2Error` only when there is no MSH at all.
    """
    text = text.replace("\x0b", "\r").replace("\x1c", "\r")
    units: list[Unit] = []
    separator: str | None = None
    current: Unit | None = None  # the message lines go to; None outside a message
    for raw in _LINE_BREAK.split(text):
        line = raw.strip().lstrip("\ufeff")  # a BOM may follow the MLLP start byte
        if not line:
            continue
        head = line[:3]
        if head in _HEADERS and len(line) > 3 and not (line[3].isalnum() or line[3].isspace()):
            separator = line[3]
        segment_start = separator is not None and _SEGMENT_ID.fullmatch(head) and line[3:4] in ("", separator)
        if head == "MSH":
            current = Unit([line])
            if len(line) < 4 or line[3].isalnum() or line[3].isspace():
                current.refusal = HL7v2Error(
                    "MSH-1 (the field separator) is missing or not a separator character", Cause.BAD_HEADER
                )
            units.append(current)
        elif head in _ENVELOPES and (segment_start or len(line) == 3):
            current = None
        elif current is None:
            if not units or units[-1].refusal is None or units[-1].refusal.cause != Cause.NOT_IN_MESSAGE:
                where = "before the first MSH" if not units else "after a batch header or trailer"
                units.append(Unit(refusal=HL7v2Error(f"text {where} is not part of any message", Cause.NOT_IN_MESSAGE)))
        elif segment_start or current.refusal is not None:
            current.lines.append(line)
        else:
            current.lines[-1] += "\n" + line  # a raw line break inside a field (OBX-5 text)
    if not any(u.refusal is None or u.refusal.cause == Cause.BAD_HEADER for u in units):
        raise HL7v2Error("no MSH segment: the input is empty or not HL7 v2", Cause.NOT_HL7V2)
    return units


def parse(lines: list[str]) -> Any:
    """python-hl7's tree of one message; an MSH it cannot split gets the default encoding characters."""
    # The library's errors quote segment text, which may be PHI: they are never passed on.
    sep = lines[0][3]
    for attempt in (lines, [f"MSH{sep}{DEFAULT_ENCODING_CHARACTERS}", *lines[1:]]):
        try:
            return hl7.parse("\r".join(attempt))
        except Exception:  # noqa: S112
            continue
    raise HL7v2Error("the MSH segment cannot be parsed", Cause.BAD_HEADER)


# --- reading the python-hl7 tree ---------------------------------------------------------------
# python-hl7 nests only as deep as the separators present: a field may be a
# plain string list, a list of Repetitions, and a component a string or a list.


def field_of(segment: Any, number: int) -> Any:
    return segment[number] if segment is not None and number < len(segment) else None


def repetitions(field_node: Any) -> list[Any]:
    if field_node is None:
        return []
    if any(isinstance(child, hl7.Repetition) for child in field_node):
        return list(field_node)
    return [field_node]


def component(repetition: Any, number: int) -> Any:
    if isinstance(repetition, str):
        return repetition if number == 1 else ""
    return repetition[number - 1] if number <= len(repetition) else ""


def leaf(node: Any, number: int = 1) -> str:
    """Subcomponent ``number`` of a component (or the first leaf under any node)."""
    while not isinstance(node, str):
        if not node:
            return ""
        if isinstance(node, hl7.Component):
            return node[number - 1] if number <= len(node) else ""
        node = node[0]
    return node if number == 1 else ""


def has_content(node: Any) -> bool:
    """True when any leaf under ``node`` holds a value (the HL7 null ``""`` is not one)."""
    if node is None:
        return False
    if isinstance(node, str):
        value = node.strip()
        return bool(value) and value != '""'
    return any(has_content(child) for child in node)


def segment_id(segment: Any) -> str:
    return leaf(segment[0])


class Reader:
    """Values of one parsed message, escape sequences decoded.

    Escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\``) are decoded;
    highlighting and formatting sequences are dropped; anything else is kept
    as sent. python-hl7's own ``unescape`` is not used because it logs the
    field value when a sequence is malformed, and a field value may be PHI.
    """

    def __init__(self, parsed: Any) -> None:
        self.parsed = parsed
        self.esc: str = parsed.esc
        seps: str = parsed.separators
        self._escapes = {"F": seps[1], "R": seps[2], "S": seps[3], "T": seps[4], "E": self.esc}
        self.segments: list[tuple[str, Any]] = [(segment_id(s), s) for s in parsed]

    @property
    def msh(self) -> Any:
        return self.parsed[0]

    def first(self, name: str) -> Any:
        return next((segment for sid, segment in self.segments if sid == name), None)

    def text(self, node: Any, sub: int = 1) -> str:
        return self.unescape(leaf(node, sub)).strip()

    def value(self, segment: Any, field_number: int, comp: int = 1, sub: int = 1) -> str:
        reps = repetitions(field_of(segment, field_number))
        return self.text(component(reps[0], comp), sub) if reps else ""

    def unescape(self, value: str) -> str:
        if not self.esc or self.esc not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            end = value.find(self.esc, i + 1) if value[i] == self.esc else -1
            if end < 0:
                out.append(value[i])
                i += 1
                continue
            code = value[i + 1 : end]
            if code in self._escapes:
                out.append(self._escapes[code])
            elif code[:1] == "X" and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", code[1:]):
                raw = bytes.fromhex(code[1:])
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(raw.decode("latin-1"))
            elif not (code in ("H", "N", "") or code[:1] in (".", "C", "M", "Z")):
                out.append(value[i : end + 1])  # not an escape sequence: keep as sent
            i = end + 1
        return "".join(out)


# --- time ------------------------------------------------------------------------------------------


def read_timestamp(value: str, default_tz: tzinfo | None) -> tuple[datetime, bool] | None:
    """(the time, whether it carried its own UTC offset), or None when ``value`` is not a usable
    HL7 time. Without an offset the time is read in ``default_tz``, else in the host's local zone."""
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    tz: tzinfo | None = default_tz
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24) or int(off_m) >= 60:
            return None
        tz = timezone(-offset if sign == "-" else offset)
    try:
        when = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
        if when.tzinfo is None:
            when = when.astimezone()  # the host's local zone, with its DST rules
        when.astimezone(UTC)  # representable in UTC (not 0001-01-01 at -05:00)
    except (ValueError, OverflowError):
        return None
    return when, sign is not None


def parse_hl7_timestamp(value: str, default_tz: tzinfo | None = None, where: str = "timestamp") -> datetime:
    """An HL7 v2 ``DTM``/``TS`` value ``YYYY[MM[DD[HH[MM[SS[[.]S+]]]]]][+/-ZZZZ]`` as an aware datetime.

    The fraction is truncated to microseconds. Without an offset the time is
    read in ``default_tz``; with neither, :class:`HL7v2Error` is raised.
    (The helpers themselves do not raise: they fall back and flag it.)
    """
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise HL7v2Error(f"{where} is not an HL7 timestamp YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]")
    if match.group(8) is None and default_tz is None:
        raise HL7v2Error(f"{where} has no UTC offset: pass default_tz= (the sender's time zone) or occurred_at=")
    if match.group(8) is not None and (int(match.group(9)) >= 24 or int(match.group(10)) >= 60):
        raise HL7v2Error(f"{where} has an out-of-range UTC offset")
    found = read_timestamp(value, default_tz)
    if found is None:
        raise HL7v2Error(f"{where} is not a valid date and time")
    return found[0]
