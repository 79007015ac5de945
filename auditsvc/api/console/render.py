"""Templates and what every console page shows: the user, their role, the
navigation, the CSRF token of its forms, times as ``<time>`` elements.

Pages are listed once, in ``PAGES``: the navigation shows a page to a user
holding one of its roles, once a route serves its path (a page another
change adds appears when its router is mounted), and ``page_roles(path)``
is what the page's route guard admits (docs/console/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from ...domain.tokens import Role
from .session import ConsoleUser

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

PO, AUDITOR, ADMIN = Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    roles: tuple[Role, ...]
    summary: str


PAGES: tuple[Page, ...] = (
    Page("Patient", "/patient", (PO,), "Every system that accessed one patient's record"),
    Page("System", "/system", (PO,), "What one system accessed, and with whom it exchanged PHI"),
    Page("Actor", "/actor", (PO,), "What one user or service accessed"),
    Page("Accounting", "/accounting", (PO,), "The accounting of disclosures for a patient (§164.528)"),
    Page("Break-glass", "/break-glass", (PO,), "Emergency accesses waiting for review"),
    Page("Coverage", "/coverage", (PO, AUDITOR), "Systems and emitters, silent ones flagged; new flows"),
    Page("Flows", "/flows", (PO,), "The PHI flow map, BAA gaps and alerts"),
    Page("Activity", "/activity", (PO, AUDITOR), "Who ran which report, export or review"),
    Page("Auditor", "/auditor", (AUDITOR, ADMIN), "Checkpoints, witnesses, verification, evidence"),
    Page("Admin", "/admin", (ADMIN,), "The system registry and API tokens"),
    Page("Quarantine", "/quarantine", (ADMIN,), "ATNA syslog messages that could not become events"),
)


def page_roles(path: str) -> tuple[Role, ...]:
    """The roles that may see the page at ``path`` (one of ``PAGES``)."""
    return next(p.roles for p in PAGES if p.path == path)


def navigation(request: Request, user: ConsoleUser | None) -> list[dict[str, Any]]:
    if user is None:
        return []
    served: frozenset[str] = request.app.state.console_paths
    here = request.url.path
    return [
        {
            "label": p.label,
            "path": p.path,
            "summary": p.summary,
            "current": here == p.path or here.startswith(p.path + "/"),
        }
        for p in PAGES
        if p.path in served and any(r in user.caller.roles for r in p.roles)
    ]


def _as_datetime(value: datetime | date | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.astimezone(UTC)


def utc_time(value: datetime | date | str | None, *, date_only: bool = False) -> Markup:
    """``<time datetime="...Z">`` showing UTC; console.js shows it in the user's zone, UTC on hover."""
    if value is None or value == "":
        return Markup("")
    moment = _as_datetime(value)
    iso = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    text = moment.strftime("%Y-%m-%d") if date_only else moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    kind = "date" if date_only else "datetime"
    return Markup('<time datetime="{}" data-kind="{}">{}</time>').format(iso, kind, text)


def plain_duration(length: timedelta) -> str:
    """A length of time in words: whole seconds below a minute, whole minutes otherwise."""
    seconds = max(1, round(length.total_seconds()))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = (seconds + 30) // 60  # to the nearest whole minute, half up
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def thousands(value: int) -> str:
    return f"{value:,}"


templates.env.filters["utc_time"] = utc_time
templates.env.filters["thousands"] = thousands
templates.env.globals["PAGES"] = PAGES


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """A console page: ``template`` with the common context (user, nav, CSRF token)."""
    common = {
        "user": user,
        "role": user.caller.role.value if user else None,
        "nav": navigation(request, user),
        "csrf_token": user.csrf_token if user else None,
        "idle_seconds": user.idle_seconds if user else None,
    }
    return templates.TemplateResponse(request, template, {**common, **(context or {})}, status_code=status_code)


def error_page(request: Request, user: ConsoleUser | None, status_code: int, title: str, message: str) -> HTMLResponse:
    """A clear error page (no PHI: the messages are the service's own)."""
    return render(request, "error.html", user, {"title": title, "message": escape(message)}, status_code=status_code)
