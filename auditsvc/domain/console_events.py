"""The web console's sign-ins, sign-outs and refused sign-ins, as events in
the chain (like every other thing the service does on a person's behalf).

Each is an event the service appends itself (source ``auditsvc``) whose
subject is the user, not a patient: ``urn:auditsvc:console-user|<caller id>``
(an API token's id or ``oidc:<subject>``), so ``patient_events`` finds a
user's sessions. A refused sign-in names the token id when the value was
shaped like a token (the id is public; the secret never leaves the request)
and otherwise ``unknown``; its reason is one of a few fixed words.
"""

from __future__ import annotations

from datetime import UTC, datetime

from auditsvc_sdk import PhiAccess
from auditsvc_sdk.wire import wire_event

from ..runtime import AuditLog
from .ingest import prepare
from .page_audit import subject_identifier
from .reserved import SERVICE_SYSTEM_ID

SIGN_IN = "console-sign-in"
SIGN_OUT = "console-sign-out"
SIGN_IN_REFUSED = "console-sign-in-refused"


async def record_console_event(
    audit: AuditLog,
    event_type: str,
    *,
    caller_id: str,
    caller_name: str | None,
    role: str,
    attributes: dict[str, str],
    outcome: int = 0,
) -> None:
    """Append (and commit) one console session event."""
    actor: dict[str, str] = {"id": caller_id, "type": "user", "role": role}
    if caller_name:
        actor["name"] = caller_name
    event = PhiAccess(
        occurred_at=datetime.now(UTC),
        action="E",
        event_type=event_type,
        patient={"identifiers": [subject_identifier("console-user", caller_id)]},
        data_elements=["Session"],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc console"},
        destination={"system_id": f"{SERVICE_SYSTEM_ID}:console"},
        actor=actor,
        outcome=outcome,
        attributes=attributes,
    )
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, caller_id))
