"""Where each system goes when the flow map is drawn (the committee PDF and
the console's SVG draw the same layout).

Three columns: systems that only send (left), systems that receive and pass
on, "through" systems such as middleware (middle), systems that only receive
(right); within a column, systems grouped by organisation, each group under
its name. Positions are in abstract units (a row is 1, an organisation's
heading ``HEADING`` rows); an edge's weight grows with the log of its volume,
so a flow of 10 events stays visible beside one of 100,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HEADING = 0.8  # an organisation's heading, in rows
GAP = 0.4  # between organisations, in rows
UNCOVERED_STATES = ("none", "expired", "not_yet_effective", "unregistered")


@dataclass(frozen=True)
class Node:
    system_id: str
    organization: str
    column: int  # 0 sends only, 1 through, 2 receives only
    y: float  # the row's top, in rows from the top
    uncovered: bool  # received events on a day without an effective BAA (or is unregistered)
    needs_baa: bool  # a business associate or subcontractor, or unregistered


@dataclass(frozen=True)
class Heading:
    organization: str
    column: int
    y: float


@dataclass(frozen=True)
class Edge:
    source: str
    destination: str
    events: int
    weight: float  # 0..1, by the log of the volume
    uncovered: bool


@dataclass(frozen=True)
class Layout:
    nodes: dict[str, Node]
    headings: list[Heading]
    edges: list[Edge]
    rows: float  # the tallest column, in rows


def organization_of(system: dict[str, Any]) -> str:
    return str(system.get("organization") or system.get("name") or "Not in the registry")


def _lacking(side: dict[str, Any]) -> bool:
    return any(state in UNCOVERED_STATES for state in side.get("baa_events", {}))


def layout(report: dict[str, Any]) -> Layout:
    """The layout of a flow map report (domain/flows.py ``flow_map_json``)."""
    flows = report["flows"]
    sources = {f["source_system"] for f in flows}
    destinations = {f["destination_system"] for f in flows}
    # A party is flagged by its own BAA's days, as a receiver or as a "through" sender.
    uncovered = {f["destination_system"] for f in flows if _lacking(f["destination"])}
    uncovered |= {f["source_system"] for f in flows if f["source"]["through"] and _lacking(f["source"])}
    columns: list[list[dict[str, Any]]] = [[], [], []]
    for s in sorted(report["systems"], key=lambda s: (organization_of(s), s["system_id"])):
        sid = s["system_id"]
        place = 1 if sid in sources and sid in destinations else (0 if sid in sources else 2)
        columns[place].append(s)
    nodes: dict[str, Node] = {}
    headings: list[Heading] = []
    tallest = 0.0
    for index, column in enumerate(columns):
        y, current = 0.0, None
        for s in column:
            org = organization_of(s)
            if org != current:
                y += GAP if current is not None else 0.0
                headings.append(Heading(org, index, y))
                y += HEADING
                current = org
            needs = not s["registered"] or s["relationship"] in ("business_associate", "subcontractor")
            nodes[s["system_id"]] = Node(s["system_id"], org, index, y, s["system_id"] in uncovered, needs)
            y += 1
        tallest = max(tallest, y)
    top = max((f["events"] for f in flows), default=1)
    edges = [
        Edge(
            f["source_system"],
            f["destination_system"],
            f["events"],
            math.log1p(f["events"]) / math.log1p(top),
            bool(f["uncovered_events"]),
        )
        for f in sorted(flows, key=lambda f: bool(f["uncovered_events"]))  # uncovered drawn last, on top
    ]
    return Layout(nodes, headings, edges, tallest)
