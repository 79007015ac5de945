"""The admin page: the system registry (edit an entry, register one, import
a CSV) and API tokens (create, list, revoke).

Every change goes through the same domain calls as the API and the CLI, so
it is recorded in the chain the same way: registry entries as
``system-registry-change`` events (domain/systems.py), tokens as
``credential-change`` events (domain/token_admin.py). A new token is shown
once, in the answer to its POST, never in a URL or afterwards.

The CSV import is a file upload (multipart/form-data, bounded); a bad file
is refused whole, with every bad line and its reason (never a cell's value).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from ...domain import token_admin
from ...domain.errors import InvalidInput, PayloadTooLarge
from ...domain.ingest import parse_params
from ...domain.systems import (
    BAA_STATUSES,
    CSV_COLUMNS,
    RELATIONSHIPS,
    ImportErrors,
    SystemEntryIn,
    check_system_id,
    list_registry,
    parse_import,
    set_entries,
    set_entry,
)
from ...domain.tokens import Role
from .form_errors import named_fields
from .guard import acting_as, console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser, check_csrf, current_user
from .tables import Sort, offset_page, sort_rows, sort_url

router = APIRouter(include_in_schema=False)

ROLES = page_roles("/admin")
Admin = Annotated[ConsoleUser, Depends(console_user(*ROLES))]
AdminPost = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*ROLES))]
MAX_IMPORT_BYTES = 2 * 1024 * 1024
TOKEN_ROLES = tuple(r.value for r in Role)
PAGE_SIZE = 50
"""Rows a page of the registry and of the tokens (each table pages on its own: ``?page=``, ``?tokens_page=``)."""


REGISTRY_KEYS = {
    "system_id": lambda s: s["system_id"],
    "name": lambda s: (s["name"] or "").lower(),
    "relationship": lambda s: s["relationship"] or "",
    "baa": lambda s: (s["baa"] or {}).get("status") or "",
    "expires": lambda s: (s["baa"] or {}).get("expires") or "9999",
}


async def _page(request: Request, user: ConsoleUser, **extra: Any) -> Response:
    audit = request.app.state.audit
    sort = Sort.from_request(request, REGISTRY_KEYS, "system_id")
    # The registry and the tokens are read whole (they grow with the
    # organisation, not with the log) and sorted; the page shows one page of each.
    systems = offset_page(
        request, sort_rows(await list_registry(audit), sort, REGISTRY_KEYS), PAGE_SIZE, "page", "#registry"
    )
    tokens = offset_page(request, await token_admin.list_token_views(audit), PAGE_SIZE, "tokens_page", "#tokens")
    context = {
        "systems": systems.rows,
        "systems_page": systems,
        "tokens_page": tokens,
        "sort": sort,
        # Answers to the POSTs render this page too: its links go to /admin.
        "sort_urls": {key: "/admin" + sort_url(request, sort, key)[len(request.url.path) :] for key in REGISTRY_KEYS},
        "tokens": tokens.rows,
        "relationships": RELATIONSHIPS,
        "baa_statuses": BAA_STATUSES,
        "token_roles": TOKEN_ROLES,
        "csv_columns": CSV_COLUMNS,
        "saved": request.query_params.get("saved"),
        "imported": request.query_params.get("imported"),
        "revoked": request.query_params.get("revoked"),
        **extra,
    }
    return render(request, "admin.html", user, context, status_code=422 if extra.get("import_errors") else 200)


@router.get("/admin")
async def admin_page(request: Request, user: Admin) -> Response:
    return await _page(request, user)


def _entry(form: dict[str, str]) -> SystemEntryIn:
    def cell(name: str) -> str | None:
        return (form.get(name) or "").strip() or None

    system_id = check_system_id((form.get("system_id") or "").strip())
    params = {
        "system_id": system_id,
        "name": cell("name") or "",
        "organization": cell("organization"),
        "address": cell("address"),
        "relationship": cell("relationship") or "",
        "baa": {
            "status": cell("baa_status") or "",
            "effective": cell("baa_effective"),
            "expires": cell("baa_expires"),
            "reference": cell("baa_reference"),
        },
    }
    try:
        return parse_params(SystemEntryIn, params, "registry entry")
    except InvalidInput as exc:
        raise named_fields(exc) from None


@router.post("/admin/systems")
async def save_system(request: Request, posted: AdminPost) -> Response:
    user, form = posted
    entry = _entry(form)
    await set_entry(request.app.state.audit, user.caller, entry)
    return RedirectResponse(f"/admin?saved={entry.system_id}#registry", status_code=303)


@router.post("/admin/systems/import")
async def import_systems(request: Request) -> Response:
    user = await current_user(request)
    request.state.console_user = user
    user = acting_as(user, ROLES)
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"the upload must declare its size and be at most {MAX_IMPORT_BYTES // 1024} KiB")
    async with request.form(max_files=1, max_fields=4, max_part_size=MAX_IMPORT_BYTES) as form:
        check_csrf(request, user, {"csrf_token": str(form.get("csrf_token") or "")})
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await _page(request, user, import_errors=[(0, "choose a CSV file to import")])
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
    try:
        entries = parse_import(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return await _page(request, user, import_errors=[(0, "the file is not UTF-8 text")])
    except ImportErrors as exc:
        return await _page(request, user, import_errors=exc.lines)
    if not entries:
        return await _page(request, user, import_errors=[(0, "the file has a header but no rows")])
    stored = await set_entries(request.app.state.audit, user.caller, entries)
    return RedirectResponse(f"/admin?imported={len(stored)}#registry", status_code=303)


@router.post("/admin/tokens")
async def create_token(request: Request, posted: AdminPost) -> Response:
    user, form = posted
    try:
        role = Role((form.get("role") or "").strip())
    except ValueError:
        raise InvalidInput("role: choose one of " + ", ".join(TOKEN_ROLES)) from None
    systems = [s.strip() for s in (form.get("systems") or "").split(",") if s.strip()]
    expires = None
    days = (form.get("expires_in_days") or "").strip()
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            raise InvalidInput("expires_in_days: a whole number of days from 1 to 3650")
        expires = datetime.now(UTC) + timedelta(days=int(days))
    issued = await token_admin.issue(request.app.state.audit, user.caller, role, systems, form.get("name"), expires)
    return await _page(request, user, issued=issued)


@router.post("/admin/tokens/revoke")
async def revoke_token(request: Request, posted: AdminPost) -> Response:
    user, form = posted
    token_id = (form.get("token_id") or "").strip()
    await token_admin.revoke(request.app.state.audit, user.caller, token_id)
    return RedirectResponse(f"/admin?revoked={token_id}#tokens", status_code=303)
