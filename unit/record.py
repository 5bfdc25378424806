"""Record a clip at the gate (`alpr-unit record-clip --seconds N OUT --config FILE`).

Camera frames (JPEG, as the camera gave them) and the real sensor edges of every lane with a sensor,
for N seconds, into the clip format of `unit.clips` (docs/hil.md). The vehicles expected are filled in
afterwards with `alpr-unit clip label OUT`.

The camera can be open in one process only: stop the service first (`systemctl stop alpr-unit`), record,
start it again. Frames are encoded and written by a second thread; if the SD card cannot keep up, frames
are dropped (counted in clip.json `capture.frames_dropped`), never the sensor edges. The clip holds
plates in clear, so it is written owner-only (0700): move it off the unit, and delete it there.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from unit import clips
from unit.config import UnitConfig
from unit.sensors import LaneSensor, Presence
from unit.sources import open_source
from unit.sources.frames import Edge, Frame, FrameSource, SourceEnded, encode_jpeg

log = logging.getLogger("unit.record")


class _Writer:
    """Encodes and writes frames off the capture thread; a full queue drops the frame (counted)."""

    def __init__(self, folder: Path, quality: int, depth: int = 32):
        self.folder, self.quality = folder, quality
        self.q: queue.Queue[tuple[str, Any] | None] = queue.Queue(depth)
        self.dropped = 0
        self.error: str = ""
        self.thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self.thread.start()

    def put(self, name: str, image: Any, block: bool = False) -> bool:
        try:
            self.q.put((name, image), block=block)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            name, image = item
            try:
                p = self.folder / name
                p.write_bytes(encode_jpeg(image, self.quality))
                os.chmod(p, 0o600)
            except OSError as exc:
                self.error = str(exc)
                self.dropped += 1

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()


def record(cfg: UnitConfig, out: str | Path, seconds: float, *, source: FrameSource | None = None,
           clock: Callable[[], float] | None = None, quality: int = 85, note: str = "") -> clips.Clip:
    """Record `seconds` of frames and sensor edges into a new clip folder `out`; returns the clip.

    `source` defaults to the config's camera (`unit.sources.open_source`: the Pi camera on a unit),
    `clock` to the source's; a replay source brings a clock that follows the recording, and its recorded
    edges are driven onto the (mock) pins, so a clip can be re-recorded anywhere through the same sensor
    code."""
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder}: exists and is not empty; give a new folder")
    if source is None:
        source = open_source(cfg)
    if clock is None:
        clock = getattr(source, "clock", None) or time.time
    (folder / clips.FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    os.chmod(folder / clips.FRAMES_DIR, 0o700)

    edges: list[clips.EdgeEvent] = []
    lock = threading.Lock()
    t0: list[float] = []          # the recording's start, set when the camera is open

    def emit(p: Presence) -> None:
        sensor = sensors.get(p.lane)
        if not t0 or sensor is None:
            return
        pin = sensor.device.pin
        level = int(bool(pin.state))
        with lock:
            edges.append(clips.EdgeEvent(max(0.0, p.t - t0[0]), p.lane, p.active, str(pin), level))

    sensors: dict[str, LaneSensor] = {}
    problems: list[str] = []
    for lane in cfg.lanes:
        if not lane.has_sensor:
            continue
        try:
            sensors[lane.name] = LaneSensor(lane, emit, clock)
        except Exception as exc:   # no GPIO here, pin busy: record the frames anyway, and say so
            problems.append(f"lane {lane.name}: sensor on pin {lane.sensor.pin} not opened ({type(exc).__name__}: {exc})")
            log.error("%s", problems[-1])
    writer = _Writer(folder / clips.FRAMES_DIR, quality)
    # a camera does not wait: a frame the card cannot take is dropped; a recording has time to wait
    wait = not getattr(source, "live", True)
    frames: list[clips.FrameRef] = []
    try:
        source.open()
        t0.append(clock())
        while True:
            try:
                item = source.read(timeout=0.5)
            except SourceEnded:
                break
            if clock() - t0[0] > seconds:
                break
            if isinstance(item, Edge):
                sensor = sensors.get(item.lane)
                if sensor is not None:
                    sensor.drive(item.active)
                continue
            if isinstance(item, Frame):
                name = f"{len(frames) + writer.dropped + 1:06d}.jpg"
                if writer.put(name, item.image, block=wait):
                    frames.append(clips.FrameRef(f"{clips.FRAMES_DIR}/{name}", max(0.0, item.t - t0[0])))
    finally:
        try:
            source.close()
        finally:
            writer.close()
            for s in sensors.values():
                s.close()
    if writer.error:
        problems.append(f"frames not written: {writer.error}")
    written = {f.file for f in frames if (folder / f.file).is_file()}
    frames = [f for f in frames if f.file in written]
    res = list(_size(folder / frames[0].file)) if frames else list(cfg.camera.resolution)
    capture = clips.capture_json(cfg.camera, cfg.unit_id, cfg.site, camera=cfg.camera.kind,
                                 seconds=seconds, frames_dropped=writer.dropped, jpeg_quality=quality)
    capture["resolution"] = res
    if note:
        capture["note"] = note
    if problems:
        capture["problems"] = problems
    clip = clips.Clip(folder, frames, sorted(edges, key=lambda e: e.t), clips.Truth(), capture,
                      [clips.lane_json(lane) for lane in cfg.lanes])
    clips.save(clip)
    for name in (clips.CLIP_FILE, clips.EVENTS_FILE, clips.TRUTH_FILE):
        os.chmod(folder / name, 0o600)
    return clip


def _size(p: Path) -> tuple[int, int]:
    from PIL import Image
    with Image.open(p) as im:
        return im.size
