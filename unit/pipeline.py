"""Recognise, vote, seal, store: the stage that turns a burst's frames into one sealed read.

It takes `Work` from the burst assembler in order. Frames are recognised as they arrive (a frame shared by
two lanes' bursts, or sitting in the pre-trigger ring, is recognised once). On `Close` the burst's reads
are voted, repeats are suppressed, the `Read` is built (contract-validated), sealed to the central key and
put in the buffer. Nothing in clear is written anywhere on the way.

A burst whose plate was found and read, but whose vote stays below `min_read_confidence`, is dropped -
or, with `low_confidence_reads`, stored with its confidence as voted (so below the unit's threshold) and
`"low_confidence": true` in its `trigger`, for an officer to check against the crop and the candidates.
"""
from __future__ import annotations

import base64
import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from unit.buffer import BufferFull, SealedBuffer, StoreError
from unit.burst import Close, Discard, FrameWork, Open, Trigger, Work
from unit.config import LaneConfig, RecognitionConfig, UnitConfig
from unit.health import Health
from unit.hotlist import HotList
from unit.recognise import PlateRead
from unit.sources.frames import encode_jpeg
from unit.vote import (BELOW_THRESHOLD, LOW_CONFIDENCE_READ, NO_PLATE, Deduper, Thresholds, Vote, decide,
                       frame_votes)
from wire import seal
from wire.read import CANDIDATES_MAX, LABEL_MAX, PLATE_RE, REGION_RE, Read, ReadInvalid, validate
from wire.times import utc_ms

log = logging.getLogger("unit.pipeline")


def _fields(**kw: Any) -> dict[str, Any]:
    return {"fields": kw}


class ModelHolder:
    """Loads the recogniser, and if the model is missing or corrupt keeps retrying instead of crashing:
    a unit without a model is degraded (and says so), not dead, and picks a fixed model up by itself."""

    def __init__(self, cfg: RecognitionConfig, health: Health, factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg, self.health, self.clock = cfg, health, clock
        self.factory = factory or self._default_factory
        self.recogniser: Any = None
        self.versions: dict[str, str] = {}
        self.error = ""
        self._next_try = 0.0
        self._lock = threading.Lock()     # the health loop retries while recognition asks

    def _default_factory(self) -> Any:
        from unit.recognise import from_config
        return from_config(self.cfg)

    def get(self) -> Any:
        if self.recogniser is not None or self.clock() < self._next_try:
            return self.recogniser
        with self._lock:
            if self.recogniser is not None or self.clock() < self._next_try:
                return self.recogniser
            return self._load()

    def _load(self) -> Any:
        try:
            rec = self.factory()
            versions = {str(k): str(v) for k, v in dict(rec.versions()).items()}
        except Exception as exc:   # missing file, corrupt flatbuffer, wrong shapes, import error: all the same here
            self.error = f"{type(exc).__name__}: {exc}"
            self._next_try = self.clock() + self.cfg.retry_model_s
            if self.health.set("model", "error", self.error):
                log.error("recogniser unavailable, retrying every %.0f s: %s", self.cfg.retry_model_s, self.error,
                          extra=_fields(event="model_error"))
            return None
        self.recogniser, self.versions, self.error = rec, versions, ""
        self.health.set("model", "ok", versions=versions)
        self.health.note("model_versions", versions)
        log.info("recogniser loaded", extra=_fields(event="model_loaded", versions=versions))
        return rec


@dataclass
class _Seen:
    read: PlateRead
    t: float
    image: np.ndarray | None     # kept only when a context frame is wanted


@dataclass
class _Burst:
    trigger: Trigger
    lane: LaneConfig
    opened: float                              # wall clock, for latency figures
    frames: int = 0
    recognised: int = 0
    seen: list[_Seen] = field(default_factory=list)


def _label(text: str) -> str:
    """A label as the contract takes it: no control characters, at most LABEL_MAX characters."""
    return "".join(ch for ch in text if ch.isprintable())[:LABEL_MAX] or "?"


def _in_roi(box: tuple[int, int, int, int], shape: tuple[int, ...], roi: tuple[float, float, float, float]) -> bool:
    h, w = shape[:2]
    cx, cy = (box[0] + box[2]) / 2 / w, (box[1] + box[3]) / 2 / h
    return roi[0] <= cx <= roi[2] and roi[1] <= cy <= roi[3]


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, max(x0 + 1, int(box[2]))), min(h, max(y0 + 1, int(box[3])))
    return np.ascontiguousarray(image[y0:y1, x0:x1])


class RecognitionStage:
    """Single consumer of Work. `apply()` swaps in a live-reloaded config between items."""

    def __init__(self, cfg: UnitConfig, models: ModelHolder, buffer: SealedBuffer | None, health: Health,
                 hotlist: HotList | None = None, wall: Callable[[], float] = time.monotonic):
        self.cfg, self.models, self.buffer, self.health = cfg, models, buffer, health
        self.hotlist = hotlist or HotList()
        self.wall = wall
        self.lanes = {lane.name: lane for lane in cfg.lanes}
        self.deduper = Deduper(cfg.dedup.window_s, cfg.dedup.max_edits)
        self.bursts: dict[str, _Burst] = {}
        # by (seq, t): a source that starts its numbering again after a reopen never gets old reads back
        self._cache: collections.OrderedDict[tuple[int, float], list[PlateRead]] = collections.OrderedDict()
        self._cache_size = cfg.camera.pre_trigger_frames + cfg.camera.burst_frames + 2
        self.listeners: list[Callable[[Read, dict[str, Any]], None]] = []
        # each closed burst's voting frame reads, before the vote: (trigger, reads, frames) (hil.sweep records them)
        self.burst_listeners: list[Callable[[Trigger, list[PlateRead], int], None]] = []
        # a storage error: (buffer, error) -> the buffer to use now (set by the unit: `Unit.storage_error`)
        self.on_storage_error: Callable[[SealedBuffer, BaseException], SealedBuffer | None] | None = None

    def apply(self, cfg: UnitConfig) -> None:
        """Go on with `cfg`, the running config with a reload's live keys applied (`config.merge_live`):
        thresholds and the dedup window; the hot list is the unit's to swap."""
        self.cfg = cfg
        self.deduper.window_s, self.deduper.max_edits = cfg.dedup.window_s, cfg.dedup.max_edits

    def handle(self, item: Work) -> Read | None:
        if isinstance(item, Open):
            lane = self.lanes[item.trigger.lane]
            self.bursts[item.trigger.read_id] = _Burst(item.trigger, lane, self.wall())
            self.health.count("bursts")
        elif isinstance(item, FrameWork):
            self._frame(item)
        elif isinstance(item, Discard):
            if self.bursts.pop(item.read_id, None) is not None:
                self.health.count("glitches")
                log.debug("burst discarded: %s", item.reason, extra=_fields(read_id=item.read_id))
        elif isinstance(item, Close):
            burst = self.bursts.pop(item.read_id, None)
            if burst is not None:
                return self._finish(burst)
        return None

    def _recognise(self, work: FrameWork) -> list[PlateRead] | None:
        seq = (work.frame.seq, work.frame.t)
        if seq in self._cache:
            return self._cache[seq]
        rec = self.models.get()
        if rec is None:
            return None
        try:
            reads = list(rec.read(work.frame.image))
        except Exception as exc:
            self.health.count("recognise_errors")
            log.error("recognition failed on a frame: %s: %s", type(exc).__name__, exc,
                      extra=_fields(event="recognise_error"))
            return None
        self._cache[seq] = reads
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return reads

    def _frame(self, work: FrameWork) -> None:
        targets = [self.bursts[r] for r in work.read_ids if r in self.bursts]
        if not targets:
            return
        reads = self._recognise(work)
        th = Thresholds.of(self.cfg.recognition)
        for burst in targets:
            burst.frames += 1
            if reads is None:
                continue
            burst.recognised += 1
            for r in reads:
                if not frame_votes(r, th):
                    continue
                if not PLATE_RE.match(r.text):      # the contract's plate shape; anything else cannot vote
                    continue
                if not _in_roi(r.box, work.frame.image.shape, burst.lane.roi):
                    continue
                if r.crop is None:
                    r.crop = _crop(work.frame.image, r.box)
                burst.seen.append(_Seen(r, work.frame.t, work.frame.image if self.cfg.camera.context_frame else None))

    def _finish(self, burst: _Burst) -> Read | None:
        trig, rc = burst.trigger, self.cfg.recognition
        ids = _fields(read_id=trig.read_id, lane=trig.lane)
        if not burst.frames:        # a vehicle, and not one recent frame of it: the camera is not delivering
            self.health.count("bursts_without_frames")
            camera = self.health.get("camera").get("state")
            if camera in (None, "ok"):
                self.health.set("camera", "no_frames", f"a vehicle on lane {trig.lane} got no frames from the camera")
            log.error("a vehicle on lane %s got no frames from the camera (camera %s): no read", trig.lane,
                      camera or "unknown", extra=_fields(read_id=trig.read_id, lane=trig.lane, event="no_frames"))
            return None
        if burst.frames and not burst.recognised:
            self.health.count("unrecognised")
            log.warning("burst not recognised: no recogniser (%s)", self.models.error or "frames failed",
                        extra=_fields(read_id=trig.read_id, lane=trig.lane, event="unrecognised"))
            return None
        seen = [s.read for s in burst.seen]
        for fn in self.burst_listeners:
            fn(trig, seen, burst.frames)
        v, outcome = decide(seen, Thresholds.of(rc))
        if v is None or outcome == NO_PLATE:
            self.health.count("no_plate")
            log.info("burst without a readable plate (%d frames)", burst.frames, extra=ids)
            return None
        if outcome == BELOW_THRESHOLD:
            self.health.count("low_confidence")
            log.info("burst read below min_read_confidence (%.2f)", v.confidence, extra=ids)
            return None
        if self.deduper.seen(trig.lane, v.plate, trig.edge_t):
            self.health.count("duplicates")
            log.info("same vehicle again within the dedup window; no new read", extra=ids)
            return None
        low = outcome == LOW_CONFIDENCE_READ
        if low:
            self.health.count("low_confidence_reads")
        read = self._build(burst, v, low_confidence=low)
        try:
            validate(read.to_payload())
        except ReadInvalid as exc:      # the store would refuse it: say so here rather than lose it there
            self.health.count("invalid_reads")
            log.error("read does not satisfy the contract, not stored: %s", exc,
                      extra=_fields(read_id=trig.read_id, lane=trig.lane, event="invalid_read"))
            return None
        if not self.store(read):
            return None
        latency = self.wall() - burst.opened
        self.health.count("reads")
        self.health.note("last_read", {"read_id": read.read_id, "captured_at": read.captured_at, "lane": read.lane,
                                       "confidence": read.confidence, "frames": burst.frames})
        log.info("read stored", extra=_fields(read_id=read.read_id, lane=read.lane, event="read",
                                              confidence=read.confidence, frames=burst.frames,
                                              latency_ms=round(latency * 1000, 1)))
        self._hotlist(read)
        for fn in self.listeners:
            fn(read, {"latency_s": latency, "frames": burst.frames})
        return read

    def _build(self, burst: _Burst, v: Vote, low_confidence: bool = False) -> Read:
        trig = burst.trigger
        best = burst.seen[v.best_index]
        crop = best.read.crop if best.read.crop is not None else np.zeros((8, 8, 3), np.uint8)
        context = None
        if self.cfg.camera.context_frame and best.image is not None:
            context = base64.b64encode(encode_jpeg(best.image, 80, self.cfg.camera.context_width)).decode("ascii")
        # what the contract would refuse is left out or cut to its limits here, not lost at the store:
        # candidates that are not plates, a region guess of another shape, over-long labels
        candidates = [{"plate": c.plate, "score": round(min(1.0, max(0.0, float(c.score))), 4)}
                      for c in v.candidates if PLATE_RE.fullmatch(c.plate)][:CANDIDATES_MAX]
        return Read(
            read_id=trig.read_id, unit_id=self.cfg.unit_id, site=self.cfg.site, lane=burst.lane.name,
            direction=burst.lane.direction, captured_at=utc_ms(best.t), plate=v.plate,
            region=v.region if v.region and REGION_RE.fullmatch(v.region) else "",
            confidence=round(float(v.confidence), 4), candidates=candidates,
            box=[int(x) for x in best.read.box],
            model={_label(k): _label(str(val)) for k, val in self.models.versions.items()},
            trigger={"sensor": _label(trig.sensor), "kind": trig.kind, "edge_at": utc_ms(trig.edge_t),
                     "frames": burst.frames, "votes": v.frames, "agree": v.support,
                     **({"low_confidence": True} if low_confidence else {})},
            crop_jpeg_b64=base64.b64encode(encode_jpeg(crop, 90)).decode("ascii"),
            context_jpeg_b64=context,
        )

    def store(self, read: Read) -> bool:
        """Seal and store one read; a failure is counted, logged and put in health, never raised. A
        storage error goes to `on_storage_error` (the unit checks the file and replaces a damaged one)
        and the read is stored in the buffer that replaced it."""
        try:
            envelope = seal.seal(read.to_payload(), self.cfg.central_public_key, read.read_id)
        except ValueError as exc:       # the key is checked at load (wire.seal); this must never pass silently
            self.health.count("store_failed")
            self.health.set("buffer", "error", f"cannot seal: {exc}")
            log.error("cannot seal read, read lost: %s", exc, extra=_fields(read_id=read.read_id, event="seal_error"))
            return False
        for attempt in (1, 2):
            buf = self.buffer
            if buf is None:
                self.health.count("store_failed")
                log.error("buffer unavailable, read lost", extra=_fields(read_id=read.read_id, event="store_error"))
                return False
            try:
                buf.put(read.read_id, read.captured_at, envelope)
                break
            except BufferFull as exc:
                self.health.count("store_failed")
                if self.health.set("buffer", "full", str(exc)):
                    log.error("buffer: disk full, read lost: %s", exc, extra=_fields(read_id=read.read_id, event="disk_full"))
                return False
            except StoreError as exc:
                new = self.on_storage_error(buf, exc) if self.on_storage_error and attempt == 1 else None
                if new is not None and new is not buf:
                    continue                   # the damaged buffer was replaced: store it there
                self.health.count("store_failed")
                self.health.set("buffer", "error", str(exc))
                log.error("buffer: cannot store read: %s", exc, extra=_fields(read_id=read.read_id, event="store_error"))
                return False
        if self.health.get("buffer").get("state") in ("error", "full"):
            self.health.set("buffer", "ok")
            log.info("buffer: storing again")
        return True

    def _hotlist(self, read: Read) -> None:
        entry = self.hotlist.match(read.plate)
        if entry is not None:
            self.health.count("hotlist_hits")
            log.warning("hot-list match (unverified)", extra=_fields(event="hotlist_hit", read_id=read.read_id,
                                                                     lane=read.lane, label=entry.label))

    def finish_all(self) -> None:
        for rid in list(self.bursts):
            self._finish(self.bursts.pop(rid))
