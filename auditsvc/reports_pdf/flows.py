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

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.platypus import Flowable, PageBreak, Spacer

from ..domain.committee import committee_report
from ..domain.flows import FlowQuery, GapQuery, baa_gap_report
from ..domain.tokens import Caller
from ..runtime import AuditLog
from .layout import BODY, CELL, HEADING, SMALL, TITLE, WIDTH, day, marked, render, table, text
from .make import generated_by

MAX_DRAWN_SYSTEMS = 36
RED = colors.HexColor("#c0392b")
GREY = colors.HexColor("#7b8794")
BOX = colors.HexColor("#eef2f7")
ORG = colors.HexColor("#3e4c59")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%d %b %Y %H:%M UTC").lstrip("0")


def _who(party: dict[str, Any]) -> str:
    return str(party["organization"] or party["name"] or "unregistered")


def _column(system: dict[str, Any], sources: set[str], destinations: set[str]) -> int:
    sid = system["system_id"]
    if sid in sources and sid in destinations:
        return 1
    return 0 if sid in sources else 2


def flow_graph(report: dict[str, Any]) -> Drawing | None:
    """The map as a drawing, or None when it would not be legible."""
    systems = report["systems"]
    if not systems or len(systems) > MAX_DRAWN_SYSTEMS:
        return None
    sources = {f["source_system"] for f in report["flows"]}
    destinations = {f["destination_system"] for f in report["flows"]}
    columns: list[list[dict[str, Any]]] = [[], [], []]
    for s in sorted(systems, key=lambda s: (_who(s), s["system_id"])):
        columns[_column(s, sources, destinations)].append(s)
    row_h, org_gap, box_w, box_h = 22.0, 12.0, 118.0, 15.0

    def rows(col: list[dict[str, Any]]) -> float:
        return len(col) * row_h + len({_who(s) for s in col}) * org_gap

    height = max(rows(c) for c in columns) + 20
    drawing = Drawing(WIDTH, height)
    xs = [0.0, (WIDTH - box_w) / 2, WIDTH - box_w]
    where: dict[str, tuple[float, float]] = {}
    boxes: list[Any] = []
    for index, col in enumerate(columns):
        y = height - 14
        org = None
        for s in col:
            if _who(s) != org:
                org = _who(s)
                boxes.append(String(xs[index], y - 8, org[:28], fontName="Helvetica-Bold", fontSize=6.5, fillColor=ORG))
                y -= org_gap
            uncovered = not s["registered"] or s["relationship"] in ("business_associate", "subcontractor")
            bad = any(f["uncovered_events"] and s["system_id"] == f["destination_system"] for f in report["flows"])
            boxes.append(
                Rect(
                    xs[index],
                    y - box_h,
                    box_w,
                    box_h,
                    rx=3,
                    ry=3,
                    fillColor=BOX,
                    strokeColor=RED if bad else (GREY if uncovered else ORG),
                    strokeWidth=1.4 if bad else 0.6,
                )
            )
            boxes.append(String(xs[index] + 4, y - box_h + 4.5, s["system_id"][:24], fontName="Helvetica", fontSize=7))
            where[s["system_id"]] = (xs[index], y - box_h / 2)
            y -= row_h
    top = max((f["events"] for f in report["flows"]), default=1)
    for f in sorted(report["flows"], key=lambda f: f["uncovered_events"] > 0):  # red edges drawn last, on top
        (x1, y1), (x2, y2) = where[f["source_system"]], where[f["destination_system"]]
        start = x1 + box_w if x1 <= x2 else x1
        end = x2 if x1 <= x2 else x2 + box_w
        width = 0.6 + 3.4 * math.log1p(f["events"]) / math.log1p(top)
        drawing.add(Line(start, y1, end, y2, strokeColor=RED if f["uncovered_events"] else GREY, strokeWidth=width))
    for shape in boxes:
        drawing.add(shape)
    return drawing


def _baa(party: dict[str, Any]) -> str:
    baa = party.get("baa") or {}
    if not party["registered"]:
        return "unregistered"
    status = str(baa.get("status") or "")
    if baa.get("effective"):
        status += f" {baa['effective']} to {baa.get('expires') or 'open'}"
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
                f"{day(f['first_seen'])} - {day(f['last_seen'])}",
                f"{_who(d)} ({d['relationship'] or 'not in the registry'})",
                marked(cell, CELL),
                ", ".join(f["purposes_of_use"]),
            ]
        )
    return out


def map_section(report: dict[str, Any]) -> list[Flowable]:
    s = report["summary"]
    story: list[Flowable] = [
        text("The flow map", HEADING),
        text(
            f"{s['flows']} source-to-destination flows among {s['systems']} systems carried {s['events']} events; "
            f"{s['uncovered_flows']} flows reached a party without an effective business associate agreement on "
            f"some day, and {s['unregistered_systems']} systems are not in the registry."
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
            [0.24, 0.07, 0.17, 0.2, 0.2, 0.12],
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
    story: list[Flowable] = [text("BAA gaps", HEADING)]
    if not gaps:
        return [*story, text("No flow reached a party without an effective BAA, and no BAA expires soon.")]
    rows = []
    for g in gaps:
        p = g["party"]
        reason = _REASON[g["reason"]] + (f" ({g['expires']}, {g['days_left']} days)" if "expires" in g else "")
        side = "through" if g["party_side"] == "source" else "into"
        flow = f"{g['source_system']} -> {g['destination_system']}" if g["source_system"] else "no flow this period"
        when = f"{day(g['first_event'])} - {day(g['last_event'])}" if g["first_event"] else ""
        rows.append(
            [reason, f"{_who(p)} [{p['system_id']}] ({side})", flow, str(g["events"]), str(g["patients"]), when]
        )
    story.append(
        table(
            ["Gap", "Party", "Flow", "Events", "Patients", "First - last event"],
            rows,
            [0.2, 0.24, 0.24, 0.08, 0.09, 0.15],
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
        text("Changes since the last committee report", HEADING),
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
