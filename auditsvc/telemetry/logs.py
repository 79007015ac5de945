"""Logging: plain text or one JSON object per line, never PHI.

``AUDITSVC_LOG_FORMAT=json`` writes each record as a JSON object with
``timestamp`` (UTC, RFC 3339), ``level``, ``logger``, ``message``, ``pid``,
and ``trace_id``/``span_id`` (lowercase hex, W3C) when a span is active.
Access log records also carry ``http.request.method``, ``url.path``,
``http.response.status_code`` and ``client.address``.

Two rules hold in both formats:

- uvicorn's access log shows the path only: the query string is cut before
  any handler sees the record (``GET /fhir/AuditEvent?patient.identifier=``
  would put an identifier in the log), and so is any path segment that is
  not a route's own word or a safe parameter value (``GET /v1/nope/MRN00042``
  is logged as ``GET /v1/{withheld}/{withheld}``; ``scrub.loggable_path``).
- An exception is logged by type and stack frames, not by its message:
  PostgreSQL's DETAIL, which ends up in exception texts, can quote a row.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import traceback
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

from .scrub import loggable_path

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "uvicorn.access"


def _exception_text(exc_info: Any) -> str:
    """``Type`` plus the stack frames, without the exception's message."""
    exc_type, _, tb = exc_info
    frames = "".join(traceback.format_tb(tb)) if tb is not None else ""
    name = exc_type.__qualname__ if exc_type is not None else "Exception"
    return f"Traceback (most recent call last):\n{frames}{name} (message withheld)"


class AccessLogPathOnly(logging.Filter):
    """Cut the query string, and path segments that may be PHI, from
    uvicorn's access log records.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with (client, method, path
    with query, HTTP version, status); the third argument becomes its
    ``scrub.loggable_path``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], loggable_path(args[2]), args[3], args[4])
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with exceptions by type and frames only."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def formatException(self, ei: Any) -> str:
        return _exception_text(ei)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the active span's trace and span ids."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = format(ctx.trace_id, "032x")
            out["span_id"] = format(ctx.span_id, "016x")
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args
            out.update(
                {
                    "http.request.method": method,
                    "url.path": path,
                    "http.response.status_code": status,
                    "client.address": client,
                }
            )
        if record.exc_info:
            out["exception.type"] = record.exc_info[0].__qualname__ if record.exc_info[0] else None
            out["exception.stacktrace"] = _exception_text(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _formatter(log_format: LogFormat) -> dict[str, Any]:
    if log_format == "json":
        return {"()": f"{__name__}.JsonFormatter"}
    return {"()": f"{__name__}.TextFormatter"}


def logging_config(log_format: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the process and uvicorn (its
    ``log_config``, so each worker process applies it too): one handler on
    stderr, every logger propagating to it."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"path_only": {"()": f"{__name__}.AccessLogPathOnly"}},
        "formatters": {"default": _formatter(log_format)},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            ACCESS_LOGGER: {"handlers": [], "level": "INFO", "propagate": True, "filters": ["path_only"]},
            "alembic": {"level": "WARNING"},
        },
        "root": {"handlers": ["stderr"], "level": level},
    }


def configure_logging(log_format: LogFormat | None = None, level: str | None = None) -> dict[str, Any]:
    """Configure this process's logging; returns a fresh copy of the
    configuration for uvicorn, which applies it again in each worker.

    Unset arguments come from ``AUDITSVC_LOG_FORMAT`` and ``AUDITSVC_LOG_LEVEL``.
    """
    fmt: LogFormat = "json" if (log_format or os.environ.get("AUDITSVC_LOG_FORMAT", "")).lower() == "json" else "text"
    lvl = (level or os.environ.get("AUDITSVC_LOG_LEVEL", "INFO")).upper()
    logging.config.dictConfig(logging_config(fmt, lvl))
    return logging_config(fmt, lvl)


def install_access_log_filter() -> None:
    """Cut query strings from the access log whoever configured logging
    (the tests' servers, a custom ``--log-config``)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogPathOnly) for f in logger.filters):
        logger.addFilter(AccessLogPathOnly())


__all__ = [
    "AccessLogPathOnly",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "install_access_log_filter",
    "logging_config",
]
