"""`python -m hil build-demo [OUT]`: (re)build the committed demo clips in hil/clips.

Each vehicle is a real street scene from the training sets that may be redistributed (Open Images
plates, CC BY 4.0 / CC BY 2.0; RO dashcam, MIT; attribution in hil/clips/ATTRIBUTION.md) with a
synthetic plate of known text, rendered by `models/training/synth.py`, pasted over the scene's own
plate box (so it sits on a car) and large enough for a gate camera (120 to 230 px wide in a 1280x720
frame). Other plates in the scene are pixelated. The approach is simulated as in `hil.sim`. Frames
are 1280x720 JPEG (quality 80) at 10 frames a second; a frame that does not change (a vehicle far
off, a stopped vehicle, an empty lane) is one file named again, which keeps the set small.

Building needs ../shared/data/train and the Debian fonts the renderer uses (`models/README.md`); the
clips it writes are plain JPEG and JSON, so replaying them needs neither. Each plate is checked to be
legible to the shipped reader on the frame where the vehicle stops (reading the known plate region,
so a detector still in training does not decide what the clips hold); an illegible rendering is
replaced by the next one from the seed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from hil import sim
from unit import clips

FPS = 10.0
QUALITY = 80
SIZE = (1280, 720)
SEED = 462

# (set, file stem) of each scene used; all from the sets' `valid` split (never used to fit the models)
SCENES: dict[str, tuple[str, str]] = {
    "oi-vw-front": ("open-images-plates", "0170ea8e1a33375a_jpg.rf.1e6edac643557584f9053c0dfd07d7dc"),
    "oi-red-rear": ("open-images-plates", "0801961485534636_jpg.rf.1e057fcf6e2e35089ef1e6451ec7e0b3"),
    "oi-suv-rear": ("open-images-plates", "643c3cc1a4e85db2_jpg.rf.65abe656d07a97d2eff2d1f27e4fb3c4"),
    "oi-lexus-rear": ("open-images-plates", "647ff22cf6950211_jpg.rf.679727bab12c0ff6355781ff4c979405"),
    "oi-blue-snow": ("open-images-plates", "3ed000628c6a0587_jpg.rf.96950fa52736f696edc35449a5362d00"),
    "oi-bmw-front": ("open-images-plates", "11f80fda2c38011c_jpg.rf.21e52887a17b2a02ac9bf8699f1cacd3"),
    "oi-blue-front": ("open-images-plates", "299f0363ae21d1c3_jpg.rf.737cd979d35bb9c055d468f926a81173"),
    "rd-silver": ("ro-dashcam", "dayride_type1_001.mp4_t=37"),
    "rd-white": ("ro-dashcam", "dayride_type1_001.mp4_t=485"),
    "rd-dark": ("ro-dashcam", "dayride_type1_001.mp4_t=772"),
    "rd-grey": ("ro-dashcam", "dayride_type1_003.mp4_t=97"),
    "rd-street": ("ro-dashcam", "dayride_type1_002.mp4_t=792"),
    "rn-116": ("ro-dashcam", "nightride_type3_001.mp4_t=116"),
    "rn-155": ("ro-dashcam", "nightride_type3_001.mp4_t=155"),
    "rn-64": ("ro-dashcam", "nightride_type3_001.mp4_t=64"),
}

LANE_IN = {"name": "in", "direction": "in", "roi": [0.0, 0.0, 1.0, 1.0],
           "sensor": {"kind": "loop", "pin": 17, "active_high": False, "pull_up": True}}
LANE_OUT = {"name": "out", "direction": "out", "roi": [0.5, 0.0, 1.0, 1.0],
            "sensor": {"kind": "ir_beam", "pin": 27, "active_high": True, "pull_up": False}}
PINS = {"in": ("GPIO17", False), "out": ("GPIO27", True)}      # pin, active_high


@dataclass
class Actor:
    """One vehicle: a scene, its lane, when its sensor fires, how long it stays, its sensor's bounces."""
    scene: str
    lane: str
    edge_t: float
    dwell_s: float = 1.0              # sensor active this long
    night: bool = False
    bounce: bool = False              # contact bounce at arrival and departure (ms-long toggles)
    stop_go: bool = False             # the loop drops out for 0.3 s mid-stay (the vehicle rolls on)
    plate: str = ""
    base: Image.Image | None = None   # the view with the synthetic plate, at the lane view's size
    focus: tuple[float, float] = (0.0, 0.0)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def release_t(self) -> float:
        return self.edge_t + self.dwell_s


@dataclass
class Spec:
    name: str
    title: str
    lanes: list[dict[str, Any]]
    actors: list[Actor]
    duration_s: float
    note: str = ""


def specs() -> list[Spec]:
    """The demo set: day and night, one and two lanes, a vehicle that stops, two close together, a bounce."""
    return [
        Spec("01-day-one-lane", "three vehicles through one gate lane by day", [LANE_IN],
             [Actor("oi-red-rear", "in", 1.2), Actor("rd-silver", "in", 3.6), Actor("oi-vw-front", "in", 6.0)], 7.6),
        Spec("02-night-one-lane", "two vehicles at night (headlights, sensor noise)", [LANE_IN],
             [Actor("rn-116", "in", 1.2, night=True), Actor("rn-155", "in", 3.8, night=True)], 5.4),
        Spec("03-day-two-lanes", "two lanes, a vehicle in each at almost the same time, then one more",
             [dict(LANE_IN, roi=[0.0, 0.0, 0.5, 1.0]), LANE_OUT],
             [Actor("oi-suv-rear", "in", 1.2), Actor("rd-white", "out", 1.5), Actor("oi-blue-snow", "in", 4.0)], 5.6),
        Spec("04-vehicle-stops", "a vehicle waits at the barrier for 4 s, rolling forward once, then one more",
             [LANE_IN], [Actor("oi-lexus-rear", "in", 1.2, dwell_s=5.0, stop_go=True), Actor("rd-dark", "in", 7.8)], 9.4),
        Spec("05-close-together", "two vehicles nose to tail: the second's loop fires 0.5 s after the first leaves",
             [LANE_IN], [Actor("oi-bmw-front", "in", 1.2, dwell_s=0.9), Actor("rd-grey", "in", 2.6)], 4.2),
        Spec("06-sensor-bounce", "a loop detector relay that bounces on every change", [LANE_IN],
             [Actor("oi-blue-front", "in", 1.2, bounce=True), Actor("rd-street", "in", 3.8, bounce=True)], 5.4),
    ]


# -- scenes and plates ---------------------------------------------------------------------------------
def _scene(key: str) -> tuple[Image.Image, list[tuple[float, float, float, float]], Path]:
    from models.training.datasets import TRAIN_ROOT
    dataset, stem = SCENES[key]
    root = TRAIN_ROOT / dataset / "valid"
    label = json.loads((root / "labels" / f"{stem}.json").read_text())
    path = root / "images" / Path(label["image"]).name
    boxes = [tuple(float(v) for v in p["box_xyxy"]) for p in label["plates"]]
    return Image.open(path).convert("RGB"), boxes, path


def _render_plate(rng: np.random.Generator, eu: bool):
    from models.training import synth
    fonts = synth.available_fonts(synth.FONT_FILES)
    decor = synth.available_fonts(synth.DECOR_FONTS) or fonts
    if not fonts:
        raise RuntimeError("no plate fonts: apt-get install fonts-dejavu fonts-liberation2 (see models/README.md)")
    return synth.render_eu(rng, fonts) if eu else synth.render_us(rng, fonts, decor)


def _paste_plate(view: Image.Image, plate: Image.Image, box: tuple[float, float, float, float], night: bool) -> tuple[float, float, float, float]:
    """Cover `box` (the scene's own plate) with the synthetic plate; returns where it went."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    aspect = plate.width / plate.height
    w = bw * 1.10
    h = w / aspect
    if h < bh * 1.15:
        h = bh * 1.15
        w = h * aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    im = plate.resize((max(2, round(w)), max(2, round(h))), Image.LANCZOS)
    rgb, alpha = im.convert("RGB"), im.getchannel("A")
    arr = np.asarray(rgb, dtype=np.float32)
    arr = arr * (0.82 if night else 0.95) + (6 if night else 0)     # plates are never pure white on camera
    rgb = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    at = (round(cx - w / 2), round(cy - h / 2))
    view.paste(rgb, at, alpha)
    return (at[0], at[1], at[0] + im.width, at[1] + im.height)


def _legible(reader: Any, view: Image.Image, box: tuple[float, float, float, float], text: str) -> bool:
    if reader is None:
        return True
    x0, y0, x1, y1 = box
    pw, ph = x1 - x0, y1 - y0
    crop = view.crop((round(x0 - 0.06 * pw), round(y0 - 0.12 * ph), round(x1 + 0.06 * pw), round(y1 + 0.12 * ph)))
    got, _, _ = reader.read_crop(np.asarray(crop))
    return got == text


def prepare(actor: Actor, view_size: tuple[int, int], rng: np.random.Generator, reader: Any, used: set[str]) -> list[str]:
    """Make the actor's base view: the scene cropped to the view's aspect around its plate, scaled so the
    plate is about 170 px wide, the synthetic plate pasted on; returns the scene's path for attribution."""
    scene, boxes, path = _scene(actor.scene)
    main = max(boxes, key=lambda b: b[2] - b[0])
    for b in boxes:
        if b is not main:
            sim.pixelate(scene, b)
    vw, vh = view_size
    target_plate_w = 170.0
    s = target_plate_w / (main[2] - main[0])
    s = max(s, vw / scene.width, vh / scene.height)          # the view must be covered by the scene
    cw, ch = vw / s, vh / s
    pcx, pcy = (main[0] + main[2]) / 2, (main[1] + main[3]) / 2
    x0 = min(max(pcx - cw / 2, 0.0), scene.width - cw)
    y0 = min(max(pcy - ch * 0.6, 0.0), scene.height - ch)     # plate a little below the middle
    view = scene.resize((vw, vh), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
    box = ((main[0] - x0) * s, (main[1] - y0) * s, (main[2] - x0) * s, (main[3] - y0) * s)
    eu = (main[2] - main[0]) / max(1.0, main[3] - main[1]) >= 3.0
    for _ in range(40):
        rendered = _render_plate(rng, eu)
        if rendered.text in used or len(rendered.text) < 5:
            continue
        candidate = view.copy()
        placed = _paste_plate(candidate, rendered.image, box, actor.night)
        if _legible(reader, candidate, placed, rendered.text):
            break
    else:
        print(f"build-demo: warning: no legible plate for {actor.scene} after 40 tries; keeping the last",
              file=sys.stderr)
    used.add(rendered.text)
    actor.plate, actor.base = rendered.text, candidate
    actor.focus = ((placed[0] + placed[2]) / 2, (placed[1] + placed[3]) / 2)
    return [str(path)]


# -- timelines ---------------------------------------------------------------------------------------------
FAR_S = 0.45          # before the edge: approaching frames (the ring holds the last three)


def lane_shot(actors: list[Actor], t: float, rng: np.random.Generator) -> tuple[str, Actor | None, sim.Shot | None]:
    """What one lane's view shows at time t: (cache key, actor, shot); None actor means an empty lane."""
    for a in actors:
        if t >= a.release_t + 0.05:
            continue                                      # gone through the gate
        r = t - a.edge_t
        if r < -FAR_S:                                    # waiting further back: one still picture
            return f"{a.scene}:far", a, sim.Shot(0.62, 2.0, 1.0, 3.0 if a.night else 0.0, a.night)
        if r < 0.6:                                       # approaching and slowing down
            u = (r + FAR_S) / (FAR_S + 0.6)
            ease = 1 - (1 - u) ** 2
            gain = 1.0 + float(rng.uniform(-0.08, 0.08))
            return (f"{a.scene}:{t:.2f}", a,
                    sim.Shot(0.72 + 0.33 * ease, 4.0 * (1 - ease), gain, 3.0 if a.night else 0.0, a.night))
        return f"{a.scene}:stopped", a, sim.Shot(1.05, 0.0, 1.0, 3.0 if a.night else 0.0, a.night)
    return "empty", None, None


def edges_for(actor: Actor) -> list[clips.EdgeEvent]:
    pin, active_high = PINS[actor.lane]

    def e(t: float, active: bool) -> clips.EdgeEvent:
        return clips.EdgeEvent(round(t, 4), actor.lane, active, pin, int(active == active_high))
    out = []
    if actor.bounce:      # relay contacts chatter for a few ms on each change
        out += [e(actor.edge_t, True), e(actor.edge_t + 0.004, False), e(actor.edge_t + 0.009, True),
                e(actor.edge_t + 0.013, False), e(actor.edge_t + 0.020, True)]
    else:
        out.append(e(actor.edge_t, True))
    if actor.stop_go:     # rolls forward off the loop's edge and back on
        mid = actor.edge_t + actor.dwell_s / 2
        out += [e(mid, False), e(mid + 0.3, True)]
    if actor.bounce:
        r = actor.release_t
        out += [e(r, False), e(r + 0.005, True), e(r + 0.011, False)]
    else:
        out.append(e(actor.release_t, False))
    return out


def build_clip(spec: Spec, out: Path, rng: np.random.Generator, reader: Any, used: set[str]) -> tuple[clips.Clip, list[str]]:
    two = len(spec.lanes) == 2
    view_size = (SIZE[0] // 2, SIZE[1]) if two else SIZE
    sources: list[str] = []
    for a in spec.actors:
        sources += prepare(a, view_size, rng, reader, used)
    empty = _empty_view(spec.actors[0], view_size)
    if out.exists():
        shutil.rmtree(out)
    (out / clips.FRAMES_DIR).mkdir(parents=True)
    lanes = [lane["name"] for lane in spec.lanes]
    by_lane = {lane: sorted((a for a in spec.actors if a.lane == lane), key=lambda a: a.edge_t) for lane in lanes}
    cache: dict[tuple[str, ...], str] = {}
    frames: list[clips.FrameRef] = []
    n = int(round(spec.duration_s * FPS))
    for i in range(n):
        t = round(i / FPS, 4)
        parts = [lane_shot(by_lane[lane], t, rng) for lane in lanes]
        key = tuple(p[0] for p in parts)
        name = cache.get(key)
        if name is None:
            views = [empty if a is None else sim.render(a.base, a.focus, shot, rng) for _, a, shot in parts]
            frame = views[0] if not two else _side_by_side(views)
            name = f"{clips.FRAMES_DIR}/{len(cache) + 1:06d}.jpg"
            (out / name).write_bytes(sim.jpeg(frame, QUALITY))
            cache[key] = name
        frames.append(clips.FrameRef(name, t))
    edges = sorted((e for a in spec.actors for e in edges_for(a)), key=lambda e: e.t)
    truth = clips.Truth([clips.Vehicle(a.plate, a.lane, a.edge_t) for a in sorted(spec.actors, key=lambda a: a.edge_t)],
                        True, 2.0, "hil.build_demo (synthetic plates of known text)")
    capture = {"unit_id": "synthetic", "site": "demo gate", "resolution": list(SIZE), "fps": FPS,
               "shutter_us": 1000, "gain": [1.0, 8.0], "camera": "simulated from still scenes",
               "note": spec.title}
    clip = clips.Clip(out, frames, edges, truth, capture, spec.lanes,
                      extra={"source": {"made_by": "hil.build_demo", "seed": SEED,
                                        "scenes": [_rel(p) for p in sources]}})
    clips.save(clip)
    return clip, sources


def _rel(p: str) -> str:
    parts = Path(p).parts
    return "/".join(parts[parts.index("train") + 1:]) if "train" in parts else Path(p).name


def _side_by_side(views: list[Image.Image]) -> Image.Image:
    frame = Image.new("RGB", SIZE)
    frame.paste(views[0], (0, 0))
    frame.paste(views[1], (SIZE[0] // 2, 0))
    return frame


def _empty_view(a: Actor, size: tuple[int, int]) -> Image.Image:
    """An empty lane: the first scene, so far out of focus that nothing on it can be read."""
    assert a.base is not None
    im = a.base.resize((size[0] // 16, size[1] // 16), Image.BILINEAR).resize(size, Image.BILINEAR)
    return im.filter(ImageFilter.GaussianBlur(6))


ATTRIBUTION_HEAD = """# Attribution for the demo clips

The frames in these folders are derived works: street scenes from the two training sets below, cropped,
scaled, blurred and re-exposed to simulate a vehicle approaching a gate, with each scene's own plate
covered by a synthetic plate of known text (the other plates in a scene are pixelated). They were made by
`python -m hil build-demo` (hil/build_demo.py). The plates are synthetic: they belong to no vehicle.

## Sources

- **Open Images "Google Licence Plates" subset** (Roboflow export of Google's Open Images dataset):
  annotations CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), images CC BY 2.0
  (https://creativecommons.org/licenses/by/2.0/) by their Flickr authors. The Open Images image ID is the
  first part of each file name below (before `_jpg`); the author of each photo is listed for that ID in
  Open Images' metadata. Changes: cropped, scaled, blurred, exposure changed, plate replaced.
- **RobertLucian/license-plate-dataset** (Romanian dashcam frames), MIT licence (below). Changes as above.
- **Plate rendering**: `models/training/synth.py`, whose California plate template and plate font come
  from rjindael/ca-dmv-bot, MIT licence: Copyright (c) 2022-2024 rjindael (licence text below). Glyphs
  were also rendered with Debian's fonts (DejaVu, Liberation, URW base35, OpenDIN, Roboto, Bebas Neue);
  no font is included here.

## Scenes used, per clip
"""

MIT = """
## The MIT licence (RobertLucian/license-plate-dataset; rjindael/ca-dmv-bot, Copyright (c) 2022-2024 rjindael)

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def build(out: Path, check: bool = True) -> list[clips.Clip]:
    reader = None
    if check:
        from unit.recognise import Recogniser
        reader = Recogniser()
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    made, lines = [], []
    for spec in specs():
        clip, sources = build_clip(spec, out / spec.name, rng, reader, used)
        made.append(clip)
        lines.append(f"- `{spec.name}` ({spec.title}):")
        lines += [f"  - `{_rel(p)}`" for p in sources]
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION_HEAD + "\n".join(lines) + "\n" + MIT, "utf-8")
    return made


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    made = build(out, check=not args.no_check)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    for c in made:
        print(f"{c.name}: {len(c.frames)} frames ({len(c.files)} files), {len(c.edges)} edges, "
              f"vehicles {', '.join(v.plate + '@' + v.lane for v in c.truth.vehicles)}")
    print(f"{len(made)} clips in {out}, {total / 1e6:.1f} MB")
    return 0
