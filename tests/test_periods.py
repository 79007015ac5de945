"""A report period's ends: a date or an RFC 3339 timestamp, never a number
that pydantic would otherwise read as Unix seconds."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from auditsvc.domain.errors import InvalidInput
from auditsvc.domain.flows import parse_flow_query


@pytest.mark.parametrize("to", ["1", "1795530600", "1234567890", "17955306.5", "2026-13-01", "tomorrow", 1795530600])
def test_a_period_end_that_is_not_a_date_or_timestamp_is_refused(to: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_flow_query(b'{"to": %s}' % (str(to).encode() if isinstance(to, int) else b'"%s"' % str(to).encode()))
    assert "to" in str(refused.value.errors)


def test_dates_and_timestamps_are_read() -> None:
    query = parse_flow_query(b'{"from": "2026-11-01", "to": "2026-11-24T09:30:00Z"}')
    assert query.from_ == date(2026, 11, 1)
    assert query.to == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
