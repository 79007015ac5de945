"""The break-glass queue as flat rows: CSV for the API and the CLI, and the
CLI's table. One row per access, its latest verdict and how many reviews."""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = (
    "event_id",
    "seq",
    "occurred_at",
    "event_type",
    "purpose_of_use",
    "source",
    "destination",
    "actor_id",
    "actor_role",
    "patient_identifiers",
    "data_elements",
    "status",
    "verdict",
    "reviewed_at",
    "reviewer",
    "reviews",
    "overdue",
)


def queue_row(item: dict[str, Any]) -> list[str]:
    event, review = item["event"], item["review"] or {}
    actor = event.get("actor", {})
    return [
        str(event["event_id"]),
        str(event.get("seq", "")),
        str(event["occurred_at"]),
        str(event.get("event_type", "")),
        str(event.get("purpose_of_use") or ""),
        str(event["source"]["system_id"]),
        str(event["destination"]["system_id"]),
        str(actor.get("id", "")),
        str(actor.get("role") or ""),
        " ".join(f"{i['system']}|{i['value']}" for i in event["patient"]["identifiers"]),
        " ".join(event.get("data_elements", ())),
        item["status"],
        item["verdict"] or "",
        str(review.get("reviewed_at") or ""),
        str(review.get("reviewer", {}).get("id", "")),
        str(len(item["history"])),
        "yes" if item["overdue"] else "no",
    ]


def _cell(value: str) -> str:
    # A cell a spreadsheet would run as a formula is quoted as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(item: dict[str, Any]) -> list[str]:
    return [_cell(v) for v in queue_row(item)]


def queue_csv(items: list[dict[str, Any]], *, header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(COLUMNS)
    for item in items:
        writer.writerow(csv_row(item))
    return out.getvalue()
