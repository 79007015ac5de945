"""Spans: requests (FastAPI) and database calls (asyncpg); the append
path's span is in ``append``.

Request spans are named after the route template (``POST /v1/events``), and
probes and the metrics scrape are not traced. Database spans carry the SQL
text with its ``$n`` placeholders, never the parameters. Everything leaves
through ``scrub.ScrubbingSpanExporter``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace

from .. import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI

tracer = trace.get_tracer("auditsvc", __version__)

# Probes and scrapes every few seconds would drown the traces that matter.
UNTRACED_PATHS = "/healthz,/readyz,/metrics"


@contextmanager
def background_work() -> Iterator[None]:
    """Routine polling (the checkpointer's rounds): no database spans, or
    every worker would send a trace a second. Spans the code starts itself
    still record."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def instrument_app(app: FastAPI) -> None:
    """Request spans and HTTP server metrics for ``app``.

    No spans per ASGI message. The query string, which the instrumentation
    puts in ``http.url``/``url.query``, and any header an operator asks it to
    capture (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``) are removed by
    the scrubbing exporter.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],
    )


def instrument_database() -> None:
    """asyncpg spans, statement text only (``capture_parameters=False``).

    Iterating a server-side cursor row by row is not traced (the
    instrumentation would make one span per row); the chunked fetches are.
    """
    import asyncpg.cursor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.utils import unwrap

    instrumentor = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
        unwrap(asyncpg.cursor.CursorIterator, "__anext__")


def uninstrument_database() -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
