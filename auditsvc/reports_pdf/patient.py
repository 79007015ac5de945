"""The patient-access report as a document: who accessed this patient's
record, for a privacy officer to send to OCR or to the patient."""

from __future__ import annotations

from typing import Any

from reportlab.platypus import Flowable, Spacer

from ..domain.plain_language import describe_elements, describe_purpose
from ..domain.report_integrity import IntegrityStatement
from .layout import BODY, HEADING, SMALL, TITLE, day, integrity_section, minute, render, table, text

ACTIONS = {"C": "created", "R": "viewed or sent", "U": "updated", "D": "deleted", "E": "ran a process on"}


def _actor(actor: dict[str, Any]) -> str:
    who = actor.get("name") or actor["id"]
    role = actor.get("role")
    return f"{who} ({role})" if role else who


def _system(system_id: str, names: dict[str, str], named_in_event: str | None = None) -> str:
    name = names.get(system_id) or named_in_event
    return f"{name} ({system_id})" if name else system_id


def _period(report: dict[str, Any]) -> str:
    period = report.get("period") or {}
    first, last = period.get("from"), period.get("to")
    if first and last:
        return f"From {minute(first)} to {minute(last)}, both included."
    if first:
        return f"From {minute(first)} on."
    if last:
        return f"Up to {minute(last)}, included."
    return "All recorded time."


def systems_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per system, the events it took part in (as source, destination or
    both, once each): the summary of exactly the events the document lists."""
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        for system_id in dict.fromkeys((e["source"]["system_id"], e["destination"]["system_id"])):
            row = rows.setdefault(
                system_id, {"system_id": system_id, "count": 0, "first": e["occurred_at"], "last": e["occurred_at"]}
            )
            row["count"] += 1
            row["first"], row["last"] = min(row["first"], e["occurred_at"]), max(row["last"], e["occurred_at"])
            row.setdefault("elements", set()).update(e.get("data_elements") or ())
    return sorted(rows.values(), key=lambda r: (-r["count"], r["system_id"]))


def patient_report_document(
    report: dict[str, Any],
    statement: IntegrityStatement,
    *,
    generated_by: str,
    generated_at: str,
    names: dict[str, str] | None = None,
) -> bytes:
    """The PDF of one patient-access report (all its events, not a page);
    ``names``: registered display names of systems, by id."""
    names = names or {}
    events = report["events"]
    systems = systems_of(events)
    story: list[Flowable] = [
        text("Report of access to a patient's health record", TITLE),
        text("Every access to this patient's record found in the audit log, by any of the identifiers below."),
        text("Patient", HEADING),
        *[text(f"{i['value']} (issued by {i['system']})", BODY) for i in report["patient"]["identifiers"]],
        text("Period", HEADING),
        text(_period(report)),
        text("Systems that accessed the record", HEADING),
        text(f"{len(events)} access events involving {len(systems)} systems."),
        Spacer(1, 4),
        table(
            ["System", "Events", "First access", "Last access", "Information accessed"],
            [
                [
                    _system(s["system_id"], names),
                    str(s["count"]),
                    day(s["first"]),
                    day(s["last"]),
                    describe_elements(s["elements"]),
                ]
                for s in systems
            ],
            [0.2, 0.08, 0.14, 0.14, 0.44],
        ),
        text("Access events", HEADING),
        text("Entry: the event's position in the audit log, by which its inclusion proof is found.", SMALL),
        table(
            ["Entry", "When", "From, to", "Who", "What", "Information", "Purpose"],
            [
                [
                    str(e["seq"]),
                    minute(e["occurred_at"]),
                    f"{_system(e['source']['system_id'], names, e['source'].get('name'))} to "
                    f"{_system(e['destination']['system_id'], names, e['destination'].get('name'))}",
                    _actor(e["actor"]),
                    ACTIONS.get(e["action"], e["action"]),
                    describe_elements(e.get("data_elements") or []),
                    describe_purpose(e.get("purpose_of_use")),
                ]
                for e in events
            ],
            [0.07, 0.13, 0.19, 0.15, 0.09, 0.24, 0.13],
        ),
        *integrity_section(statement, "access event"),
    ]
    footer = f"Patient access report - generated {generated_at} by {generated_by}"
    return render(story, title="Patient access report", footer=footer)
