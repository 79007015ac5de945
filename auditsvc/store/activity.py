"""Queries behind the activity review record: the service's own events.

Every report, export, review and registry change the service makes is an
event with source system ``auditsvc`` (emitters may not claim it:
domain/reserved.py), so the record of who examined the log is one range
scan of ``event_facts_source`` (log_id, source_system, occurred_at, seq),
keyset-paged, reading the JSON record of the page only.
"""

from __future__ import annotations

from .report_sql import facts_page_sql

ACTIVITY_PAGE_SQL = facts_page_sql("source_system")  # the service's own events: source auditsvc
