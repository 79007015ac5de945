"""The flows page: the PHI flow map as a graph, its flows and BAA gaps, and the
open alerts with their acknowledgement.

The graph is SVG made here on the server (domain/flow_graph.py's layout:
senders, "through" systems, receivers, grouped by organisation; line width by
volume; red where events reached a party without an effective BAA): no
script and no style attribute, so the console's Content Security Policy
holds, and it stays legible at 100+ systems (a row each, the page scrolls).
Each system and flow carries a ``<title>`` (its tooltip and accessible name).
The period is a GET filter (dates carry no PHI); acknowledging an alert is a
POST with the session's CSRF token.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape

from ...domain.alerts import AcknowledgeRequest, AlertQuery, acknowledge_alert, list_alerts
from ...domain.errors import InvalidInput
from ...domain.flow_graph import Layout, layout
from ...domain.flows import FlowQuery, flow_map_with_gaps
from ...domain.ingest import parse_params
from .guard import console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser

router = APIRouter(include_in_schema=False)

Officer = Annotated[ConsoleUser, Depends(console_user(*page_roles("/flows")))]
OfficerForm = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*page_roles("/flows")))]

ROW, BOX_W, BOX_H, WIDTH = 22, 190, 16, 980
ALERTS_SHOWN = 50
XS = (4, (WIDTH - BOX_W) // 2, WIDTH - BOX_W - 4)
RED, GREY, INK, ORG, BOX = "#b3261e", "#8a96a3", "#1f2933", "#3e4c59", "#eef2f7"
REASONS = {
    "none": "no BAA",
    "expired": "BAA expired",
    "not_yet_effective": "BAA not yet effective",
    "unregistered": "not in the registry",
    "expires_soon": "BAA expires soon",
}


def _y(rows: float) -> float:
    return 24 + rows * ROW


def flow_svg(report: dict[str, Any]) -> Markup:
    """The map as an SVG element (presentation attributes only: no inline style)."""
    plan: Layout = layout(report)
    parties = {s["system_id"]: s for s in report["systems"]}
    height = _y(plan.rows) + 8
    out = [
        f'<svg class="chart flow-map" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-labelledby="flow-map-title" xmlns="http://www.w3.org/2000/svg">',
        '<title id="flow-map-title">PHI flows between systems: senders left, systems that pass PHI on in the '
        "middle, receivers right; red: events reached a party without an effective BAA</title>",
    ]
    for label, x in zip(("Send", "Receive and pass on", "Receive"), XS, strict=True):
        out.append(f'<text x="{x}" y="12" font-weight="700" fill="{INK}">{label}</text>')
    for e in plan.edges:
        a, b = plan.nodes[e.source], plan.nodes[e.destination]
        y1, y2 = _y(a.y) + BOX_H / 2, _y(b.y) + BOX_H / 2
        x1: float
        x2: float
        bend1: float
        bend2: float
        if a.column == b.column:  # within one column: a loop out to the right
            x1 = x2 = XS[a.column] + BOX_W
            bend1 = bend2 = x1 + 40
        else:
            forward = a.column < b.column
            x1 = XS[a.column] + (BOX_W if forward else 0)
            x2 = XS[b.column] + (0 if forward else BOX_W)
            bend1 = bend2 = (x1 + x2) / 2
        color = RED if e.uncovered else GREY
        width = 1 + 5 * e.weight
        out.append(
            f'<path d="M{x1:.0f},{y1:.1f} C{bend1:.0f},{y1:.1f} {bend2:.0f},{y2:.1f} {x2:.0f},{y2:.1f}" fill="none" '
            f'stroke="{color}" stroke-width="{width:.1f}" stroke-opacity="{0.9 if e.uncovered else 0.5}">'
            f"<title>{escape(e.source)} → {escape(e.destination)}: {e.events:,} events"
            f"{' (some without an effective BAA)' if e.uncovered else ''}</title></path>"
        )
    for h in plan.headings:
        out.append(
            f'<text x="{XS[h.column]}" y="{_y(h.y) + 12:.1f}" font-weight="700" fill="{ORG}">'
            f"{escape(h.organization[:32])}</text>"
        )
    for n in plan.nodes.values():
        party = parties[n.system_id]
        baa = party.get("baa") or {}
        what = (
            f"{n.system_id}: {n.organization}, {party.get('relationship') or 'not in the registry'}"
            f", BAA {baa.get('status') or 'none on record'}"
        )
        stroke = RED if n.uncovered else (GREY if n.needs_baa else ORG)
        out.append(
            f'<g><title>{escape(what)}</title><rect x="{XS[n.column]}" y="{_y(n.y) + 2:.1f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="3" fill="{BOX}" stroke="{stroke}" stroke-width="{2 if n.uncovered else 1}"/>'
            f'<text x="{XS[n.column] + 6}" y="{_y(n.y) + 14:.1f}" fill="{RED if n.uncovered else INK}">'
            f"{escape(n.system_id[:28])}</text></g>"
        )
    out.append("</svg>")
    # Every value from the report (system ids, organisations) went through escape() above.
    return Markup("".join(out))  # noqa: S704


def _query(request: Request) -> FlowQuery:
    params = {k: request.query_params.get(k) or None for k in ("from", "to")}
    return parse_params(FlowQuery, params, "flow map")


@router.get("/flows")
async def flows_page(request: Request, user: Officer) -> Response:
    audit = request.app.state.audit
    error = None
    try:
        query = _query(request)
        report, gaps = await flow_map_with_gaps(audit, query, user.caller)
    except InvalidInput as exc:
        error = exc.message
        report, gaps = await flow_map_with_gaps(audit, FlowQuery(), user.caller)
    alerts = await list_alerts(audit, AlertQuery(status="open", limit=ALERTS_SHOWN), user.caller)
    return render(
        request,
        "flows.html",
        user,
        {
            "report": report,
            "gaps": gaps["gaps"],
            "alerts": alerts["alerts"],
            "graph": flow_svg(report) if report["flows"] else None,
            "reasons": REASONS,
            "alert_limit": ALERTS_SHOWN,
            "error": error,
            "from_value": request.query_params.get("from") or report["period"]["from"][:10],
            "to_value": request.query_params.get("to") or report["period"]["to"][:10],
            "today": date.today().isoformat(),
        },
    )


@router.post("/flows/alerts/{alert_id}/acknowledge")
async def acknowledge(request: Request, alert_id: str, submitted: OfficerForm) -> Response:
    user, form = submitted
    notes = (form.get("notes") or "").strip()
    request_body = AcknowledgeRequest.model_validate({"notes": notes[:1000]})
    await acknowledge_alert(request.app.state.audit, alert_id, request_body, user.caller)
    return RedirectResponse("/flows#alerts", status_code=303)
