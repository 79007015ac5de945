"""The patient report's timeline: accesses per system over the period, as an
SVG drawn on the server (no chart library, no script; CSP-clean: geometry in
attributes, colours in console.css classes).

One row per system, one bar per day (or per several days when the period is
long: at most ``MAX_BARS`` bars a row), bar heights on one scale for every
row so that rows compare. Each bar has a ``<title>`` (its count and dates),
which browsers show on hover and screen readers read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup, escape

MAX_BARS = 92
WIDTH = 960
LABEL_WIDTH = 170
ROW_HEIGHT = 34
BAR_AREA = 24
TOP = 8
AXIS_HEIGHT = 30
MAX_ROWS = 30


@dataclass(frozen=True)
class Timeline:
    svg: Markup
    first: date | None
    last: date | None
    bucket_days: int
    systems_shown: int
    systems_total: int


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def timeline_svg(rows: Sequence[tuple[str, datetime, int]], system_order: Sequence[str]) -> Timeline:
    """The chart of ``rows`` (system, UTC day, accesses), systems in ``system_order``."""
    if not rows:
        return Timeline(Markup(""), None, None, 1, 0, 0)
    counts: dict[str, dict[date, int]] = defaultdict(dict)
    for system, day, n in rows:
        counts[system][_day(day)] = counts[system].get(_day(day), 0) + n
    first = min(d for per in counts.values() for d in per)
    last = max(d for per in counts.values() for d in per)
    span = (last - first).days + 1
    bucket = max(1, math.ceil(span / MAX_BARS))
    buckets = math.ceil(span / bucket)
    systems = [s for s in system_order if s in counts] + sorted(s for s in counts if s not in system_order)
    shown = systems[:MAX_ROWS]
    binned = {s: _bin(counts[s], first, bucket, buckets) for s in shown}
    peak = max((n for per in binned.values() for n in per), default=1) or 1
    plot_width = WIDTH - LABEL_WIDTH - 10
    slot = plot_width / buckets
    bar_width = max(1.0, slot * 0.8)
    height = TOP + ROW_HEIGHT * len(shown) + AXIS_HEIGHT
    parts: list[str] = []
    for row, system in enumerate(shown):
        y0 = TOP + row * ROW_HEIGHT
        baseline = y0 + BAR_AREA
        name = f"<title>{escape(system)}</title>{escape(_short(system))}"
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{baseline - 6}" text-anchor="end">{name}</text>')
        parts.append(f'<line class="grid" x1="{LABEL_WIDTH}" y1="{baseline}" x2="{WIDTH - 10}" y2="{baseline}"/>')
        for i, n in enumerate(binned[system]):
            if not n:
                continue
            h = max(2.0, BAR_AREA * n / peak)
            x = LABEL_WIDTH + i * slot + (slot - bar_width) / 2
            start = first + timedelta(days=i * bucket)
            end = min(last, start + timedelta(days=bucket - 1))
            when = start.isoformat() if bucket == 1 else f"{start.isoformat()} to {end.isoformat()}"
            label = f"{system}: {n} access{'es' if n != 1 else ''}, {when} (UTC)"
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{baseline - h:.1f}" width="{bar_width:.1f}" height="{h:.1f}">'
                f"<title>{escape(label)}</title></rect>"
            )
    axis_y = TOP + ROW_HEIGHT * len(shown) + 2
    parts.append(f'<line class="axis" x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{WIDTH - 10}" y2="{axis_y}"/>')
    for i in _ticks(buckets):
        x = LABEL_WIDTH + i * slot + slot / 2
        tick = first + timedelta(days=i * bucket)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 18}" text-anchor="middle">{tick.strftime("%b %d")}</text>')
    unit = "day" if bucket == 1 else f"{bucket} days"
    title = f"Accesses per system per {unit}, {first.isoformat()} to {last.isoformat()} (UTC)"
    svg = (
        f'<svg class="chart" role="img" aria-labelledby="timeline-title" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="timeline-title">{escape(title)}</title>' + "".join(parts) + "</svg>"
    )
    return Timeline(Markup(svg), first, last, bucket, len(shown), len(systems))  # noqa: S704 - built from escaped parts


def _bin(per_day: dict[date, int], first: date, bucket: int, buckets: int) -> list[int]:
    bins = [0] * buckets
    for day, n in per_day.items():
        bins[(day - first).days // bucket] += n
    return bins


def _ticks(buckets: int, most: int = 8) -> range:
    step = max(1, math.ceil(buckets / most))
    return range(0, buckets, step)


def _short(system: str, limit: int = 24) -> str:
    return system if len(system) <= limit else system[: limit - 1] + "…"
