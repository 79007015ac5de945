"""/v1/reports: the privacy officer's patient-access report. PHI travels in
the body, never the URL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...domain.reports import PatientAccessQuery, patient_access_report
from ..deps import AuditDep, PrivacyOfficerDep
from ..schemas import PatientAccessReport

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.post(
    "/patient-access",
    response_model=PatientAccessReport,
    summary="Every system that accessed this patient's record (by any linked identifier)",
)
async def patient_access(query: PatientAccessQuery, audit: AuditDep, caller: PrivacyOfficerDep) -> dict[str, Any]:
    return await patient_access_report(audit, query, caller)
