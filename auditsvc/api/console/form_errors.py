"""Form errors as a person reads them: the field and the reason, never the value."""

from __future__ import annotations

from ...domain.errors import InvalidInput


def named_fields(exc: InvalidInput) -> InvalidInput:
    """``exc`` with its message naming each field and its reason (the domain's
    ``errors`` carry ``loc`` and ``msg``; values are never quoted)."""
    parts = []
    for error in exc.errors:
        loc = [str(p) for p in error.get("loc", ()) if str(p) not in ("body", "query")]
        parts.append(f"{'.'.join(loc) or 'form'}: {error.get('msg', 'invalid')}")
    if not parts:
        return exc
    return InvalidInput("; ".join(parts), exc.errors)
