"""The service's own metrics, through the OpenTelemetry metrics API.

The instruments are created once, at import, from the global meter: until
``setup_telemetry`` installs a meter provider they are no-ops that cost a
function call. No attribute ever carries event content: reasons are error
classes, verification failures carry the damage kind, nothing else.

| name | kind | unit | attributes |
|---|---|---|---|
| ``auditsvc.events.accepted`` | counter | {event} | |
| ``auditsvc.events.duplicate`` | counter | {event} | |
| ``auditsvc.batches.rejected`` | counter | {batch} | ``auditsvc.reason`` |
| ``auditsvc.append.batch.size`` | histogram | {event} | |
| ``auditsvc.append.group.size`` | histogram | {event} | |
| ``auditsvc.append.duration`` | histogram | s | ``auditsvc.outcome`` |
| ``auditsvc.append.transaction.duration`` | histogram | s | ``auditsvc.outcome`` |
| ``auditsvc.tree.size`` | gauge | {event} | |
| ``auditsvc.checkpoint.age`` | gauge | s | |
| ``auditsvc.checkpoint.lag`` | gauge | {event} | |
| ``auditsvc.checkpoint.failures`` | counter | {failure} | |
| ``auditsvc.verify.runs`` | counter | {run} | ``auditsvc.verify.result`` |
| ``auditsvc.verify.failures`` | counter | {run} | ``auditsvc.verify.kind`` |
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .. import __version__
from ..domain.errors import DomainError
from ..settings import Settings

_meter = metrics.get_meter("auditsvc", __version__)

_SIZES = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

EVENTS_ACCEPTED = _meter.create_counter(
    "auditsvc.events.accepted", unit="{event}", description="Events committed to the chain"
)
EVENTS_DUPLICATE = _meter.create_counter(
    "auditsvc.events.duplicate", unit="{event}", description="Events resent with an event_id already stored (no-ops)"
)
BATCHES_REJECTED = _meter.create_counter(
    "auditsvc.batches.rejected",
    unit="{batch}",
    description="POST /v1/events batches answered with an error (nothing stored), by reason class",
)
BATCH_SIZE = _meter.create_histogram(
    "auditsvc.append.batch.size",
    unit="{event}",
    description="Events per appended request batch",
    explicit_bucket_boundaries_advisory=_SIZES,
)
GROUP_SIZE = _meter.create_histogram(
    "auditsvc.append.group.size",
    unit="{event}",
    description="Events per group-commit append transaction",
    explicit_bucket_boundaries_advisory=_SIZES,
)
APPEND_DURATION = _meter.create_histogram(
    "auditsvc.append.duration",
    unit="s",
    description="A request batch's wait for the chain head plus its append transaction, until committed",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
TRANSACTION_DURATION = _meter.create_histogram(
    "auditsvc.append.transaction.duration",
    unit="s",
    description="One group-commit append transaction (the log's serial point)",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
VERIFY_RUNS = _meter.create_counter(
    "auditsvc.verify.runs",
    unit="{run}",
    description="auditsvc verify runs that finished, intact or tampered",
)
VERIFY_FAILURES = _meter.create_counter(
    "auditsvc.verify.failures",
    unit="{run}",
    description="auditsvc verify runs that found damage, by the kind of the first damage",
)

REASON = "auditsvc.reason"
OUTCOME = "auditsvc.outcome"
VERIFY_KIND = "auditsvc.verify.kind"
VERIFY_RESULT = "auditsvc.verify.result"


@dataclass
class _LogState:
    """What this process last saw of its log, for the observable gauges."""

    tree_size: int | None = None
    checkpoints_read: bool = False  # the fields below were read from the database
    checkpoint_size: int | None = None  # None: the log has no checkpoint yet
    checkpoint_at: float | None = None  # Unix time the latest checkpoint was signed
    checkpoint_failures: int = 0


_state = _LogState()
_lock = threading.Lock()  # the gauges are read from the metric reader's thread


def observe_head(tree_size: int) -> None:
    with _lock:
        _state.tree_size = max(tree_size, _state.tree_size or 0)


def observe_checkpoint(tree_size: int, checkpoint_size: int | None, signed_at: float | None, failures: int) -> None:
    with _lock:
        _state.tree_size = max(tree_size, _state.tree_size or 0)
        _state.checkpoints_read = True
        _state.checkpoint_size = checkpoint_size
        _state.checkpoint_at = signed_at
        _state.checkpoint_failures = failures


def forget_log() -> None:
    """The log's service stopped: report nothing until one starts again."""
    global _state
    with _lock:
        _state = _LogState()


def _tree_size(_: CallbackOptions) -> Iterable[Observation]:
    with _lock:
        size = _state.tree_size
    return [] if size is None else [Observation(size)]


def _checkpoint_age(_: CallbackOptions) -> Iterable[Observation]:
    with _lock:
        at = _state.checkpoint_at
    return [] if at is None else [Observation(max(0.0, time.time() - at))]


def _checkpoint_lag(_: CallbackOptions) -> Iterable[Observation]:
    with _lock:
        size, covered, known = _state.tree_size, _state.checkpoint_size, _state.checkpoints_read
    if size is None or not known:
        return []
    return [Observation(max(0, size - (covered or 0)))]


def _checkpoint_failures(_: CallbackOptions) -> Iterable[Observation]:
    with _lock:
        return [Observation(_state.checkpoint_failures)]


_meter.create_observable_gauge(
    "auditsvc.tree.size", [_tree_size], unit="{event}", description="Events in the log (the Merkle tree size)"
)
_meter.create_observable_gauge(
    "auditsvc.checkpoint.age",
    [_checkpoint_age],
    unit="s",
    description="Seconds since the latest signed checkpoint; grows legitimately while the log is idle",
)
_meter.create_observable_gauge(
    "auditsvc.checkpoint.lag",
    [_checkpoint_lag],
    unit="{event}",
    description="Committed events no signed checkpoint covers yet",
)
_meter.create_observable_counter(
    "auditsvc.checkpoint.failures",
    [_checkpoint_failures],
    unit="{failure}",
    description="Failed checkpoint rounds and sink publications in this process",
)


def record_group(batch_sizes: Sequence[int], accepted: int, duplicate: int, tree_size: int, seconds: float) -> None:
    """One committed group-commit transaction."""
    EVENTS_ACCEPTED.add(accepted)
    EVENTS_DUPLICATE.add(duplicate)
    GROUP_SIZE.record(sum(batch_sizes))
    TRANSACTION_DURATION.record(seconds, {OUTCOME: "committed"})
    observe_head(tree_size)


def record_failed_group(outcome: str, seconds: float) -> None:
    TRANSACTION_DURATION.record(seconds, {OUTCOME: outcome})


def error_class(exc: BaseException) -> str:
    """``InvalidInput`` -> ``invalid_input``: a reason class, never content."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


@contextmanager
def counting_rejections() -> Iterator[None]:
    """Count a batch refused with a domain error (4xx, or 5xx: nothing stored)."""
    try:
        yield
    except DomainError as exc:
        BATCHES_REJECTED.add(1, {REASON: error_class(exc)})
        raise


_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def record_verification(settings: Settings, damage_kind: str | None) -> None:
    """Count one finished ``auditsvc verify`` run (``damage_kind``: the first
    damage's kind, a code constant; None: intact).

    Telemetry is set up here, after the run, so that verification's worker
    processes never inherit exporter threads; the exporters flush when the
    command exits.
    """
    from .providers import setup_telemetry

    setup_telemetry(settings, traces=False)
    VERIFY_RUNS.add(1, {VERIFY_RESULT: "intact" if damage_kind is None else "tampered"})
    if damage_kind is not None:
        VERIFY_FAILURES.add(1, {VERIFY_KIND: damage_kind if _KIND.match(damage_kind) else "other"})
