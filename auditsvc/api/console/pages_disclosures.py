"""The accounting of disclosures (HIPAA §164.528) for one patient, and its
PDF for the patient.

The identifier never travels in a URL: the search is a POST, and the PDF
download a POST carrying it in hidden fields of the page's form. The same
domain calls as ``/v1/reports/disclosures`` (domain/disclosures.py,
reports_pdf/make.py), so each answer is recorded in the chain the same way.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.disclosures import DisclosureQuery, disclosure_accounting
from ...domain.errors import InvalidInput
from ...domain.ingest import parse_params
from ...domain.plain_language import describe_exclusion
from ...reports_pdf.make import PDF_MEDIA_TYPE, accounting_pdf
from .form_errors import named_fields
from .guard import console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser
from .tables import Sort, sort_rows

router = APIRouter(include_in_schema=False)

ROLES = page_roles("/accounting")
Officer = Annotated[ConsoleUser, Depends(console_user(*ROLES))]
OfficerPost = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*ROLES))]


# The entries are sorted on the server like the other summary tables, but by
# buttons of a POST form (the identifier never goes in a URL): each header
# button sends ``sort=<key>.<asc|desc>`` with the page's hidden fields.
ENTRY_ORDER: dict[str, Any] = {
    "dates": lambda e: e["first_date"],
    "recipient": lambda e: (e["recipient"].get("name") or e["recipient"]["system_id"]).casefold(),
    "purpose": lambda e: e["purpose"].casefold(),
    "count": lambda e: e["count"],
}


def entry_sort(form: dict[str, str]) -> Sort:
    """The order the form asks for (``dates.asc`` by default; an unknown column falls back to it)."""
    key, _, direction = form.get("sort", "").partition(".")
    if key not in ENTRY_ORDER:
        return Sort("dates", False)
    return Sort(key, direction == "desc")


def _query(form: dict[str, str]) -> DisclosureQuery:
    params: dict[str, Any] = {
        "identifier": {"system": form.get("system", "").strip(), "value": form.get("value", "").strip()},
        "requested_at": form.get("requested_at") or None,
    }
    try:
        return parse_params(DisclosureQuery, params, "accounting request")
    except InvalidInput as exc:
        raise named_fields(exc) from None


@router.get("/accounting")
async def accounting_search(request: Request, user: Officer) -> Response:
    return render(request, "accounting.html", user, {"report": None})


@router.post("/accounting")
async def accounting(request: Request, posted: OfficerPost) -> Response:
    user, form = posted
    query = _query(form)
    answered = await disclosure_accounting(request.app.state.audit, query, user.caller, delivered_as="html")
    sort = entry_sort(form)
    report = {**answered.report, "entries": sort_rows(answered.report["entries"], sort, ENTRY_ORDER)}
    context = {
        "report": report,
        "sort": sort,
        "exclusions": {reason: describe_exclusion(reason) for reason in report["excluded"]},
        "system": query.identifier.system,
        "value": query.identifier.value,
        "requested_at": form.get("requested_at") or "",
    }
    return render(request, "accounting.html", user, context)


@router.post("/accounting/pdf")
async def accounting_document(request: Request, posted: OfficerPost) -> Response:
    user, form = posted
    pdf = await accounting_pdf(request.app.state.audit, _query(form), user.caller)
    return Response(
        pdf,
        media_type=PDF_MEDIA_TYPE,
        headers={
            "Content-Disposition": 'attachment; filename="accounting-of-disclosures.pdf"',
            "Cache-Control": "no-store",
        },
    )
