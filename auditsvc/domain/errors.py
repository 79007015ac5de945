"""Domain errors. api/errors.py maps each to its HTTP status.

DomainError
├── InvalidInput          422: fields named with the reason (never the value)
├── MalformedBody         400: not UTF-8, not JSON
├── PayloadTooLarge       413
├── Unauthenticated       401
├── Forbidden             403
├── NotFound              404
├── Conflict              409: refused because of stored state (e.g. an inconsistent log)
├── Unavailable           503: the database cannot be reached
└── AppendFailed          500: the append transaction failed; nothing stored
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class MalformedBody(DomainError):
    pass


class PayloadTooLarge(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class Forbidden(DomainError):
    pass


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Unavailable(DomainError):
    pass


class AppendFailed(DomainError):
    pass
