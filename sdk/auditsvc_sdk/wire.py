"""The event on the wire, as a public surface (the ``POST /v1/events`` body).

``parse_event_batch`` is the one validation of a request body that the SDK
and the service share, so an event the SDK accepts is one the service
accepts; ``wire_event`` turns a ``PhiAccess`` into the same validated form.
``NO_NUL_PATTERN`` is the string rule that keeps NUL out of every stored text.
"""

from __future__ import annotations

from ._event import NO_NUL_PATTERN
from ._wire import WireEvent, parse_event_batch, wire_event

__all__ = ["NO_NUL_PATTERN", "WireEvent", "parse_event_batch", "wire_event"]
