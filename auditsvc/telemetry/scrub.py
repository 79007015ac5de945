"""The last line of defence against PHI in traces: every span is scrubbed on
its way to any exporter.

The service never puts an identifier value in a span itself, and the
instrumentations are configured to capture no parameters or headers. What
this catches is what third-party instrumentation records on its own: the
query string and path of a URL (``GET /fhir/AuditEvent?patient.identifier=...``), a
literal in an SQL text, and exception messages and status descriptions
(PostgreSQL's DETAIL can quote a row). Rules, for span, event and link
attributes alike:

1. ``url.query``, captured request/response headers, the user agent (free
   text a client may fill with anything) and statement parameters are
   dropped.
2. URL-valued attributes (``http.url``, ``url.full``, ``http.target``,
   ``url.path``) and span names lose everything from ``?`` or ``#`` on; the
   URL's path, client input too (``/v1/nope/MRN00042``), keeps only what
   ``loggable_path`` keeps.
3. SQL texts (``db.statement``, ``db.query.text``) have quoted literals
   replaced with ``'?'``; the service's own SQL uses ``$n`` placeholders.
4. ``exception.message`` and ``exception.stacktrace`` are dropped
   (``exception.type`` stays); a status keeps its code, not its description.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link
from opentelemetry.trace.status import Status
from opentelemetry.util.types import Attributes, AttributeValue

DROPPED = frozenset(
    {
        "url.query",
        "http.user_agent",
        "user_agent.original",
        "db.statement.parameters",
        "exception.message",
        "exception.stacktrace",
    }
)
DROPPED_PREFIXES = ("http.request.header.", "http.response.header.", "db.query.parameter.")
PATH_KEYS = frozenset({"http.url", "url.full", "http.target", "url.path"})
URL_KEYS = PATH_KEYS | {"http.route"}  # a route is a template: only its query (none) goes
SQL_KEYS = frozenset({"db.statement", "db.query.text"})

# 'it''s', E'\x41', and the dollar-quoted $$...$$ / $tag$...$tag$ forms.
_SQL_LITERAL = re.compile(r"(?:[eE])?'(?:[^']|'')*'|\$([A-Za-z_][A-Za-z0-9_]*|)\$.*?\$\1\$", re.DOTALL)


def strip_query(value: str) -> str:
    """A URL or path without its query string or fragment."""
    cut = min((i for i in (value.find("?"), value.find("#")) if i >= 0), default=-1)
    return value if cut < 0 else value[:cut]


# -- Paths -------------------------------------------------------------------
# A request path is client input: an identifier can sit in it, in a path no
# route serves (``/v1/nope/MRN00042``) or where a parameter goes
# (``/v1/events/MRN00042``, refused with 422). Logs and spans keep a path's
# route: its literal segments, and a parameter's value only when it is a
# UUID, or a number where the parameter is not an id (a tree size: numeric
# MRNs are common); any other value is WITHHELD. A path no route matches
# keeps only the service's own words and UUIDs.

WITHHELD = "{withheld}"
_UUID = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")
_NUMBER = re.compile(r"[0-9]{1,19}")
# The routes of the contract (DESIGN.md "HTTP API"), served yet or not; an
# app's own are added when it is instrumented (``register_routes``).
CONTRACT_ROUTES = (
    "/v1/events",
    "/v1/events/{event_id}",
    "/v1/reports/patient-access",
    "/v1/checkpoints",
    "/v1/checkpoints/latest",
    "/v1/checkpoints/verifier-key",
    "/v1/checkpoints/verifier-keys",
    "/v1/checkpoints/{tree_size}",
    "/v1/proofs/inclusion",
    "/v1/proofs/consistency",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/fhir/AuditEvent",
    "/fhir/AuditEvent/_search",
)
_routes: dict[int, set[tuple[str, ...]]] = {}
_words: set[str] = set()


def register_routes(paths: Iterable[str]) -> None:
    """Route templates (``/v1/events/{event_id}``) whose paths may be logged."""
    for path in paths:
        segments = tuple(strip_query(path).split("/"))
        if any(":path}" in s for s in segments):  # a parameter spanning segments: its words only
            _words.update(s for s in segments if s and "{" not in s)
            continue
        _routes.setdefault(len(segments), set()).add(segments)
        _words.update(s for s in segments if s and "{" not in s)


register_routes(CONTRACT_ROUTES)


def route_paths(routes: Iterable[Any]) -> Iterable[str]:
    """The path templates of an app's routes, mounts and included routers."""
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield path
        inner = getattr(route, "routes", None) or getattr(getattr(route, "original_router", None), "routes", None)
        if inner:
            yield from route_paths(inner)


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _safe_value(param: str, value: str) -> bool:
    if not value or _UUID.fullmatch(value):
        return True
    name = param[1:-1].split(":")[0]
    return not (name == "id" or name.endswith("_id")) and _NUMBER.fullmatch(value) is not None


def _route_of(segments: list[str]) -> tuple[str, ...] | None:
    """The matching template with the most literal segments (``latest`` before ``{tree_size}``)."""
    matching = [
        template
        for template in _routes.get(len(segments), ())
        if all(_is_param(t) or t == s for t, s in zip(template, segments, strict=True))
    ]
    return min(matching, key=lambda t: sum(map(_is_param, t)), default=None)


def loggable_path(value: str) -> str:
    """A path, or a full URL, as logs and spans may carry it: without its
    query string or fragment, and with every segment that is neither one of
    the service's route words nor a safe parameter value WITHHELD."""
    value = strip_query(value)
    prefix = ""
    if "://" in value:  # a full URL: scheme and authority stay
        scheme, _, rest = value.partition("://")
        authority, slash, path = rest.partition("/")
        prefix, value = f"{scheme}://{authority}", slash + path
    segments = value.split("/")
    template = _route_of(segments)
    if template is not None:
        kept = [
            s if not _is_param(t) or _safe_value(t, s) else WITHHELD for t, s in zip(template, segments, strict=True)
        ]
    else:
        kept = [s if not s or s in _words or _UUID.fullmatch(s) else WITHHELD for s in segments]
    return prefix + "/".join(kept)


def strip_sql_literals(sql: str) -> str:
    return _SQL_LITERAL.sub("'?'", sql)


def _value(key: str, value: AttributeValue) -> AttributeValue:
    if isinstance(value, str):
        if key in PATH_KEYS:
            return loggable_path(value)
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
