"""Audit message bytes to a small element tree, refusing what a hostile sender could use.

defusedxml's expat parser refuses any DTD (so no entity expansion, no
billion laughs), entity declarations and external references (XXE); the size
is checked before parsing and the nesting depth while parsing, so neither a
2 MB message nor 10 000 nested elements costs more than the limit. A UTF-8
byte order mark and surrounding white space (syslog senders add both) are
removed first.

The tree keeps what the mapping needs and forgives what real senders vary:
namespaces are dropped from element and attribute names, and names are
looked up case-insensitively (``UserIsRequestor`` / ``userIsRequestor``);
``Node.value`` reads a field whether the sender wrote it as an attribute or
as a child element.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

import orjson
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from .errors import AtnaUnmappable

__all__ = ["AtnaLimits", "Document", "Node", "read_document"]

_BOM = b"\xef\xbb\xbf"
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class AtnaLimits:
    """Bounds on one message: bytes (after the BOM), element nesting, patients (events) it may yield."""

    max_bytes: int = 1_048_576
    max_depth: int = 32
    max_patients: int = 1000  # POST /v1/events takes at most 1000 events in one batch


@dataclass(eq=False, slots=True)
class Node:
    """One element: local name as sent (and case-folded), attributes by case-folded local name,
    direct text (stripped, once the element has ended), children."""

    name: str
    attrs: dict[str, str]
    key: str = ""
    text: str = ""
    children: list[Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    def all(self, name: str) -> Iterator[Node]:
        """The children called ``name`` (case-insensitive), in order."""
        folded = name.casefold()
        return (c for c in self.children if c.key == folded)

    def first(self, name: str) -> Node | None:
        folded = name.casefold()
        for child in self.children:
            if child.key == folded:
                return child
        return None

    def value(self, name: str) -> str | None:
        """A field written as attribute ``name`` or as child element ``<name>text</name>``; None if absent or blank."""
        found = self.attrs.get(name.casefold())
        if found is None:
            child = self.first(name)
            found = child.text if child is not None else None
        found = found.strip() if found is not None else None
        return found or None


@dataclass(frozen=True)
class Document:
    root: Node
    digest: bytes  # SHA-256 of the canonical content (see ``content_digest``)


def _local(name: str) -> str:
    return name.rpartition("}")[2]


class _TreeBuilder:
    """An expat target that builds ``Node``s and stops at ``max_depth``."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.path: list[str] = []

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        name = _local(tag)
        if len(self.stack) >= self.max_depth:
            # Element names are the sender's text too: name only the root, if it is the audit message's.
            under = " under AuditMessage" if self.path and self.path[0].casefold() == "auditmessage" else ""
            raise AtnaUnmappable("too_deep", f"elements nest deeper than {self.max_depth} levels{under}")
        node = Node(name, {_local(k).casefold(): v for k, v in attrib.items()}, name.casefold())
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)
        self.path.append(name)

    def end(self, tag: str) -> None:
        node = self.stack.pop()
        node.text = "".join(node.parts).strip()
        node.parts.clear()
        self.path.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].parts.append(text)

    def close(self) -> Node | None:
        return self.root


def _parse(data: bytes, limits: AtnaLimits) -> Node:
    builder = _TreeBuilder(limits.max_depth)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        root = parser.close()
    except DTDForbidden:
        raise AtnaUnmappable("xml_forbidden_construct", "a document type declaration (DTD) is not accepted") from None
    except EntitiesForbidden:
        raise AtnaUnmappable("xml_forbidden_construct", "entity declarations are not accepted") from None
    except ExternalReferenceForbidden:
        raise AtnaUnmappable("xml_forbidden_construct", "external references are not accepted") from None
    except DefusedXmlException:
        raise AtnaUnmappable("xml_forbidden_construct", "the document uses a construct that is not accepted") from None
    except (LookupError, ValueError):
        # An encoding Python does not know, or a multi-byte one expat cannot be given (the message
        # names it: not quoted, it is the sender's text).
        raise AtnaUnmappable("xml_malformed", "the XML declaration names an encoding that cannot be read") from None
    except ParseError as exc:
        line, column = exc.position
        # expat's own wording for the error code (never the offending text), and where.
        what = expat.ErrorString(exc.code) or "not well-formed"
        raise AtnaUnmappable("xml_malformed", f"{what} at line {line}, column {column}") from None
    if not isinstance(root, Node):
        raise AtnaUnmappable("xml_malformed", "no root element")
    return root


def content_digest(root: Node) -> bytes:
    """SHA-256 over the document's content, not its bytes: local names, attributes
    sorted by name, text stripped, each length-prefixed. A relay that re-indents
    the XML, reorders attributes, changes namespace prefixes or the encoding, or
    adds a BOM leaves it unchanged; any change to a name or value changes it."""

    # Each element as [name, [[attribute, value], ...] sorted, text, children...], serialised as
    # JSON (unambiguous: strings quoted and escaped) and hashed once.
    def canonical(node: Node) -> list[Any]:
        return [node.name, sorted(node.attrs.items()), node.text, *(canonical(c) for c in node.children)]

    return hashlib.sha256(b"auditsvc/atna-content/v1\x00" + orjson.dumps(canonical(root))).digest()


def read_document(msg: bytes, limits: AtnaLimits) -> Document:
    """Parse one audit message (the syslog MSG part) under ``limits``; ``AtnaUnmappable`` otherwise."""
    data = msg.removeprefix(_BOM).strip()
    if len(data) > limits.max_bytes:
        raise AtnaUnmappable("too_large", f"the message is {len(data)} bytes; at most {limits.max_bytes} are accepted")
    if not data:
        raise AtnaUnmappable("xml_malformed", "the message is empty")
    declared = _DECLARED_ENCODING.match(data)
    if declared is None or declared.group(1).lower() in (b"utf-8", b"utf8"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AtnaUnmappable("xml_malformed", f"the message is not valid UTF-8 (byte offset {exc.start})") from None
    root = _parse(data, limits)
    return Document(root, content_digest(root))
