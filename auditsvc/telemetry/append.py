"""Telemetry of the append path: each request batch, and each group commit.

A request batch (``batch``) is measured from its hand-over to the appender
until its answer: its size and its wait for the chain head plus the append.
A group commit (``group_commit``) is one span, ``auditsvc.append.group``,
started in the committer task: the child of the first waiting request's
span (so an idle service's request trace shows its own append), linked to
the other requests in the group, with these attributes:

| attribute | |
|---|---|
| ``auditsvc.append.batches`` | request batches in the group |
| ``auditsvc.append.events`` | events in the group (the batch size of the transaction) |
| ``auditsvc.append.accepted`` | events newly committed |
| ``auditsvc.append.duplicate`` | events whose ``event_id`` was already stored |
| ``auditsvc.tree.size`` | the tree size after the commit |

A failed transaction sets the span's status to error with ``error.type``
``unavailable`` or ``failed``; no exception text is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from . import metrics
from .tracing import tracer

if TYPE_CHECKING:
    from ..domain.append_types import EventResult, Head

    GroupOutcome = tuple[list[list[EventResult]], Head] | str

GROUP_SPAN = "auditsvc.append.group"
BATCHES = "auditsvc.append.batches"
EVENTS = "auditsvc.append.events"
ACCEPTED = "auditsvc.append.accepted"
DUPLICATE = "auditsvc.append.duplicate"
TREE_SIZE = "auditsvc.tree.size"


def current_span_context() -> SpanContext:
    """The caller's span, to parent or link work done on its behalf elsewhere."""
    return trace.get_current_span().get_span_context()


@contextmanager
def batch(size: int) -> Iterator[None]:
    """Around one request batch's hand-over to the appender until its answer."""
    metrics.BATCH_SIZE.record(size)
    start = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "committed"
    finally:
        metrics.APPEND_DURATION.record(time.perf_counter() - start, {metrics.OUTCOME: outcome})


@contextmanager
def group_commit(origins: Sequence[SpanContext], sizes: Sequence[int]) -> Iterator[Callable[[GroupOutcome], None]]:
    """Around one group-commit transaction; call the yielded function with
    its outcome: the per-batch results and the head, or ``"unavailable"`` or
    ``"failed"``."""
    valid = [o for o in origins if o.is_valid]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(valid[0])) if valid else context.Context()
    started = time.perf_counter()
    with tracer.start_as_current_span(
        GROUP_SPAN,
        context=parent,
        kind=SpanKind.INTERNAL,
        links=[Link(o) for o in valid[1:]],
        attributes={BATCHES: len(sizes), EVENTS: sum(sizes)},
        record_exception=False,  # exception texts can quote a row
        set_status_on_exception=False,
    ) as span:

        def observe(outcome: GroupOutcome) -> None:
            seconds = time.perf_counter() - started
            if isinstance(outcome, str):
                span.set_attribute("error.type", outcome)
                span.set_status(Status(StatusCode.ERROR))
                metrics.record_failed_group(outcome, seconds)
                return
            results, head = outcome
            accepted = sum(1 for answers in results for r in answers if r.status == "accepted")
            duplicate = sum(len(answers) for answers in results) - accepted
            span.set_attributes({ACCEPTED: accepted, DUPLICATE: duplicate, TREE_SIZE: head.tree_size})
            metrics.record_group(sizes, accepted, duplicate, head.tree_size, seconds)

        yield observe
