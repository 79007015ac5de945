"""Reading a site's captured traffic for the survey: files, framing, exports.

``read_paths(paths)`` walks files and directories (sorted, recursively) and
yields one :class:`Item` per HL7 v2 message or FHIR JSON document found, and
one :class:`Unreadable` per thing it could not read, with a cause code. It
decides by content, not by file name:

* MLLP captures (``0x0B`` message ``0x1C 0x0D``): each frame's content, which
  may itself be a batch; a start byte without an end byte is a truncated
  frame;
* HL7 v2 files, single messages or batches (``FHS``/``BHS``/``BTS``/``FTS``
  envelopes dropped): every ``MSH`` starts a message;
* XML message exports: Mirth Connect's (XStream ``<message>`` with
  ``<connectorMessages>``: the source connector's raw content, once per
  message, not each destination's copy) and other engines' (Rhapsody and
  the like, by a generic rule rather than one engine's schema: every
  element whose own text is an HL7 v2 message or a FHIR JSON document,
  base64 when the element says ``encoding="base64"``). XML is
  read with the standard library's expat, and a document type declaration
  is refused before its internal subset is read: no DTD, no entity
  expansion, no external fetch;
* FHIR JSON: a resource or Bundle, a JSON array of them, or NDJSON.

Nothing here keeps a file name or a value in what it reports: causes are
codes, containers are kinds.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.parsers import expat

import orjson

__all__ = ["Item", "Unreadable", "iter_files", "read_bytes", "read_paths", "split_hl7"]

Kind = Literal["hl7v2", "fhir"]

_HL7_START = re.compile(rb"\s*(MSH|FHS|BHS)[^A-Za-z0-9\s]")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_MLLP_FRAME = re.compile(rb"\x0b(.*?)\x1c\r?", re.DOTALL)
_ENVELOPES = (b"FHS", b"BHS", b"BTS", b"FTS")
_MAX_XML_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Item:
    """One HL7 v2 message (bytes, segments joined by CR) or one FHIR JSON document."""

    kind: Kind
    data: bytes
    container: str  # "file", "batch", "mllp", "mirth", "xml-export", "json", "ndjson"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Something that is not a message the survey can read, with a cause code."""

    container: str
    cause: str


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)

    def content(self) -> str:
        return "".join(self.text)

    def child(self, tag: str) -> _Node | None:
        return next((c for c in self.children if c.tag == tag), None)


class _XMLRefused(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Every regular file under ``paths``, in a stable order; hidden entries in directories skipped."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path


def read_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Item | Unreadable]:
    """Items and unreadable parts of every file under ``paths``."""
    for path in iter_files(paths):
        try:
            data = path.read_bytes()
        except OSError:
            yield Unreadable("file", "file-unreadable")
            continue
        yield from read_bytes(data)


def read_bytes(data: bytes) -> Iterator[Item | Unreadable]:
    """Items found in the content of one file, decided by content."""
    data = _to_utf8_if_utf16(data)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if b"\x0b" in data[:4096] or (b"\x0b" in data and b"\x1c" in data):
        yield from _mllp(data)
    elif head == b"<":
        yield from _xml(data)
    elif head in (b"{", b"["):
        yield from _json(data)
    elif _HL7_START.match(data.lstrip(b"\xef\xbb\xbf")):
        yield from split_hl7(data, "file")
    elif not data.strip():
        yield Unreadable("file", "empty-file")
    else:
        yield Unreadable("file", "not-hl7v2-or-fhir")


def _to_utf8_if_utf16(data: bytes) -> bytes:
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace").encode("utf-8")
    return data


def split_hl7(data: bytes, container: str) -> Iterator[Item | Unreadable]:
    """One item per MSH; batch envelope segments dropped (the container becomes "batch")."""
    messages: list[list[bytes]] = []
    enveloped = False
    stray = 0
    current: list[bytes] | None = None
    for raw in _LINE_BREAK.split(data):
        line = raw.strip(b" \t\x00").lstrip(b"\xef\xbb\xbf")
        if not line:
            continue
        tag = line[:3]
        if tag == b"MSH" and len(line) > 3 and not line[3:4].isalnum():
            current = [line]
            messages.append(current)
        elif tag in _ENVELOPES and (len(line) == 3 or not line[3:4].isalnum()):
            enveloped = True
            current = None
        elif current is not None:
            current.append(line)
        else:
            stray += 1
    kind = "batch" if enveloped and container == "file" else container
    for lines in messages:
        yield Item("hl7v2", b"\r".join(lines) + b"\r", kind)
    if stray:
        yield Unreadable(kind, "text-outside-a-message")


def _mllp(data: bytes) -> Iterator[Item | Unreadable]:
    end = 0
    for match in _MLLP_FRAME.finditer(data):
        end = match.end()
        content = match.group(1)
        if b"\x0b" in content:  # a start byte inside a frame: the frame before it was cut short
            yield Unreadable("mllp", "mllp-truncated-frame")
            content = content[content.rfind(b"\x0b") + 1 :]
        if not content.strip():
            yield Unreadable("mllp", "mllp-empty-frame")
        elif _HL7_START.match(content.lstrip(b"\xef\xbb\xbf")):
            yield from split_hl7(content, "mllp")
        else:
            yield Unreadable("mllp", "not-hl7v2-or-fhir")
    if b"\x0b" in data[end:]:
        yield Unreadable("mllp", "mllp-truncated-frame")


# --- FHIR JSON -----------------------------------------------------------------


def _json(data: bytes) -> Iterator[Item | Unreadable]:
    body = data.lstrip(b"\xef\xbb\xbf")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        yield from _ndjson(body)
        return
    if isinstance(doc, list):
        for element in doc:
            yield _fhir_item(element, "json")
    else:
        yield _fhir_item(doc, "json", data)  # as sent, byte-order mark included: the helper must cope


def _ndjson(body: bytes) -> Iterator[Item | Unreadable]:
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) < 2:
        yield Unreadable("json", "json-invalid")
        return
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Unreadable("ndjson", "json-invalid")
            continue
        yield _fhir_item(doc, "ndjson", line)


def _fhir_item(doc: object, container: str, raw: bytes | None = None) -> Item | Unreadable:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        return Unreadable(container, "json-not-a-fhir-resource")
    return Item("fhir", raw if raw is not None else orjson.dumps(doc), container)


# --- XML exports -----------------------------------------------------------------


def _parse_xml(data: bytes) -> _Node:
    """A small element tree; a DOCTYPE (and so any entity declaration) is refused."""
    # Several exported documents may be concatenated in one file: drop their
    # declarations and read them under one synthetic root.
    body = re.sub(rb"<\?xml[^>]*\?>", b"", data.lstrip(b"\xef\xbb\xbf"))
    if re.search(rb"<!DOCTYPE", body, re.IGNORECASE):
        raise _XMLRefused("xml-dtd-refused")
    parser = expat.ParserCreate(encoding="utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    root = _Node("#root", {})
    stack = [root]

    def refuse_dtd(*_: object) -> Any:
        raise _XMLRefused("xml-dtd-refused")

    def start(tag: str, attrs: dict[str, str]) -> None:
        if len(stack) > _MAX_XML_DEPTH:
            raise _XMLRefused("xml-too-deep")
        node = _Node(tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1], attrs)
        stack[-1].children.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def text(chars: str) -> None:
        stack[-1].text.append(chars)

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.ExternalEntityRefHandler = refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(b"<_survey>" + body + b"</_survey>", True)
    except expat.ExpatError:
        raise _XMLRefused("xml-malformed") from None
    return root.children[0]


def _xml(data: bytes) -> Iterator[Item | Unreadable]:
    try:
        root = _parse_xml(data)
    except _XMLRefused as exc:
        yield Unreadable("xml-export", exc.cause)
        return
    found = False
    for message in _mirth_messages(root):
        found = True
        yield from _mirth_message(message)
    if found:
        return
    for body in _bodies(root):
        found = True
        yield from _content_items(body, "xml-export")
    if not found:
        yield Unreadable("xml-export", "xml-no-message-found")


def _mirth_messages(node: _Node) -> Iterator[_Node]:
    for child in node.children:
        if child.tag == "message" and child.child("connectorMessages") is not None:
            yield child
        else:
            yield from _mirth_messages(child)


def _mirth_message(message: _Node) -> Iterator[Item | Unreadable]:
    """The source connector's raw content (metaDataId 0), else the first raw content."""
    connectors = [
        c
        for entry in (message.child("connectorMessages") or _Node("", {})).children
        for c in ([entry] if entry.tag == "connectorMessage" else entry.children)
        if c.tag == "connectorMessage"
    ]

    def raw_content(connector: _Node) -> str | None:
        raw = connector.child("raw")
        content = raw.child("content") if raw is not None else None
        return content.content() if content is not None else None

    source = [c for c in connectors if (c.child("metaDataId") or _Node("", {})).content().strip() == "0"]
    for connector in source + connectors:
        content = raw_content(connector)
        if content and content.strip():
            yield from _content_items(content.encode("utf-8"), "mirth")
            return
    yield Unreadable("mirth", "mirth-no-raw-content")


def _bodies(node: _Node) -> Iterator[bytes]:
    """Every element whose own text is an HL7 v2 message or JSON, base64-decoded when marked."""
    for child in node.children:
        text = child.content().strip()
        if text:
            if child.attrs.get("encoding", "").lower() == "base64":
                try:
                    decoded = base64.b64decode(text, validate=False)
                except (binascii.Error, ValueError):
                    continue
                yield decoded
                continue
            raw = text.encode("utf-8")
            if _HL7_START.match(raw) or (raw[:1] in (b"{", b"[") and b"resourceType" in raw):
                yield raw
                continue
        yield from _bodies(child)


def _content_items(content: bytes, container: str) -> Iterator[Item | Unreadable]:
    stripped = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _HL7_START.match(stripped):
        yield from split_hl7(content, container)
    elif stripped[:1] in (b"{", b"["):
        for item in _json(stripped):
            yield Item(item.kind, item.data, container) if isinstance(item, Item) else item
    else:
        yield Unreadable(container, "not-hl7v2-or-fhir")
