"""The syslog header in front of an ATNA audit message, and the MSG after it.

RFC 5424 (what RFC 5425, 6587 and 5426 carry, and IHE ITI-20 asks for)::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP MSG]

Senders still in service also write RFC 3164-style headers
(``<PRI>Mmm dd hh:mm:ss HOST TAG: MSG``) or a bare ``<PRI>`` before the XML;
for those the MSG is found where the XML starts (a UTF-8 BOM, ``<?xml`` or
``<AuditMessage``) and there is no MSGID. Any PRI (0..191) is taken: the
facility and severity a sender chose say nothing about the audit record.
A UTF-8 BOM before the MSG is dropped. The header never holds PHI, but
nothing here logs it either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"
NIL = "-"
_PRI = re.compile(rb"<([0-9]{1,3})>")
_XML_STARTS = (BOM, b"<?xml", b"<AuditMessage")
# RFC 5424 §6.3: [SD-ID *(SP PARAM-NAME="PARAM-VALUE")]; the alternatives
# inside the value are disjoint, so no input makes the match backtrack.
_SD_ELEMENT = re.compile(rb'\[[^ \]="]+(?: +[^ \]="]+="(?:[^"\\]+|\\.)*")* *\]', re.DOTALL)


class HeaderError(Exception):
    """The frame is not a syslog message; ``detail`` names what is missing
    (never quoting the frame)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    pri: int
    version: int | None  # 1 for RFC 5424; None for an RFC 3164-style header
    timestamp: str | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    msg: bytes  # the audit message itself, BOM removed

    @property
    def facility(self) -> int:
        return self.pri >> 3

    @property
    def severity(self) -> int:
        return self.pri & 7


def parse_syslog(frame: bytes) -> SyslogMessage:
    """Split one frame into its header fields and MSG; ``HeaderError`` if it
    does not start with a PRI."""
    match = _PRI.match(frame)
    if match is None or int(match.group(1)) > 191:
        raise HeaderError("the message does not start with a syslog PRI (<0> to <191>)")
    pri = int(match.group(1))
    rest = frame[match.end() :]
    if rest.startswith(b"1 "):
        parsed = _rfc5424(pri, rest[2:])
        if parsed is not None:
            return parsed
    return _rfc3164(pri, rest)


def _nil(value: bytes) -> str | None:
    text = value.decode("ascii", "replace")
    return None if text == NIL else text


def _rfc5424(pri: int, rest: bytes) -> SyslogMessage | None:
    fields = rest.split(b" ", 5)
    if len(fields) < 6:
        return None
    timestamp, hostname, app_name, procid, msgid, tail = fields
    msg_at = _after_structured_data(tail)
    if msg_at is None:
        return None
    msg = tail[msg_at:]
    return SyslogMessage(
        pri,
        1,
        _nil(timestamp),
        _nil(hostname),
        _nil(app_name),
        _nil(procid),
        _nil(msgid),
        msg.removeprefix(BOM),
    )


def _after_structured_data(tail: bytes) -> int | None:
    """Where MSG starts in ``STRUCTURED-DATA [SP MSG]``; None if the
    structured data is not well formed (then the header is read leniently)."""
    if tail == b"-" or tail.startswith(b"- "):
        return 2 if len(tail) > 1 else 1
    at = 0
    while at < len(tail) and tail[at : at + 1] == b"[":
        end = _element_end(tail, at)
        if end is None:
            return None
        at = end
    if at == 0:
        return None
    if at == len(tail):
        return at
    return at + 1 if tail[at : at + 1] == b" " else None


def _element_end(tail: bytes, start: int) -> int | None:
    """The index after the ``]`` closing the SD-ELEMENT at ``start``; in a
    PARAM-VALUE ``\\"``, ``\\\\`` and ``\\]`` are escapes."""
    match = _SD_ELEMENT.match(tail, start)
    return match.end() if match else None


def _rfc3164(pri: int, rest: bytes) -> SyslogMessage:
    starts = [i for i in (rest.find(marker) for marker in _XML_STARTS) if i >= 0]
    if starts:
        msg = rest[min(starts) :]
    else:
        _, colon, after = rest.partition(b": ")
        msg = after if colon else rest
    return SyslogMessage(pri, None, None, None, None, None, None, msg.removeprefix(BOM))
