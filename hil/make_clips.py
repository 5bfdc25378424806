"""`python -m hil make-clips SRC OUT`: clips from a folder of real photos in the benchmark format.

SRC holds `NAME.jpg` + `NAME.txt` (one tab-separated line `NAME.jpg x y w h PLATE`, the openalpr
end-to-end benchmark format). Each photo becomes one clip: a vehicle approaching the gate, simulated
from the still (scale, motion blur, exposure changes; `hil.sim`), with a loop-detector edge when it
arrives and the plate of the .txt as the truth. So real photos go through the whole unit - sensor,
bursts, recognition on every frame, voting, sealing, uplink, central store - not just the recogniser.

Timeline of one clip (10 frames a second): four frames while the vehicle comes (0.72 to 0.9 of its
photographed size, blur fading), the loop fires at 0.35 s, five more frames as it slows to a stop (the
last three at the photographed size: one of them the photo itself, untouched), the loop releases at
0.95 s. The unit's pre-trigger ring keeps the three frames before the edge; its burst takes the five
after it.

Photos from ../shared/data/benchmark (AGPL-3.0) are split into train and valid by a hash of the name
(`split_of`, as ../shared/data/SOURCES.md fixes it): `--split valid` makes clips from the valid photos
only, which is what settings are chosen on. Make clips from them into a temporary folder at run time;
never commit them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from hil import sim
from unit import clips

FPS = 10.0
N_BEFORE, N_BURST = 4, 5
EDGE_T, RELEASE_T = 0.35, 0.95
LANE = {"name": "gate", "direction": "in", "roi": [0.0, 0.0, 1.0, 1.0],
        "sensor": {"kind": "loop", "pin": 17, "active_high": False, "pull_up": True}}


SPLITS = ("all", "train", "valid")


def split_of(stem: str) -> str:
    """'valid' or 'train' for a benchmark photo named `stem` (its file name without the extension): the
    fixed split of ../shared/data/SOURCES.md, an eighth of the names by their SHA-1."""
    return "valid" if int(hashlib.sha1(stem.encode("utf-8")).hexdigest(), 16) % 8 == 0 else "train"


def read_benchmark(folder: Path) -> list[tuple[Path, tuple[float, float, float, float], str]]:
    """(photo, plate box x0 y0 x1 y1, plate) for every NAME.jpg with a NAME.txt, sorted by name."""
    out = []
    for txt in sorted(folder.glob("*.txt")):
        parts = txt.read_text("utf-8", "replace").strip().split("\t")
        if len(parts) < 6:
            parts = txt.read_text("utf-8", "replace").split()
        if len(parts) < 6:
            continue
        photo = folder / parts[0]
        if not photo.exists():
            continue
        x, y, w, h = (float(v) for v in parts[1:5])
        plate = clips.normalise_plate(parts[5])
        if plate:
            out.append((photo, (x, y, x + w, y + h), plate))
    return out


def make_clip(photo: Path, box: tuple[float, float, float, float], plate: str, out: Path,
              quality: int = 92, seed: int = 0, max_width: int = 0) -> clips.Clip:
    name_seed = int(hashlib.sha256(photo.name.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed * 1_000_003 + name_seed)
    base = Image.open(photo).convert("RGB")
    scale_to = 1.0
    if max_width and base.width > max_width:
        scale_to = max_width / base.width
        base = base.resize((max_width, round(base.height * scale_to)), Image.LANCZOS)
    focus = ((box[0] + box[2]) / 2 * scale_to, (box[1] + box[3]) / 2 * scale_to)
    shots = sim.approach(N_BEFORE, N_BURST, rng, start_scale=0.72, end_scale=1.0, blur_far=4.0, exposure=0.12)
    untouched = N_BEFORE + N_BURST - 2           # one of the frames at full size is the photo as it is
    shots[untouched] = sim.Shot(1.0, 0.0, 1.0, 0.0)
    out.mkdir(parents=True, exist_ok=True)
    (out / clips.FRAMES_DIR).mkdir(exist_ok=True)
    frames = []
    for i, shot in enumerate(shots):
        name = f"{clips.FRAMES_DIR}/{i + 1:06d}.jpg"
        if i == untouched and scale_to == 1.0 and photo.suffix.lower() in (".jpg", ".jpeg"):
            shutil.copyfile(photo, out / name)
        else:
            (out / name).write_bytes(sim.jpeg(sim.render(base, focus, shot, rng), quality))
        frames.append(clips.FrameRef(name, round(i / FPS, 4)))
    edges = [clips.EdgeEvent(EDGE_T, LANE["name"], True, "GPIO17", 0),
             clips.EdgeEvent(RELEASE_T, LANE["name"], False, "GPIO17", 1)]
    truth = clips.Truth([clips.Vehicle(plate, LANE["name"], EDGE_T)], True, 2.0, "benchmark label")
    capture = {"unit_id": "simulated", "site": "simulated", "resolution": list(base.size), "fps": FPS,
               "shutter_us": None, "gain": None, "camera": "simulated approach from a still photo"}
    clip = clips.Clip(out, frames, edges, truth, capture, [LANE],
                      extra={"source": {"photo": str(photo.resolve()), "plate_box": list(box),
                                        "made_by": "hil.make_clips", "seed": seed}})
    clips.save(clip)
    return clip


def make_clips(src: Path, out: Path, limit: int = 0, names: list[str] | None = None, seed: int = 0,
               quality: int = 92, max_width: int = 0, split: str = "all") -> list[clips.Clip]:
    if split not in SPLITS:
        raise ValueError(f"split: one of {', '.join(SPLITS)}, not {split!r}")
    items = read_benchmark(src)
    if split != "all":
        items = [it for it in items if split_of(it[0].stem) == split]
    if names:
        wanted = set(names)
        items = [it for it in items if it[0].name in wanted or it[0].stem in wanted]
    if limit:
        items = items[:limit]
    out.mkdir(parents=True, exist_ok=True)
    made = [make_clip(p, box, plate, out / p.stem, quality, seed, max_width) for p, box, plate in items]
    (out / "SOURCE.md").write_text(
        f"Clips made by `python -m hil make-clips` from {src.resolve()} ({len(made)} photos"
        + (f", {split} split" if split != "all" else "") + ").\n"
        "If those photos are evaluation data (../shared/data/benchmark, AGPL-3.0), these clips are too:\n"
        "use them here, never commit them.\n", "utf-8")
    return made


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("make-clips", help="clips from a folder of photos in the benchmark format",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("src", help="folder with NAME.jpg + NAME.txt (x y w h PLATE)")
    p.add_argument("out", help="folder to write one clip per photo into")
    p.add_argument("--limit", type=int, default=0, help="only the first N photos (by name)")
    p.add_argument("--names", help="comma-separated photo names (or stems) to take")
    p.add_argument("--split", choices=SPLITS, default="all",
                   help="only the photos of this split of ../shared/data/SOURCES.md (by a hash of the name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality", type=int, default=92, help="JPEG quality of the simulated frames")
    p.add_argument("--max-width", type=int, default=0, help="downscale wider photos to this (default: keep)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    src = Path(args.src)
    if not src.is_dir():
        print(f"hil make-clips: {src}: not a folder", file=sys.stderr)
        return 2
    made = make_clips(src, Path(args.out), args.limit, args.names.split(",") if args.names else None,
                      args.seed, args.quality, args.max_width, args.split)
    if not made:
        print(f"hil make-clips: no NAME.jpg + NAME.txt pairs in {src}", file=sys.stderr)
        return 2
    print(json.dumps({"clips": len(made), "out": str(Path(args.out).resolve())}))
    return 0
