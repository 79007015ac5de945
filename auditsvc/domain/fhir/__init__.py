"""The FHIR R4 AuditEvent facade (IHE RESTful ATNA, BALP): mapping stored
events to AuditEvent resources, ITI-81 search parameters, the
CapabilityStatement. docs/fhir.md has the mapping table."""
