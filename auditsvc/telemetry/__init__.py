"""OpenTelemetry for auditsvc: traces, metrics and structured logs, with no PHI.

- ``setup_telemetry(settings)`` installs the providers once per process,
  exporting only what the standard ``OTEL_*`` variables ask for
  (``providers``); ``Telemetry.instrument(app)`` adds request spans, HTTP
  metrics and, when enabled, ``GET /metrics`` for Prometheus.
- ``tracing``: request and database spans; ``append``: the group-commit
  span and the append path's measurements.
- ``metrics``: the service's instruments (names in that module's docstring).
- ``logs``: text or JSON log lines with trace ids, a path-only access log.
- ``scrub``: what every span goes through before any exporter.

Patient identifiers never reach any of them: the service records counts,
sizes, durations, system ids, seq numbers and error classes only, and the
scrubbing exporter removes what instrumentation would record on its own
(query strings, SQL literals, exception messages).
"""

from .providers import ExportPlan, Telemetry, active_telemetry, export_plan, setup_telemetry, shutdown_telemetry

__all__ = [
    "ExportPlan",
    "Telemetry",
    "active_telemetry",
    "export_plan",
    "setup_telemetry",
    "shutdown_telemetry",
]
