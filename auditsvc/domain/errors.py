"""Domain errors. api/errors.py maps each to its HTTP status.

An error that refuses some events of a batch names them in ``refused``:
one ``{"index", "reason"}`` per event, the reason one of ``REFUSED_REASONS``.

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

from collections.abc import Iterable
from typing import Any, Literal

RefusedReason = Literal["invalid", "source_not_allowed"]
REFUSED_REASONS: tuple[RefusedReason, ...] = ("invalid", "source_not_allowed")
"""``invalid``: the event fails validation (422); ``source_not_allowed``: its
source system is not one the emitter token is bound to (403)."""


def refused_events(indexes: Iterable[int], reason: RefusedReason) -> list[dict[str, Any]]:
    """``refused``: each index once, in order."""
    return [{"index": index, "reason": reason} for index in sorted(set(indexes))]


def invalid_events(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``refused`` for the events that validation ``errors`` name (``loc`` ``["events", i, ...]``)."""
    return refused_events(
        (e["loc"][1] for e in errors if len(e["loc"]) >= 2 and e["loc"][0] == "events" and type(e["loc"][1]) is int),
        "invalid",
    )


class DomainError(Exception):
    def __init__(self, message: str, refused: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused or []


class InvalidInput(DomainError):
    def __init__(
        self, message: str, errors: list[dict[str, Any]] | None = None, refused: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, refused)
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
