"""The HIL harness: recorded clips through the real unit service into a real central store on loopback.

For each clip: a unit config is made from the harness's base config (the embedded defaults, or
`--config`) with the clip's lanes and wiring, a replay camera on the clip, and an [uplink] to the
store; gpiozero's `MockFactory` supplies the pins. Then `unit.service.UnitService` - the class
`alpr-unit run` runs, uplink and heartbeat threads included - runs it: the replay source hands out
frames and, at their recorded times, sensor edges that are driven onto the mock pins, so the sensor
code, the bursts, recognition, voting, sealing, the buffer and the uplink are the unit's own. The
store's reads are watched as they arrive and scored against the clip's truth (`hil.report`).

Modes: as fast as possible (default: times follow the recording on a manual clock, nothing is dropped
for backlog, so a run gives the same reads every time) and real time (`realtime=True`: the clip is
paced on the wall clock and the unit runs live, dropping frames if recognition falls behind, as on a
Pi).

With `camera="rtsp"` the clip reaches the unit as an IP camera's would: a real RTSP server on loopback
(`hil.rtsp_server`, a child process) sends its frames as H.264 in real time, the unit's camera is the
`rtsp` kind, and the clip's sensor edges are driven onto the mock pins at their wall times by a thread
of their own, as real sensors act whatever the camera does. This mode is always real time; what it
reads, against the same clips replayed directly, is what H.264 and a network hop cost.
"""
from __future__ import annotations

import copy
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from unit import clips as clips_mod
from unit.config import RecognitionConfig, UnitConfig, parse
from unit.service import UnitService
from unit.sources import open_source
from unit.sources.frames import Edge, FrameSource, ManualClock, SourceEnded, decode_image
from wire.times import parse_utc, utc_ms

from hil.central import Enrolment, ReadWatcher, StoredRead
from hil.report import ClipResult, ReadItem, Report, score

# what a unit runs with unless --config says otherwise (the example config's values, replay camera)
BASE_CONFIG: dict[str, Any] = {
    "camera": {"kind": "replay", "resolution": [1280, 720], "fps": 10, "pre_trigger_frames": 3,
               "burst_frames": 5, "burst_fps": 10, "stall_after_s": 30},
    "recognition": {"threads": 1},
    "dedup": {"window_s": 10, "max_edits": 1},
    "log": {"level": "WARNING", "format": "text"},
    "health": {"interval_s": 0.5},
}
RTSP_LEAD_S = 2.0      # the RTSP server starts the clip this long after the unit starts connecting
RTSP_TAIL_S = 1.5      # and the unit's camera is ended this long after the clip's last frame
RTSP_STALL_S = 3.0
UPLINK_DEFAULTS = {"idle_s": 0.05, "backoff_base_s": 0.2, "backoff_cap_s": 2.0, "batch_size": 50,
                   "heartbeat_interval_s": 60, "connect_timeout_s": 2.0, "read_timeout_s": 10.0}


@dataclass
class Options:
    realtime: bool = False
    base_config: dict[str, Any] | None = None      # unit TOML tables laid over BASE_CONFIG (lanes, camera
                                                   # source, buffer, uplink and identity come from the run)
    drain_s: float = 30.0                          # how long the uplink may take to deliver a clip's reads
    timeout_s: float = 600.0                       # one clip's replay, at most
    baseline: bool = False                         # also read each made clip's source photo with the recogniser
    workdir: Path = Path(".")
    camera: str = "replay"                         # "rtsp": the clip served over RTSP as H.264 (real time)
    rtsp_args: tuple[str, ...] = ()                # extra hil.rtsp_server options (--bitrate N)


class TimedSource:
    """A camera source that notes the wall time at which each sensor edge is handed to the unit (it
    drives the pin at once), keyed as the read's trigger names it: (lane, edge time). A live camera
    never ends by itself: `ends_at` (wall time) ends it, as a recording ends."""

    def __init__(self, source: FrameSource, ends_at: float | None = None):
        self.source = source
        self.clock, self.live = source.clock, source.live
        self.ends_at = ends_at
        self.edge_wall: dict[tuple[str, str], float] = {}

    def open(self) -> None:
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def health(self) -> dict[str, Any] | None:
        figures = getattr(self.source, "health", None)
        return figures() if callable(figures) else None

    def read(self, timeout: float = 0.0):
        if self.ends_at is not None and time.time() > self.ends_at:
            raise SourceEnded()
        item = self.source.read(timeout)
        if isinstance(item, Edge):
            self.edge_wall[(item.lane, utc_ms(item.t))] = time.time()
        return item


class SensorPlayer:
    """A clip's sensor edges driven onto the unit's (mock) pins at wall time `t0 + t`, from a thread of
    their own: sensors do not wait for the camera. The wall time of each edge is noted in `edge_wall`
    under every millisecond the unit may have stamped it with."""

    def __init__(self, clip: clips_mod.Clip, unit: Any, t0: float, edge_wall: dict[tuple[str, str], float]):
        self.clip, self.unit, self.t0, self.edge_wall = clip, unit, t0, edge_wall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hil-sensors", daemon=True)

    def start(self) -> "SensorPlayer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        for e in sorted(self.clip.edges, key=lambda e: e.t):
            if self._stop.wait(max(0.0, self.t0 + e.t - time.time())):
                return
            lane = self.unit.lanes.get(e.lane)
            if lane is None or lane.sensor is None:
                continue
            before = time.time()
            lane.sensor.drive(e.active)
            after = time.time()
            for ms in range(int(before * 1000), int(after * 1000) + 1):
                self.edge_wall[(e.lane, utc_ms(ms / 1000))] = before


def load_base_config(path: str | Path | None) -> dict[str, Any] | None:
    if not path:
        return None
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    doc.setdefault("_base", str(Path(path).resolve().parent))
    return doc


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, table by table (a unit TOML may set only what it changes)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def clip_camera_and_lanes(cam: dict[str, Any], clip: clips_mod.Clip) -> list[dict[str, Any]]:
    """Set `cam`'s resolution and frame rate to the clip's as recorded; return a copy of its lanes (a clip
    without lanes cannot have its sensors wired: ValueError)."""
    cap = clip.capture
    if isinstance(cap.get("resolution"), list) and len(cap["resolution"]) == 2:
        cam["resolution"] = [int(v) for v in cap["resolution"]]
    if isinstance(cap.get("fps"), (int, float)) and cap["fps"] > 0:
        cam["fps"] = float(cap["fps"])
    if not clip.lanes:
        raise ValueError(f"{clip.path}: clip.json names no lanes; its sensors cannot be wired")
    return copy.deepcopy(clip.lanes)


def unit_config(clip: clips_mod.Clip, enrolment: Enrolment, workdir: Path, opts: Options,
                rtsp_url: str = "") -> UnitConfig:
    """The config one clip is replayed with: base config + the clip's lanes and camera + the uplink.
    With `rtsp_url` the camera is that stream instead of the clip's folder."""
    doc = merge(BASE_CONFIG, opts.base_config or {})
    base_dir = Path(doc.pop("_base", "."))
    doc["unit_id"], doc["site"] = enrolment.unit_id, enrolment.site
    doc["central"] = {"public_key": enrolment.sealing_public_key}
    cam = doc.setdefault("camera", {})
    if rtsp_url:
        cam["kind"] = "rtsp"
        cam["rtsp"] = {**cam.get("rtsp", {}), "url": rtsp_url}
        cam["stall_after_s"] = RTSP_STALL_S
    else:
        cam["kind"] = "replay"
        cam["replay"] = {**cam.get("replay", {}), "path": str(clip.path.resolve())}
    doc["lanes"] = clip_camera_and_lanes(cam, clip)
    doc["buffer"] = {**doc.get("buffer", {}), "path": str(workdir / "buffer.sqlite")}
    doc["health"] = {**doc.get("health", {}), "status_path": str(workdir / "status.json")}
    doc.pop("hotlist", None)
    doc["uplink"] = {**UPLINK_DEFAULTS, **{k: v for k, v in doc.get("uplink", {}).items()
                                           if k not in ("url", "identity_key_path", "state_path")},
                     "url": enrolment.url, "identity_key_path": str(enrolment.key_path),
                     "central_signing_key": enrolment.signing_public_key,
                     "state_path": str(workdir / "uplink.json"), "drain_s": opts.drain_s}
    return parse(doc, base=base_dir, path="")


class Harness:
    """Runs clips one after another through `UnitService` as one enrolled unit; see the module text."""

    def __init__(self, enrolment: Enrolment, db_url: str, opts: Options | None = None,
                 on_read: Callable[[StoredRead, "ClipRun"], None] | None = None,
                 recogniser_factory: Callable[[], Any] | None = None,
                 on_burst: Callable[["ClipRun", Any, list[Any], int], None] | None = None):
        self.enrolment, self.db_url = enrolment, db_url
        self.opts = opts or Options()
        self.on_read = on_read
        self.on_burst = on_burst          # (clip run, trigger, voting frame reads, frames) per closed burst
        self._recognisers: dict[RecognitionConfig, Any] = {}
        self._factory = recogniser_factory
        self.run_id = f"HIL-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.current: ClipRun | None = None
        self.models: dict[str, str] = {}

    def recogniser(self, rec: RecognitionConfig) -> Any:
        """The recogniser a unit with `rec` runs (`unit.recognise.from_config`), made once for every
        clip that shares it (the unit's own holder would load the models per clip)."""
        if rec not in self._recognisers:
            if self._factory is not None:
                self._recognisers[rec] = self._factory()
            else:
                from unit.recognise import from_config
                self._recognisers[rec] = from_config(rec)
        return self._recognisers[rec]

    def _arrived(self, s: StoredRead) -> None:
        run = self.current
        if run is not None:
            run.arrived(s)
            if self.on_read is not None:
                self.on_read(s, run)

    def run(self, clip_paths: list[Path]) -> Report:
        watcher = ReadWatcher(self.db_url, self.enrolment.unit_id, self.run_id, self._arrived).start()
        results: list[ClipResult] = []
        try:
            for path in clip_paths:
                results.append(self.run_clip(Path(path), watcher))
        finally:
            watcher.stop()
        mode = ("real time, camera over RTSP (H.264)" if self.opts.camera == "rtsp"
                else "real time" if self.opts.realtime else "as fast as possible")
        return Report(mode, results,
                      self.enrolment.url, self.models)

    def run_clip(self, path: Path, watcher: ReadWatcher) -> ClipResult:
        from gpiozero import Device
        from gpiozero.pins.mock import MockFactory

        t_wall = time.monotonic()
        try:
            clip = clips_mod.load(path)
        except clips_mod.ClipError as exc:
            return ClipResult(path.name, error=str(exc))
        workdir = self.opts.workdir / "units" / clip.name
        workdir.mkdir(parents=True, exist_ok=True)
        run = ClipRun(clip)
        self.current = run
        previous = Device.pin_factory
        Device.pin_factory = MockFactory()
        cfg: UnitConfig | None = None
        camera = sensors = None
        try:
            if self.opts.camera == "rtsp":
                from hil.rtsp_server import CameraServer
                camera = CameraServer(clip.path, t0=time.time() + RTSP_LEAD_S, args=self.opts.rtsp_args).start()
                cfg = unit_config(clip, self.enrolment, workdir, self.opts, rtsp_url=camera.url)
                clock: Any = time.time
                source = TimedSource(open_source(cfg), ends_at=camera.t0 + clip.duration_s + RTSP_TAIL_S)
                run.start, live = camera.t0, True
            else:
                cfg = unit_config(clip, self.enrolment, workdir, self.opts)
                clock = ManualClock(time.time())
                source = TimedSource(open_source(cfg, clock=clock, realtime=self.opts.realtime))
                run.start, live = clock(), self.opts.realtime
            run.source = source
            service = UnitService(cfg, source, clock=clock, live=live,
                                  recogniser_factory=lambda: self.recogniser(cfg.recognition), env={})
            service.unit.stage.listeners.append(lambda read, info: run.stored(read.read_id))
            if self.on_burst is not None:
                on_burst = self.on_burst
                service.unit.stage.burst_listeners.append(lambda trig, reads, frames: on_burst(run, trig, reads, frames))
            service.start()
            if camera is not None:
                sensors = SensorPlayer(clip, service.unit, camera.t0, source.edge_wall).start()
            self.models = dict(service.unit.models.versions)
            try:
                ended = service.unit.wait_ended(self.opts.timeout_s)
                if not ended:
                    run.error = f"replay did not end within {self.opts.timeout_s:.0f} s"
            finally:
                if sensors is not None:
                    sensors.stop()
                service.stop(drain_s=self.opts.drain_s)
            run.counters = dict(service.health.counters)
            if service.uplink is None:
                run.error = run.error or "the uplink did not start: " + str(service.health.get("uplink").get("detail", ""))
        except Exception as exc:
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            if camera is not None:
                camera.stop()
            Device.pin_factory.reset()
            Device.pin_factory = previous
        # the buffer said everything was acknowledged; give the watcher its last look at the store
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not run.error and set(run.unit_reads) - set(run.central):
            watcher.poll()
            time.sleep(0.05)
        self.current = None
        items = [run.item(s) for s in run.central.values()]
        undelivered = len(set(run.unit_reads) - set(run.central))
        res = score(clip, items, len(run.unit_reads), undelivered, time.monotonic() - t_wall)
        res.error = run.error
        res.counters = run.counters
        if self.opts.baseline and cfg is not None:
            res.baseline_exact = self._baseline(clip, cfg.recognition)
        return res

    def _baseline(self, clip: clips_mod.Clip, rec: RecognitionConfig) -> int | None:
        photo = (clip.extra.get("source") or {}).get("photo")
        if not photo or not Path(photo).exists() or not clip.truth.vehicles:
            return None
        reads = self.recogniser(rec).read(decode_image(Path(photo)))
        return int(bool(reads) and clips_mod.normalise_plate(reads[0].text) == clip.truth.vehicles[0].plate)


@dataclass
class ClipRun:
    """One clip's run as it goes: what the unit stored, what reached the store."""
    clip: clips_mod.Clip
    start: float = 0.0
    source: TimedSource | None = None
    unit_reads: list[str] = field(default_factory=list)
    central: dict[str, StoredRead] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    error: str = ""

    def stored(self, read_id: str) -> None:
        self.unit_reads.append(read_id)

    def arrived(self, s: StoredRead) -> None:
        self.central[s.read_id] = s

    def rel_t(self, s: StoredRead) -> float:
        """Seconds from the clip's start: the read's sensor edge, else its capture time."""
        if s.edge_at:
            try:
                return parse_utc(s.edge_at).timestamp() - self.start
            except ValueError:
                pass
        return s.captured_at - self.start

    def latency(self, s: StoredRead) -> float | None:
        if self.source is None or not s.edge_at:
            return None
        wall = self.source.edge_wall.get((s.lane, s.edge_at))
        return None if wall is None else max(0.0, s.received_at - wall)

    def item(self, s: StoredRead) -> ReadItem:
        return ReadItem(s.read_id, s.lane, s.plate, s.confidence, round(self.rel_t(s), 3), self.latency(s),
                        low_confidence=s.low_confidence)

    def expected(self, s: StoredRead) -> str:
        """For the live display: the truth this read looks like (same lane, nearest in time)."""
        t = self.rel_t(s)
        tol = self.clip.truth.tolerance_s
        near = sorted((abs(v.t - t), v.plate) for v in self.clip.truth.vehicles if v.lane == s.lane and abs(v.t - t) <= tol)
        return near[0][1] if near else ""
