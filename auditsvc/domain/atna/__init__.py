"""IHE ATNA audit messages (DICOM PS3.15 A.5 and RFC 3881) to the service's events.

The syslog listeners hand each message's MSG part to
:func:`map_audit_message` with an :class:`AtnaOrigin`; it returns the events
(one per patient, in the JSON shape ``POST /v1/events`` takes) or raises
:class:`AtnaUnmappable` with a stable ``reason`` for the quarantine. Modules:
``document`` (hardened XML parsing), ``message`` (the message's parts in
either naming), ``cx`` (patient ids), ``participants`` (actor, systems,
observer), ``codes`` (code tables), ``draft`` (what one message's events
share, and the assumption flags), ``mapping`` (the rules and the events). docs/atna.md ("Mapping") has the decisions.
"""

from .document import AtnaLimits
from .errors import REASONS, AtnaUnmappable
from .mapping import ORIGIN, map_audit_message
from .origin import AtnaOrigin

__all__ = ["ORIGIN", "REASONS", "AtnaLimits", "AtnaOrigin", "AtnaUnmappable", "map_audit_message"]
