"""Reading an AuditEvent's JSON for the feed: element readers, the code
systems of IHE BALP, the refusal (``FeedRefusal``) and the assumption codes
(``FeedAssumed``). Nothing here builds an event (domain/fhir/feed.py does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from auditsvc_sdk.helpers import Assumed

__all__ = ["FeedAssumed", "FeedRefusal"]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # the event's code fields (event_type, purpose_of_use)
SYSTEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+~-]{0,127}$")
# A FHIR instant/dateTime with a time and a zone (seconds optional in dateTime, required in instant).
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
MAX_ATTRIBUTE_TEXT = 1024

# Every resource type of FHIR R4 and R4B: a data element named by an entity's
# free text (``name``, ``what.display``) is taken only when it is one (or a
# path into one), never a name that may be a person's.
RESOURCE_TYPE_NAMES = frozenset(
    """
    Account ActivityDefinition AdministrableProductDefinition AdverseEvent AllergyIntolerance Appointment
    AppointmentResponse AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle
    CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Citation Claim
    ClaimResponse ClinicalImpression ClinicalUseDefinition CodeSystem Communication CommunicationRequest
    CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis Encounter
    Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceReport
    EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal GraphDefinition Group
    GuidanceResponse HealthcareService ImagingStudy Immunization ImmunizationEvaluation ImmunizationRecommendation
    ImplementationGuide Ingredient InsurancePlan Invoice Library Linkage List Location ManufacturedItemDefinition
    Measure MeasureReport Media Medication MedicationAdministration MedicationDispense MedicationKnowledge
    MedicationRequest MedicationStatement MedicinalProduct MedicinalProductAuthorization
    MedicinalProductContraindication MedicinalProductDefinition MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured MedicinalProductPackaged
    MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition MessageHeader
    MolecularSequence NamingSystem NutritionOrder NutritionProduct Observation ObservationDefinition
    OperationDefinition OperationOutcome Organization OrganizationAffiliation PackagedProductDefinition Parameters
    Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner PractitionerRole Procedure
    Provenance Questionnaire QuestionnaireResponse RegulatedAuthorization RelatedPerson RequestGroup
    ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
    RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
    StructureDefinition StructureMap Subscription SubscriptionStatus SubscriptionTopic Substance
    SubstanceDefinition SubstanceNucleicAcid SubstancePolymer SubstanceProtein SubstanceReferenceInformation
    SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task TerminologyCapabilities
    TestReport TestScript ValueSet VerificationResult VisionPrescription
    """.split()  # noqa: SIM905 (a word list reads best as words)
)


class FeedAssumed:
    """Assumptions of the feed, beside the SDK's ``Assumed`` codes (``attributes["assumed"]``)."""

    SOURCE_FROM_TOKEN = "source_from_token"  # noqa: S105 (a code, not a secret); no agent names the PHI's source: the token's one system
    DESTINATION_UNKNOWN = Assumed.DESTINATION_UNKNOWN  # no agent names the destination: "unknown"
    ACTOR_FROM_CLIENT = "actor_from_client"  # no requestor agent: the client system is the actor
    ACTOR_FROM_SOURCE = "actor_from_source"  # no usable agent at all: the source system is the actor
    ACTION_FROM_SUBTYPE = "action_from_subtype"  # no action: the restful interaction's
    ACTION_UNKNOWN = "action_unknown"  # no action and nothing to infer it from: E (execute)
    OUTCOME_UNKNOWN = "outcome_unknown"  # no outcome: 0 (success)
    EVENT_TYPE_GENERIC = "event_type_generic"  # a type code with no name here: kept in fhir_type
    DATA_ELEMENTS_UNKNOWN = "data_elements_unknown"  # no entity says what was accessed: "Patient"
    IDENTIFIER_WITHOUT_SYSTEM = "identifier_without_system"  # an identifier with no system was left out
    IDENTIFIERS_OMITTED = "identifiers_omitted"  # more than 20 identifiers: the first 20 kept
    PURPOSE_UNUSABLE = "purpose_unusable"  # a purpose code that is not a code was left out


class FeedRefusal(Exception):
    """An AuditEvent that cannot be mapped. ``path`` is the element
    (FHIRPath, ``AuditEvent.entity[1].what.identifier``); ``message`` says
    what is wrong and never quotes a value; ``code`` is the FHIR issue type
    (``structure``, ``required``, ``value``, ``code-invalid``,
    ``not-supported``, ``business-rule``, ``forbidden``); ``status`` the
    HTTP status it is answered with."""

    def __init__(self, path: str, message: str, code: str = "structure", status: int = 400) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.code = code
        self.status = status


def obj(value: Any, path: str, required: bool = False) -> Mapping[str, Any] | None:
    """An element that must be an object when present."""
    if value is None:
        if required:
            raise FeedRefusal(path, "is required", "required")
        return None
    if not isinstance(value, Mapping):
        raise FeedRefusal(path, "must be a JSON object")
    return value


def items(value: Any, path: str) -> list[Any]:
    """A FHIR repeating element; a lone object where a list belongs is taken as a list of one."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if not isinstance(value, list):
        raise FeedRefusal(path, "must be a JSON array")
    return value


def text(value: Any) -> str | None:
    """A non-blank string, stripped; anything else is absent."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def codings(concept: Any) -> list[Mapping[str, Any]]:
    """The Codings of a Coding or CodeableConcept (R4 uses both for codes in AuditEvent)."""
    if not isinstance(concept, Mapping):
        return []
    if "coding" in concept:
        return [c for c in concept["coding"] if isinstance(c, Mapping)] if isinstance(concept["coding"], list) else []
    return [concept]


def has_code(concept: Any, code: str, *systems: str) -> bool:
    """A Coding with ``code`` (and one of ``systems``, or no system at all)."""
    for coding in codings(concept):
        if coding.get("code") == code and (not systems or coding.get("system") in (*systems, None)):
            return True
    return False


def coding_text(coding: Mapping[str, Any]) -> str:
    system, code = coding.get("system"), coding.get("code")
    return f"{system}|{code}" if isinstance(system, str) else str(code)


def short(value: str) -> str:
    """An attribute's text within the event's bound (1,024 characters)."""
    return value if len(value) <= MAX_ATTRIBUTE_TEXT else value[: MAX_ATTRIBUTE_TEXT - 3] + "..."


def instant(value: Any, path: str) -> datetime:
    """A FHIR instant (a date, a time and a zone); ``FeedRefusal`` naming ``path`` otherwise."""
    if not isinstance(value, str) or not _INSTANT.match(value):
        raise FeedRefusal(path, "must be a FHIR instant with a time zone (e.g. 2026-11-24T09:30:00Z)", "value")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FeedRefusal(path, "is not a valid date and time", "value") from None


def sub(value: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``value[key]`` when it is an object, else an empty one (a reader's
    tolerance: a missing or malformed optional part is no part)."""
    found = value.get(key)
    return found if isinstance(found, Mapping) else {}
