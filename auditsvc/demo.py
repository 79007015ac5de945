"""A realistic day of integration traffic for ``auditsvc demo``.

The scenario: two hospitals in one regional health information exchange.
Facility A runs Epic (ADT feed, orders, a FHIR R4 API) with a lab system, a
pharmacy and hospital billing behind a Mirth Connect interface engine;
facility B, an hour's drive away in the next time zone, runs Cerner and a
radiology RIS. Both publish to a regional HIE, facility A reports
immunizations and reportable labs to the state registry, a SMART on FHIR app
lets patients read their results, and billing ships claims every night.

The point the demo makes: no single system knows all of a patient's
identifiers. The lab knows facility A's MRN and the enterprise (EMPI) id,
radiology at facility B knows facility B's MRN and the EMPI id, the patient
app knows the FHIR logical id and the EMPI id, billing knows only the MRN.
A privacy officer who asks "who accessed MRN-0001234?" still sees the app
reads and the facility B radiology, because identifiers that arrive together
in one event are linked by the service.

One patient's day is scripted (an overnight visit to facility B's emergency
department with a break-glass chart access, a CT, transfer to facility A,
labs, an immunization and an evening look at results in the app) so that
every run has a patient worth reporting on; the rest is random but
deterministic for a seed. All identifiers and user ids are synthetic.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

__all__ = ["DEMO_SOURCE_SYSTEMS", "DEMO_SYSTEMS", "featured_patient", "generate_day", "send_day"]

MRN_A = "urn:oid:2.16.840.1.113883.3.1234.1.1"
MRN_B = "urn:oid:2.16.840.1.113883.3.5678.2.1"
EMPI = "urn:oid:2.16.840.1.113883.3.9999.0"
FHIR_ID = "https://fhir.example-hospital.org/Patient"

DEMO_SYSTEMS: dict[str, str] = {
    "epic-adt": "Epic ADT feed (Facility A)",
    "epic-ehr": "Epic EHR (Facility A)",
    "epic-fhir": "Epic FHIR R4 API (Facility A)",
    "lab-lis": "Laboratory information system (Facility A)",
    "pharmacy": "Pharmacy system (Facility A)",
    "billing-hb": "Hospital billing (Facility A)",
    "cerner-b": "Cerner EHR (Facility B)",
    "rad-ris": "Radiology RIS (Facility B)",
    "hie-gateway": "Regional HIE gateway",
    "fhir-patient-app": "SMART on FHIR patient app",
    "public-health-registry": "State immunization and ELR registry",
    "claims-clearinghouse": "Claims clearinghouse",
}
DEMO_SOURCE_SYSTEMS: tuple[str, ...] = (
    "epic-adt",
    "epic-ehr",
    "epic-fhir",
    "lab-lis",
    "pharmacy",
    "billing-hb",
    "cerner-b",
    "rad-ris",
    "hie-gateway",
)

# Interface engines are commonly configured with a fixed offset rather than a
# zone, so they send -05:00 / -06:00 all year; the service must normalise to UTC.
TZ_A = timezone(timedelta(hours=-5))
TZ_B = timezone(timedelta(hours=-6))
EVENTS_PER_DAY = 1500
PATIENTS = 40

# Relative traffic by local hour: clinical feeds follow the working day,
# people read their results in the evening, emergencies come at any hour.
CLINICAL_HOURS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 13, 13, 12, 10, 12, 13, 12, 10, 7, 5, 4, 3, 2, 2, 1)
EVENING_HOURS = (1, 1, 0.5, 0.3, 0.3, 0.5, 1, 3, 4, 4, 4, 4, 5, 5, 4, 4, 5, 7, 9, 10, 10, 8, 5, 2)
ANY_HOUR = (3, 3, 3, 3, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 3, 3)

PHYSICIANS_A = ("u-dr-0042", "u-dr-0057", "u-dr-0103", "u-dr-0118", "u-dr-0150")
PHYSICIANS_B = ("u-dr-0311", "u-dr-0327", "u-dr-0345")
EXTERNAL_PHYSICIANS = ("u-ext-dr-0877", "u-ext-dr-0912", "u-ext-dr-0954")
REGISTRARS = ("u-reg-0012", "u-reg-0019", "u-reg-0031")
NURSES = ("u-rn-0107", "u-rn-0122", "u-rn-0164", "u-rn-0188")
LAB_ORDERS = (("24323-8", "CMP"), ("58410-2", "CBC"), ("4548-4", "HbA1c"), ("2160-0", "Creatinine"))
A08_FIELDS = ("PID-3", "PID-5", "PID-7", "PID-8", "PID-11", "PID-13", "PID-14", "PV1-3", "PV1-7", "PV1-19")
FHIR_READS: tuple[tuple[str, list[str]], ...] = (
    ("Patient", ["Patient", "Patient.name", "Patient.birthDate", "Patient.address"]),
    ("Observation", ["Observation", "Observation.code", "Observation.value[x]"]),
    ("DiagnosticReport", ["DiagnosticReport", "DiagnosticReport.conclusion"]),
    ("MedicationRequest", ["MedicationRequest", "MedicationRequest.dosageInstruction"]),
    ("Immunization", ["Immunization", "Immunization.vaccineCode"]),
    ("AllergyIntolerance", ["AllergyIntolerance"]),
)
HIE_DOCUMENTS = ["DocumentReference", "Composition", "Condition", "MedicationStatement", "AllergyIntolerance"]

Ids = list[dict[str, str]]


@dataclass(frozen=True)
class _Route:
    """What one interface engine channel carries, from where to where."""

    message_type: str
    source: str
    destination: str
    segments: tuple[str, ...]
    purpose: str = "TREAT"


_ADT = ("MSH", "EVN", "PID", "PV1", "NK1", "IN1")
ROUTES: dict[str, _Route] = {
    # The lab and pharmacy filter ADT down to what they use; billing also needs the guarantor.
    "ADT-OUT-LAB": _Route("ADT^A08", "epic-adt", "lab-lis", _ADT[:4]),
    "ADT-OUT-PHARM": _Route("ADT^A08", "epic-adt", "pharmacy", _ADT),
    "ADT-OUT-HB": _Route("ADT^A08", "epic-adt", "billing-hb", (*_ADT, "GT1"), "HPAYMT"),
    "ADT-OUT-HIE": _Route("ADT^A08", "epic-adt", "hie-gateway", _ADT),
    "ORM-OUT-LAB": _Route("ORM^O01", "epic-ehr", "lab-lis", ("MSH", "PID", "PV1", "ORC", "OBR", "DG1")),
    "ORU-IN-LAB": _Route("ORU^R01", "lab-lis", "epic-ehr", ("MSH", "PID", "OBR", "OBX", "NTE")),
    "RDE-OUT-PHARM": _Route("RDE^O11", "epic-ehr", "pharmacy", ("MSH", "PID", "PV1", "ORC", "RXE", "RXR")),
    "DFT-LAB-HB": _Route("DFT^P03", "lab-lis", "billing-hb", ("MSH", "EVN", "PID", "PV1", "FT1"), "HPAYMT"),
    "DFT-PHARM-HB": _Route("DFT^P03", "pharmacy", "billing-hb", ("MSH", "EVN", "PID", "PV1", "FT1"), "HPAYMT"),
    "VXU-OUT-IIS": _Route(
        "VXU^V04",
        "epic-ehr",
        "public-health-registry",
        ("MSH", "PID", "PD1", "NK1", "ORC", "RXA", "RXR", "OBX"),
        "PUBHLTH",
    ),
    "ELR-OUT-PH": _Route(
        "ORU^R01", "lab-lis", "public-health-registry", ("MSH", "SFT", "PID", "ORC", "OBR", "OBX", "SPM"), "PUBHLTH"
    ),
    "B-ADT-OUT-RIS": _Route("ADT^A04", "cerner-b", "rad-ris", ("MSH", "EVN", "PID", "PV1")),
    "B-ORM-OUT-RIS": _Route("ORM^O01", "cerner-b", "rad-ris", ("MSH", "PID", "PV1", "ORC", "OBR")),
    "B-ORU-IN-RIS": _Route("ORU^R01", "rad-ris", "cerner-b", ("MSH", "PID", "OBR", "OBX")),
    "ORU-OUT-HIE": _Route("ORU^R01", "rad-ris", "hie-gateway", ("MSH", "PID", "OBR", "OBX")),
}


@dataclass(frozen=True)
class _Patient:
    empi: str
    mrn_a: str | None
    mrn_b: str | None
    fhir_id: str | None
    portal_user: str | None

    def ids(self, *systems: str) -> Ids:
        """The identifiers one system knows, in PID-3 order (local MRN first)."""
        known = {MRN_A: self.mrn_a, MRN_B: self.mrn_b, FHIR_ID: self.fhir_id, EMPI: self.empi}
        return [{"system": s, "value": v} for s in systems if (v := known[s]) is not None]


def _make_cast(rng: random.Random) -> list[_Patient]:
    mrns_a = rng.sample(range(1000, 999_999), PATIENTS)
    mrns_b = rng.sample(range(40_000_000, 49_999_999), PATIENTS)
    empis = rng.sample(range(100_000, 199_999), PATIENTS)
    cast = []
    for i in range(PATIENTS):
        # The first three are frequent flyers known everywhere; the rest are known to
        # fewer systems, as in a real population.
        has_a = i < 3 or rng.random() < 0.85
        has_b = i < 3 or not has_a or rng.random() < 0.4
        has_app = has_a and (i < 3 or rng.random() < 0.5)
        cast.append(
            _Patient(
                empi=f"E{empis[i]}",
                mrn_a=f"MRN-{mrns_a[i]:07d}" if has_a else None,
                mrn_b=f"{mrns_b[i]}" if has_b else None,
                fhir_id=f"pat-{rng.getrandbits(48):012x}" if has_app else None,
                portal_user=f"app-user-{rng.randrange(10_000, 99_999)}" if has_app else None,
            )
        )
    return cast


def _system(system_id: str) -> dict[str, str]:
    return {"system_id": system_id, "name": DEMO_SYSTEMS[system_id]}


def _channel(name: str) -> dict[str, str]:
    return {"id": f"mirth-engine/{name}", "type": "system", "name": f"Mirth Connect channel {name}"}


def _user(user_id: str, role: str) -> dict[str, str]:
    return {"id": user_id, "type": "user", "role": role}


class _Day:
    """Collects one day's events; anything that would fall outside the day is
    dropped, as an episode that starts late simply finishes tomorrow."""

    def __init__(self, rng: random.Random, day: date) -> None:
        self.rng = rng
        self.start = datetime.combine(day, time(0), TZ_A)
        self.end = self.start + timedelta(days=1)
        self.events: list[tuple[datetime, int, dict[str, Any]]] = []

    def at_hour(self, profile: Sequence[float]) -> datetime:
        hour = self.rng.choices(range(24), weights=profile)[0]
        return self.start + timedelta(hours=hour, seconds=self.rng.uniform(0, 3600))

    def clock(self, hh: int, mm: int) -> datetime:
        return self.start + timedelta(hours=hh, minutes=mm, seconds=self.rng.uniform(0, 59))

    def emit(
        self,
        at: datetime,
        tz: timezone,
        *,
        action: str,
        event_type: str,
        ids: Ids,
        data_elements: Sequence[str],
        source: str,
        destination: str,
        actor: dict[str, str],
        purpose: str | None = None,
        outcome: int = 0,
        message_id: str | None = None,
        attributes: dict[str, str | int | bool] | None = None,
    ) -> None:
        if not self.start <= at < self.end:
            return
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        stamp = at.astimezone(tz).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "occurred_at": stamp,
            "action": action,
            "event_type": event_type,
            # Copies, so that no two events share a list a caller might edit.
            "patient": {"identifiers": [dict(i) for i in ids]},
            "data_elements": list(data_elements),
            "source": _system(source),
            "destination": _system(destination),
            "actor": dict(actor),
            "outcome": outcome,
        }
        if purpose is not None:
            event["purpose_of_use"] = purpose
        if message_id is not None:
            event["message_id"] = message_id
        if attributes:
            event["attributes"] = attributes
        self.events.append((at, len(self.events), event))

    def hl7(
        self,
        at: datetime,
        channel: str,
        ids: Ids,
        *,
        message_type: str | None = None,
        segments: Sequence[str] | None = None,
        outcome: int | None = None,
        control_id: str | None = None,
        extra: Mapping[str, str | int | bool] | None = None,
    ) -> None:
        """One HL7 v2 message delivered by an engine channel; the channel's
        route fixes source, destination, purpose and default segments."""
        route = ROUTES[channel]
        message_type = message_type or route.message_type
        facility_b = route.source in ("cerner-b", "rad-ris")
        tz = TZ_B if facility_b else TZ_A
        if control_id is None:
            # MSH-10 styles differ by sender: Epic-like timestamp ids at A, counters at B.
            stamp = at.astimezone(tz).strftime("MSG%Y%m%d%H%M%S%f")[:20]
            control_id = f"CB{self.rng.randrange(10**9, 10**10)}" if facility_b else stamp
        if outcome is None:
            roll = self.rng.random()
            outcome = 0 if roll > 0.015 else (4 if roll > 0.005 else 8)
        attributes: dict[str, str | int | bool] = {
            "message_type": message_type,
            "hl7_version": "2.3" if facility_b else "2.5.1",
            "channel": channel,
            "ack_code": {0: "AA", 4: "AE"}.get(outcome, "AR"),
            **(extra or {}),
        }
        if outcome == 4:
            attributes.setdefault("error_location", self.rng.choice(["PID-7", "PV1-3", "OBX-5"]))
        self.emit(
            at,
            tz,
            action="U" if message_type in ("ADT^A08", "ADT^A03") else "C",
            event_type="hl7v2-message",
            ids=ids,
            data_elements=list(segments or route.segments),
            source=route.source,
            destination=route.destination,
            actor=_channel(channel),
            purpose=route.purpose,
            outcome=outcome,
            message_id=control_id,
            attributes=attributes,
        )

    # --- facility A flows --------------------------------------------------

    def adt_a(self, p: _Patient, at: datetime, trigger: str, *, fail_lab: bool = False) -> None:
        """One ADT event from Epic, fanned out by the engine to each subscriber.
        MSH-10 is kept across the fan-out, which is what lets an analyst tie
        the copies back to one registration event."""
        segments: list[str] | None = None
        if trigger == "A08":
            fields = sorted(self.rng.sample(A08_FIELDS, self.rng.randint(2, 5)), key=A08_FIELDS.index)
            segments = ["MSH", "EVN", *fields]
        control = at.astimezone(TZ_A).strftime("MSG%Y%m%d%H%M%S%f")[:20]
        common: dict[str, Any] = {"message_type": f"ADT^{trigger}", "segments": segments, "control_id": control}
        extra = {"entered_by": self.rng.choice(REGISTRARS)}
        full = p.ids(MRN_A, EMPI)
        # Billing keys accounts on the MRN alone, so it gets no EMPI id.
        fan_out = [("ADT-OUT-LAB", full), ("ADT-OUT-PHARM", full), ("ADT-OUT-HB", p.ids(MRN_A)), ("ADT-OUT-HIE", full)]
        for i, (channel, ids) in enumerate(fan_out):
            when = at + timedelta(milliseconds=self.rng.randint(40, 900) * (i + 1))
            if fail_lab and channel == "ADT-OUT-LAB":
                self.hl7(when, channel, ids, outcome=4, extra={**extra, "error_location": "PID-7"}, **common)
                when += timedelta(minutes=2)  # resent once the registrar corrected the birth date
            self.hl7(when, channel, ids, outcome=0 if fail_lab else None, extra=extra, **common)

    def lab_order(self, p: _Patient, at: datetime) -> None:
        code, name = self.rng.choice(LAB_ORDERS)
        ids = p.ids(MRN_A, EMPI)
        extra = {"order_code": code, "order_name": name}
        self.hl7(at, "ORM-OUT-LAB", ids, extra=extra)
        done = at + timedelta(minutes=self.rng.randint(35, 180))
        for status in ("P", "F") if self.rng.random() < 0.3 else ("F",):
            done += timedelta(minutes=self.rng.randint(5, 40))
            self.hl7(done, "ORU-IN-LAB", ids, extra={**extra, "result_status": status})

    def pharmacy_order(self, p: _Patient, at: datetime) -> None:
        self.hl7(at, "RDE-OUT-PHARM", p.ids(MRN_A, EMPI))
        self.hl7(at + timedelta(minutes=self.rng.randint(20, 90)), "DFT-PHARM-HB", p.ids(MRN_A))

    def inpatient_stay(self, p: _Patient, at: datetime) -> None:
        self.adt_a(p, at, "A01")
        t = at
        for _ in range(self.rng.randint(1, 3)):
            t += timedelta(minutes=self.rng.randint(15, 150))
            self.lab_order(p, t)
        self.pharmacy_order(p, at + timedelta(minutes=self.rng.randint(30, 120)))
        self.hl7(t + timedelta(hours=2), "DFT-LAB-HB", p.ids(MRN_A))
        for _ in range(self.rng.randint(0, 2)):
            self.adt_a(p, at + timedelta(minutes=self.rng.randint(20, 600)), "A08")

    def outpatient_visit(self, p: _Patient, at: datetime) -> None:
        self.adt_a(p, at, "A04")
        t = at + timedelta(minutes=self.rng.randint(10, 40))
        if self.rng.random() < 0.7:
            self.lab_order(p, t)
            self.hl7(t + timedelta(hours=3), "DFT-LAB-HB", p.ids(MRN_A))
        if self.rng.random() < 0.25:
            self.hl7(t + timedelta(minutes=20), "VXU-OUT-IIS", p.ids(MRN_A, EMPI))
        self.adt_a(p, t + timedelta(minutes=self.rng.randint(30, 90)), "A03")

    # --- facility B, the HIE, the app ----------------------------------------

    def radiology_b(self, p: _Patient, at: datetime) -> None:
        ids = p.ids(MRN_B, EMPI)
        self.hl7(at, "B-ADT-OUT-RIS", ids)
        exam = {"procedure": self.rng.choice(["CT HEAD WO CONTRAST", "XR CHEST 2V", "MRI L-SPINE", "US ABDOMEN"])}
        t = at + timedelta(minutes=self.rng.randint(5, 30))
        self.hl7(t, "B-ORM-OUT-RIS", ids, extra=exam)
        t += timedelta(minutes=self.rng.randint(30, 120))
        self.hl7(t, "B-ORU-IN-RIS", ids, extra=exam)
        self.hl7(t + timedelta(seconds=3), "ORU-OUT-HIE", ids, extra=exam)

    def hie_pull(self, p: _Patient, at: datetime, responder: str, receiver: str | None, user: str) -> None:
        """A cross-community query (IHE XCA). The responding facility records
        what left it under its own identifiers; a receiving EHR in the same
        HIE records what came in under the EMPI id, the only one the HIE
        passes on. A receiver outside the region records nothing here."""
        ids = p.ids(MRN_B, EMPI) if responder == "cerner-b" else p.ids(MRN_A, EMPI)
        query_id = f"urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"
        docs = self.rng.randint(1, 5)
        common: dict[str, Any] = {
            "action": "E",
            "event_type": "query",
            "actor": _user(user, "physician"),
            "purpose": "TREAT",
            "message_id": query_id,
        }
        self.emit(
            at,
            TZ_B if responder == "cerner-b" else TZ_A,
            ids=ids,
            data_elements=HIE_DOCUMENTS[:docs],
            source=responder,
            destination="hie-gateway",
            attributes={"transaction": "ITI-38+ITI-39", "profile": "IHE XCA", "document_count": docs},
            **common,
        )
        if receiver is not None:
            self.emit(
                at + timedelta(seconds=self.rng.uniform(1, 4)),
                UTC,
                ids=p.ids(EMPI),
                data_elements=HIE_DOCUMENTS[:docs],
                source="hie-gateway",
                destination=receiver,
                attributes={"transaction": "ITI-38+ITI-39", "profile": "IHE XCA", "document_count": docs},
                **common,
            )

    def hie_query(self, p: _Patient, at: datetime) -> None:
        if p.mrn_a and p.mrn_b and self.rng.random() < 0.4:
            if self.rng.random() < 0.5:
                self.hie_pull(p, at, "epic-ehr", "cerner-b", self.rng.choice(PHYSICIANS_B))
            else:
                self.hie_pull(p, at, "cerner-b", "epic-ehr", self.rng.choice(PHYSICIANS_A))
        else:
            responder = "epic-ehr" if p.mrn_a else "cerner-b"
            self.hie_pull(p, at, responder, None, self.rng.choice(EXTERNAL_PHYSICIANS))

    def break_glass(self, p: _Patient, at: datetime, physician: str | None = None) -> None:
        """An emergency override of a restricted chart, in whichever EHR the patient turned up."""
        at_b = p.mrn_b is not None and (p.mrn_a is None or physician in PHYSICIANS_B or self.rng.random() < 0.5)
        ids, where, tz = (p.ids(MRN_B, EMPI), "cerner-b", TZ_B) if at_b else (p.ids(MRN_A, EMPI), "epic-ehr", TZ_A)
        user = physician or self.rng.choice(PHYSICIANS_B if at_b else PHYSICIANS_A)
        self.emit(
            at,
            tz,
            action="R",
            event_type="break-glass",
            ids=ids,
            data_elements=["Patient", "Condition", "MedicationStatement", "Observation", "DocumentReference"],
            source=where,
            destination=where,
            actor=_user(user, "physician"),
            purpose="ETREAT",
            attributes={"override_reason": "ED-UNRESPONSIVE", "restricted_category": "behavioral-health"},
        )

    def app_session(self, p: _Patient, at: datetime, *, fail: bool = False) -> None:
        assert p.fhir_id is not None and p.portal_user is not None
        clinician = self.rng.random() < 0.1
        actor = _user(self.rng.choice(PHYSICIANS_A), "physician") if clinician else _user(p.portal_user, "patient")
        t = at
        reads = [FHIR_READS[0], *self.rng.sample(FHIR_READS[1:], self.rng.randint(1, 4))]
        for i, (resource, elements) in enumerate(reads):
            t += timedelta(seconds=self.rng.uniform(2, 90))
            status = 503 if fail and i == 1 else (200 if self.rng.random() > 0.02 else 404)
            for attempt in (status, 200) if status == 503 else (status,):
                self.emit(
                    t,
                    UTC,
                    action="R",
                    event_type="fhir-rest",
                    ids=p.ids(FHIR_ID, EMPI),
                    data_elements=elements,
                    source="epic-fhir",
                    destination="fhir-patient-app",
                    actor=actor,
                    purpose="TREAT",
                    outcome={200: 0, 404: 4}.get(attempt, 8),
                    message_id=f"req-{self.rng.getrandbits(64):016x}",
                    attributes={
                        "fhir_version": "4.0.1",
                        "interaction": "search-type" if i else "read",
                        "resource_type": resource,
                        "http_status": attempt,
                        "client_id": "smart-patient-app-7731",
                    },
                )
                t += timedelta(seconds=4)

    def claims_export(self, patients: Sequence[_Patient], at: datetime) -> None:
        batch_id = at.astimezone(TZ_A).strftime("EXP-%Y%m%d-01")
        for n, p in enumerate(patients):
            self.emit(
                at + timedelta(milliseconds=120 * n),
                TZ_A,
                action="R",
                event_type="export",
                ids=p.ids(MRN_A),
                data_elements=["PID-3", "PID-5", "PID-7", "PID-11", "PV1-19", "FT1", "DG1", "IN1"],
                source="billing-hb",
                destination="claims-clearinghouse",
                actor={"id": "billing-hb/claims-batch", "type": "system"},
                purpose="HPAYMT",
                message_id=f"{batch_id}-{n + 1:04d}",
                attributes={"format": "X12 837I", "batch_id": batch_id, "claim_count": len(patients)},
            )


def _scripted_story(d: _Day, p: _Patient) -> None:
    """The featured patient's day, fixed so every run has one to report on."""
    d.radiology_b(p, d.clock(3, 20))
    d.break_glass(p, d.clock(3, 42), physician="u-dr-0311")
    d.hie_pull(p, d.clock(10, 55), "cerner-b", "epic-ehr", "u-dr-0042")
    d.adt_a(p, d.clock(11, 30), "A01")
    d.lab_order(p, d.clock(11, 45))
    d.adt_a(p, d.clock(12, 10), "A08", fail_lab=True)
    d.pharmacy_order(p, d.clock(13, 30))
    d.hl7(d.clock(14, 0), "DFT-LAB-HB", p.ids(MRN_A))
    d.hl7(d.clock(16, 30), "VXU-OUT-IIS", p.ids(MRN_A, EMPI))
    d.app_session(p, d.clock(20, 15), fail=True)


def generate_day(seed: int = 7, day: date | None = None, scale: float = 1.0) -> list[dict[str, Any]]:
    """About ``1500 * scale`` PHI access events for one local day (facility A
    time), in the SDK's JSON event shape, sorted by ``occurred_at``.

    The same seed and day give the same events, ``event_id`` included, so a
    second run of the demo is answered as duplicates. ``day`` defaults to
    yesterday, so that no event lies in the future.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    if day is None:
        day = datetime.now(TZ_A).date() - timedelta(days=1)
    rng = random.Random(seed)
    cast = _make_cast(rng)
    d = _Day(rng, day)
    _scripted_story(d, cast[0])

    # Last week's outpatient visit of the scripted patient is in tonight's claims batch.
    others = [p for p in cast[1:] if p.mrn_a]
    d.claims_export([cast[0], *rng.sample(others, min(len(others), round(17 * scale)))], d.clock(2, 0))

    # A few patients generate most of the traffic, as in any hospital.
    weights = [1 / (i + 1) ** 0.6 for i in range(len(cast))]
    kinds: list[tuple[float, Callable[[_Patient], bool], Callable[[_Patient], None]]] = [
        (26, lambda p: p.mrn_a is not None, lambda p: d.adt_a(p, d.at_hour(CLINICAL_HOURS), "A08")),
        (16, lambda p: p.mrn_a is not None, lambda p: d.outpatient_visit(p, d.at_hour(CLINICAL_HOURS))),
        (6, lambda p: p.mrn_a is not None, lambda p: d.inpatient_stay(p, d.at_hour(ANY_HOUR))),
        (14, lambda p: p.mrn_a is not None, lambda p: d.lab_order(p, d.at_hour(ANY_HOUR))),
        (10, lambda p: p.mrn_b is not None, lambda p: d.radiology_b(p, d.at_hour(CLINICAL_HOURS))),
        (16, lambda p: p.fhir_id is not None, lambda p: d.app_session(p, d.at_hour(EVENING_HOURS))),
        (7, lambda p: True, lambda p: d.hie_query(p, d.at_hour(CLINICAL_HOURS))),
        (
            1.5,
            lambda p: p.mrn_a is not None,
            lambda p: d.hl7(d.at_hour(CLINICAL_HOURS), "ELR-OUT-PH", p.ids(MRN_A, EMPI)),
        ),
        (0.6, lambda p: True, lambda p: d.break_glass(p, d.at_hour(ANY_HOUR))),
    ]
    target = max(1, round(EVENTS_PER_DAY * scale))
    while len(d.events) < target:
        _, eligible, run = rng.choices(kinds, weights=[k[0] for k in kinds])[0]
        pool = [(p, w) for p, w in zip(cast, weights, strict=True) if eligible(p)]
        run(rng.choices([p for p, _ in pool], weights=[w for _, w in pool])[0])
    return [event for _, _, event in sorted(d.events, key=lambda e: (e[0], e[1]))]


def _linked_components(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """Union-find over identifiers that arrive together, as the service links them."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for event in events:
        ids = [(i["system"], i["value"]) for i in event["patient"]["identifiers"]]
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
        find(ids[0])
    return {x: find(x) for x in parent}


def featured_patient(events: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(system, value) of a facility A MRN whose linked record saw the most
    kinds of traffic from the most systems: the patient whose report best
    shows linkage."""
    if not events:
        raise ValueError("no events")
    root = _linked_components(events)
    systems: dict[tuple[str, str], set[str]] = {}
    kinds: dict[tuple[str, str], set[str]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    mentions: Counter[tuple[str, str]] = Counter()
    for event in events:
        ids = [(i["system"], i["value"]) for i in event["patient"]["identifiers"]]
        mentions.update(ids)
        component = root[ids[0]]
        counts[component] += 1
        systems.setdefault(component, set()).update((event["source"]["system_id"], event["destination"]["system_id"]))
        kinds.setdefault(component, set()).add(event["event_type"])

    def rank(ident: tuple[str, str]) -> tuple[bool, int, int, int, int, str]:
        c = root[ident]
        return (ident[0] == MRN_A, len(kinds[c]), len(systems[c]), counts[c], mentions[ident], ident[1])

    return max(mentions, key=rank)


def send_day(url: str, token: str, events: list[dict[str, Any]], batch_size: int = 250) -> dict[str, int]:
    """Send ``events`` in batches with one emitter token bound to
    ``DEMO_SOURCE_SYSTEMS``; returns how many were accepted and how many the
    service already had (a rerun of the same seed and day)."""
    # Imported here so that generating traffic needs no HTTP stack.
    from auditsvc_sdk import AuditClient

    if not 1 <= batch_size <= 1000:
        raise ValueError("batch_size must be between 1 and 1000")
    totals = {"accepted": 0, "duplicate": 0}
    with AuditClient(url, token) as client:
        for start in range(0, len(events), batch_size):
            answer = client.record_batch(events[start : start + batch_size])
            for result in answer["results"]:
                totals[result["status"]] = totals.get(result["status"], 0) + 1
    return totals
