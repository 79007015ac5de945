"""Who an HL7 v2 message is about: its patients, their identifiers, and the segments of each.

See the module docstring of ``_hl7v2`` for the rules; this module applies
them to one parsed message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._event import MAX_IDENTIFIERS
from ._hl7v2_text import HL7v2Error, Reader, component, field_of, has_content, repetitions
from ._identifiers import US_SSN, IdentifierPolicy
from ._results import Assumed, Cause

__all__ = ["IdentifierContext", "PatientGroup", "message_patients", "system_from_msh"]

_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_SYSTEM_CHAR = re.compile(r"[^A-Za-z0-9_.:/+~-]+")
_SSN_SHAPE = re.compile(r"\d{3}[- ]?\d{2}[- ]?\d{4}")
_MAX_VALUE = 128
_MAX_SYSTEM = 256
# Patient identifier fields: PID-3 (list), PID-2 (external, v2.3), PID-4 (alternate); MRG-1, MRG-2, MRG-4.
_PID_CX_FIELDS = (3, 2, 4)
_MRG_CX_FIELDS = (1, 2, 4)

HD = tuple[str, str, str]  # namespace id, universal id, universal id type


@dataclass
class PatientGroup:
    """One patient of a message: canonical (system, value) pairs, segment ids, and what was assumed."""

    identifiers: list[tuple[str, str]] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)


@dataclass
class IdentifierContext:
    """What identifier systems are read with: the message, the policy, and the channel's fallbacks."""

    r: Reader
    policy: IdentifierPolicy
    default_authority: str | None = None
    source_id: str | None = None

    def add(self, group: PatientGroup, system: str | None, value: str) -> None:
        """Record one identifier of ``group``, or flag why it was left out."""
        if system is None:
            group.assumed.append(Assumed.AUTHORITY_UNKNOWN)
            return
        canonical = self.policy.canonical(system, value)
        if canonical is None:
            group.assumed.append(Assumed.PLACEHOLDER_IDENTIFIER)
            return
        system, value = canonical
        if not (0 < len(system) <= _MAX_SYSTEM and 0 < len(value) <= _MAX_VALUE) or _CONTROL.search(system + value):
            group.assumed.append(Assumed.UNUSABLE_IDENTIFIER)
            return
        group.identifiers.append((system, value))

    def usable_value(self, group: PatientGroup, value: str) -> bool:
        """False (flagged when it matters) for a value that is absent, null, a placeholder or unstorable."""
        if not value or value == '""':
            return False
        if len(value) > _MAX_VALUE or _CONTROL.search(value):
            group.assumed.append(Assumed.UNUSABLE_IDENTIFIER)
            return False
        if self.policy.is_placeholder(value):
            group.assumed.append(Assumed.PLACEHOLDER_IDENTIFIER)
            return False
        return True

    def cx_system(self, group: PatientGroup, hd: HD, id_type: str, value: str) -> str | None:
        """The identifier system of a CX (or XCN) from its assigning authority and identifier type."""
        authority, universal = _authority(hd)
        if authority is not None and universal:
            return self.policy.canonical_system(authority)
        typed = self.policy.system_for_type(id_type, value)
        if typed is not None:
            return typed
        if authority is not None:
            if id_type == "DL":
                state = self.policy.state_driver_licence(authority)
                if state is not None:
                    return state
            known = self.policy.known_system(authority)
            return known if known is not None else _qualified(authority, id_type)
        return self.fallback_system(group, id_type)

    def fallback_system(self, group: PatientGroup, id_type: str) -> str | None:
        """No CX-4: the channel's default authority, else the sending facility or application, else source=."""
        if self.default_authority:
            configured = self.default_authority.strip()
            known = self.policy.known_system(configured)
            if known is not None:
                return known
            if configured.startswith(("urn:", "http://", "https://")) or _OID.fullmatch(configured):
                return configured if not _OID.fullmatch(configured) else f"urn:oid:{configured}"
            return _qualified(configured, id_type)
        msh = self.r.msh
        for number in (4, 3):
            authority = _authority(msh_hd(self.r, field_of(msh, number)))[0]
            if authority is not None:
                group.assumed.append(Assumed.AUTHORITY_FROM_SENDER)
                return _qualified(authority, id_type)
        if self.source_id:
            group.assumed.append(Assumed.AUTHORITY_FROM_SOURCE)
            return _qualified(self.source_id, id_type)
        return None

    def cx_identifiers(self, group: PatientGroup, segment: Any, fields: tuple[int, ...]) -> None:
        r = self.r
        for number in fields:
            for rep in repetitions(field_of(segment, number)):
                value = r.text(component(rep, 1))
                if not self.usable_value(group, value):
                    continue
                cx4 = component(rep, 4)
                hd = (r.text(cx4, 1), r.text(cx4, 2), r.text(cx4, 3).upper())
                self.add(group, self.cx_system(group, hd, r.text(component(rep, 5)).upper(), value), value)

    def pid_identifiers(self, group: PatientGroup, pid: Any) -> None:
        """PID-3, PID-2, PID-4, then PID-19 (SSN) and PID-20 (driver's licence: number^state)."""
        self.cx_identifiers(group, pid, _PID_CX_FIELDS)
        # PID-19 is free text, and some senders shift the account number (PID-18) into it: only an SSN's
        # shape is read as one, so that nothing else is ever linked as a social security number.
        ssn = self.r.value(pid, 19)
        if _SSN_SHAPE.fullmatch(ssn) and self.usable_value(group, ssn):
            self.add(group, US_SSN, ssn)
        licence, state = self.r.value(pid, 20, 1), self.r.value(pid, 20, 2)
        if self.usable_value(group, licence):
            system = self.policy.state_driver_licence(state) or (f"{state}^DL" if state else None)
            self.add(group, system, licence)


def _qualified(authority: str, id_type: str) -> str:
    # One local authority issues several kinds of number (MR, AN, PI): the type keeps them apart.
    return f"{authority}^{id_type}" if id_type else authority


def _authority(hd: HD) -> tuple[str | None, bool]:
    """(the HD as an identifier system, whether it is a universal id naming one identifier space)."""
    namespace, universal, kind = hd
    if universal and kind == "ISO" and _OID.fullmatch(universal.removeprefix("urn:oid:")):
        return "urn:oid:" + universal.removeprefix("urn:oid:"), True
    if universal and kind == "UUID":
        return "urn:uuid:" + universal.lower().removeprefix("urn:uuid:"), True
    if universal and kind in ("URI", "URL"):
        return universal, True
    return (namespace or universal or None), False


def msh_hd(r: Reader, node: Any) -> HD:
    """(namespace id, universal id, universal id type) of an HD that is a whole field (MSH-3..6)."""
    reps = repetitions(node)
    rep = reps[0] if reps else ""
    return r.text(component(rep, 1)), r.text(component(rep, 2)), r.text(component(rep, 3)).upper()


def system_from_msh(r: Reader, first: int) -> str | None:
    """``APPLICATION@FACILITY`` from MSH-3/4 (``first=3``) or MSH-5/6, or None when both are empty."""
    names = []
    for number in (first, first + 1):
        namespace, universal, _kind = msh_hd(r, field_of(r.msh, number))
        name = _NOT_SYSTEM_CHAR.sub("-", namespace or universal)
        name = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", name)
        if name:
            names.append(name)
    return "@".join(names)[:128].rstrip("@-_.:/+~") or None


# --- the patients of one message ------------------------------------------------------------------


def message_patients(ctx: IdentifierContext, code: str, trigger: str) -> list[PatientGroup]:
    """One group per patient: PID groups, merged when they share an identifier; else the query's subject.

    Raises :class:`HL7v2Error` (cause ``no_patient``) when the message names no patient.
    """
    r = ctx.r
    header: list[str] = []
    groups: list[PatientGroup] = []
    empty_pids = 0
    for name, segment in r.segments:
        if name == "PID":
            # An empty PID (a placeholder some engines send before the real one) names no one.
            if not any(has_content(field_of(segment, n)) for n in range(2, len(segment))):
                empty_pids += 1
                continue
            group = PatientGroup(elements=["PID"])
            ctx.pid_identifiers(group, segment)
            groups.append(group)
        elif groups:
            groups[-1].elements.append(name)
            if name == "MRG":
                ctx.cx_identifiers(groups[-1], segment, _MRG_CX_FIELDS)
        else:
            header.append(name)
    if not groups:
        query = _query_patient(ctx, code, trigger)
        if query is None:
            pids = f" ({empty_pids} empty PID segment{'s' if empty_pids > 1 else ''})" if empty_pids else ""
            raise HL7v2Error(
                f"no PID segment names a patient{pids}, and no query names one in QPD-3 or QRD-8", Cause.NO_PATIENT
            )
        query.elements = list(dict.fromkeys(name for name, _ in r.segments))
        return [_capped(query)]
    return [_capped(g, header) for g in _merged(groups)]


def _merged(groups: list[PatientGroup]) -> list[PatientGroup]:
    """Groups sharing an identifier are one patient (a repeated PID); others are different patients."""
    patients: list[PatientGroup] = []
    for group in groups:
        keys = set(group.identifiers)
        same = [p for p in patients if keys & set(p.identifiers)]
        for p in same:
            patients.remove(p)
            group = PatientGroup(
                p.identifiers + group.identifiers, p.elements + group.elements, p.assumed + group.assumed
            )
        patients.append(group)
    return patients


def _capped(group: PatientGroup, header: list[str] | None = None) -> PatientGroup:
    return PatientGroup(
        list(dict.fromkeys(group.identifiers))[:MAX_IDENTIFIERS],
        list(dict.fromkeys((header or []) + group.elements)),
        list(dict.fromkeys(group.assumed)),
    )


def _query_patient(ctx: IdentifierContext, code: str, trigger: str) -> PatientGroup | None:
    """The patient a query names outside PID: QPD-3 (a CX list, or QIP ``@PID.3.1^value`` pairs) of a
    QBP or its response, QPD-4 to QPD-8 (name, birth date) of an immunization query (Q11), or QRD-8
    (who subject filter) of an original-mode query (QRY, VXQ, ORF, ...)."""
    r = ctx.r
    group = PatientGroup()
    named = False
    qpd = r.first("QPD")
    if qpd is not None:
        reps = repetitions(field_of(qpd, 3))
        if any(r.text(component(rep, 1)).startswith("@") for rep in reps):
            named = _qip_patient(ctx, group, reps)
        else:
            ctx.cx_identifiers(group, qpd, (3,))
            named = any(has_content(component(rep, 1)) for rep in reps)
        if trigger == "Q11" or (code == "RSP" and trigger == "K11"):
            named = named or any(has_content(field_of(qpd, n)) for n in range(4, 9))
    qrd = r.first("QRD")
    if not named and qrd is not None:
        for rep in repetitions(field_of(qrd, 8)):
            if not has_content(rep):
                continue
            named = True
            value = r.text(component(rep, 1))
            if ctx.usable_value(group, value):
                xcn9 = component(rep, 9)
                hd = (r.text(xcn9, 1), r.text(xcn9, 2), r.text(xcn9, 3).upper())
                ctx.add(group, ctx.cx_system(group, hd, r.text(component(rep, 13)).upper(), value), value)
    return group if named else None


def _qip_patient(ctx: IdentifierContext, group: PatientGroup, reps: list[Any]) -> bool:
    """QIP pairs (``@PID.3.1^12345~@PID.3.4.1^HOSP~@PID.5.1^DOE``): an identifier, and whether any names."""
    r = ctx.r
    pairs: dict[str, str] = {}
    for rep in reps:
        name, value = r.text(component(rep, 1)).upper(), r.text(component(rep, 2))
        if name.startswith("@PID.") and value and value != '""':
            pairs.setdefault(name, value)
    value = pairs.get("@PID.3.1") or pairs.get("@PID.3", "")
    if ctx.usable_value(group, value):
        hd = (
            pairs.get("@PID.3.4.1") or pairs.get("@PID.3.4", ""),
            pairs.get("@PID.3.4.2", ""),
            pairs.get("@PID.3.4.3", "").upper(),
        )
        ctx.add(group, ctx.cx_system(group, hd, pairs.get("@PID.3.5", "").upper(), value), value)
    ssn = pairs.get("@PID.19", "")
    if _SSN_SHAPE.fullmatch(ssn) and ctx.usable_value(group, ssn):
        ctx.add(group, US_SSN, ssn)
    return bool(pairs)
