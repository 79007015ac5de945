"""Response shapes of the accounting of disclosures and of suspensions
(OpenAPI; the answers are built in domain/disclosures.py and
domain/suspensions.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas import PatientOut


class RecipientOut(BaseModel):
    system_id: str
    name: str | None = Field(description="from the system registry, else the name the event gave")
    address: str | None = Field(description="from the system registry; null: not on file")
    registered: bool


class AccountingEntryOut(BaseModel):
    first_date: str
    last_date: str
    count: int = Field(description="disclosures to this recipient for this purpose in the period")
    recipient: RecipientOut
    description: str = Field(description="the PHI disclosed, in plain words")
    purpose: str = Field(description="the purpose, in plain words")
    purpose_code: str | None


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str


class SuspensionOut(BaseModel):
    recipient_system_id: str
    recorded_at: str
    ends: str
    oral: bool
    reference: str
    scope: Literal["patient", "all_patients"]


class SuspensionRecorded(SuspensionOut):
    seq: int
    event_id: str


class DisclosureAccounting(BaseModel):
    """The accounting (45 CFR 164.528) as of ``requested_at``: entries,
    exclusions counted by reason, and recipients whose disclosures a
    suspension withholds (their terms only)."""

    patient: PatientOut
    requested_at: str
    period: PeriodOut
    entries: list[AccountingEntryOut]
    excluded: dict[str, int]
    suspended: list[SuspensionOut]
