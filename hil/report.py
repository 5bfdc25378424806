"""The HIL report: what the central store holds against what each clip's truth expects.

A read belongs to the expected vehicle on its lane whose time is nearest its sensor edge (its capture
time for motion-triggered reads), within the clip's tolerance (truth.json `tolerance_s`). Then, per
vehicle: *exact* if one of its reads has the plate exactly (A-Z0-9 compared), *misread* if it has reads
but none exact, *missed* if none; every read of a vehicle after its first is a *duplicate*; a read that
belongs to no vehicle is a *false read*. Reads the unit marked low-confidence (`recognition.low_confidence_reads`)
count like any other, and `exact_low` / `misread_low` say how many of the exact and misread vehicles
were read only so. Latency is from the sensor edge being driven onto the pin to
the store recording the read (its `received_at`), both on this machine's clock.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from unit.clips import Clip, normalise_plate


@dataclass
class ReadItem:
    read_id: str
    lane: str
    plate: str
    confidence: float
    t: float                          # seconds from the start of the clip (sensor edge, else capture)
    latency_s: float | None = None
    vehicle: int | None = None        # index into the clip's truth vehicles
    verdict: str = ""                 # exact | misread | duplicate | false
    low_confidence: bool = False      # marked low-confidence by the unit


@dataclass
class ClipResult:
    clip: str
    vehicles: int = 0
    reads_unit: int = 0               # reads the unit stored (sealed into its buffer)
    reads: int = 0                    # reads at the central store
    exact: int = 0
    misread: int = 0
    missed: int = 0
    duplicates: int = 0
    false_reads: int = 0
    exact_low: int = 0                # exact vehicles whose counted read is marked low-confidence
    misread_low: int = 0              # misread vehicles whose counted read is marked low-confidence
    undelivered: int = 0              # stored by the unit, not at the central store when the clip ended
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    items: list[ReadItem] = field(default_factory=list)
    missed_plates: list[str] = field(default_factory=list)
    baseline_exact: int | None = None  # the recogniser alone on the clip's source photo (made clips only)
    counters: dict[str, int] = field(default_factory=dict)   # the unit's own (bursts, glitches, no_plate...)
    error: str = ""

    def figures(self, plates: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("items", "latencies_s", "missed_plates")}
        d["latency_ms"] = latency_figures(self.latencies_s)
        d["reads_list"] = [{**asdict(i), **({} if plates else {"plate": None})} for i in self.items]
        if plates:
            d["missed_plates"] = self.missed_plates
        if d["baseline_exact"] is None:
            del d["baseline_exact"]
        if not d["error"]:
            del d["error"]
        return d


def latency_figures(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p95": None}
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, max(0, int(round(0.95 * len(ms) + 0.5)) - 1))]
    return {"n": len(ms), "median": round(statistics.median(ms), 1), "p95": round(p95, 1)}


def score(clip: Clip, items: list[ReadItem], reads_unit: int, undelivered: int, wall_s: float = 0.0) -> ClipResult:
    """Assign reads to expected vehicles and count (see the module text)."""
    truth = clip.truth.vehicles
    tol = clip.truth.tolerance_s
    res = ClipResult(clip.name, vehicles=len(truth), reads_unit=reads_unit, reads=len(items),
                     undelivered=undelivered, wall_s=round(wall_s, 2))
    by_vehicle: dict[int, list[ReadItem]] = {}
    for it in sorted(items, key=lambda i: i.t):
        near = [(abs(v.t - it.t), k) for k, v in enumerate(truth) if v.lane == it.lane and abs(v.t - it.t) <= tol]
        if not near:
            it.verdict = "false"
            res.false_reads += 1
            continue
        it.vehicle = min(near)[1]
        by_vehicle.setdefault(it.vehicle, []).append(it)
    for k, v in enumerate(truth):
        got = by_vehicle.get(k, [])
        if not got:
            res.missed += 1
            res.missed_plates.append(v.plate)
            continue
        exact = [i for i in got if normalise_plate(i.plate) == v.plate]
        first = exact[0] if exact else got[0]
        if exact:
            res.exact += 1
            res.exact_low += first.low_confidence
            first.verdict = "exact"
        else:
            res.misread += 1
            res.misread_low += first.low_confidence
            first.verdict = "misread"
        for i in got:
            if i is not first:
                i.verdict = "duplicate"
                res.duplicates += 1
    res.latencies_s = [i.latency_s for i in items if i.latency_s is not None]
    res.items = sorted(items, key=lambda i: i.t)
    return res


@dataclass
class Report:
    mode: str
    clips: list[ClipResult]
    central_url: str = ""
    models: dict[str, str] = field(default_factory=dict)

    def total(self) -> dict[str, Any]:
        keys = ("vehicles", "reads_unit", "reads", "exact", "misread", "missed", "duplicates", "false_reads",
                "exact_low", "misread_low", "undelivered")
        t: dict[str, Any] = {k: sum(getattr(c, k) for c in self.clips) for k in keys}
        t["exact_rate"] = round(t["exact"] / t["vehicles"], 4) if t["vehicles"] else None
        t["wall_s"] = round(sum(c.wall_s for c in self.clips), 2)
        t["latency_ms"] = latency_figures([v for c in self.clips for v in c.latencies_s])
        base = [c.baseline_exact for c in self.clips if c.baseline_exact is not None]
        if base:
            t["baseline_exact"] = sum(base)
            t["baseline_rate"] = round(sum(base) / len(base), 4)
        t["errors"] = sum(1 for c in self.clips if c.error)
        return t

    @property
    def every_vehicle_once(self) -> bool:
        t = self.total()
        return (t["vehicles"] > 0 and t["exact"] == t["vehicles"] and t["duplicates"] == 0
                and t["false_reads"] == 0 and t["errors"] == 0)

    def to_json(self, plates: bool = False) -> dict[str, Any]:
        return {"mode": self.mode, "central": self.central_url, "models": self.models, "total": self.total(),
                "clips": [c.figures(plates) for c in self.clips]}

    def table(self) -> str:
        cols = [("clip", 24), ("vehicles", 8), ("at unit", 7), ("at store", 8), ("exact", 5), ("misread", 7),
                ("missed", 6), ("dupl.", 5), ("false", 5), ("lat. med", 8), ("p95 ms", 7)]
        head = " ".join(f"{n:<{w}}" if i == 0 else f"{n:>{w}}" for i, (n, w) in enumerate(cols))
        lines = [head, "-" * len(head)]

        def row(name: str, d: dict[str, Any], lat: dict[str, Any]) -> str:
            vals = [name[:24], d["vehicles"], d["reads_unit"], d["reads"], d["exact"], d["misread"], d["missed"],
                    d["duplicates"], d["false_reads"], "-" if lat["median"] is None else f"{lat['median']:.0f}",
                    "-" if lat["p95"] is None else f"{lat['p95']:.0f}"]
            return " ".join(f"{v:<{w}}" if i == 0 else f"{v:>{w}}" for i, (v, (_, w)) in enumerate(zip(vals, cols)))
        for c in self.clips:
            lines.append(row(c.clip + (" (!)" if c.error else ""), asdict(c), latency_figures(c.latencies_s)))
        t = self.total()
        lines.append("-" * len(head))
        lines.append(row(f"all {len(self.clips)} clips", t, t["latency_ms"]))
        rate = "-" if t["exact_rate"] is None else f"{100 * t['exact_rate']:.1f} %"
        lines.append(f"exact reads per vehicle: {t['exact']}/{t['vehicles']} ({rate}); "
                     f"undelivered {t['undelivered']}; mode {self.mode}; {t['wall_s']:.1f} s")
        if t["exact_low"] or t["misread_low"]:
            lines.append(f"read only as low-confidence: {t['exact_low']} of the exact, {t['misread_low']} of the misread")
        if "baseline_exact" in t:
            lines.append(f"the recogniser alone on the same photos: {t['baseline_exact']}/{len([c for c in self.clips if c.baseline_exact is not None])} "
                         f"({100 * t['baseline_rate']:.1f} %)")
        for c in self.clips:
            if c.error:
                lines.append(f"(!) {c.clip}: {c.error}")
        return "\n".join(lines)
