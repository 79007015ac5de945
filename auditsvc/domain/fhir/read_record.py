"""How a FHIR read of the log shows patient identifiers, and how it is
recorded in the chain ("Audit Log Used", DCM 110101, ITI-81).

A privacy officer sees identifiers opened; an auditor, who proves the log
without seeing PHI, sees each sealed value as stored (``aes256gcm:...``),
or, for a record stored before identifiers were sealed, no value at all
(``data-absent-reason`` ``masked``).

The record of a search or read is the service's ``audit-log-query`` event
(domain/read_audit.py): the reader as actor, the searched patient (or the
read event's patient) as subject (a search for several patients, OR'ed,
appends one event per identifier searched, in one batch: identifiers named
together in one event are linked as one patient), ``attributes.query`` ``fhir-search`` or
``fhir-read`` and the query itself in ``fhir_query.0``, ``fhir_query.1``...
(at most 1,024 characters each), its patient values sealed. Mapped back to
FHIR it is an AuditEvent of type 110101 with subtype ITI-81 and the query in
``entity.query``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.wire import wire_event

from ...runtime import AuditLog
from ..ingest import prepare
from ..page_audit import subject_identifier
from ..read_audit import read_event
from ..reserved import SERVICE_SYSTEM_ID
from ..tokens import Caller, Role
from .audit_event import QUERY_ATTRIBUTE, Reveal

ATTRIBUTE_TEXT = 1024  # an attribute value's limit (SDK)
MAX_QUERY_CHUNKS = 24  # with the other attributes, within the event's 32
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def _masked(identifier: dict[str, Any]) -> dict[str, Any]:
    if "value_enc" in identifier:
        return {"system": identifier["system"], "value": identifier["value_enc"]}
    return {"system": identifier["system"], "_value": {"extension": [{"url": DATA_ABSENT, "valueCode": "masked"}]}}


def revealer(audit: AuditLog, reader: Caller) -> Reveal:
    """Stored identifier -> FHIR Identifier, by what ``reader`` may see."""
    if reader.role is Role.PRIVACY_OFFICER:
        sealer = audit.keys.sealer
        assert sealer is not None  # the service's keys always seal
        return sealer.reveal
    return _masked


def query_attributes(query: str) -> dict[str, str | bool]:
    """The query in chunks an event's attributes can hold."""
    chunks = [query[i : i + ATTRIBUTE_TEXT] for i in range(0, len(query), ATTRIBUTE_TEXT)]
    attributes: dict[str, str | bool] = {f"{QUERY_ATTRIBUTE}.{i}": c for i, c in enumerate(chunks[:MAX_QUERY_CHUNKS])}
    if len(chunks) > MAX_QUERY_CHUNKS:
        attributes["fhir_query_truncated"] = True
    return attributes


async def record_fhir_read(
    audit: AuditLog,
    reader: Caller,
    kind: str,
    identifiers: Sequence[Identifier],
    *,
    query_text: str | None,
    details: Mapping[str, str],
    one_patient: bool,
) -> None:
    """Append (and commit) the Audit Log Used event(s) of one search page or
    read: one event naming ``identifiers`` when they are ``one_patient``'s,
    else one event per identifier."""
    attributes: dict[str, str | int | bool] = {"query": kind, **details}
    if query_text is not None:
        attributes |= query_attributes(query_text)
    subjects = [list(identifiers)] if one_patient else [[i] for i in identifiers]
    if not identifiers:
        subjects = [[subject_identifier(kind, "AuditEvent")]]
    if len(subjects) > 1:
        attributes["search_id"] = str(uuid.uuid4())
    events = [
        read_event(
            subject,
            actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
            destination=f"{SERVICE_SYSTEM_ID}:{reader.role.value}",
            data_elements=["AuditEvent"],
            attributes=attributes,
        )
        for subject in subjects
    ]
    await audit.appender.append_batch(prepare([wire_event(e) for e in events], audit.keys, reader.token_id))
