"""A report's period: ``from``/``to`` as a date (the whole UTC day) or an
RFC 3339 timestamp with an offset, both ends inclusive, bounded by the
range every report supports."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

from .errors import InvalidInput

MIN_TIME = datetime(1, 1, 2, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC)


_TIMESTAMP_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _day_or_timestamp(value: Any) -> Any:
    # pydantic would read "2026-11-24" as a naive midnight datetime; a bare
    # date means the whole day.
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, str | date) or (isinstance(value, str) and not _TIMESTAMP_START.match(value)):
        # pydantic would also take a number, or a string of digits, as Unix seconds.
        raise ValueError("must be a date (YYYY-MM-DD) or an RFC 3339 timestamp with a UTC offset")
    return value


DayOrTimestamp = Annotated[datetime | date, BeforeValidator(_day_or_timestamp)]


def bound(value: datetime | date | None, *, end: bool) -> datetime:
    """One end of a period in UTC: a date's first or last microsecond, an
    open end the supported range's; a timestamp without offset is refused
    naming ``to`` or ``from``."""
    if value is None:
        return MAX_TIME if end else MIN_TIME
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(
                "report dates need a UTC offset",
                [{"loc": ["to" if end else "from"], "msg": "timestamp without offset"}],
            )
        return value.astimezone(UTC)
    start = datetime.combine(value, time(0), tzinfo=UTC)
    return start + timedelta(days=1) - timedelta(microseconds=1) if end else start


def report_period(from_: datetime | date | None, to: datetime | date | None) -> tuple[datetime, datetime]:
    """The inclusive period of a report; ``from`` after ``to`` is refused."""
    start, end = bound(from_, end=False), bound(to, end=True)
    if start > end and (from_ is None or to is None):
        return min(start, end), max(start, end)  # an open end past the supported range: nothing to report, no error
    if start > end:
        raise InvalidInput("'from' is after 'to'", [{"loc": ["from"], "msg": "after 'to'", "type": "value_error"}])
    return start, end
