"""Set-up: tracer and meter providers, exporters chosen by the standard
``OTEL_*`` variables, once per process.

Nothing is exported unless asked for:

- traces: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``: one JSON object
  per line on stderr, ``none``), or, when it is unset, OTLP if
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set;
- metrics: the same with ``OTEL_METRICS_EXPORTER``; also ``prometheus``, or
  ``AUDITSVC_PROMETHEUS_METRICS=true``, serves them at ``GET /metrics``;
- ``OTEL_SDK_DISABLED=true`` turns everything off.

OTLP goes over gRPC unless ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or the
per-signal variable) says ``http/protobuf``, the Python SDK's convention.
The exporters read their endpoint, headers, timeout, certificates and
compression from the standard variables themselves; the sampler comes from
``OTEL_TRACES_SAMPLER``. With nothing asked for, no provider is installed
and every span and instrument stays a no-op.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from .. import __version__
from ..settings import Settings
from .logs import install_access_log_filter

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from prometheus_client import CollectorRegistry
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger(__name__)

TRACE_EXPORTERS = frozenset({"otlp", "console"})
METRIC_EXPORTERS = frozenset({"otlp", "console", "prometheus"})

# HTTP server metrics keep these attributes only: the Host header and peer
# addresses would give every client (or attacker) its own time series.
HTTP_METRIC_ATTRIBUTES = frozenset(
    {
        "http.method",
        "http.scheme",
        "http.status_code",
        "http.target",  # the route template, on matched routes only
        "http.flavor",
        "http.request.method",
        "http.response.status_code",
        "http.route",
        "url.scheme",
        "network.protocol.version",
        "error.type",
    }
)


@dataclass(frozen=True)
class ExportPlan:
    """Which exporters the environment asks for, per signal."""

    traces: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _exporters(env: Mapping[str, str], signal: str, known: frozenset[str]) -> tuple[str, ...]:
    named = env.get(f"OTEL_{signal}_EXPORTER", "").strip()
    if not named:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        return ("otlp",) if endpoint else ()
    chosen: list[str] = []
    for name in (n.strip().lower() for n in named.split(",")):
        if name == "none":
            return ()
        if name in known and name not in chosen:
            chosen.append(name)
        elif name not in known:
            log.warning("OTEL_%s_EXPORTER=%s is not supported here; ignored", signal, name)
    return tuple(chosen)


def export_plan(env: Mapping[str, str], prometheus: bool = False) -> ExportPlan:
    """The exporters ``env`` (the process environment) asks for."""
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return ExportPlan()
    metrics = _exporters(env, "METRICS", METRIC_EXPORTERS)
    if prometheus and "prometheus" not in metrics:
        metrics += ("prometheus",)
    return ExportPlan(_exporters(env, "TRACES", TRACE_EXPORTERS), metrics)


def _protocol(env: Mapping[str, str], signal: str) -> str:
    value = env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if value not in {"grpc", "http/protobuf"}:
        log.warning("OTLP protocol %s is not supported here; using http/protobuf", value)
        return "http/protobuf"
    return value


def service_resource(env: Mapping[str, str]) -> Resource:
    """``service.name`` from ``OTEL_SERVICE_NAME`` (default ``auditsvc``), the
    version, a per-process ``service.instance.id`` (several workers and pods
    report side by side), and ``OTEL_RESOURCE_ATTRIBUTES``."""
    from opentelemetry.sdk.resources import Resource

    detected = dict(Resource.create().attributes)  # reads the OTEL_* variables
    if str(detected.get("service.name", "")).startswith("unknown_service"):
        del detected["service.name"]
    base: dict[str, Any] = {
        "service.name": "auditsvc",
        "service.version": __version__,
        "service.instance.id": str(uuid.uuid4()),
    }
    return Resource({**base, **detected})


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
    if _protocol(env, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return GrpcSpans()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    return HttpSpans()


def _metric_reader(name: str, env: Mapping[str, str]) -> tuple[MetricReader, CollectorRegistry | None]:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if name == "prometheus":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, ProcessCollector

        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        return PrometheusMetricReader(registry=registry), registry
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        exporter: Any = ConsoleMetricExporter(out=sys.stderr, formatter=lambda data: data.to_json(indent=None) + "\n")
    elif _protocol(env, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        exporter = GrpcMetrics()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

        exporter = HttpMetrics()
    return PeriodicExportingMetricReader(exporter), None


@dataclass
class Telemetry:
    """This process's telemetry: what was installed, and how to wire an app."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    prometheus_registry: CollectorRegistry | None = None
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tracing(self) -> bool:
        return self.tracer_provider is not None and not self.closed

    @property
    def metrics(self) -> bool:
        return self.meter_provider is not None and not self.closed

    def instrument(self, app: FastAPI) -> None:
        """Request spans and HTTP metrics, and ``GET /metrics`` when Prometheus is on."""
        from .scrub import register_routes, route_paths

        install_access_log_filter()
        _native_fastapi_telemetry_off(app)
        if self.tracing or self.metrics:
            from .tracing import instrument_app

            instrument_app(app)
        if self.prometheus_registry is not None and not self.closed:
            app.add_route("/metrics", self._prometheus, methods=["GET"], include_in_schema=False)
        register_routes(route_paths(app.routes))  # their paths may be logged and traced

    def serve_prometheus(self, host: str, port: int) -> None:
        """``GET /metrics`` on a port of its own, for a process without the API
        (the syslog listener); nothing when Prometheus is not on."""
        if self.prometheus_registry is None or self.closed:
            return
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=self.prometheus_registry)

    async def _prometheus(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response

        assert self.prometheus_registry is not None
        return Response(generate_latest(self.prometheus_registry), media_type=CONTENT_TYPE_LATEST)

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        ok = True
        if self.tracer_provider is not None:
            ok = self.tracer_provider.force_flush(timeout_millis) and ok
        if self.meter_provider is not None:
            ok = self.meter_provider.force_flush(timeout_millis) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and stop the exporters, and take the database instrumentation
        off; idempotent. The global providers stay installed (OpenTelemetry
        allows setting them once per process), recording nothing further."""
        with self._lock:
            if self.closed or (self.tracer_provider is None and self.meter_provider is None):
                return
            self.closed = True
        from .tracing import uninstrument_database

        uninstrument_database()
        if self.tracer_provider is not None:
            if isinstance(self.tracer_provider.sampler, _StoppableSampler):
                self.tracer_provider.sampler.stopped = True
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def _native_fastapi_telemetry_off(app: FastAPI) -> None:
    """Recent FastAPI releases trace on their own whenever a global provider
    is set: with the query string in ``url.query``, exception messages in
    logs, and, with ``FASTAPI_OTEL_AUTO_CONFIGURE``, exporters of their own
    that would bypass the scrubbing. The instrumentation here is the one way
    out, so that is switched off (its settings are read per request)."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(tracing=False, metrics=False, logs=False, operation_spans=False, auto_configure=False)


_active = Telemetry()
_setup_lock = threading.Lock()


class _StoppableSampler(Sampler):
    """The environment's sampler until shutdown, then nothing: the global
    provider outlives ``shutdown`` (OpenTelemetry sets it once per process),
    and must not keep recording spans for processors that are gone."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.stopped = False

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        if self.stopped:
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return self.inner.get_description()


def setup_telemetry(
    settings: Settings,
    *,
    traces: bool = True,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Install providers and exporters for this process, once.

    Later calls return the same ``Telemetry``; a call made while nothing is
    installed (no exporter was asked for) may still install, which is how
    tests bring in-memory exporters. ``traces=False`` (the command line)
    installs no tracing. ``span_exporters`` get every span synchronously.
    """
    global _active
    with _setup_lock:
        if _active.closed or _active.tracing or _active.metrics:
            return _active
        env = os.environ
        plan = export_plan(env, settings.prometheus_metrics)
        exporters = [(_span_exporter(name, env), name) for name in plan.traces if traces]
        exporters += [(exporter, "console") for exporter in span_exporters]
        readers = [_metric_reader(name, env) for name in plan.metrics]
        readers += [(reader, None) for reader in metric_readers]
        if not exporters and not readers:
            return _active
        resource = service_resource(env)
        telemetry = Telemetry()
        if exporters:
            telemetry.tracer_provider = _tracer_provider(resource, exporters)
        if readers:
            telemetry.meter_provider = _meter_provider(resource, [r for r, _ in readers])
            telemetry.prometheus_registry = next((reg for _, reg in readers if reg is not None), None)
        _active = telemetry
        log.info(
            "telemetry: traces to %s, metrics to %s",
            ", ".join(plan.traces if traces else ()) or "none",
            ", ".join(plan.metrics) or "none",
        )
        return telemetry


def _tracer_provider(resource: Resource, exporters: list[tuple[SpanExporter, str]]) -> TracerProvider:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from .scrub import ScrubbingSpanExporter
    from .tracing import instrument_database

    provider = TracerProvider(resource=resource)
    provider.sampler = _StoppableSampler(provider.sampler)  # before any tracer copies it
    for exporter, name in exporters:
        scrubbed = ScrubbingSpanExporter(exporter)
        # Console output is for looking at now; OTLP goes in batches off the request path.
        provider.add_span_processor(
            SimpleSpanProcessor(scrubbed) if name == "console" else BatchSpanProcessor(scrubbed)
        )
    trace.set_tracer_provider(provider)
    instrument_database()
    return provider


def _meter_provider(resource: Resource, readers: list[MetricReader]) -> MeterProvider:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import View

    provider = MeterProvider(
        metric_readers=readers,
        resource=resource,
        views=[View(instrument_name="http.server.*", attribute_keys=set(HTTP_METRIC_ATTRIBUTES))],
    )
    metrics.set_meter_provider(provider)
    return provider


def active_telemetry() -> Telemetry:
    """What ``setup_telemetry`` installed in this process (possibly nothing)."""
    return _active


def shutdown_telemetry() -> None:
    _active.shutdown()
