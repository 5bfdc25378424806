"""Frame sources: the Pi camera on a unit, and replay of clips and still folders anywhere.

A source's `read(timeout)` gives the next `Frame`, an `Edge` (replay only: a recorded sensor change),
or None when nothing came in time (the capture loop turns a long run of None into a "stalled" camera).
A bad frame raises `BadFrame`; the loop logs it, counts it and carries on.

picamera2 is imported only inside `PiCameraSource`: it cannot be installed off a Pi.
"""
from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from PIL import Image, ImageFile

from unit.config import CameraConfig

ImageFile.LOAD_TRUNCATED_IMAGES = False     # a truncated JPEG is an error, never half a picture
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MIN_SIDE = 16


class BadFrame(ValueError):
    """A frame that cannot be used (empty, wrong shape or type, undecodable); the message says why."""


class SourceEnded(Exception):
    """A replay has no more events."""


@dataclass
class Frame:
    image: np.ndarray      # RGB uint8, H x W x 3
    t: float               # clock seconds (UTC epoch) when it was captured
    seq: int               # increasing per source; lets stages share work on one frame


@dataclass
class Edge:
    """A recorded sensor change in a replay; the replay driver turns it into a pin change."""
    lane: str
    active: bool
    t: float


class FrameSource(Protocol):
    def open(self) -> None: ...
    def read(self, timeout: float) -> Frame | Edge | None: ...
    def close(self) -> None: ...


class ManualClock:
    """A clock that only moves when told: replay and tests use it so times follow the recording."""

    def __init__(self, t: float = 1_700_000_000.0):
        self._t = float(t)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = max(self._t, float(t))

    def advance(self, dt: float) -> float:
        with self._lock:
            self._t += dt
            return self._t


def check_frame(image: object) -> np.ndarray:
    """Return the image if it is a usable RGB uint8 frame, else raise BadFrame saying why."""
    if image is None:
        raise BadFrame("no image (None)")
    if not isinstance(image, np.ndarray):
        raise BadFrame(f"not an array ({type(image).__name__})")
    if image.size == 0:
        raise BadFrame(f"empty frame {image.shape}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise BadFrame(f"wrong shape {image.shape}, expected H x W x 3")
    if image.dtype != np.uint8:
        raise BadFrame(f"wrong dtype {image.dtype}, expected uint8")
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise BadFrame(f"frame too small {image.shape}")
    return image


def decode_image(data: bytes | str | Path) -> np.ndarray:
    """Decode a JPEG/PNG (bytes or path) to RGB uint8; truncated or corrupt data raises BadFrame."""
    try:
        src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
        with Image.open(src) as im:
            im.load()
            return check_frame(np.asarray(im.convert("RGB")))
    except BadFrame:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadFrame(f"cannot decode image: {exc}") from None


def encode_jpeg(image: np.ndarray, quality: int = 85, max_width: int | None = None) -> bytes:
    im = Image.fromarray(image)
    if max_width and im.width > max_width:
        im = im.resize((max_width, max(1, round(im.height * max_width / im.width))), Image.BILINEAR)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


# --- replay -----------------------------------------------------------------------------------------
@dataclass
class _Event:
    t: float                          # seconds from the start of the recording
    path: Path | None = None          # a frame to decode
    edge: tuple[str, bool] | None = None


def stills_schedule(paths: list[Path], lane: str, cam: CameraConfig, gap_s: float = 3.0) -> list[_Event]:
    """Each still is one vehicle passing `lane`: a few frames before the sensor edge (they fill the
    pre-trigger ring), the edge, a burst's worth of frames at burst rate, the falling edge, then a gap."""
    events: list[_Event] = []
    t = 0.0
    pre_dt, burst_dt = 1.0 / cam.fps, 1.0 / cam.burst_fps
    for p in paths:
        for _ in range(cam.pre_trigger_frames):
            events.append(_Event(t, path=p))
            t += pre_dt
        events.append(_Event(t, edge=(lane, True)))
        for i in range(cam.burst_frames):
            events.append(_Event(t + i * burst_dt + 1e-3, path=p))
        t += cam.burst_frames * burst_dt + 1e-3
        events.append(_Event(t, edge=(lane, False)))
        t += gap_s
    return events


def clip_schedule(folder: Path) -> list[_Event]:
    """A clip folder: `clip.json` = {"frames": [{"file", "t"}...], "edges": [{"t", "lane", "active"}...]},
    times in seconds from the start; frames are image files beside it."""
    try:
        meta = json.loads((folder / "clip.json").read_text("utf-8"))
        events = [_Event(float(f["t"]), path=folder / f["file"]) for f in meta.get("frames", [])]
        events += [_Event(float(e["t"]), edge=(str(e["lane"]), bool(e["active"]))) for e in meta.get("edges", [])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{folder}/clip.json: not a usable clip ({exc})") from None
    # an edge at the same instant as a frame goes first: the sensor saw it before the frame arrived
    events.sort(key=lambda e: (e.t, e.edge is None))
    return events


def list_stills(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class ReplaySource:
    """Replays a clip folder (with `clip.json`) or a folder of stills through the unit's pipeline.

    Times come from the recording, offset to `start`, and are pushed into `clock` (a ManualClock) as
    each event is handed out, so everything downstream sees recorded time. `realtime=True` paces events
    on the wall clock as they were recorded. A still decoded once is reused for all its frames.
    """

    def __init__(self, source: str | Path, cam: CameraConfig, lane: str, clock: ManualClock | None = None,
                 start: float | None = None, realtime: bool = False, gap_s: float = 3.0):
        self.path = Path(source)
        if not self.path.is_dir():
            raise ValueError(f"{self.path}: replay source must be a clip folder or a folder of stills")
        if (self.path / "clip.json").exists():
            self._events = clip_schedule(self.path)
        else:
            stills = list_stills(self.path)
            if not stills:
                raise ValueError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no clip.json")
            self._events = stills_schedule(stills, lane, cam, gap_s)
        self.clock = clock or ManualClock()
        self.start = self.clock() if start is None else start
        self.realtime = realtime
        self._i = 0
        self._seq = 0
        self._cache: tuple[Path, np.ndarray] | None = None
        self._wall0: float | None = None

    def __len__(self) -> int:
        return len(self._events)

    @property
    def frames(self) -> int:
        return sum(1 for e in self._events if e.path is not None)

    def open(self) -> None:
        self._wall0 = time.monotonic()

    def close(self) -> None:
        self._cache = None

    def read(self, timeout: float = 0.0) -> Frame | Edge | None:
        if self._i >= len(self._events):
            raise SourceEnded()
        ev = self._events[self._i]
        self._i += 1
        if self.realtime and self._wall0 is not None:
            delay = self._wall0 + ev.t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        t = self.start + ev.t
        self.clock.set(t)
        if ev.edge is not None:
            return Edge(lane=ev.edge[0], active=ev.edge[1], t=t)
        assert ev.path is not None
        if self._cache is None or self._cache[0] != ev.path:
            self._cache = None
            image = decode_image(ev.path)        # BadFrame propagates: the loop logs and skips it
            self._cache = (ev.path, image)
        self._seq += 1
        return Frame(self._cache[1], t, self._seq)


# --- Pi camera ----------------------------------------------------------------------------------------
class PiCameraSource:
    """The Pi camera through picamera2, set for moving vehicles: fixed short exposure (freezes motion),
    analogue gain kept within [gain_min, gain_max] (noise at night), fixed focus at `lens_position`."""

    def __init__(self, cam: CameraConfig, clock: Callable[[], float] = time.time):
        self.cfg = cam
        self.clock = clock
        self._picam = None
        self._seq = 0

    def open(self) -> None:
        from picamera2 import Picamera2          # only here: it exists on a Pi alone

        picam = Picamera2()
        controls: dict[str, object] = {
            "ExposureTime": int(self.cfg.shutter_us),
            "FrameDurationLimits": (int(1e6 / self.cfg.fps), int(1e6 / self.cfg.fps)),
            "AnalogueGain": float(self.cfg.gain_min),
        }
        if self.cfg.lens_position is not None:
            controls.update({"AfMode": 0, "LensPosition": float(self.cfg.lens_position)})   # 0 = manual
        # "BGR888" in libcamera's naming is R, G, B byte order in memory, which is the RGB array we want.
        config = picam.create_video_configuration(main={"size": tuple(self.cfg.resolution), "format": "BGR888"},
                                                  controls=controls, buffer_count=4)
        picam.configure(config)
        picam.start()
        self._picam = picam

    def read(self, timeout: float) -> Frame | None:
        if self._picam is None:
            self.open()
        job = self._picam.capture_request(wait=False)
        try:
            request = self._picam.wait(job, timeout=timeout)
        except TimeoutError:
            return None
        try:
            image = request.make_array("main")
            self._clamp_gain(request.get_metadata())
        finally:
            request.release()
        self._seq += 1
        return Frame(check_frame(image), self.clock(), self._seq)

    def _clamp_gain(self, meta: dict) -> None:
        """Auto gain above the limit makes noise that the OCR cannot read through: pin it at the cap."""
        if meta.get("AnalogueGain", 0.0) > self.cfg.gain_max:
            self._picam.set_controls({"AnalogueGain": float(self.cfg.gain_max)})

    def close(self) -> None:
        if self._picam is not None:
            try:
                self._picam.stop()
                self._picam.close()
            finally:
                self._picam = None


# --- pushed frames ------------------------------------------------------------------------------------
class QueueSource:
    """Frames pushed in by another part of the program (a test, a benchmark, a HIL harness).

    `join()` waits until every pushed frame has been taken by the capture loop, so a caller can order
    frames against pin changes exactly as a camera and a sensor would.
    """

    def __init__(self, clock: Callable[[], float] = time.time, maxsize: int = 0):
        import queue

        self.clock = clock
        self._q: "queue.Queue[Frame | None]" = queue.Queue(maxsize)
        self._empty = queue.Empty
        self._seq = 0
        self._ended = False
        self._taken = False

    def push(self, image: np.ndarray, t: float | None = None) -> None:
        self._seq += 1
        self._q.put(Frame(image, self.clock() if t is None else t, self._seq))

    def end(self) -> None:
        """No more frames: the capture loop stops as it would at the end of a replay."""
        self._q.put(None)

    def join(self) -> None:
        self._q.join()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        # the frame handed out last time counts as done only now, once the loop has passed it on
        if self._taken:
            self._taken = False
            self._q.task_done()
        if self._ended:
            raise SourceEnded()
        try:
            frame = self._q.get(timeout=timeout)
        except self._empty:
            return None
        if frame is None:
            self._q.task_done()
            self._ended = True
            raise SourceEnded()
        self._taken = True
        return frame
