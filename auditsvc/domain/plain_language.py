"""Data elements and purposes in words a patient can read.

An event names what it touched as FHIR resource types or paths
(``Observation``, ``Patient.name``) or HL7 v2 segments and fields (``OBX``,
``PID-5``). The accounting of disclosures (§164.528(b)(2)(iii)) must give a
*brief description of the PHI disclosed*: these tables turn codes into
phrases. A code with no phrase is passed through as it is, quoted, so the
description never hides what was disclosed; nothing is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# HL7 v2 fields that carry one thing a patient recognises.
HL7_FIELDS = {
    "PID-3": "your patient identifiers (record numbers)",
    "PID-5": "your name",
    "PID-6": "your mother's maiden name",
    "PID-7": "your date of birth",
    "PID-8": "your sex",
    "PID-10": "your race",
    "PID-11": "your address",
    "PID-13": "your phone number",
    "PID-14": "your work phone number",
    "PID-18": "your account number",
    "PID-19": "your Social Security number",
    "PID-22": "your ethnicity",
    "PID-29": "date of death",
    "PV1-3": "where you were seen",
    "PV1-7": "your attending doctor",
    "PV1-44": "your admission date",
    "PV1-45": "your discharge date",
    "OBX-5": "test results",
    "DG1-3": "diagnoses",
    "IN1-36": "your insurance policy number",
}

HL7_SEGMENTS = {
    "MSH": "message routing details",
    "EVN": "the type and time of a record update",
    "PID": "your identifying details (name, date of birth, address, record numbers)",
    "PD1": "additional personal details (such as your primary care provider)",
    "NK1": "your next of kin and emergency contacts",
    "PV1": "details of your visit (location, dates, doctors)",
    "PV2": "more details of your visit",
    "MRG": "a merge of your records",
    "ORC": "orders for your care",
    "OBR": "test orders",
    "OBX": "test results",
    "NTE": "notes and comments",
    "SPM": "specimen details",
    "DG1": "diagnoses",
    "PR1": "procedures",
    "AL1": "allergies",
    "IAM": "allergies",
    "PRB": "health problems",
    "ROL": "your care team",
    "IN1": "insurance details",
    "IN2": "insurance details",
    "IN3": "insurance certification details",
    "GT1": "who is responsible for paying the bill",
    "FT1": "billing charges",
    "RXO": "prescriptions ordered",
    "RXE": "prescriptions",
    "RXD": "medicines dispensed",
    "RXA": "medicines or vaccines given to you",
    "RXR": "how medicines were given",
    "TXA": "clinical document details",
    "SCH": "appointments",
    "AIS": "appointment services",
    "AIL": "appointment locations",
    "AIP": "appointment staff",
}

FHIR_PATHS = {
    "Patient.name": "your name",
    "Patient.birthDate": "your date of birth",
    "Patient.address": "your address",
    "Patient.telecom": "your phone number and email address",
    "Patient.identifier": "your patient identifiers (record numbers)",
    "Patient.gender": "your sex or gender",
    "Patient.deceased": "date of death",
    "Patient.contact": "your emergency contacts",
}

FHIR_RESOURCES = {
    "Patient": "your identifying details (name, date of birth, address, record numbers)",
    "Observation": "test results and measurements",
    "DiagnosticReport": "test and imaging reports",
    "Condition": "diagnoses and health problems",
    "Procedure": "procedures",
    "Encounter": "visits and hospital stays",
    "AllergyIntolerance": "allergies",
    "Immunization": "vaccinations",
    "MedicationRequest": "prescriptions",
    "MedicationStatement": "medicines you take",
    "MedicationAdministration": "medicines given to you",
    "MedicationDispense": "medicines dispensed",
    "DocumentReference": "clinical documents",
    "Composition": "clinical documents",
    "Binary": "documents",
    "ImagingStudy": "imaging studies (X-rays, scans)",
    "CarePlan": "care plans",
    "CareTeam": "your care team",
    "Goal": "care goals",
    "ServiceRequest": "orders and referrals",
    "Appointment": "appointments",
    "Coverage": "insurance coverage",
    "Claim": "insurance claims",
    "ExplanationOfBenefit": "insurance claims and payments",
    "Account": "billing account",
    "Invoice": "bills",
    "RelatedPerson": "your family members and contacts",
    "FamilyMemberHistory": "family medical history",
    "Consent": "your consent decisions",
    "Specimen": "specimen details",
    "QuestionnaireResponse": "answers you gave on questionnaires",
    "Communication": "messages about your care",
    "Device": "medical devices",
    "Provenance": "the history of your records",
    "Bundle": "a set of records",
}

PURPOSES = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "BTG": "emergency access",
    "HPAYMT": "payment",
    "HOPERAT": "health care operations",
    "PUBHLTH": "public health activities",
    "HRESCH": "research",
    "CLINTRCH": "clinical research",
    "HMARKT": "marketing",
    "HDECD": "matters concerning a deceased person",
    "DONAT": "organ, eye or tissue donation",
    "GOV": "government functions",
    "HLEGAL": "legal proceedings",
    "FRAUD": "fraud investigation",
    "HCOMPL": "health oversight and compliance",
    "HDIRECT": "facility directory",
    "FAMRQT": "a family member's request",
    "PWATRNY": "your personal representative",
    "SUPNWK": "your support network",
    "PATRQT": "your request",
    "NATLSEC": "national security",
    "THREAT": "preventing a serious threat to health or safety",
    "DISASTER": "disaster relief",
    "COC": "coordination of care",
    "LAW": "law enforcement",
    "JUDICIAL": "a court or administrative order",
    "HOVERSIGHT": "health oversight",
}

NO_PURPOSE_STATED = "purpose not stated in the record"

_HL7_FIELD = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)")
_HL7_SEGMENT = re.compile(r"^[A-Z][A-Z0-9]{2}$")


def describe_element(code: str) -> str | None:
    """The phrase for one data element, or None when there is none."""
    field = _HL7_FIELD.match(code)
    if field:
        segment, number = field.groups()
        return HL7_FIELDS.get(f"{segment}-{int(number)}") or HL7_SEGMENTS.get(segment)
    if _HL7_SEGMENT.match(code):
        return HL7_SEGMENTS.get(code)
    resource, _, path = code.partition(".")
    if path:
        for known, phrase in FHIR_PATHS.items():
            if code == known or code.startswith(known + "."):
                return phrase
    return FHIR_RESOURCES.get(resource)


def describe_elements(codes: Iterable[str]) -> str:
    """One sentence-fragment for a set of data elements: known phrases in a
    stable order, then unknown codes quoted (``other record elements: "ZPI"``)."""
    phrases: list[str] = []
    unknown: list[str] = []
    for code in sorted(set(codes)):
        phrase = describe_element(code)
        if phrase is None:
            unknown.append(code)
        elif phrase not in phrases:
            phrases.append(phrase)
    phrases.sort()
    if unknown:
        phrases.append("other record elements: " + ", ".join(f'"{c}"' for c in unknown))
    return "; ".join(phrases) if phrases else "not described in the record"


def describe_purpose(code: str | None) -> str:
    """The purpose of use in words; an unknown code is passed through."""
    if not code:
        return NO_PURPOSE_STATED
    return PURPOSES.get(code, f'"{code}"')


EXCLUSIONS = {
    "before_compliance_date": "made before the compliance date (§164.528(a)(1)(ix))",
    "to_patient": "to the patient or their personal representative (§164.528(a)(1)(ii))",
    "authorization": "authorized by the patient in writing (§164.528(a)(1)(iv))",
    "treatment_payment_operations": "for treatment, payment or health care operations (§164.528(a)(1)(i))",
    "incidental": "incidental to a permitted use or disclosure (§164.528(a)(1)(iii))",
    "facility_directory": "for the facility's directory (§164.528(a)(1)(v))",
    "involved_in_care": "to persons involved in the patient's care, or for notification (§164.528(a)(1)(v))",
    "national_security": "for national security or intelligence (§164.528(a)(1)(vi))",
    "correctional_custody": "to a correctional institution or law enforcement with custody (§164.528(a)(1)(vii))",
    "limited_data_set": "as part of a limited data set (§164.528(a)(1)(viii))",
}
"""Each reason ``disclosure_rules.exclusion_reason`` gives, in words."""


def describe_exclusion(reason: str) -> str:
    """Why a disclosure is not listed in the accounting, in words; an unknown reason is passed through."""
    return EXCLUSIONS.get(reason, reason.replace("_", " "))
