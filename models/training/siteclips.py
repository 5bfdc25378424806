"""A site's labelled clips as reader training data, and as the held-out test an adapted reader must pass.

Clips are the unit's own recordings (`alpr-unit record-clip`, labelled with `alpr-unit clip label`;
docs/hil.md). They are split once, by a hash of the clip's folder name, so the same clip is always on
the same side whatever else is added: a clip is **held** when `int(sha256(NAME), 16) % every == 0`
(a quarter with the default `every = 4`), and never trained on.

Training crops: a clip's truth gives each vehicle's plate, lane and time, not where the plate is in
the frames. The shipped recogniser finds it: in each frame around the vehicle's time, the plate box on
the vehicle's lane whose reading is nearest the labelled plate (at most `max_edit_share` of its
characters wrong) is taken to be that plate; frames where none is near enough give nothing. So the
reader learns from the plates its own detector finds, including those it misreads now.

Held test: each held clip goes through the unit's own pipeline (`unit.service.Unit` with a replay
camera on a manual clock, mock pins, sensor edges, bursts, voting, thresholds: what `alpr-unit replay`
runs), with no central store, and the reads are scored per vehicle as the HIL report scores them
(`hil.report.score`: exact, misread, missed, duplicates, false reads).
"""
from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from unit import clips as clips_mod
from unit.plates import edit_distance

HELD_EVERY = 4
BEFORE_S, AFTER_S = 1.0, 2.0      # frames this long before / after a vehicle's sensor time are its frames
CONTEXT = (0.5, 1.0)              # kept around a found box, in box widths / heights each side (for re-framing)


def is_held(name: str, every: int = HELD_EVERY) -> bool:
    """The fixed split: held when the SHA-256 of the clip's folder name is 0 modulo `every`."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % every == 0


@dataclass
class SiteClips:
    train: list[clips_mod.Clip]
    held: list[clips_mod.Clip]
    skipped: list[str]                # not labelled, or no vehicle in the truth: name and why

    def vehicles(self, which: str) -> int:
        return sum(len(c.truth.vehicles) for c in getattr(self, which))


def split_clips(paths: list[str | Path], every: int = HELD_EVERY) -> SiteClips:
    """The labelled clips named (or one level down in the folders named), split by `is_held`."""
    out = SiteClips([], [], [])
    for p in clips_mod.find_clips(paths):
        clip = clips_mod.load(p)
        if not clip.truth.labelled or not clip.truth.vehicles:
            out.skipped.append(f"{clip.name}: not labelled (alpr-unit clip label {clip.path})")
            continue
        (out.held if is_held(clip.name, every) else out.train).append(clip)
    return out


# -- training crops -------------------------------------------------------------------------------------
@dataclass
class Found:
    """One frame's view of a labelled plate: the frame around the box, the box in it, the plate."""
    image: np.ndarray                                  # RGB, the box with CONTEXT around it
    box: tuple[float, float, float, float]             # the detector's box in `image`
    plate: str
    edits: int                                         # the shipped reader's distance from `plate`


@dataclass
class Harvest:
    found: list[Found] = field(default_factory=list)
    vehicles: int = 0
    vehicles_found: int = 0                            # vehicles with at least one usable frame
    frames_read: int = 0

    def summary(self) -> dict[str, int]:
        return {"vehicles": self.vehicles, "vehicles_found": self.vehicles_found, "frames_read": self.frames_read,
                "crops": len(self.found), "read_exactly_now": sum(1 for f in self.found if f.edits == 0)}


def _lane_roi(clip: clips_mod.Clip, lane: str) -> tuple[float, float, float, float]:
    for entry in clip.lanes:
        if entry.get("name") == lane and isinstance(entry.get("roi"), list) and len(entry["roi"]) == 4:
            return tuple(float(v) for v in entry["roi"])    # type: ignore[return-value]
    return (0.0, 0.0, 1.0, 1.0)


def vehicle_frames(clip: clips_mod.Clip, v: clips_mod.Vehicle, most: int) -> list[clips_mod.FrameRef]:
    """The frames around a vehicle's time, each file once, at most `most` spread evenly."""
    seen: set[str] = set()
    frames = []
    for f in clip.frames:
        if v.t - BEFORE_S <= f.t <= v.t + AFTER_S and f.file not in seen:
            seen.add(f.file)
            frames.append(f)
    if len(frames) > most:
        frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, most)]
    return frames


def harvest(clips: list[clips_mod.Clip], recogniser: Any, max_frames: int = 8, max_edit_share: float = 0.5,
            progress: Callable[[str], None] | None = None) -> Harvest:
    """The labelled plates found in the clips' frames (see the module text)."""
    from unit.sources.frames import decode_image
    out = Harvest()
    t0 = time.time()
    for k, clip in enumerate(clips, 1):
        for v in clip.truth.vehicles:
            out.vehicles += 1
            roi = _lane_roi(clip, v.lane)
            allowed = max(1, int(max_edit_share * len(v.plate)))
            got = 0
            for f in vehicle_frames(clip, v, max_frames):
                image = decode_image(clip.path / f.file)
                out.frames_read += 1
                H, W = image.shape[:2]
                best = None
                for r in recogniser.read(image):
                    cx, cy = (r.box[0] + r.box[2]) / 2 / W, (r.box[1] + r.box[3]) / 2 / H
                    if not (roi[0] <= cx <= roi[2] and roi[1] <= cy <= roi[3]):
                        continue
                    d = edit_distance(r.text, v.plate)
                    if d <= allowed and (best is None or d < best[0]):
                        best = (d, r.box)
                if best is None:
                    continue
                x0, y0, x1, y1 = best[1]
                w, h = x1 - x0, y1 - y0
                cx0, cy0 = int(max(0, x0 - CONTEXT[0] * w)), int(max(0, y0 - CONTEXT[1] * h))
                cx1, cy1 = int(min(W, x1 + CONTEXT[0] * w)), int(min(H, y1 + CONTEXT[1] * h))
                out.found.append(Found(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]),
                                       (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0), v.plate, best[0]))
                got += 1
            out.vehicles_found += got > 0
        if progress and (k % 10 == 0 or k == len(clips)):
            progress(f"  site clips read: {k}/{len(clips)}, {len(out.found)} plate crops "
                     f"({time.time() - t0:.0f}s)")
    return out


def training_inputs(found: list[Found], variants: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Each found plate framed as the unit frames a detector box (`synth.detector_framing`: the box as
    it is, or widened, edges off by about a tenth), `variants` times, most of them damaged as a
    roadside camera damages plates (`synth.damage`); reader inputs and their plates."""
    from PIL import Image

    from models.training.synth import damage, detector_framing
    from unit.preprocess import READER_H, READER_W, reader_input
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for f in found:
        im = Image.fromarray(f.image)
        for _ in range(variants):
            x0, y0, x1, y1 = detector_framing(rng, f.box)
            crop = im.crop((int(max(0, x0)), int(max(0, y0)), int(min(im.width, x1)), int(min(im.height, y1))))
            if crop.width < 4 or crop.height < 2:
                continue
            xs.append(reader_input(damage(rng, crop) if rng.random() < 0.6 else crop))
            ys.append(f.plate)
    return (np.stack(xs) if xs else np.zeros((0, READER_H, READER_W), np.uint8)), ys


# -- the held test --------------------------------------------------------------------------------------
def unit_config(clip: clips_mod.Clip, workdir: Path, base: dict[str, Any] | None, sealing_key: str):
    """A unit config for replaying one clip with no central store: the HIL harness's defaults (the
    example config's recognition, dedup and burst settings), `base` (a unit's TOML tables) over them,
    the clip's lanes and a replay camera on it."""
    from hil.harness import BASE_CONFIG, clip_camera_and_lanes, merge
    from unit.config import parse
    doc = merge(BASE_CONFIG, base or {})
    base_dir = Path(doc.pop("_base", "."))
    doc["unit_id"], doc["site"] = "adapt-test", "adapt-test"
    doc["central"] = {"public_key": sealing_key}
    cam = doc.setdefault("camera", {})
    cam["kind"] = "replay"
    cam["replay"] = {"path": str(clip.path.resolve())}
    doc["lanes"] = clip_camera_and_lanes(cam, clip)
    for name in ("uplink", "hotlist"):
        doc.pop(name, None)
    doc["buffer"] = {**doc.get("buffer", {}), "path": str(workdir / "buffer.sqlite")}
    doc["health"] = {**doc.get("health", {}), "status_path": str(workdir / "status.json")}
    return parse(doc, base=base_dir, path="")


def replay_clip(clip: clips_mod.Clip, recogniser: Any, workdir: Path, base: dict[str, Any] | None,
                sealing_key: str):
    """One clip through the unit's pipeline (as `alpr-unit replay` runs it), scored against its truth."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from hil.report import ReadItem, score
    from unit.service import Unit
    from unit.sources.frames import ManualClock
    from unit.sources.replay import ReplaySource, stills_lane
    from wire.times import parse_utc

    workdir.mkdir(parents=True, exist_ok=True)
    cfg = unit_config(clip, workdir, base, sealing_key)
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    clock = ManualClock(time.time())
    src = ReplaySource(clip.path, cfg.camera, stills_lane(cfg.lanes), clock=clock, realtime=False)
    unit = Unit(cfg, src, clock=clock, live=False, recogniser_factory=lambda: recogniser, env={})
    items: list[ReadItem] = []

    def stored(read, _info) -> None:
        edge = (read.trigger or {}).get("edge_at")
        t = parse_utc(edge).timestamp() if edge else parse_utc(read.captured_at).timestamp()
        items.append(ReadItem(read.read_id, read.lane, read.plate, read.confidence, round(t - src.start, 3)))

    unit.stage.listeners.append(stored)
    t0 = time.monotonic()
    try:
        unit.start()
        ended = unit.wait_ended(600.0)
    finally:
        unit.stop()
        Device.pin_factory.reset()
        Device.pin_factory = previous
    res = score(clip, items, len(items), 0, time.monotonic() - t0)
    if not ended:
        res.error = "replay did not end within 600 s"
    return res


def throwaway_sealing_key() -> str:
    """A central sealing key nobody holds: the held test's reads are sealed into a temporary buffer
    and thrown away with it."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from wire.seal import sealing_public_b64
    return sealing_public_b64(X25519PrivateKey.generate().public_key())


TOTAL_KEYS = ("vehicles", "exact", "misread", "missed", "duplicates", "false_reads")


def held_test(clips: list[clips_mod.Clip], recogniser: Any, base: dict[str, Any] | None = None,
              progress: Callable[[str], None] | None = None, what: str = "") -> dict[str, Any]:
    """The held clips through the unit's pipeline with `recogniser`: totals per vehicle and per clip."""
    key = throwaway_sealing_key()
    per_clip = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="alpr-adapt-") as tmp:
        for k, clip in enumerate(clips, 1):
            res = replay_clip(clip, recogniser, Path(tmp) / clip.name, base, key)
            per_clip.append(res)
            if progress and (k % 10 == 0 or k == len(clips)):
                progress(f"  held clips replayed{what}: {k}/{len(clips)} ({time.time() - t0:.0f}s)")
    total = {k: sum(getattr(c, k) for c in per_clip) for k in TOTAL_KEYS}
    total["errors"] = [f"{c.clip}: {c.error}" for c in per_clip if c.error]
    total["exact_rate"] = round(total["exact"] / total["vehicles"], 4) if total["vehicles"] else None
    total["clips"] = {c.clip: {k: getattr(c, k) for k in TOTAL_KEYS} for c in per_clip}
    return total


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
