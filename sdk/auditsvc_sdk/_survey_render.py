"""The survey report as a terminal report (Rich) and a self-contained HTML page.

Both render the dict of ``Survey.report()`` and nothing else, so they can
show no more than the JSON does: counts, codes, names of systems and
authorities, and shapes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

__all__ = ["render_html", "render_terminal", "sections"]

_TERMINAL_ROWS = 15


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return str(value)


class _Section:
    """A titled table: headers and rows of plain strings, or a paragraph."""

    def __init__(self, title: str, headers: list[str], rows: list[list[str]], note: str = "") -> None:
        self.title, self.headers, self.rows, self.note = title, headers, rows, note


def _counts(title: str, label: str, counts: Mapping[str, int], total: int | None = None, note: str = "") -> _Section:
    headers = [label, "count"] + (["share"] if total else [])
    rows = [[str(k), str(v)] + ([_pct(v, total)] if total else []) for k, v in counts.items()]
    return _Section(title, headers, rows, note)


def _summary(report: dict[str, Any]) -> list[_Section]:
    inputs, helpers = report["inputs"], report["helpers"]
    rows = []
    for kind, label in (("hl7v2", "HL7 v2 messages"), ("fhir", "FHIR documents")):
        y = helpers[kind]
        if not y["inputs"]:
            continue
        rows.append(
            [
                label,
                str(y["inputs"]),
                str(y["naming_a_patient"]),
                f"{y['with_events']} ({_pct(y['with_events'], y['inputs'])})",
                str(y["events"]),
                str(y["naming_a_patient_without_event"]),
            ]
        )
    out = [
        _Section(
            "What the helpers make of this traffic",
            ["input", "read", "naming a patient", "yielding events", "events", "naming a patient, no event"],
            rows,
            "The last column is PHI that would move unaudited: it should be 0.",
        )
    ]
    if inputs["containers"]:
        out.append(_counts("Where the inputs came from", "container", inputs["containers"]))
    if inputs["unreadable"]:
        out.append(_counts("Not read (by cause)", "cause", inputs["unreadable"]))
    return out


def _recommendations(report: dict[str, Any]) -> list[_Section]:
    rows = []
    systems: list[list[str]] = []
    for rec in report["recommendations"]:
        if rec["setting"] == "identifier_systems":
            systems = [[r["from"], str(r["count"]), r["maps_to"] or "-", r["note"]] for r in rec["value"]]
            rows.append([rec["setting"], f"{len(systems)} spellings (table below)", rec["why"]])
        else:
            rows.append([rec["setting"], _cell(rec["value"]), rec["why"]])
    out = [_Section("Recommended helper settings", ["setting", "value", "why"], rows)]
    if systems:
        out.append(
            _Section("Identifier systems seen", ["field / system", "identifiers", "canonical system", "note"], systems)
        )
    return out


def _helpers(report: dict[str, Any]) -> list[_Section]:
    out = []
    for kind, label in (("hl7v2", "HL7 v2"), ("fhir", "FHIR")):
        y = report["helpers"][kind]
        if not y["inputs"]:
            continue
        out.append(_counts(f"{label}: refusals by cause", "cause", y["refusals"], note="units refused, not inputs"))
        out.append(
            _counts(f"{label}: assumptions by code", "assumed", y["assumptions"], y["events"], "share of events")
        )
        rows = [
            [
                k,
                str(v["inputs"]),
                str(v["with_events"]),
                _pct(v["with_events"], v["inputs"]),
                str(v["naming_a_patient_without_event"]),
                _cell(v["refusals"]),
            ]
            for k, v in y["by_type"].items()
        ]
        headers = ["type", "inputs", "yielding events", "share", "naming a patient, no event", "refusals"]
        out.append(_Section(f"{label}: events by message type", headers, rows))
    return out


def _hl7(h: dict[str, Any]) -> list[_Section]:
    if not h["messages"]:
        return []
    n = h["messages"]
    fill_rows = [[f["field"], f"{f['filled']} / {f['of']}", _pct(f["filled"], f["of"])] for f in h["field_fill"]]
    ident_fill = [
        [k, str(v["repetitions"]), _pct(v["with_authority"], v["repetitions"]), _pct(v["with_type"], v["repetitions"])]
        for k, v in h["identifier_fill"].items()
    ]
    idents = [
        [r["field"], r["authority"], r["type"] or "-", str(r["count"]), _cell(r["shapes"])] for r in h["identifiers"]
    ]
    segs = [[k, str(v["messages"]), _pct(v["messages"], n), str(v["occurrences"])] for k, v in h["segments"].items()]
    zsegs = [[k, str(v["messages"]), _pct(v["messages"], n), str(v["occurrences"])] for k, v in h["z_segments"].items()]
    shared = [[r["authority"], r["shape"], str(r["values"])] for r in h["shared_identifiers"]]
    out = [
        _counts("HL7 v2 message types", "MSH-9", h["message_types"], n),
        _counts("HL7 v2 versions", "MSH-12", h["versions"], n),
        _counts("Sending systems", "MSH-3@MSH-4", h["sending_systems"], n),
        _Section("Fields the helpers read", ["field", "filled / messages with the segment", "share"], fill_rows),
        _Section(
            "Patient identifier repetitions",
            ["field", "repetitions", "with CX-4 authority", "with CX-5 type"],
            ident_fill,
        ),
        _Section(
            "Identifier shapes by assigning authority", ["field", "authority (CX-4)", "type", "count", "shapes"], idents
        ),
        _counts("Message time (MSH-7, else EVN-2)", "form", h["message_time"], n),
        _counts("Message time precision", "precision", h["message_time_precision"], n),
        _counts("UTC offsets carried", "offset", h["utc_offsets"]),
        _Section("Segments", ["segment", "messages", "share", "occurrences"], segs),
        _Section("Z-segments", ["segment", "messages", "share", "occurrences"], zsegs),
    ]
    if h["charsets"]:
        out.append(_counts("Declared character sets (MSH-18)", "charset", h["charsets"], n))
    if h["placeholders"]:
        out.append(_counts("Placeholder identifier values", "value", h["placeholders"]))
    if shared:
        out.append(
            _Section(
                "Identifier values shared by different patients (values not shown)",
                ["authority", "shape", "values"],
                shared,
                "One value carried by several names or birth dates: a placeholder that would link them.",
            )
        )
    extra = [
        ["empty PID segments", str(h["empty_pid_segments"])],
        ["lines that are not segments (continued text)", str(h["malformed_segment_lines"])],
    ]
    out.append(_Section("Layout oddities", ["what", "count"], extra))
    return out


def _fhir(f: dict[str, Any]) -> list[_Section]:
    if not f["documents"]:
        return []
    n = f["documents"]
    idents = [[r["system"], r["in"], str(r["count"]), _cell(r["shapes"])] for r in f["identifiers"]]
    out = [
        _counts("FHIR documents by type", "resourceType", f["top_level_types"], n),
        _counts("FHIR resources (all levels)", "resourceType", f["resource_types"]),
        _counts("References", "target: style", f["references"]),
        _Section("FHIR identifier shapes by system", ["system", "in", "count", "shapes"], idents),
    ]
    if f["identifiers_without_value"]:
        out.append(_counts("Identifiers without a value (masked or absent)", "system", f["identifiers_without_value"]))
    extra = [
        ["resources inside Parameters", str(f["resources_inside_parameters"])],
        ["documents with a byte-order mark", str(f["with_byte_order_mark"])],
        ["not JSON objects", str(f["not_json_objects"])],
    ]
    out.append(_Section("FHIR oddities", ["what", "count"], extra))
    if f["placeholders"]:
        out.append(_counts("FHIR placeholder identifier values", "value", f["placeholders"]))
    return out


def sections(report: dict[str, Any]) -> list[tuple[str, list[_Section]]]:
    """The report's parts, in reading order."""
    return [
        ("Summary", _summary(report)),
        ("Recommended settings", _recommendations(report)),
        ("Refusals and assumptions", _helpers(report)),
        ("HL7 v2", _hl7(report["hl7v2"])),
        ("FHIR", _fhir(report["fhir"])),
    ]


def render_terminal(report: dict[str, Any], console: Console | None = None) -> None:
    """Print the report with Rich (long tables cut to their first rows; the JSON and HTML have all)."""
    console = console or Console()
    console.rule("[bold]auditsvc-sdk survey[/bold]")
    console.print(f"Generated {report['generated_at']}; counts and shapes only, no values.", markup=False)
    settings = ", ".join(f"{k}={_cell(v)}" for k, v in report["settings"].items())
    console.print(f"Helpers run with {settings}.", markup=False)
    for part, secs in sections(report):
        if not secs:
            continue
        tables = []
        for sec in secs:
            table = Table(title=sec.title, title_justify="left", caption=sec.note or None, min_width=len(sec.title) + 2)
            for header in sec.headers:
                table.add_column(header, overflow="fold")
            for row in sec.rows[:_TERMINAL_ROWS]:
                table.add_row(*row)
            if len(sec.rows) > _TERMINAL_ROWS:
                table.add_row(f"... {len(sec.rows) - _TERMINAL_ROWS} more", *[""] * (len(sec.headers) - 1))
            if not sec.rows:
                table.add_row("(none)", *[""] * (len(sec.headers) - 1))
            tables.append(table)
        console.print(Panel(Group(*tables), title=part, title_align="left"))


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1e0}main{padding:8px 32px 40px;max-width:1200px}
h2{margin:28px 0 8px;font-size:18px;border-bottom:2px solid #d5dae3;padding-bottom:4px}
h3{margin:18px 0 6px;font-size:15px}p.note{margin:2px 0 6px;color:#5b6475;font-size:13px}
table{border-collapse:collapse;background:#fff;margin-bottom:6px;min-width:360px}
th,td{border:1px solid #dde2ea;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:16px 0}
.kpi{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:10px 16px;min-width:150px}
.kpi b{display:block;font-size:22px}.kpi.bad b{color:#b42318}.kpi.good b{color:#067647}
.bar{display:inline-block;height:9px;background:#4e79a7;border-radius:2px;margin-left:6px;vertical-align:middle}
details{margin:4px 0}
"""


def _td(value: str) -> str:
    text = html.escape(value)
    numeric = value.replace(" ", "").replace("%", "").replace(".", "").replace("/", "").isdigit()
    if value.endswith("%") and value[:-2].replace(".", "").isdigit():
        width = max(1, round(float(value[:-2]) * 1.2))
        return f'<td class="num">{text}<span class="bar" style="width:{width}px"></span></td>'
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _html_table(sec: _Section) -> Iterable[str]:
    yield f"<h3>{html.escape(sec.title)}</h3>"
    if sec.note:
        yield f'<p class="note">{html.escape(sec.note)}</p>'
    if not sec.rows:
        yield '<p class="note">(none)</p>'
        return
    yield "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in sec.headers) + "</tr></thead><tbody>"
    for row in sec.rows:
        yield "<tr>" + "".join(_td(c) for c in row) + "</tr>"
    yield "</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page (inline CSS, no script, nothing fetched)."""
    helpers = report["helpers"]
    kpis = []
    for kind, label in (("hl7v2", "HL7 v2"), ("fhir", "FHIR")):
        y = helpers[kind]
        if y["inputs"]:
            kpis.append(("", f"{label} inputs", str(y["inputs"])))
            kpis.append(("good", f"{label} yielding events", _pct(y["with_events"], y["inputs"])))
            gap = y["naming_a_patient_without_event"]
            kpis.append(("bad" if gap else "good", f"{label} naming a patient, no event", str(gap)))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<title>auditsvc-sdk survey</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>Pre-go-live traffic survey</h1>",
        f"<p>auditsvc-sdk survey &middot; generated {html.escape(report['generated_at'])} &middot; "
        "counts and shapes only: no identifier, name or date appears in this report</p></header><main>",
        '<div class="kpis">'
        + "".join(f'<div class="kpi {cls}"><b>{html.escape(v)}</b>{html.escape(k)}</div>' for cls, k, v in kpis)
        + "</div>",
    ]
    settings = ", ".join(f"{k}={_cell(v)}" for k, v in report["settings"].items())
    parts.append(f'<p class="note">Helpers run with {html.escape(settings)}.</p>')
    for part, secs in sections(report):
        if not secs:
            continue
        parts.append(f"<h2>{html.escape(part)}</h2>")
        for sec in secs:
            parts.extend(_html_table(sec))
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
