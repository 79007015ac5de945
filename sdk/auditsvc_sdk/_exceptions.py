"""Errors raised by the SDK.

AuditError
├── ServiceError            the service answered with an error status
│   └── EventRejected       4xx: the batch was invalid or not allowed
└── TransportError          the service could not be reached
"""

from __future__ import annotations

from typing import Any

__all__ = ["AuditError", "EventRejected", "ServiceError", "TransportError"]


class AuditError(Exception):
    """Base class of every SDK error."""


class TransportError(AuditError):
    """The service could not be reached (connection refused, timeout, DNS)."""


class ServiceError(AuditError):
    """The service answered with an error status."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"auditsvc answered {status_code}: {detail}")


class EventRejected(ServiceError):
    """The service refused the batch (4xx); resending it unchanged will not help."""
