"""Structural limits on JSON request bodies, checked before the body is parsed.

The body-size limit (``read_body``) bounds the bytes; these bound what a
parser and validator would do with them. pydantic validates a whole body
before a model's own ``max_length`` on a list or a map is applied, and builds
one error per bad value: four megabytes of ``{"events": [{}, {}, ...]}`` cost
a minute of CPU and eight million error objects. So, before any parsing:

* nesting depth at most ``max_json_depth`` (AUDITSVC_MAX_JSON_DEPTH);
* no array with more than ``max_json_array_items`` items
  (AUDITSVC_MAX_JSON_ARRAY_ITEMS; never less than AUDITSVC_MAX_BATCH_EVENTS);
* no object with more than ``max_json_object_keys`` members
  (AUDITSVC_MAX_JSON_OBJECT_KEYS).

The check runs at C speed (bytes methods, no Python loop over the body):
strings are cut out; of the rest only brackets, commas and colons are kept;
a running sum gives every one of them a code (four times its depth, plus one
at a comma, two at a colon); then, for each nesting level, one translation
keeps that level's commas (or colons) and marks where its containers end,
and a substring search finds any container with too many members in a row.
On a 1,000-event batch it costs about 3 ms, a quarter of parsing and
validating it; on the most hostile four megabytes within these limits, about
a quarter of a second. Only when a limit is exceeded does a Python tokenizer
walk the body once (at most about 0.1 us a byte) to name the place, a JSON
pointer, in the error; object keys in that pointer are cut to 64 characters,
and no value is ever quoted.

What these limits leave to pydantic is bounded by them and by the body size:
about a second of validation for the worst four megabytes, and the answer
lists at most 100 errors (domain/ingest.py).
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Annotated, Any

from fastapi import Depends, Request

from ..domain.errors import InvalidInput, invalid_events
from ..settings import Settings
from .deps import read_body

__all__ = [
    "BodyLimits",
    "BodyLimitsDep",
    "JsonLimits",
    "StructureLimitExceeded",
    "check_json_structure",
    "read_event_batch_body",
    "read_json_body",
]

_KEEP = b'"[]{},:'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
# Each byte of the skeleton a step of a running sum whose value after it is
# a "code": 4 x the depth of the container the byte is in, plus 1 right at a
# comma and 2 right at a colon (the marks "<" and ">" step back down). An
# opening bracket adds 4, a closing one takes 4 away (signed bytes).
_STEP = bytes.maketrans(b"[{]},<:>", bytes([4, 4, 252, 252, 1, 255, 2, 254]))
# A code fits a byte up to depth 63; the depth setting stops below that.
_MAX_CODED_DEPTH = 63


_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{},:]', re.DOTALL)
_MAX_KEY_IN_POINTER = 64


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_depth: int
    max_array_items: int
    max_object_keys: int

    @classmethod
    def from_settings(cls, settings: Settings) -> JsonLimits:
        return cls(
            max_depth=settings.max_json_depth,
            max_array_items=max(settings.max_json_array_items, settings.max_batch_events),
            max_object_keys=settings.max_json_object_keys,
        )


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What a request body may hold: bytes, events per batch, JSON structure
    (``AUDITSVC_MAX_BODY_BYTES``, ``_MAX_BATCH_EVENTS``, ``_MAX_JSON_*``).
    Built once per app (``app.state.body_limits``)."""

    max_body_bytes: int
    max_batch_events: int
    json: JsonLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(settings.max_body_bytes, settings.max_batch_events, JsonLimits.from_settings(settings))


def get_body_limits(request: Request) -> BodyLimits:
    limits: BodyLimits = request.app.state.body_limits
    return limits


BodyLimitsDep = Annotated[BodyLimits, Depends(get_body_limits)]


_SETTING = {
    "json_too_deep": "AUDITSVC_MAX_JSON_DEPTH",
    "json_array_too_long": "AUDITSVC_MAX_JSON_ARRAY_ITEMS",
    "json_object_too_large": "AUDITSVC_MAX_JSON_OBJECT_KEYS",
}


class StructureLimitExceeded(InvalidInput):
    """422: a body's structure is over a limit. ``kind`` is the error type,
    ``loc`` the path to the offending container (as pydantic's ``loc``)."""

    def __init__(self, kind: str, loc: list[str | int], limit: int, what: str) -> None:
        pointer = to_json_pointer(loc)
        super().__init__(
            f"{what} at {pointer or '/'} (limit {_SETTING[kind]}={limit}); nothing was stored",
            [{"loc": loc, "msg": what, "type": kind}],
        )
        self.kind = kind
        self.loc = loc
        self.limit = limit


def to_json_pointer(loc: list[str | int]) -> str:
    """RFC 6901: ``["events", 0, "a/b"]`` is ``/events/0/a~1b``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def check_json_structure(body: bytes, limits: JsonLimits) -> None:
    """Raise ``StructureLimitExceeded`` if ``body`` is nested too deep or has
    an array or object with too many members. Malformed JSON is left to the
    parser (it passes this check, unless its brackets break a limit)."""
    skeleton = _skeleton(body)
    if not skeleton:
        return
    steps = array("b", skeleton.replace(b",", b",<").replace(b":", b":>").translate(_STEP))
    try:
        codes = bytes(accumulate(steps))
    except ValueError:  # below 0 (more closing brackets than opening) or deeper than 63
        if min(accumulate(steps)) >= 0:
            _locate(body, limits)
        return
    if bytes([4 * (limits.max_depth + 1)]) in codes:  # a container that deep opens
        _locate(body, limits)
        return
    level = 1
    while bytes([4 * level]) in codes:
        # The separators of the containers at this level, with a bar wherever
        # one such container ends: commas in a row are an array's members
        # (less one), colons in a row an object's. A level with fewer in all
        # than a limit cannot break it.
        commas, colons = _level_tables(level)
        if (
            codes.count(4 * level + 1) >= limits.max_array_items
            and b"," * limits.max_array_items in codes.translate(*commas)
        ) or (
            codes.count(4 * level + 2) > limits.max_object_keys
            and b":" * (limits.max_object_keys + 1) in codes.translate(*colons)
        ):
            _locate(body, limits)
            return
        level += 1


@lru_cache(maxsize=_MAX_CODED_DEPTH + 1)
def _level_tables(level: int) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """``bytes.translate`` arguments that keep, of the codes, the commas (or
    the colons) of containers at ``level`` and mark with "|" every code
    outside such a container; everything deeper is deleted."""
    base = 4 * level
    tables = []
    for kept in (base + 1, base + 2):
        table = bytearray(range(256))
        table[kept] = ord(",") if kept == base + 1 else ord(":")
        for code in range(base):
            table[code] = ord("|")
        delete = bytes(code for code in range(base, 256) if code != kept)
        tables.append((bytes(table), delete))
    return tables[0], tables[1]


def _skeleton(body: bytes) -> bytes:
    """Only the brackets, commas and colons of ``body`` outside strings."""
    if b"\\" in body:
        # Escaped backslashes first, then escaped quotes: what is left of the
        # backslashes escapes no quote, so every quote opens or closes a string.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Adjacent quotes can go in pairs: an empty string, or the end of one
    # string and the start of the next with nothing structural between.
    flat = body.translate(None, _DROP).replace(b'""', b"")
    if b'"' not in flat:
        return flat
    # What is left outside strings: the even pieces between quotes (an
    # unterminated string runs to the end, its piece odd).
    return b"".join(flat.split(b'"')[0::2])


def _key(token: bytes) -> str:
    text = token[1:-1] if len(token) >= 2 and token.endswith(b'"') else token[1:]
    key = text.decode("utf-8", "replace")
    return key if len(key) <= _MAX_KEY_IN_POINTER else key[:_MAX_KEY_IN_POINTER] + "..."


def _locate(body: bytes, limits: JsonLimits) -> None:
    """Walk the body once and raise for the first limit exceeded, in document order."""
    # One frame per open container: [is_object, members so far, current key or index].
    stack: list[list[Any]] = []
    last_string: bytes | None = None
    for match in _TOKEN.finditer(body):
        token = match.group()
        first = token[:1]
        if first == b'"':
            last_string = token
            continue
        if first in (b"[", b"{"):
            if stack:
                _touch(stack[-1])
            stack.append([first == b"{", 0, None])
            if len(stack) > limits.max_depth:
                _raise("json_too_deep", stack[:-1], limits.max_depth, f"nested deeper than {limits.max_depth} levels")
        elif first in (b"]", b"}"):
            if stack:
                stack.pop()
        elif first == b":":
            if stack and stack[-1][0] and last_string is not None:
                stack[-1][2] = _key(last_string)
        elif first == b"," and stack:
            _touch(stack[-1])  # the member before the comma
            stack[-1][1] += 1
            _check_count(stack, limits)
        last_string = None
    # The fast check and the walk read strings alike except in malformed
    # JSON (a bad escape), which the parser refuses anyway: let it.


def _touch(frame: list[Any]) -> None:
    """In an array, the place of the member being read is its index."""
    if not frame[0]:
        frame[2] = frame[1]


def _check_count(stack: list[list[Any]], limits: JsonLimits) -> None:
    is_object, commas, _ = stack[-1]
    members = commas + 1
    if is_object and members > limits.max_object_keys:
        _raise(
            "json_object_too_large",
            stack[:-1],
            limits.max_object_keys,
            f"an object has more than {limits.max_object_keys} members",
        )
    if not is_object and members > limits.max_array_items:
        _raise(
            "json_array_too_long",
            stack[:-1],
            limits.max_array_items,
            f"an array has more than {limits.max_array_items} items",
        )


def _raise(kind: str, parents: list[list[Any]], limit: int, what: str) -> None:
    loc: list[str | int] = [frame[2] for frame in parents if frame[2] is not None]
    raise StructureLimitExceeded(kind, loc, limit, what)


async def read_json_body(request: Request, max_bytes: int, limits: JsonLimits) -> bytes:
    """The request body, within ``max_bytes`` (413) and ``limits`` (422)."""
    body = await read_body(request, max_bytes)
    check_json_structure(body, limits)
    return body


async def read_event_batch_body(request: Request, limits: BodyLimits) -> bytes:
    """The body of ``POST /v1/events``: an over-long ``events`` array is
    refused here, before validation, with the batch limit's own message."""
    body = await read_body(request, limits.max_body_bytes)
    try:
        check_json_structure(body, limits.json)
    except StructureLimitExceeded as exc:
        if exc.kind == "json_array_too_long" and exc.loc == ["events"]:
            n = limits.max_batch_events
            raise InvalidInput(
                f"a batch holds at most {n} events, this one has more; nothing was stored",
                [{"loc": ["events"], "msg": f"at most {n} events per batch", "type": "too_long"}],
            ) from None
        exc.refused = invalid_events(exc.errors)  # a limit inside one event refuses that event
        raise
    return body
