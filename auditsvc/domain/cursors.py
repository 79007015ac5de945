"""Keyset cursors: where a report's next page starts, held by the client.

A cursor is base64url JSON (unpadded): ``k`` the report and query it
continues (a report's name, or ``query_key``'s hash of report, subject and
period), ``t``/``s`` the last row served (occurred_at, seq) and ``m`` the
tree size the first page answered at, so that every page reports the same
snapshot even while the log grows (the report's own audit events included).
The break-glass queue adds ``q``, its status, and ``e``, the end of the range
its first page saw.

A cursor is client input: one that another report or query issued, or with
any part out of range, is refused with 422 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsvc_sdk.chain import format_timestamp

from ..store.events import committed_size
from ..store.session import Connection
from .errors import InvalidInput
from .periods import MAX_TIME, MIN_TIME

MAX_SEQ = 2**62
"""Past any seq: a cursor's seq and tree size are below it."""

BEFORE_ALL = (MIN_TIME - timedelta(days=1), -1)
"""The keyset position before every row: where a first page starts."""


@dataclass(frozen=True)
class Cursor:
    position: tuple[datetime, int]
    """The last row served, (occurred_at, seq); the next page starts after it."""
    as_of: int
    """The tree size every page of the report answers at."""
    end: datetime | None = None
    """The end of the range the first page saw (the break-glass queue's)."""


def _refused(why: str = "is not one this report issued for this query") -> InvalidInput:
    return InvalidInput(f"cursor {why}", [{"loc": ["cursor"], "msg": f"invalid cursor: {why}", "type": "value_error"}])


def query_key(kind: str, subject: str, start: datetime, end: datetime) -> str:
    """A cursor bound to a report, its subject and period (hashed: an actor
    id may name a person)."""
    raw = "\x00".join((kind, subject, format_timestamp(start), format_timestamp(end)))
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def encode_cursor(
    key: str, position: tuple[datetime, int], as_of: int, *, status: str | None = None, end: datetime | None = None
) -> str:
    """The cursor of the page after ``position``, bound to ``key`` (and to the
    queue's ``status`` and range ``end``)."""
    data: dict[str, Any] = {"k": key}
    if status is not None:
        data["q"] = status
    data |= {"t": format_timestamp(position[0]), "s": position[1], "m": as_of}
    if end is not None:
        data["e"] = format_timestamp(end)
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise _refused()
    moment = moment.astimezone(UTC)
    if not MIN_TIME <= moment <= MAX_TIME:
        raise _refused()
    return moment


def decode_cursor(cursor: str, key: str, *, status: str | None = None) -> Cursor:
    """The position and snapshot of a cursor issued for ``key`` (and, for the
    queue, ``status``, the cursor then carrying its range end); any other
    cursor is refused, and every part is range-checked."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("k") != key:
            raise _refused()
        if status is not None and data.get("q") != status:
            raise _refused("was issued for another status")
        seq, as_of = data["s"], data["m"]
        if type(seq) is not int or type(as_of) is not int or not (0 <= seq < MAX_SEQ and 0 <= as_of < MAX_SEQ):
            raise _refused()
        end = _time(data["e"]) if status is not None else None
        return Cursor((_time(data["t"]), seq), as_of, end)
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        raise _refused() from None


async def page_start(
    conn: Connection, log_id: int, cursor: str | None, key: str, *, status: str | None = None
) -> Cursor:
    """Where a report's page starts: the cursor's position and snapshot, or,
    for a first page, before every row at the log's committed size."""
    if cursor:
        return decode_cursor(cursor, key, status=status)
    return Cursor(BEFORE_ALL, await committed_size(conn, log_id))


Row = tuple[int, datetime, str]
"""A page statement's row: (seq, occurred_at, record)."""

PAGE_ROWS = 1000
"""Keyset page size when a whole report is streamed (CSV)."""


def page_with_cursor(rows: list[Row], limit: int, key: str, as_of: int) -> tuple[list[Row], str | None]:
    """A page read with one row more than ``limit``: its ``limit`` rows and,
    when there are more, the cursor of the next page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(key, (rows[-1][1], rows[-1][0]), as_of)


async def every_row(
    read_page: Callable[[tuple[datetime, int], int], Awaitable[list[Row]]], after: tuple[datetime, int]
) -> AsyncIterator[Row]:
    """Every row after ``after``, read ``PAGE_ROWS`` at a time by
    ``read_page(after, limit)`` (a connection borrowed per page, so a slow
    reader holds none)."""
    while True:
        rows = await read_page(after, PAGE_ROWS)
        for row in rows:
            yield row
        if len(rows) < PAGE_ROWS:
            return
        after = (rows[-1][1], rows[-1][0])
