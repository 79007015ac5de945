"""The last line of defence against PHI in traces: every span is scrubbed on
its way to any exporter.

The service never puts an identifier value in a span itself, and the
instrumentations are configured to capture no parameters or headers. What
this catches is what third-party instrumentation records on its own: the
query string of a URL (``GET /fhir/AuditEvent?patient.identifier=...``), a
literal in an SQL text, and exception messages and status descriptions
(PostgreSQL's DETAIL can quote a row). Rules, for span, event and link
attributes alike:

1. ``url.query``, captured request/response headers and statement
   parameters are dropped.
2. URL-valued attributes (``http.url``, ``url.full``, ``http.target``) and
   span names lose everything from ``?`` or ``#`` on.
3. SQL texts (``db.statement``, ``db.query.text``) have quoted literals
   replaced with ``'?'``; the service's own SQL uses ``$n`` placeholders.
4. ``exception.message`` and ``exception.stacktrace`` are dropped
   (``exception.type`` stays); a status keeps its code, not its description.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link
from opentelemetry.trace.status import Status
from opentelemetry.util.types import Attributes, AttributeValue

DROPPED = frozenset(
    {
        "url.query",
        "db.statement.parameters",
        "exception.message",
        "exception.stacktrace",
    }
)
DROPPED_PREFIXES = ("http.request.header.", "http.response.header.", "db.query.parameter.")
URL_KEYS = frozenset({"http.url", "url.full", "http.target", "url.path", "http.route"})
SQL_KEYS = frozenset({"db.statement", "db.query.text"})

# 'it''s', E'\x41', and the dollar-quoted $$...$$ / $tag$...$tag$ forms.
_SQL_LITERAL = re.compile(r"(?:[eE])?'(?:[^']|'')*'|\$([A-Za-z_][A-Za-z0-9_]*|)\$.*?\$\1\$", re.DOTALL)


def strip_query(value: str) -> str:
    """A URL or path without its query string or fragment."""
    cut = min((i for i in (value.find("?"), value.find("#")) if i >= 0), default=-1)
    return value if cut < 0 else value[:cut]


def strip_sql_literals(sql: str) -> str:
    return _SQL_LITERAL.sub("'?'", sql)


def _value(key: str, value: AttributeValue) -> AttributeValue:
    if isinstance(value, str):
        if key in URL_KEYS:
            return strip_query(value)
        if key in SQL_KEYS:
            return strip_sql_literals(value)
    return value


def scrub_attributes(attributes: Attributes) -> dict[str, AttributeValue]:
    if not attributes:
        return {}
    return {
        key: _value(key, value)
        for key, value in attributes.items()
        if key not in DROPPED and not key.startswith(DROPPED_PREFIXES)
    }


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` with the rules above applied."""
    return ReadableSpan(
        name=strip_query(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=scrub_attributes(span.attributes),
        events=[Event(e.name, scrub_attributes(e.attributes), e.timestamp) for e in span.events],
        links=[Link(link.context, scrub_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingSpanExporter(SpanExporter):
    """Wraps any exporter so that only scrubbed spans reach it."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([scrub_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)
