"""Recorded clips: the folder format, reading and writing it, and labelling the vehicles in a clip.

A clip is what a unit saw and sensed at a gate for a few seconds, kept so that the same seconds can be
run through the unit's code again anywhere (`alpr-unit replay`, the HIL harness in `hil/`; a clip is
replayed by `unit.sources.replay`, recorded by `unit.record`, shown and labelled by `alpr-unit clip`). Format
version 1, one folder (docs/hil.md has the whole description):

    clip.json      format/version, `capture` metadata (unit, site, resolution, fps, exposure, gain,
                   when), the `lanes` as wired when recorded (name, direction, roi, sensor kind, pin,
                   active_high, pull_up), and `frames`: [{"file": "frames/000001.jpg", "t": 0.0}, ...]
    events.jsonl   the sensor edges, one JSON object a line, in time order:
                   {"t": 1.234, "lane": "in", "pin": "GPIO17", "level": 0, "active": true}
    truth.json     the vehicles expected, filled in afterwards (`alpr-unit clip label`):
                   {"version": 1, "labelled": true, "tolerance_s": 2.0,
                    "vehicles": [{"plate": "7ABC123", "lane": "in", "t": 1.2}]}
    frames/        JPEG files (a frame entry may name the file of an earlier one: a frame that did
                   not change, e.g. a stopped vehicle, costs nothing twice)

Times `t` are seconds from the start of the recording. `level` is the electrical level the pin read
(0/1) and `active` what it meant with the wiring in `lanes` ("vehicle present"); a replay drives
`active` through whatever wiring the replaying config has. Clips written before version 1 (a
`clip.json` with `frames` and `edges` only) still replay.

Clips hold plates in clear (the frames): they are test material for commissioning and HIL, made on
purpose by a technician, never part of a unit's normal operation, and are written owner-only.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from unit.config import CameraConfig, LaneConfig
from wire.read import PLATE_RE
from wire.times import utc_ms

FORMAT = "alpr-clip"
VERSION = 1
CLIP_FILE, EVENTS_FILE, TRUTH_FILE, FRAMES_DIR = "clip.json", "events.jsonl", "truth.json", "frames"
DEFAULT_TOLERANCE_S = 2.0
# labelling: presences shorter than this are bounces, and gaps shorter than this join two presences
MIN_PRESENCE_S, JOIN_GAP_S = 0.08, 0.4


class ClipError(ValueError):
    """A clip folder that cannot be used; the message names the file and what is wrong."""


@dataclass
class FrameRef:
    file: str
    t: float


@dataclass
class EdgeEvent:
    t: float
    lane: str
    active: bool
    pin: str = ""
    level: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 4), "lane": self.lane}
        if self.pin:
            out["pin"] = self.pin
        if self.level is not None:
            out["level"] = int(self.level)
        out["active"] = bool(self.active)
        return out


@dataclass
class Vehicle:
    plate: str
    lane: str
    t: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plate": self.plate, "lane": self.lane, "t": round(self.t, 3)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Truth:
    vehicles: list[Vehicle] = field(default_factory=list)
    labelled: bool = False
    tolerance_s: float = DEFAULT_TOLERANCE_S
    labelled_by: str = ""
    labelled_at: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": VERSION, "labelled": self.labelled, "tolerance_s": self.tolerance_s,
                               "vehicles": [v.to_json() for v in self.vehicles]}
        if self.labelled_by:
            out["labelled_by"] = self.labelled_by
        if self.labelled_at:
            out["labelled_at"] = self.labelled_at
        return out


@dataclass
class Clip:
    path: Path
    frames: list[FrameRef]
    edges: list[EdgeEvent]
    truth: Truth
    capture: dict[str, Any] = field(default_factory=dict)
    lanes: list[dict[str, Any]] = field(default_factory=list)
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)     # other keys of clip.json, kept on rewrite

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def duration_s(self) -> float:
        ts = [f.t for f in self.frames] + [e.t for e in self.edges]
        return max(ts) if ts else 0.0

    @property
    def files(self) -> list[str]:
        return sorted({f.file for f in self.frames})

    def presences(self) -> list[tuple[str, float, float | None]]:
        """(lane, start, end) per vehicle the sensors saw: bounces under MIN_PRESENCE_S dropped, and
        presences less than JOIN_GAP_S apart on one lane joined (a vehicle that stops and moves on)."""
        out: list[tuple[str, float, float | None]] = []
        for lane in sorted({e.lane for e in self.edges}):
            spans: list[list[float | None]] = []
            start: float | None = None
            for e in (e for e in self.edges if e.lane == lane):
                if e.active and start is None:
                    start = e.t
                elif not e.active and start is not None:
                    spans.append([start, e.t])
                    start = None
            if start is not None:
                spans.append([start, None])
            spans = [s for s in spans if s[1] is None or s[1] - s[0] >= MIN_PRESENCE_S]
            joined: list[list[float | None]] = []
            for s in spans:
                if joined and joined[-1][1] is not None and s[0] - joined[-1][1] < JOIN_GAP_S:
                    joined[-1][1] = s[1]
                else:
                    joined.append(s)
            out += [(lane, float(s[0]), s[1]) for s in joined]
        return sorted(out, key=lambda p: (p[1], p[0]))

    def frame_at(self, t: float) -> FrameRef | None:
        best = None
        for f in self.frames:
            if best is None or abs(f.t - t) < abs(best.t - t):
                best = f
        return best


# -- reading and writing ----------------------------------------------------------------------------------
def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise ClipError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ClipError(f"{p}: not valid JSON ({exc})") from None


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
        raise ClipError(f"{where}: expected seconds >= 0, got {v!r}")
    return float(v)


def load(folder: str | Path, check_files: bool = True) -> Clip:
    """Read and check a clip folder; ClipError names the file and entry at fault."""
    root = Path(folder)
    meta = _read_json(root / CLIP_FILE)
    if not isinstance(meta, dict):
        raise ClipError(f"{root / CLIP_FILE}: expected a JSON object")
    version = int(meta.get("version", 0)) if meta.get("format", FORMAT) == FORMAT else -1
    if version < 0 or version > VERSION:
        raise ClipError(f"{root / CLIP_FILE}: format {meta.get('format')!r} version {meta.get('version')!r} "
                        f"is not one this unit reads ({FORMAT} <= {VERSION})")
    frames = []
    for i, f in enumerate(meta.get("frames") or []):
        if not isinstance(f, dict) or not isinstance(f.get("file"), str):
            raise ClipError(f"{root / CLIP_FILE}: frames[{i}]: expected {{\"file\": str, \"t\": seconds}}")
        frames.append(FrameRef(f["file"], _num(f.get("t"), f"{root / CLIP_FILE}: frames[{i}].t")))
    if check_files:
        for name in sorted({f.file for f in frames}):
            p = (root / name).resolve()
            if root.resolve() not in p.parents:
                raise ClipError(f"{root / CLIP_FILE}: frame file {name!r} is outside the clip folder")
            if not p.is_file():
                raise ClipError(f"{root / CLIP_FILE}: frame file {name!r} is missing")
    edges = [_edge(e, f"{root / CLIP_FILE}: edges[{i}]") for i, e in enumerate(meta.get("edges") or [])]
    ev_path = root / EVENTS_FILE
    if ev_path.exists():
        try:
            lines = ev_path.read_text("utf-8").splitlines()
        except OSError as exc:
            raise ClipError(f"{ev_path}: cannot read ({exc.strerror or exc})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise ClipError(f"{ev_path}:{n}: not valid JSON ({exc})") from None
            if isinstance(doc, dict) and doc.get("type", "edge") != "edge":
                continue                      # room for other events later (motion, notes)
            edges.append(_edge(doc, f"{ev_path}:{n}"))
    edges.sort(key=lambda e: e.t)
    truth = load_truth(root)
    lanes = meta.get("lanes") or []
    known = {"format", "version", "capture", "lanes", "frames", "edges"}
    return Clip(root, frames, edges, truth, dict(meta.get("capture") or {}), list(lanes), max(version, 0),
                {k: v for k, v in meta.items() if k not in known})


def _edge(doc: Any, where: str) -> EdgeEvent:
    if not isinstance(doc, dict) or "lane" not in doc or ("active" not in doc):
        raise ClipError(f"{where}: expected {{\"t\", \"lane\", \"active\"[, \"pin\", \"level\"]}}, got {doc!r}")
    level = doc.get("level")
    if level is not None and level not in (0, 1, True, False):
        raise ClipError(f"{where}: level: expected 0 or 1, got {level!r}")
    return EdgeEvent(_num(doc.get("t"), f"{where}.t"), str(doc["lane"]), bool(doc["active"]),
                     str(doc.get("pin") or ""), None if level is None else int(level))


def load_truth(root: Path) -> Truth:
    p = Path(root) / TRUTH_FILE
    if not p.exists():
        return Truth()
    doc = _read_json(p)
    if not isinstance(doc, dict):
        raise ClipError(f"{p}: expected a JSON object")
    vehicles = []
    for i, v in enumerate(doc.get("vehicles") or []):
        if not isinstance(v, dict) or not isinstance(v.get("plate"), str) or "lane" not in v:
            raise ClipError(f"{p}: vehicles[{i}]: expected {{\"plate\", \"lane\", \"t\"}}")
        plate = normalise_plate(v["plate"])
        if not PLATE_RE.match(plate):
            raise ClipError(f"{p}: vehicles[{i}].plate: expected 1-10 of A-Z0-9, got {v['plate']!r}")
        vehicles.append(Vehicle(plate, str(v["lane"]), _num(v.get("t"), f"{p}: vehicles[{i}].t"), str(v.get("note", ""))))
    tol = doc.get("tolerance_s", DEFAULT_TOLERANCE_S)
    return Truth(vehicles, bool(doc.get("labelled", bool(vehicles))), _num(tol, f"{p}: tolerance_s"),
                 str(doc.get("labelled_by", "")), str(doc.get("labelled_at", "")))


def normalise_plate(text: str) -> str:
    """Upper-case letters and digits only, as the read contract and the benchmark compare them."""
    return "".join(ch for ch in str(text).upper() if ch.isascii() and ch.isalnum())


def _write_atomic(p: Path, text: str) -> None:
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, p)


def write_meta(clip: Clip) -> None:
    doc = {"format": FORMAT, "version": VERSION, "capture": clip.capture, "lanes": clip.lanes, **clip.extra,
           "frames": [{"file": f.file, "t": round(f.t, 4)} for f in clip.frames]}
    _write_atomic(clip.path / CLIP_FILE, json.dumps(doc, indent=1) + "\n")


def write_events(clip: Clip) -> None:
    _write_atomic(clip.path / EVENTS_FILE, "".join(json.dumps(e.to_json()) + "\n" for e in clip.edges))


def write_truth(clip: Clip) -> None:
    _write_atomic(clip.path / TRUTH_FILE, json.dumps(clip.truth.to_json(), indent=1) + "\n")


def save(clip: Clip) -> None:
    clip.path.mkdir(parents=True, exist_ok=True)
    write_meta(clip)
    write_events(clip)
    write_truth(clip)


def lane_json(lane: LaneConfig) -> dict[str, Any]:
    s = lane.sensor
    sensor: dict[str, Any] = {"kind": s.kind}
    if lane.has_sensor:
        sensor.update(pin=s.pin, active_high=s.active_high,
                      pull_up="floating" if s.pull_up is None else s.pull_up)
    return {"name": lane.name, "direction": lane.direction, "roi": list(lane.roi), "sensor": sensor}


def capture_json(cam: CameraConfig, unit_id: str, site: str, **extra: Any) -> dict[str, Any]:
    """clip.json `capture`: who recorded, when, the frame size and rate, and the camera kind's own
    settings (the Pi camera's exposure, gain and focus)."""
    return {"unit_id": unit_id, "site": site, "recorded_at": utc_ms(time.time()),
            "resolution": list(cam.resolution), "fps": cam.fps, **cam.options.capture_facts(), **extra}


# -- finding clips ----------------------------------------------------------------------------------------
def is_clip(path: str | Path) -> bool:
    return (Path(path) / CLIP_FILE).is_file()


def find_clips(paths: Iterable[str | Path]) -> list[Path]:
    """Clip folders named, or found one level down in the folders named (a set of clips), sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if is_clip(p):
            out.append(p)
        elif p.is_dir():
            out += sorted(c for c in p.iterdir() if c.is_dir() and is_clip(c))
    return out


# -- showing and labelling ---------------------------------------------------------------------------------
def summary(clip: Clip) -> dict[str, Any]:
    return {"clip": str(clip.path), "version": clip.version, "capture": clip.capture,
            "lanes": [lane.get("name") for lane in clip.lanes], "frames": len(clip.frames),
            "files": len(clip.files), "duration_s": round(clip.duration_s, 2), "edges": len(clip.edges),
            "presences": [{"lane": lane, "start": round(a, 3), "end": None if b is None else round(b, 3)}
                          for lane, a, b in clip.presences()],
            "labelled": clip.truth.labelled, "vehicles": [v.to_json() for v in clip.truth.vehicles]}


def label(clip: Clip, plates: list[str | None] | None = None, add: list[Vehicle] | None = None,
          clear: bool = False, tolerance_s: float | None = None, by: str = "") -> Truth:
    """Set the clip's truth: `plates[i]` for the i-th sensed presence (None skips it), plus `add`."""
    vehicles = [] if clear else list(clip.truth.vehicles)
    if plates is not None:
        pres = clip.presences()
        if len(plates) > len(pres):
            raise ValueError(f"{len(plates)} plates given but the sensors saw {len(pres)} vehicles; "
                             "use --add for vehicles they missed")
        for (lane, start, _end), plate in zip(pres, plates):
            if plate is None:
                continue
            p = normalise_plate(plate)
            if not PLATE_RE.match(p):
                raise ValueError(f"plate {plate!r}: must have 1-10 letters or digits")
            vehicles = [v for v in vehicles if not (v.lane == lane and abs(v.t - start) < 1e-3)]
            vehicles.append(Vehicle(p, lane, start))
    vehicles += add or []
    lanes = {lane.get("name") for lane in clip.lanes}
    for v in vehicles:
        if lanes and v.lane not in lanes:
            raise ValueError(f"vehicle {v.plate}: lane {v.lane!r} is not one of the clip's lanes ({', '.join(sorted(lanes))})")
    clip.truth = Truth(sorted(vehicles, key=lambda v: (v.t, v.lane)), True,
                       clip.truth.tolerance_s if tolerance_s is None else float(tolerance_s),
                       by or clip.truth.labelled_by, utc_ms(time.time()))
    write_truth(clip)
    return clip.truth
