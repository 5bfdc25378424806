"""Small line charts as inline SVG, drawn on the server (no chart library, nothing to download).

One function, `line_chart`, for every plot the console shows: several named series of (time, value)
points on one time axis, with a y axis from zero, tick labels in the store's time zone, a legend, and a
<title> per series so a screen reader and a hover both get the numbers.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo
from html import escape

PALETTE = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b7950b")


def _nice_step(value: float, steps: int = 4) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) so that `steps` of them cover `value`."""
    raw = max(value, 1e-9) / steps
    exp = 10 ** math.floor(math.log10(raw))
    return next(m * exp for m in (1, 2, 5, 10) if raw <= m * exp)


def _time_ticks(start: datetime, end: datetime, zone: tzinfo) -> list[datetime]:
    span_h = (end - start).total_seconds() / 3600
    step = next((h for h in (1, 2, 3, 6, 12, 24, 48) if span_h / h <= 8), 24 * 7)
    first = start.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    if step >= 24:
        first = first.replace(hour=0)
    else:
        first = first.replace(hour=first.hour - first.hour % step)
    ticks, t = [], first
    while t <= end:
        if t >= start:
            ticks.append(t)
        t += timedelta(hours=step)
    return ticks


def line_chart(series: dict[str, list[tuple[datetime, float]]], start: datetime, end: datetime, zone: tzinfo,
               title: str, unit: str = "", width: int = 720, height: int = 220) -> str:
    """SVG markup; an empty chart says so instead of drawing axes around nothing."""
    rows = max(1, math.ceil(len(series) / 4))              # legend rows under the axis, four names a row
    height += 18 * rows
    left, right, top, bottom = 56, 12, 24, 34 + 18 * rows
    pw, ph = width - left - right, height - top - bottom
    values = [v for pts in series.values() for _, v in pts]
    head = (f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>')
    if not values:
        return head + (f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">'
                       f'no data in this period</text></svg>')
    step = _nice_step(max(values))
    top_v = step * 4
    span = max((end - start).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return left + pw * min(max((t - start).total_seconds() / span, 0.0), 1.0)

    def y(v: float) -> float:
        return top + ph * (1 - v / top_v)

    out = [head]
    for i in range(5):
        v = top_v * i / 4
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for t in _time_ticks(start, end, zone):
        label = t.strftime("%H:%M") if t.hour or t.minute else t.strftime("%b %d")
        out.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + ph}"/>'
                   f'<text class="tick" x="{x(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{label}</text>')
    if unit:
        out.append(f'<text class="tick" x="4" y="{top - 10}">{escape(unit)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        summary = f"{name}: {len(pts)} points, max {max(v for _, v in pts):g}{(' ' + unit) if unit else ''}"
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}">'
                   f'<title>{escape(summary)}</title></polyline>')
        if len(pts) == 1:
            out.append(f'<circle cx="{x(pts[0][0]):.1f}" cy="{y(pts[0][1]):.1f}" r="3" fill="{colour}"/>')
        lx = left + (i % 4) * (pw / 4)
        ly = top + ph + 34 + 18 * (i // 4)
        out.append(f'<rect x="{lx:.1f}" y="{ly - 8:.1f}" width="10" height="10" fill="{colour}"/>'
                   f'<text class="legend" x="{lx + 14:.1f}" y="{ly + 1:.1f}">{escape(name)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}"/>'
               f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/></svg>')
    return "".join(out)
