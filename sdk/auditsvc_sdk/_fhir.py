"""PHI access events from FHIR R4 resources and Bundles: ``read_fhir`` and ``events_from_fhir``.

One event per patient whose data the input carries, built by walking plain
JSON (no FHIR model library), best effort and never silent: every patient
the input names yields an event, flagged in ``attributes["assumed"]`` with
what had to be assumed (:class:`~auditsvc_sdk.helpers.Assumed`); a Bundle
entry (or Parameters resource) that cannot be read is refused on its own
and the others still yield their events; input that names no patient is
refused with cause ``no_patient``. The rules, in the order they apply:

Whose data is it
    A ``Patient`` resource is its own patient. Any other resource belongs to
    the patients named by its top-level ``subject``, ``patient``,
    ``beneficiary`` (Coverage), ``for`` (Task), ``individual``
    (ResearchSubject) or ``candidate`` (EnrollmentRequest), and by
    ``Appointment.participant[].actor`` and ``AppointmentResponse.actor``; a
    list of references (``Account.subject``) names each. ``who`` and nested
    ``individual``/``actor`` elements elsewhere (Provenance, AuditEvent,
    Encounter.participant) name who acted, not whose data it is, and are not
    read. Resources inside ``Parameters`` (``parameter[].resource``, nested
    ``part``: an operation's input or output, e.g. member-match) are walked
    like a Bundle's entries, resolving references by type and id among
    themselves. A reference that names a Group, Location, Device, Practitioner or
    any other non-Patient type is not a patient: that resource contributes no
    event and is counted in ``resources_without_patient``. Patient.link is not
    followed: linked records stay separate patients.

How a reference resolves
    ``Patient/123`` and ``https://x/fhir/Patient/123`` (``/_history/n``
    ignored), ``urn:uuid:``/``urn:oid:`` references looked up by
    ``fullUrl`` in the enclosing Bundle, ``#p1`` looked up in the
    resource's ``contained``, conditional references
    ``Patient?identifier=system|value`` (transactions), and logical
    references ``{"identifier": {...}}``. A relative reference is resolved
    against the base of the referencing entry's ``fullUrl`` (the FHIR
    Bundle rule), else ``fhir_base``; it matches a Patient entry by that full
    URL or, failing that, by type and id within the same Bundle. A logical
    reference with no ``type`` is taken to be the patient: in the fields
    above it overwhelmingly is, and an unrecorded access is worse than an
    unlinked identifier; give ``type`` to say otherwise. A reference in one
    of those fields that resolves to nothing (no such ``#id``, ``urn:`` or
    Bundle entry, only a ``display``, not a reference at all) still names a
    patient: an unlinked one, flagged ``reference_unresolved``. Server ids
    may contain ``_`` (not R4, but handed out), and still name their server.

The patient's identifiers
    Every ``Patient.identifier`` with a system and a value, canonicalised by
    the :class:`~auditsvc_sdk.helpers.IdentifierPolicy` (one with a value but
    no system is ambiguous across facilities and is skipped; one with no
    value, masked or carrying a data-absent-reason, is skipped and flagged
    ``identifier_without_value``; a placeholder value or one that cannot be
    stored is skipped and flagged), then the logical id as ``{"system": "<base>/Patient",
    "value": "<id>"}`` where ``<base>`` is the server base (from ``fullUrl``,
    an absolute reference, or ``fhir_base``), then identifiers carried by
    references. So the Patient resource and every reference to it give the
    very same identifier, and all of them resolve to one patient. Without a
    known base a logical id is used only when nothing else identifies the
    patient, qualified by the ``source`` system (``epic-fhir/Patient``),
    flagged ``base_from_source``: ``Patient|123`` from two servers would
    link two people. Contained patients have no logical id.
    Everything that shares an identifier or resolves to the same resource
    is one patient. Identifiers keep the order they were met in; at most 20
    are kept (the model's bound) and ``identifiers_omitted`` counts the rest. A patient
    left with no identifier at all gets one that links nothing,
    ``urn:auditsvc:unlinked`` with the event's own id as value, flagged
    ``patient_unidentified``.

What was accessed (``data_elements``)
    The patient's resource types in first-seen order, then (unless
    ``element_names=False``) the top-level element names present, as
    ``Observation.status``; choice elements as ``Observation.value[x]``,
    ``_birthDate`` as ``Patient.birthDate``; ``id``, ``meta``,
    ``implicitRules``, ``language`` and ``contained`` are not data. Contained
    resources count as accessed with their container. Entries with no
    resource (a delete in a transaction or history Bundle) whose
    ``request.url``, ``response.location`` or ``fullUrl`` names a Patient
    count as ``Patient``. At most 200 strings: all types first, then element
    names until the bound; ``data_elements_omitted`` counts the rest.

Bundles
    Every type (searchset, collection, transaction, batch, document,
    message, history, and their responses), nested Bundles included (each
    resolves references within itself). One event per patient, in the order
    patients are first met. ``action`` is the caller's for every event: a
    transaction's per-entry methods are not split into several events.

The events
    ``message_id`` is the Bundle's or the resource's id unless given (never
    a Patient resource's own id: that is a patient identifier, and
    ``message_id`` is stored in clear);
    ``event_type`` is ``fhir-rest`` unless given; attributes are
    ``resource_type`` (the top-level type), ``resource_count`` (resources of
    this patient), ``patient_count`` (events made from this input) and, for a
    Bundle, ``bundle_type``, ``entry_count`` (top-level entries) and
    ``resources_without_patient``; the caller's ``attributes`` are added last
    and win; then ``assumed`` when anything was.

No patient
    Input that names no patient (a Practitioner, a CapabilityStatement, an
    empty searchset, a Bundle of Group-subject resources) is not a PHI
    access of anyone's record: ``read_fhir`` refuses it (``no_patient``),
    ``events_from_fhir`` returns an empty list.

Errors
    A refusal (and the ``FHIRError``, a ``ValueError``, that
    ``events_from_fhir`` raises when nothing in the input could be read)
    names the JSON path (``entry[3].resource``) and the kind of problem,
    never an identifier value, a name or any other content of the input.
    A UTF-8 byte-order mark before JSON text is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ._event import Action, Actor, Outcome, PhiAccess, SystemRef, new_event_id
from ._fhir_json import FHIRError, load, resource_type
from ._fhir_walk import FHIR_ID, Walker
from ._identifiers import DEFAULT_POLICY, UNLINKED_SYSTEM, IdentifierPolicy
from ._results import Assumed, Cause, HelperResult, Refusal, event_attributes, result

__all__ = ["FHIRError", "events_from_fhir", "read_fhir"]


def read_fhir(
    resource_or_bundle: Mapping[str, Any] | str | bytes,
    *,
    source: SystemRef | Mapping[str, Any] | str,
    destination: SystemRef | Mapping[str, Any] | str,
    actor: Actor | Mapping[str, Any],
    action: Action | str = Action.READ,
    event_type: str = "fhir-rest",
    purpose_of_use: str | None = None,
    occurred_at: datetime | str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    message_id: str | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
    fhir_base: str | None = None,
    element_names: bool = True,
    identifier_policy: IdentifierPolicy | None = None,
) -> HelperResult:
    """PHI access events of a FHIR R4 resource or Bundle, best effort: one per patient whose data it carries.

    Every patient named yields an event; what had to be assumed is flagged
    in ``attributes["assumed"]`` (:class:`Assumed`). A Bundle entry that
    cannot be read is listed in ``refusals`` (its top-level entry number as
    ``index``) while the other entries still yield their events; input that
    names no patient is refused with cause ``no_patient``. Never raises for
    the content of the input. ``source`` and ``destination`` are
    ``SystemRef``s, their JSON objects, or bare system ids; ``fhir_base`` is
    the server base URL (``https://x/fhir``) used to turn relative
    references and logical ids into identifiers. Every event shares
    ``occurred_at`` (default: now). See the module docstring for the rules.
    """
    source_ref, destination_ref = _system(source), _system(destination)
    common: dict[str, Any] = {
        "occurred_at": occurred_at if occurred_at is not None else datetime.now(UTC),
        "action": action,
        "event_type": event_type,
        "source": source_ref,
        "destination": destination_ref,
        "actor": actor if isinstance(actor, Actor) else Actor.model_validate(actor),
        "purpose_of_use": purpose_of_use,
        "outcome": outcome,
    }
    walker = Walker(fhir_base, element_names, identifier_policy or DEFAULT_POLICY, source_ref.system_id)
    try:
        data = load(resource_or_bundle)
        rtype = resource_type(data, "")
    except FHIRError as exc:
        cause = exc.cause if exc.cause != Cause.BAD_ENTRY else Cause.NOT_FHIR
        return HelperResult(refusals=(Refusal(None, cause, exc.problem, exc.path),))
    refusals: list[Refusal] = []
    try:
        walker.walk(data, rtype)
    except FHIRError as exc:
        refusals.append(Refusal(None, exc.cause, exc.problem, exc.path))
    refusals[:0] = [Refusal(unit, exc.cause, exc.problem, exc.path) for unit, exc in walker.refusals]
    patients = walker.patients()
    if not patients:
        if not refusals:
            refusals.append(Refusal(None, Cause.NO_PATIENT, f"the {rtype} names no patient"))
        return HelperResult(refusals=tuple(refusals), units=1)

    # A Patient's own id is a patient identifier (it is among the event's
    # identifiers, sealed at rest); message_id is stored in clear, so it is
    # never taken from one.
    own_id = data.get("id")
    if message_id is None and rtype != "Patient" and isinstance(own_id, str) and re.fullmatch(FHIR_ID, own_id):
        message_id = own_id
    base_attributes: dict[str, str | int | bool] = {"resource_type": rtype}
    if rtype == "Bundle":
        if isinstance(data.get("type"), str) and len(data["type"]) <= 64:
            base_attributes["bundle_type"] = data["type"]
        entries = data.get("entry", [])
        base_attributes["entry_count"] = len(entries) if isinstance(entries, list) else 0
        base_attributes["resources_without_patient"] = walker.without_patient
    base_attributes["patient_count"] = len(patients)
    events = []
    for patient in patients:
        attrs = dict(base_attributes, resource_count=patient.resources)
        if patient.identifiers_omitted:
            attrs["identifiers_omitted"] = patient.identifiers_omitted
        if patient.elements_omitted:
            attrs["data_elements_omitted"] = patient.elements_omitted
        event_id = new_event_id()
        identifiers, assumed = patient.identifiers, list(patient.assumed)
        if not identifiers:
            identifiers = [(UNLINKED_SYSTEM, str(event_id))]
            assumed.append(Assumed.PATIENT_UNIDENTIFIED)
        try:
            events.append(
                PhiAccess(
                    **common,
                    event_id=event_id,
                    patient={"identifiers": [{"system": s, "value": v} for s, v in identifiers]},
                    data_elements=patient.data_elements,
                    message_id=message_id,
                    attributes=event_attributes(attrs, attributes or {}, assumed),
                )
            )
        except ValidationError as exc:
            # Only the location and the reason: pydantic's text would quote the input.
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            refusals.append(Refusal(None, Cause.INVALID_EVENT, f"the event built is invalid: {reasons}"))
            break
    return result([(0, e) for e in events], refusals, 1)


def _system(ref: SystemRef | Mapping[str, Any] | str) -> SystemRef:
    if isinstance(ref, SystemRef):
        return ref
    return SystemRef(system_id=ref) if isinstance(ref, str) else SystemRef.model_validate(ref)


def events_from_fhir(
    resource_or_bundle: Mapping[str, Any] | str | bytes,
    *,
    source: SystemRef | Mapping[str, Any] | str,
    destination: SystemRef | Mapping[str, Any] | str,
    actor: Actor | Mapping[str, Any],
    action: Action | str = Action.READ,
    event_type: str = "fhir-rest",
    purpose_of_use: str | None = None,
    occurred_at: datetime | str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    message_id: str | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
    fhir_base: str | None = None,
    element_names: bool = True,
    identifier_policy: IdentifierPolicy | None = None,
) -> list[PhiAccess]:
    """The events of :func:`read_fhir`: an empty list when the input names no patient,
    :class:`FHIRError` when nothing in it could be read. Kept for existing callers; refusals of
    single Bundle entries are reported only by :func:`read_fhir`."""
    found = read_fhir(
        resource_or_bundle,
        source=source,
        destination=destination,
        actor=actor,
        action=action,
        event_type=event_type,
        purpose_of_use=purpose_of_use,
        occurred_at=occurred_at,
        outcome=outcome,
        message_id=message_id,
        attributes=attributes,
        fhir_base=fhir_base,
        element_names=element_names,
        identifier_policy=identifier_policy,
    )
    if not found.events:
        refused = [r for r in found.refusals if r.cause != Cause.NO_PATIENT]
        if refused:
            raise FHIRError(refused[0].where, refused[0].message, refused[0].cause)
    return list(found.events)
