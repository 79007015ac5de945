"""The rules of the accounting of disclosures (45 CFR §164.528), as pure functions.

What an individual is entitled to: the disclosures of their PHI in the six
years before the request (§164.528(a)(1)), except those the rule excludes;
each listed with its date, recipient (name and, if known, address), a brief
description of the PHI and the purpose (§164.528(b)(2)); repeated
disclosures to one recipient for one purpose may be one entry with the
first date, the number and the last date (§164.528(b)(3)); disclosures to a
health oversight agency or law-enforcement official are left out while that
agency's suspension is in force (§164.528(a)(2)).

The exclusion an event falls under is decided from what it records, in this
order (the first that applies counts it): see ``exclusion_reason`` and
docs/privacy-office/disclosures.md for the mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .plain_language import describe_elements, describe_purpose

DISCLOSURE_EVENT_TYPES = ("disclosure", "export")

# §164.528(a)(1)(ix): disclosures before the covered entity's compliance
# date (14 April 2003; small health plans 14 April 2004: the earlier date is
# used, so nothing a small plan must account for is dropped).
COMPLIANCE_DATE = datetime(2003, 4, 14, tzinfo=UTC)

# HL7 v3 PurposeOfUse codes (ActReason) that mean treatment, payment or
# health care operations (§164.506): (a)(1)(i).
TREATMENT_CODES = frozenset({"TREAT", "ETREAT", "BTG", "ERTREAT", "CAREMGT", "COC", "POPHLTH"})
PAYMENT_CODES = frozenset(
    {"HPAYMT", "CLMATTCH", "COVAUTH", "COVERAGE", "ELIGDTRM", "ELIGVER", "ENROLLM", "REMITADV", "MILDCRG"}
)
OPERATIONS_CODES = frozenset(
    {
        "HOPERAT",
        "FRAUD",
        "HACCRED",
        "HCOMPL",
        "HLEGAL",
        "HOUTCOMS",
        "HPRGRP",
        "HQUALIMP",
        "HSYSADMIN",
        "MEMADMIN",
        "PATADMIN",
        "PATSFTY",
        "PERFMSR",
        "RECORDMGT",
        "TRAIN",
        "HTEST",
        "SYSDEV",
        "METAMGT",
    }
)
TPO_CODES = TREATMENT_CODES | PAYMENT_CODES | OPERATIONS_CODES

# Purposes that name the recipient rather than the use: (a)(1)(ii) to the
# individual (a personal representative stands in for the individual,
# §164.502(g); a disclosure at the patient's direction is part of their right
# of access, §164.524), and (a)(1)(v) directory and persons involved in care.
TO_PATIENT_CODES = frozenset({"PATRQT", "PWATRNY"})
PURPOSE_EXCLUSIONS = {"HDIRECT": "facility_directory", "FAMRQT": "involved_in_care", "SUPNWK": "involved_in_care"}
PURPOSE_EXCLUSIONS.update({"NATLSEC": "national_security"})

# ``attributes.accounting_exclusion``: the other (a)(1) exclusions, which no
# purpose code expresses, declared by the emitter.
DECLARED_EXCLUSIONS = frozenset(
    {
        "incidental",  # (iii) incident to a permitted use or disclosure
        "facility_directory",  # (v) §164.510(a)
        "involved_in_care",  # (v) §164.510(b): persons involved in care, notification
        "national_security",  # (vi) §164.512(k)(2)
        "correctional_custody",  # (vii) §164.512(k)(5): correctional institution, law-enforcement custody
        "limited_data_set",  # (viii) §164.514(e)
    }
)

EXCLUSION_REASONS = (
    "before_compliance_date",
    "to_patient",
    "authorization",
    "treatment_payment_operations",
    *sorted(DECLARED_EXCLUSIONS),
)


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def exclusion_reason(record: Mapping[str, Any], occurred_at: datetime) -> str | None:
    """Why a disclosure event is not in the accounting, or None when it is."""
    attributes = record.get("attributes") or {}
    purpose = record.get("purpose_of_use")
    if occurred_at < COMPLIANCE_DATE:
        return "before_compliance_date"
    if _is_true(attributes.get("recipient_is_patient")) or purpose in TO_PATIENT_CODES:
        return "to_patient"
    authorization = attributes.get("authorization")
    if isinstance(authorization, str) and authorization.strip():
        return "authorization"
    if purpose in TPO_CODES:
        return "treatment_payment_operations"
    declared = attributes.get("accounting_exclusion")
    if declared in DECLARED_EXCLUSIONS:
        return str(declared)
    if _is_true(attributes.get("limited_data_set")):
        return "limited_data_set"
    if purpose in PURPOSE_EXCLUSIONS:
        return PURPOSE_EXCLUSIONS[purpose]
    return None


@dataclass(frozen=True)
class Suspension:
    """An agency's request to suspend the right to an accounting of
    disclosures to it (§164.528(a)(2)), as recorded in the chain."""

    seq: int
    recipient_system_id: str
    recorded_at: datetime
    ends: datetime
    oral: bool
    reference: str
    patient_specific: bool

    def as_json(self) -> dict[str, Any]:
        from auditsvc_sdk.chain import format_timestamp

        return {
            "recipient_system_id": self.recipient_system_id,
            "recorded_at": format_timestamp(self.recorded_at),
            "ends": format_timestamp(self.ends),
            "oral": self.oral,
            "reference": self.reference,
            "scope": "patient" if self.patient_specific else "all_patients",
        }


def suspensions_in_force(suspensions: Iterable[Suspension], at: datetime) -> dict[str, Suspension]:
    """Per recipient, the suspension in force at ``at``: for each recipient
    and scope (this patient, every patient) the latest statement recorded by
    then is the one that counts (a written statement replaces an oral one;
    a later statement may shorten or lift it by an earlier end)."""
    latest: dict[tuple[str, bool], Suspension] = {}
    for s in suspensions:
        if s.recorded_at > at:
            continue
        key = (s.recipient_system_id, s.patient_specific)
        if key not in latest or s.seq > latest[key].seq:
            latest[key] = s
    in_force: dict[str, Suspension] = {}
    for s in sorted(latest.values(), key=lambda s: s.ends):
        if at <= s.ends:
            in_force[s.recipient_system_id] = s  # the one ending last
    return in_force


@dataclass
class EntryGroup:
    """Disclosures to one recipient for one purpose (§164.528(b)(3))."""

    recipient_system_id: str
    purpose: str | None
    first: datetime
    last: datetime
    count: int = 0
    elements: set[str] = field(default_factory=set)
    name_in_event: str | None = None
    seqs: list[int] = field(default_factory=list)

    def add(self, seq: int, occurred_at: datetime, record: Mapping[str, Any]) -> None:
        self.count += 1
        self.first = min(self.first, occurred_at)
        self.last = max(self.last, occurred_at)
        self.elements.update(record.get("data_elements") or ())
        self.name_in_event = self.name_in_event or (record.get("destination") or {}).get("name")
        self.seqs.append(seq)

    @property
    def description(self) -> str:
        return describe_elements(self.elements)

    @property
    def purpose_text(self) -> str:
        return describe_purpose(self.purpose)


@dataclass
class Classified:
    groups: list[EntryGroup]
    excluded: dict[str, int]
    withheld_by: dict[str, Suspension]  # recipient -> the suspension that withheld its disclosures


def classify(
    disclosures: Sequence[tuple[int, datetime, Mapping[str, Any]]], in_force: Mapping[str, Suspension]
) -> Classified:
    """Split a patient's disclosure events (seq, occurred_at, record; in time
    order) into grouped entries, exclusion counts and suspended recipients."""
    groups: dict[tuple[str, str | None], EntryGroup] = {}
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    withheld: dict[str, Suspension] = {}
    for seq, occurred_at, record in disclosures:
        reason = exclusion_reason(record, occurred_at)
        if reason is not None:
            excluded[reason] += 1
            continue
        recipient = record["destination"]["system_id"]
        if recipient in in_force:
            withheld[recipient] = in_force[recipient]
            continue
        key = (recipient, record.get("purpose_of_use"))
        if key not in groups:
            groups[key] = EntryGroup(recipient, key[1], occurred_at, occurred_at)
        groups[key].add(seq, occurred_at, record)
    ordered = sorted(groups.values(), key=lambda g: (g.first, g.recipient_system_id, g.purpose or ""))
    return Classified(ordered, excluded, withheld)
