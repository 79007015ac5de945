"""The patient page: search by any identifier, the report, one event, exports.

The identifier never travels in a URL: the search is a POST; its identifier
is sealed and kept server-side under an opaque id (``console_searches``),
and the report lives at ``/patient/r/<id>``, whose filters and paging are
GET parameters that carry no PHI (dates, system ids, codes, a cursor). The
report, the event page and the exports call the same domain functions as
the API, so each is recorded in the chain the same way.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Annotated, Any
from uuid import UUID

from auditsvc_sdk import Identifier
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ...domain.errors import NotFound
from ...domain.events import read_event
from ...domain.ingest import parse_body
from ...domain.patient_stream import patient_access_records
from ...domain.reports import ACTIONS, OUTCOMES, PatientAccessQuery, PatientFilters, patient_access_report
from ...domain.reviews import review_state
from ...domain.tokens import Role
from ...reports_pdf.make import PDF_MEDIA_TYPE, patient_report_pdf
from ...runtime import AuditLog
from ...store import console_sessions as store
from ...store.session import driver_connection
from ..csv_stream import events_csv
from .chart import timeline_svg
from .guard import console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser, config_of
from .tables import Pager, Sort, sort_rows, sort_url, url_with

router = APIRouter(include_in_schema=False)

SEARCH_KIND = "patient"
PAGE_SIZES = (25, 50, 100, 250)
MAX_SYSTEMS_LISTED = 200
_SEARCH_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PURPOSES = ("TREAT", "ETREAT", "HPAYMT", "HOPERAT", "PUBHLTH", "HRESCH", "PATRQT", "HLEGAL")
OUTCOME_NAMES = {0: "success", 4: "minor failure", 8: "serious failure", 12: "major failure"}
ACTION_NAMES = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}

Officer = Annotated[ConsoleUser, Depends(console_user(*page_roles("/patient")))]
OfficerForm = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*page_roles("/patient")))]
# As the API's GET /v1/events/{event_id}: auditors see the record (identifiers sealed), officers opened.
EventReader = Annotated[ConsoleUser, Depends(console_user(Role.PRIVACY_OFFICER, Role.AUDITOR))]

SYSTEM_SORTS = {
    "system": lambda s: s["system_id"],
    "count": lambda s: s["count"],
    "as_source": lambda s: s["as_source"],
    "as_destination": lambda s: s["as_destination"],
    "first": lambda s: s["first_access"],
    "last": lambda s: s["last_access"],
}


async def _identifier_systems(audit: AuditLog) -> list[str]:
    async with driver_connection(audit.engine) as conn:
        return await store.identifier_systems(conn, audit.log_id, MAX_SYSTEMS_LISTED)


async def _search_form(request: Request, user: ConsoleUser, *, error: str | None = None, system: str = "") -> Response:
    systems = await _identifier_systems(request.app.state.audit)
    context = {"systems": systems, "error": error, "system": system}
    return render(request, "patient_search.html", user, context, status_code=422 if error else 200)


@router.get("/patient")
async def patient_search(request: Request, user: Officer) -> Response:
    return await _search_form(request, user)


@router.post("/patient")
async def start_patient_search(request: Request, signed_in: OfficerForm) -> Response:
    """Keep the identifier server-side, sealed, and show the report at an opaque address."""
    user, form = signed_in
    system, value = form.get("system", "").strip(), form.get("value", "").strip()
    try:
        identifier = Identifier(system=system, value=value)
    except ValidationError as exc:
        fields = sorted({"Identifier system" if e["loc"][0] == "system" else "Identifier value" for e in exc.errors()})
        problems = "; ".join(f"{f}: {_reason(exc, f)}" for f in fields)
        return await _search_form(request, user, error=f"Check the identifier. {problems}.", system=system[:200])
    audit: AuditLog = request.app.state.audit
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    search_id = secrets.token_urlsafe(18)
    async with driver_connection(audit.engine) as conn:
        await store.insert_search(
            conn,
            search_id,
            user.session_hash,
            SEARCH_KIND,
            identifier.system,
            sealer.seal(identifier.system, identifier.value),
            config_of(request).now(),
        )
    return RedirectResponse(f"/patient/r/{search_id}", status_code=303)


def _reason(exc: ValidationError, field: str) -> str:
    loc = "system" if field == "Identifier system" else "value"
    messages = [str(e["msg"]) for e in exc.errors() if e["loc"] and e["loc"][0] == loc]
    return messages[0].lower() if messages else "invalid"


async def _searched(request: Request, user: ConsoleUser, search_id: str) -> Identifier:
    """The identifier of one of this session's searches (404 otherwise)."""
    if not _SEARCH_ID.match(search_id):
        raise NotFound("no such search")
    audit: AuditLog = request.app.state.audit
    async with driver_connection(audit.engine) as conn:
        found = await store.get_search(conn, search_id, user.session_hash, SEARCH_KIND)
    if found is None:
        raise NotFound("this search is not one of your session's (searches end with the session); search again")
    sealer = audit.keys.sealer
    assert sealer is not None
    system, sealed = found
    return Identifier(system=system, value=sealer.open(system, sealed))


def _period(request: Request) -> dict[str, str]:
    """``from``/``to`` as whole UTC days (YYYY-MM-DD), as the API takes them."""
    period = {}
    for name in ("from", "to"):
        value = request.query_params.get(name, "")
        if value:
            if not _DATE.match(value):
                period[name] = "not-a-date"  # refused by the query's validation, naming the field
            else:
                period[name] = value
    return period


def _query(identifier: Identifier, request: Request, *, limit: int, cursor: str | None) -> PatientAccessQuery:
    body: dict[str, Any] = {"identifier": identifier.model_dump(), **_period(request), "limit": limit}
    if cursor:
        body["cursor"] = cursor
    return parse_body(PatientAccessQuery, json.dumps(body).encode(), "report filters")


@router.get("/patient/r/{search_id}")
async def patient_report(request: Request, user: Officer, search_id: str) -> Response:
    identifier = await _searched(request, user, search_id)
    filters = PatientFilters.parse(request.query_params)
    size = _page_size(request)
    query = _query(identifier, request, limit=size, cursor=request.query_params.get("cursor") or None)
    report = await patient_access_report(request.app.state.audit, query, user.caller, filters, timeline=True)
    sort = Sort.from_request(request, SYSTEM_SORTS, "count", descending=True)
    systems = sort_rows(report["systems"], sort, SYSTEM_SORTS)
    timeline = timeline_svg(report.pop("timeline"), [s["system_id"] for s in report["systems"]])
    listed: set[str] = {s["system_id"] for s in report["systems"]}
    system_options = sorted(listed | {filters.system_id} if filters.system_id else listed)
    export_query = url_with(request, cursor=None, page=None, sort=None, dir=None)
    export_params = export_query.partition("?")[2]
    context = {
        "search_id": search_id,
        "identifier": identifier,
        "report": report,
        "systems": systems,
        "sort": sort,
        "sort_urls": {key: sort_url(request, sort, key) for key in SYSTEM_SORTS},
        "timeline": timeline,
        "pager": Pager.for_cursor(request, report["next_cursor"]),
        "filters": filters,
        "period": _period(request),
        "system_options": [(s, s) for s in system_options],
        "action_options": [(a, f"{a} ({ACTION_NAMES[a]})") for a in ACTIONS],
        "outcome_options": [(o, f"{o} ({OUTCOME_NAMES[o]})") for o in OUTCOMES],
        "purposes": PURPOSES,
        "size": size,
        "size_options": [(n, f"{n} a page") for n in PAGE_SIZES],
        "export_suffix": _export_suffix(export_params),
        "action_names": ACTION_NAMES,
        "outcome_names": OUTCOME_NAMES,
    }
    return render(request, "patient_report.html", user, context)


def _page_size(request: Request) -> int:
    raw = request.query_params.get("size", "")
    return int(raw) if raw.isdigit() and int(raw) in PAGE_SIZES else PAGE_SIZES[1]


def _export_suffix(params: str) -> str:
    """The period of the page, for its export links (the exports take from/to only)."""
    kept = [p for p in params.split("&") if p.startswith(("from=", "to="))]
    return "?" + "&".join(kept) if kept else ""


@router.get("/patient/r/{search_id}/export.csv")
async def patient_report_csv(request: Request, user: Officer, search_id: str) -> Response:
    """Every event of the period as CSV: the API's ``?format=csv`` answer."""
    identifier = await _searched(request, user, search_id)
    query = _query(identifier, request, limit=100, cursor=None)
    return events_csv(await patient_access_records(request.app.state.audit, query, user.caller), "patient-access.csv")


@router.get("/patient/r/{search_id}/export.pdf")
async def patient_report_document(request: Request, user: Officer, search_id: str) -> Response:
    """The report as a PDF: the API's ``?format=pdf`` answer."""
    identifier = await _searched(request, user, search_id)
    query = _query(identifier, request, limit=100, cursor=None)
    pdf = await patient_report_pdf(request.app.state.audit, query, user.caller)
    headers = {"Content-Disposition": 'attachment; filename="patient-access.pdf"'}
    return Response(pdf, media_type=PDF_MEDIA_TYPE, headers=headers)


@router.get("/events/{event_id}")
async def event_page(request: Request, user: EventReader, event_id: str) -> Response:
    """One stored event: the record, its seq and hashes (the read recorded in the chain)."""
    try:
        uuid = UUID(event_id)
    except ValueError:
        raise NotFound("no event with that event_id") from None
    answer = await read_event(request.app.state.audit, uuid, user.caller)
    review = await review_state(request.app.state.audit, uuid, answer["seq"])
    back = request.query_params.get("back", "")
    context = {
        "answer": answer,
        "review": review,
        "record": answer["record"],
        "back": f"/patient/r/{back}" if _SEARCH_ID.match(back) else None,
        "action_names": ACTION_NAMES,
        "outcome_names": OUTCOME_NAMES,
        "record_json": json.dumps(answer["record"], indent=2, sort_keys=True),
    }
    return render(request, "event.html", user, context)
