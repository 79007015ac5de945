"""The compliance committee's report and the BAA gap report as documents.

The map is drawn (reportlab graphics) when it stays legible on a page, up
to ``MAX_DRAWN_SYSTEMS`` systems: three columns, systems that only send on
the left, those that receive and send on ("through": middleware) in the
middle, those that only receive on the right, each column grouped by
organisation; an edge's width grows with the log of its volume, and an
edge carrying events to a party without an effective BAA is red. The
table of flows follows in every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, PageBreak, Spacer

from ..domain.committee import committee_report
from ..domain.flow_graph import layout
from ..domain.flows import FlowQuery, GapQuery, baa_gap_report
from ..domain.tokens import Caller
from ..runtime import AuditLog
from .layout import BODY, CELL, HEADING, SMALL, TITLE, WIDTH, day, marked, render, table, text
from .make import generated_by

MAX_DRAWN_SYSTEMS = 36
MAX_DRAWING_HEIGHT = 560.0  # points: a letter page's frame, less the heading and caption
MIN_ROW = 11.0
SECTION = ParagraphStyle("section", parent=HEADING, keepWithNext=1)  # a heading never ends a page alone
RED = colors.HexColor("#c0392b")
GREY = colors.HexColor("#7b8794")
BOX = colors.HexColor("#eef2f7")
ORG = colors.HexColor("#3e4c59")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%d %b %Y %H:%M UTC").lstrip("0")


def _who(party: dict[str, Any]) -> str:
    return str(party["organization"] or party["name"] or "unregistered")


def flow_graph(report: dict[str, Any]) -> Drawing | None:
    """The map as a drawing (domain/flow_graph.py's layout), or None when it would not be legible."""
    if not report["systems"] or len(report["systems"]) > MAX_DRAWN_SYSTEMS:
        return None
    plan = layout(report)
    # One page's height at most (a drawing cannot split): rows shrink to fit, down to a legible size.
    row_h, box_w = min(20.0, MAX_DRAWING_HEIGHT / max(plan.rows, 1.0)), 118.0
    if row_h < MIN_ROW:
        return None
    box_h = row_h * 0.75
    size = min(7.0, box_h * 0.6)
    height = plan.rows * row_h + 10
    drawing = Drawing(WIDTH, height)
    xs = [0.0, (WIDTH - box_w) / 2, WIDTH - box_w]

    def top(y: float) -> float:
        return height - 4 - y * row_h

    shapes: list[Any] = []
    for h in plan.headings:
        label = String(
            xs[h.column],
            top(h.y) - min(10.0, row_h * 0.6),
            h.organization[:30],
            fontName="Helvetica-Bold",
            fontSize=6.5,
        )
        label.fillColor = ORG
        shapes.append(label)
    for n in plan.nodes.values():
        stroke = RED if n.uncovered else (GREY if n.needs_baa else ORG)
        box = Rect(xs[n.column], top(n.y) - box_h, box_w, box_h, rx=3, ry=3, fillColor=BOX, strokeColor=stroke)
        box.strokeWidth = 1.4 if n.uncovered else 0.6
        shapes.append(box)
        shapes.append(
            String(
                xs[n.column] + 4,
                top(n.y) - box_h + (box_h - size) / 2 + 1,
                n.system_id[:24],
                fontName="Helvetica",
                fontSize=size,
            )
        )
    for e in plan.edges:
        a, b = plan.nodes[e.source], plan.nodes[e.destination]
        forward = xs[a.column] <= xs[b.column]
        x1 = xs[a.column] + (box_w if forward else 0)
        x2 = xs[b.column] + (0 if forward else box_w)
        line = Line(x1, top(a.y) - box_h / 2, x2, top(b.y) - box_h / 2, strokeColor=RED if e.uncovered else GREY)
        line.strokeWidth = 0.6 + 3.4 * e.weight
        drawing.add(line)
    for shape in shapes:
        drawing.add(shape)
    return drawing


def _span(first: str, last: str) -> str:
    return day(first) if day(first) == day(last) else f"{day(first)} - {day(last)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _baa(party: dict[str, Any]) -> str:
    baa = party.get("baa") or {}
    if not party["registered"]:
        return "unregistered"
    status = str(baa.get("status") or "").replace("_", " ")
    if baa.get("effective"):
        ends = day(baa["expires"]) if baa.get("expires") else "no end date"
        status += f", {day(baa['effective'])} to {ends}"
    return status


def _flow_rows(flows: Sequence[dict[str, Any]]) -> list[list[object]]:
    out: list[list[object]] = []
    for f in flows:
        d = f["destination"]
        states = ", ".join(f"{k} {v}" for k, v in d["baa_events"].items())
        cell = f"<font color='#c0392b'><b>{escape(states)}</b></font>" if f["uncovered_events"] else escape(states)
        out.append(
            [
                f"{f['source_system']} -> {f['destination_system']}",
                str(f["events"]),
                _span(f["first_seen"], f["last_seen"]),
                f"{_who(d)} ({d['relationship'] or 'not in the registry'})",
                marked(cell, CELL),
                ", ".join(f["purposes_of_use"]),
            ]
        )
    return out


def map_section(report: dict[str, Any]) -> list[Flowable]:
    s = report["summary"]
    story: list[Flowable] = [
        text("The flow map", SECTION),
        text(
            f"{_plural(s['flows'], 'source-to-destination flow')} among {_plural(s['systems'], 'system')} carried "
            f"{_plural(s['events'], 'event')}; {s['uncovered_flows']} of the flows reached a party without an "
            f"effective business associate agreement on some day, and {_plural(s['unregistered_systems'], 'system')} "
            "not in the registry took part."
        ),
        Spacer(1, 6),
    ]
    graph = flow_graph(report)
    if graph is not None:
        story += [
            graph,
            text(
                "Left: systems that only send; middle: systems that receive and pass on; right: systems that only "
                "receive; each grouped by organisation. Line width grows with volume; red: events reached a party "
                "without an effective BAA.",
                SMALL,
            ),
            Spacer(1, 6),
        ]
    else:
        story.append(text(f"{s['systems']} systems are too many to draw legibly; the table lists every flow.", SMALL))
    story.append(
        table(
            ["Flow", "Events", "Seen", "Destination party", "Events by the party's BAA that day", "Purposes"],
            _flow_rows(report["flows"]),
            [0.23, 0.08, 0.16, 0.2, 0.2, 0.13],
        )
    )
    return story


_REASON = {
    "none": "no BAA",
    "expired": "BAA expired",
    "not_yet_effective": "BAA not yet effective",
    "unregistered": "not in the registry",
    "expires_soon": "BAA expires soon",
}


def gaps_section(report: dict[str, Any]) -> list[Flowable]:
    gaps = report["gaps"]
    story: list[Flowable] = [text("BAA gaps", SECTION)]
    if not gaps:
        return [*story, text("No flow reached a party without an effective BAA, and no BAA expires soon.")]
    rows = []
    for g in gaps:
        p = g["party"]
        reason = _REASON[g["reason"]] + (f" ({g['expires']}, {g['days_left']} days)" if "expires" in g else "")
        side = "through" if g["party_side"] == "source" else "into"
        flow = f"{g['source_system']} -> {g['destination_system']}" if g["source_system"] else "no flow this period"
        when = _span(g["first_event"], g["last_event"]) if g["first_event"] else ""
        rows.append(
            [reason, f"{_who(p)} [{p['system_id']}] ({side})", flow, str(g["events"]), str(g["patients"]), when]
        )
    story.append(
        table(
            ["Gap", "Party", "Flow", "Events", "Patients", "First - last event"],
            rows,
            [0.17, 0.22, 0.23, 0.08, 0.09, 0.21],
        )
    )
    story.append(
        text(
            "Patients: distinct patients among the flow's events on the gap's days (an upper bound when one "
            "patient reached the flow under different identifiers).",
            SMALL,
        )
    )
    return story


def changes_section(changes: dict[str, Any]) -> list[Flowable]:
    since = changes["since"]
    story: list[Flowable] = [
        text("Changes since the last committee report", SECTION),
        text(
            f"Since the report recorded at {day(since['at'])} (log entry {since['seq']})."
            if since
            else "This is the first committee report recorded in the log: changes within its period."
        ),
        Spacer(1, 4),
    ]
    pairs = changes["new_pairs"]
    story.append(text(f"New flows: {len(pairs)}", BODY))
    if pairs:
        story.append(
            table(
                ["Source", "Destination", "First event"],
                [[p["source_system"], p["destination_system"], day(p["first_event"])] for p in pairs],
                [0.35, 0.35, 0.3],
            )
        )
    registry = changes["registry_changes"]
    story += [Spacer(1, 4), text(f"Registry changes (BAAs signed, renewed or ended): {len(registry)}", BODY)]
    if registry:
        story.append(
            table(
                ["System", "Organisation", "Relationship", "BAA", "Recorded"],
                [
                    [
                        e["system_id"],
                        e["organization"] or "",
                        e["relationship"] or "",
                        _baa({**e, "registered": True}),
                        day(e["recorded"]["at"]),
                    ]
                    for e in registry
                ],
                [0.2, 0.22, 0.18, 0.26, 0.14],
            )
        )
    alerts = changes.get("alerts")
    if alerts is not None:
        story += [Spacer(1, 4), text(f"Alerts raised: {len(alerts)}", BODY)]
        if alerts:
            story.append(
                table(
                    ["Alert", "Systems", "Raised", "Status"],
                    [[a["kind"], " -> ".join(a["systems"]), day(a["raised_at"]), a["status"]] for a in alerts],
                    [0.2, 0.4, 0.2, 0.2],
                )
            )
    return story


def committee_document(report: dict[str, Any], *, generated_by: str, generated_at: str) -> bytes:
    period = report["map"]["period"]
    story: list[Flowable] = [
        text("PHI flows and business associate coverage", TITLE),
        text(
            f"Report to the compliance committee for {day(period['from'])} to {day(period['to'])}. Every flow of "
            "protected health information the audit log recorded between two systems, the parties on each side as "
            "the system registry stood on each day, and every flow into or through a business associate or "
            "subcontractor without an effective agreement (45 CFR 164.502(e), 164.504(e))."
        ),
        *changes_section(report["changes"]),
        *gaps_section(report["gaps"]),
        PageBreak(),
        *map_section(report["map"]),
    ]
    footer = (
        f"Compliance committee report - log entry {report['recorded_seq']} - generated {generated_at} by {generated_by}"
    )
    return render(story, title="PHI flows and BAA coverage", footer=footer)


def gaps_document(report: dict[str, Any], *, generated_by: str, generated_at: str) -> bytes:
    period = report["period"]
    story: list[Flowable] = [
        text("Business associate agreement gaps", TITLE),
        text(
            f"Flows from {day(period['from'])} to {day(period['to'])}; BAAs expiring within "
            f"{report['expiring_within_days']} days."
        ),
        *gaps_section(report),
    ]
    return render(story, title="BAA gaps", footer=f"BAA gaps - generated {generated_at} by {generated_by}")


async def committee_report_pdf(audit: AuditLog, query: FlowQuery, reader: Caller) -> bytes:
    """The committee's document; the report recorded in the chain first."""
    report = await committee_report(audit, query, reader, expiring_within_days=30)
    return committee_document(report, generated_by=generated_by(reader), generated_at=_stamp())


async def gaps_pdf(audit: AuditLog, query: GapQuery, reader: Caller) -> bytes:
    report = await baa_gap_report(audit, query, reader)
    return gaps_document(report, generated_by=generated_by(reader), generated_at=_stamp())
