"""The unit service: wires sensor -> capture -> recognise -> vote -> buffer, and keeps it running.

Four threads, data flowing one way between them through queues:
  capture    reads the frame source (and, in replay, turns recorded edges into pin changes)
  trigger    sensor presence, motion fallback, pre-trigger ring, bursts        (unit.sensors, unit.burst)
  recognise  recognition, voting, dedup, sealing, storing                      (unit.pipeline)
  health     status file, sd_notify STATUS / WATCHDOG, retries of what failed  (unit.health)
Live, a backlog drops frames (counted) rather than grow memory; in replay it waits instead, so a replay
gives the same reads every time. Every fault (camera, model, disk, a bad frame) becomes a logged error and
a health state; the service keeps running and recovers by itself when the fault goes.

`UnitService` is what `alpr-unit run` runs (through `serve()`): a `Unit`, plus, when the config's
[uplink] has a `url`, two more threads: the uplink (sealed reads from the buffer to the central store,
`unit.uplink`) and the heartbeat (`unit.heartbeat`). The HIL harness (`hil/`) runs the same class.
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from unit import heartbeat as heartbeat_mod
from unit import hotlist as hotlist_mod
from unit import logs
from unit import uplink as uplink_mod
from unit import salvage
from unit.buffer import BufferCorrupt, SealedBuffer, StoreError, is_corrupt
from unit.burst import BurstAssembler, FrameWork, Work
from unit.config import ConfigError, UnitConfig, changed_keys, load, merge_live
from unit.health import Health, sd_notify, watchdog_interval, write_status
from unit.pipeline import ModelHolder, RecognitionStage
from unit.reload import FileWatcher
from unit.sensors import Lane, Presence
from unit.sources.frames import BadFrame, Edge, Frame, FrameSource, Gap, SourceEnded, SourceLost, check_frame
from wire import paths

log = logging.getLogger("unit.service")
LOOP_STALL_S = 30.0          # a loop silent this long is hung: stop feeding the systemd watchdog
CHECK_EVERY_S = 60.0         # a storage error that does not say "corrupt" runs the integrity check at most this often
REOPEN_BACKOFF_S = (1.0, 30.0)   # first and longest wait before reopening a failed camera
BAD_FRAMES_CLEAR_S = 10.0    # frames health returns to ok after this long without a bad frame
POLL_S = 0.2                 # how often an idle loop looks up (beats, stop requests)


def _fields(**kw: Any) -> dict[str, Any]:
    return {"fields": kw}


def _buffer_maker(cfg: UnitConfig, clock: Callable[[], float]) -> Callable[..., SealedBuffer]:
    return functools.partial(SealedBuffer, Path(cfg.buffer.path), max_bytes=int(cfg.buffer.max_mb * 1024 * 1024),
                             max_age_s=cfg.buffer.max_age_days * 86400, clock=clock)


def open_buffer(cfg: UnitConfig, health: Health, clock: Callable[[], float] = time.time) -> SealedBuffer | None:
    """Open the buffer, checking its integrity: a damaged file is moved aside, a new one started and
    what can be read carried over (`unit.salvage`); any other failure leaves the unit running without a
    buffer (retried by the health loop)."""
    make = _buffer_maker(cfg, clock)
    try:
        buf = make(check=True)
    except BufferCorrupt as exc:
        return recover_buffer(Path(cfg.buffer.path), make, health, str(exc))
    except (sqlite3.Error, OSError) as exc:
        health.set("buffer", "error", f"cannot open {cfg.buffer.path}: {exc}")
        log.error("buffer: cannot open %s: %s", cfg.buffer.path, exc, extra=_fields(event="buffer_error"))
        return None
    health.set("buffer", "ok")
    return buf


def recover_buffer(path: Path, make: Callable[[], SealedBuffer], health: Health, why: str) -> SealedBuffer | None:
    """The buffer at `path` is damaged: move it aside, start a new one, carry over what can be read and
    count the rest as lost. Health says `buffer: recovered` (degraded until the service restarts)."""
    log.error("buffer: %s is corrupt (%s): moving it aside, starting a new one and carrying over what can "
              "still be read", path, why, extra=_fields(event="buffer_corrupt"))
    try:
        buf, rec = salvage.recover(path, make)
    except (StoreError, sqlite3.Error, OSError) as exc:
        health.set("buffer", "error", f"damaged, and no new buffer could be started: {exc}")
        log.error("buffer: no new buffer could be started at %s: %s", path, exc, extra=_fields(event="buffer_error"))
        return None
    health.set("buffer", "recovered", rec.detail(), salvaged=rec.salvaged, lost=rec.lost)
    log.error("buffer: %s", rec.detail(), extra=_fields(event="buffer_recovered", salvaged=rec.salvaged,
                                                          lost=rec.lost, notes=rec.notes[:5]))
    return buf


class Unit:
    """One running unit. `live=False` (replay) waits on backlog instead of dropping frames."""

    def __init__(self, cfg: UnitConfig, source: FrameSource, *, clock: Callable[[], float] = time.time,
                 live: bool = True, recogniser_factory: Callable[[], Any] | None = None,
                 env: dict[str, str] | None = None):
        self.cfg, self.source, self.clock, self.live = cfg, source, clock, live
        self.env = os.environ if env is None else env
        self.health = Health(cfg.unit_id)
        self.health.note("site", cfg.site)
        self.health.set("camera", "starting")
        self.events: queue.Queue[Frame | Presence | Gap] = queue.Queue()
        self.work: queue.Queue[Work] = queue.Queue()
        n = cfg.camera.pre_trigger_frames + cfg.camera.burst_frames
        self._event_frames = threading.BoundedSemaphore(max(2, n))      # frames waiting for the trigger loop
        self._work_frames = threading.BoundedSemaphore(max(2, n))       # frames waiting for recognition
        self.failed = threading.Event()      # a thread of the service died: stop, exit non-zero
        self._make_buffer = _buffer_maker(cfg, clock)
        self._buffer_lock = threading.Lock()
        self._last_check = -CHECK_EVERY_S
        self.buffer = open_buffer(cfg, self.health, clock)
        self.models = ModelHolder(cfg.recognition, self.health, recogniser_factory)
        self.hotlist = self._load_hotlist(cfg.hotlist.path)
        self.lanes = {lc.name: Lane(lc, cfg.motion, self.events.put, clock) for lc in cfg.lanes}
        self.assembler = BurstAssembler(cfg.camera, list(cfg.lanes), self._emit)
        self.stage = RecognitionStage(cfg, self.models, self.buffer, self.health, self.hotlist)
        self.stage.on_storage_error = self.storage_error
        self._stop = threading.Event()
        self._capture_done = threading.Event()
        self._trigger_done = threading.Event()
        self.source_ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_frame = time.monotonic()
        self._last_bad = 0.0
        self._last_buffer_try = 0.0
        self.reopen_backoff_s = REOPEN_BACKOFF_S
        self.health_hooks: list[Callable[[], None]] = []     # run by update_health (the uplink's state)

    # -- the buffer when it fails --------------------------------------------------------------------------
    def storage_error(self, buf: SealedBuffer | None, exc: BaseException) -> SealedBuffer | None:
        """Any part that got a storage error from `buf` calls this: the file's integrity is checked (at
        once when SQLite said "corrupt", else at most every CHECK_EVERY_S), and a damaged file is
        replaced (`recover_buffer`). Returns the buffer to use now, which the caller retries once."""
        with self._buffer_lock:
            if buf is None or self.buffer is not buf:
                return self.buffer             # replaced meanwhile (or reopened by the health loop)
            corrupt = is_corrupt(exc)
            if not corrupt:
                if time.monotonic() - self._last_check < CHECK_EVERY_S:
                    return buf
                self._last_check = time.monotonic()
            problems = buf.check()
            if not corrupt and not problems:
                return buf                     # a passing error (busy, I/O): the file is sound
            why = f"{exc}" + (f"; integrity check: {'; '.join(problems[:2])}" if problems else "")
            buf.close()
            self.buffer = self.stage.buffer = recover_buffer(Path(self.cfg.buffer.path), self._make_buffer,
                                                             self.health, why)
            return self.buffer

    def _guard(self, target: Callable[[], None], name: str) -> Callable[[], None]:
        """No thread of the service dies unseen: one that raises marks health `failed` (which stops the
        systemd watchdog's pings) and sets `failed`, on which `serve` stops the service, exiting 1."""
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self.health.set(f"thread:{name}", "failed", f"{type(exc).__name__}: {exc}")
                log.critical("%s thread died (%s: %s): the service stops, to be restarted", name,
                             type(exc).__name__, exc, exc_info=True, extra=_fields(event="thread_died", thread=name))
                self.failed.set()
        return run

    # -- set-up and reload -----------------------------------------------------------------------------
    def _load_hotlist(self, path: str) -> hotlist_mod.HotList:
        try:
            hl = hotlist_mod.load(path)
            self.health.set("hotlist", "ok" if path else "none", entries=len(hl))
            return hl
        except (OSError, ValueError) as exc:
            self.health.set("hotlist", "error", str(exc))
            log.error("hot list not loaded: %s", exc, extra=_fields(event="hotlist_error"))
            return hotlist_mod.HotList()

    def reload_hotlist(self, *_: object) -> None:
        self.hotlist = self.stage.hotlist = self._load_hotlist(self.cfg.hotlist.path)
        log.info("hot list loaded: %d entries", len(self.hotlist), extra=_fields(event="hotlist_loaded"))

    def reload(self, new: UnitConfig) -> tuple[list[str], list[str]]:
        """Apply the live keys of a changed config; name the rest as needing a restart."""
        live, restart = changed_keys(self.cfg, new)
        if live:
            merged = merge_live(self.cfg, new)
            self.stage.apply(merged)
            for lane in self.lanes.values():
                lane.set_motion(merged.motion)
            if merged.log != self.cfg.log:
                logs.setup(merged.log.level, merged.log.format)
            hot_changed = merged.hotlist != self.cfg.hotlist
            self.cfg = merged
            if hot_changed:
                self.reload_hotlist()
            log.info("config reloaded: %s", ", ".join(live), extra=_fields(event="config_reloaded", keys=live))
        if restart:
            log.warning("config keys changed that need a restart to apply: %s", ", ".join(restart),
                        extra=_fields(event="config_needs_restart", keys=restart))
            self.health.note("restart_needed", restart)
        return live, restart

    def reload_from(self, path: Path) -> None:
        try:
            new = load(path)
        except ConfigError as exc:
            log.error("config change ignored, the file is invalid: %s", exc, extra=_fields(event="config_invalid"))
            return
        self.reload(new)

    # -- the loops ---------------------------------------------------------------------------------------
    def _emit(self, item: Work) -> None:
        """From the trigger loop to recognition; a frame waits (replay) or is dropped (live) on backlog."""
        if isinstance(item, FrameWork):
            if not self._acquire(self._work_frames):
                self.health.count("frames_dropped_backlog")
                if self.health.set("pipeline", "backlog", "recognition is behind; frames dropped"):
                    log.warning("recognition backlog: dropping frames", extra=_fields(event="backlog"))
                return
        self.work.put(item)

    def _acquire(self, sem: threading.BoundedSemaphore) -> bool:
        if self.live:
            return sem.acquire(blocking=False)
        while not sem.acquire(timeout=0.2):
            if self._stop.is_set() and self._capture_done.is_set() and self._trigger_done.is_set():
                return False
        return True

    def _camera_state(self, state: str, detail: str = "") -> None:
        if self.health.set("camera", state, detail):
            lvl = logging.INFO if state == "ok" else logging.ERROR
            log.log(lvl, "camera %s%s", state, f": {detail}" if detail else "", extra=_fields(event=f"camera_{state}"))

    def _capture_loop(self) -> None:
        first, longest = self.reopen_backoff_s
        backoff = first
        stall = self.cfg.camera.stall_after_s
        try:
            self.source.open()
        except SourceLost as exc:
            self._camera_state("lost", f"cannot connect: {exc}")
        except Exception as exc:
            self._camera_state("error", f"cannot open: {type(exc).__name__}: {exc}")
        while not self._stop.is_set():
            self.health.beat("capture")
            try:
                item = self.source.read(timeout=min(POLL_S, stall))
            except SourceEnded:
                self.source_ended.set()
                break
            except BadFrame as exc:
                self._bad_frame(exc, stall)
                continue
            except SourceLost as exc:
                self._camera_state("lost", f"{exc}; reconnecting in {backoff:g} s")
                self._reopen(backoff)
                backoff = min(backoff * 2, longest)
                continue
            except Exception as exc:
                self._camera_state("error", f"{type(exc).__name__}: {exc}")
                self._reopen(backoff)
                backoff = min(backoff * 2, longest)
                continue
            if item is None:
                if self._check_stall(stall):
                    self._reopen(backoff)
                    backoff = min(backoff * 2, longest)
                continue
            if isinstance(item, Edge):
                self._drive(item)
                continue
            if isinstance(item, Gap):           # the source's own frames broke off: the ring forgets
                self.events.put(item)
                continue
            try:
                item.image = check_frame(item.image)       # grey and four-channel frames become RGB
            except BadFrame as exc:
                self._bad_frame(exc, stall)
                continue
            backoff = first
            self._last_frame = time.monotonic()
            if self._last_bad and self._last_frame - self._last_bad > BAD_FRAMES_CLEAR_S:
                self._last_bad = 0.0
                self.health.set("frames", "ok")
            self.health.count("frames")
            self._camera_state("ok")
            if not self._acquire(self._event_frames):
                self.health.count("frames_dropped_capture")
                if self.health.set("pipeline", "backlog", "trigger stage is behind; frames dropped"):
                    log.warning("trigger backlog: dropping frames", extra=_fields(event="backlog"))
                continue
            self.events.put(item)
        self._capture_done.set()

    def _bad_frame(self, exc: BadFrame, stall: float) -> None:
        """Log the first bad frame of a run (not every one), count all, and show it in health."""
        self.health.count("bad_frames")
        if not self._last_bad:
            log.error("bad frame skipped: %s", exc, extra=_fields(event="bad_frame"))
        self._last_bad = time.monotonic()
        self.health.set("frames", "bad", f"last: {exc}")
        self._check_stall(stall)

    def _check_stall(self, stall: float) -> bool:
        quiet = time.monotonic() - self._last_frame
        if quiet > stall:
            self._camera_state("stalled", f"no good frame for over {stall:g} s")
            return True
        return False

    def _reopen(self, wait: float) -> None:
        """Close the camera, wait, open it again. Whatever came before is a gap: the trigger stage
        forgets its pre-trigger frames, so no burst after the gap is given a frame from before it."""
        self.events.put(Gap(self.clock(), "camera reopened"))   # the ring must forget what came before
        self.health.count("camera_gaps")
        try:
            self.source.close()
        except Exception:
            pass
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:     # wait, still beating: a dead camera is not a hung loop
            if self._stop.wait(min(POLL_S, left)):
                return
            self.health.beat("capture")
        try:
            self.source.open()
        except SourceLost as exc:                       # still gone: stays lost, retried after a longer wait
            self._camera_state("lost", f"cannot reconnect: {exc}")
        except Exception as exc:
            state = "lost" if self.health.get("camera").get("state") == "lost" else "error"
            self._camera_state(state, f"cannot open: {type(exc).__name__}: {exc}")

    def _drive(self, edge: Edge) -> None:
        """Replay: a recorded sensor change becomes a change on the lane's (mock) pin."""
        lane = self.lanes.get(edge.lane)
        if lane is None or lane.sensor is None:
            log.debug("replay edge for lane %s without a sensor ignored", edge.lane)
            return
        try:
            lane.sensor.drive(edge.active)
        except Exception as exc:
            log.error("cannot drive pin for lane %s (replay needs gpiozero's MockFactory): %s", edge.lane, exc)

    def _trigger_loop(self) -> None:
        while True:
            self.health.beat("trigger")
            try:
                item = self.events.get(timeout=POLL_S)
            except queue.Empty:
                if self._capture_done.is_set() and (self._stop.is_set() or self.source_ended.is_set()):
                    break
                if self.live:
                    self.assembler.tick(self.clock())
                continue
            try:
                if isinstance(item, Presence):
                    self.assembler.on_presence(item)
                elif isinstance(item, Gap):
                    self.assembler.on_gap(item)
                else:
                    self._event_frames.release()
                    for lane in self.lanes.values():
                        p = lane.on_frame(item.image, item.t)
                        if p is not None:
                            self.assembler.on_presence(p)
                    self.assembler.on_frame(item)
            except Exception:
                log.exception("trigger stage failed on an event; continuing")
            finally:
                self.events.task_done()
        self.assembler.close_all(self.clock())     # the end of a replay or a stop: finish what was seen
        self._trigger_done.set()

    def _recognise_loop(self) -> None:
        while True:
            self.health.beat("recognise")
            try:
                item = self.work.get(timeout=POLL_S)
            except queue.Empty:
                if self._trigger_done.is_set():
                    break
                continue
            try:
                if isinstance(item, FrameWork):
                    self._work_frames.release()
                self.stage.handle(item)
            except Exception:
                log.exception("recognition stage failed on a burst; continuing")
            finally:
                self.work.task_done()

    def _health_loop(self) -> None:
        wd = watchdog_interval(self.env)
        period = min(self.cfg.health.interval_s, wd or self.cfg.health.interval_s)
        while True:
            self.update_health()
            stalled = self.health.stalled_loops(LOOP_STALL_S)
            if wd and not stalled and not self.failed.is_set():
                sd_notify("WATCHDOG=1", self.env)
            elif stalled:
                log.error("loops not progressing: %s (systemd watchdog will act)", ", ".join(stalled))
            sd_notify("STATUS=" + self.health.summary(), self.env)
            if self._stop.wait(period):
                break

    def update_health(self) -> dict[str, Any]:
        now = self.clock()
        if self.buffer is None and time.monotonic() - self._last_buffer_try > 30:
            self._last_buffer_try = time.monotonic()
            self.buffer = self.stage.buffer = open_buffer(self.cfg, self.health, self.clock)
        buf = self.buffer
        if buf is not None:
            try:
                self.health.note("buffer", buf.stats())
            except (StoreError, sqlite3.Error) as exc:
                new = self.storage_error(buf, exc)
                if new is None or new is buf:
                    self.health.set("buffer", "error", str(exc))
                else:
                    self.health.note("buffer", new.stats())
        self.health.note("lanes", {name: lane.health(now) for name, lane in self.lanes.items()})
        figures = getattr(self.source, "health", None)      # a stream's frames, drops, reconnects, latency
        if callable(figures):
            self.health.note("camera_stream", figures())
        for name, lane in self.lanes.items():
            st = lane.sensor_state(now)
            self.health.set(f"lane:{name}", "ok" if st in ("ok", "none") else st)
        if (self.health.get("pipeline").get("state") == "backlog"
                and self.events.unfinished_tasks == 0 and self.work.unfinished_tasks == 0):
            self.health.set("pipeline", "ok")
            log.info("pipeline caught up", extra=_fields(event="backlog_cleared"))
        self.models.get()       # retries a failed model load when its time comes
        for hook in self.health_hooks:
            try:
                hook()
            except Exception:
                log.exception("health hook failed")
        snap = self.health.snapshot()
        try:
            write_status(self.cfg.status_path, snap)
        except OSError as exc:
            log.debug("status file not written: %s", exc)
        return snap

    # -- control -------------------------------------------------------------------------------------------
    def start(self) -> None:
        logs_fields = _fields(event="start", unit_id=self.cfg.unit_id, lanes=[lane.name for lane in self.cfg.lanes])
        log.info("unit starting", extra=logs_fields)
        for warning in self.cfg.warnings:
            log.warning("config: %s", warning, extra=_fields(event="config_warning"))
        self.models.get()
        for name, target in (("capture", self._capture_loop), ("trigger", self._trigger_loop),
                             ("recognise", self._recognise_loop), ("health", self._health_loop)):
            if name == "health":
                sd_notify("READY=1", self.env)      # before the first WATCHDOG=1 / STATUS=
            t = threading.Thread(target=self._guard(target, name), name=f"unit-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once every frame and burst handed in so far has gone all the way through."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (self.events.unfinished_tasks == 0 and self.work.unfinished_tasks == 0
                    and not self.assembler.open and not self.stage.bursts):
                return True
            time.sleep(0.01)
        return False

    def wait_ended(self, timeout: float = 600.0) -> bool:
        """Replay: wait for the source to end and everything to drain."""
        end = time.monotonic() + timeout
        if not self.source_ended.wait(timeout):
            return False
        self._trigger_done.wait(max(0.0, end - time.monotonic()))
        while time.monotonic() < end and self.work.unfinished_tasks:
            time.sleep(0.01)
        return self.work.unfinished_tasks == 0

    def stop(self, timeout: float = 30.0, before_close: Callable[[], None] | None = None) -> None:
        """Stop the loops, finish open bursts, then (after `before_close`, which may still use the
        buffer) close the pins, the camera and the buffer."""
        sd_notify("STOPPING=1", self.env)
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self.stage.finish_all()
        if before_close is not None:
            try:
                before_close()
            except Exception:
                log.exception("stopping: before_close failed")
        self.health.note("stopped_at", time.time())
        self.update_health()
        for lane in self.lanes.values():
            lane.close()
        try:
            self.source.close()
        except Exception:
            pass
        if self.buffer is not None:
            self.buffer.close()
        log.info("unit stopped", extra=_fields(event="stop", counters=self.health.counters))


# -- the service: the unit, and its uplink and heartbeat ------------------------------------------------------
UPLINK_FAILURES_DEGRADED = 3     # consecutive failed pushes before the uplink counts as a problem


def uplink_state_path(cfg: UnitConfig) -> str:
    """Where the uplink writes its state for `alpr-unit status`: [uplink] state_path, else by the buffer."""
    return cfg.uplink.state_path or (cfg.buffer.path + ".uplink.json")


@functools.lru_cache(maxsize=1)
def software_version() -> str:
    try:
        from importlib.metadata import version
        return version("alpr-gate")
    except Exception:
        return "dev"


class _UnitBuffer:
    """The unit's buffer as the uplink and the heartbeat see it: whatever `unit.buffer` is now (it is
    replaced when damaged, reopened by the health loop after a failure). A storage error goes to the
    unit (`Unit.storage_error`), and the call is tried once more on the buffer that replaced the damaged
    one; while there is none, every call fails and the uplink backs off."""

    def __init__(self, unit: Unit):
        self.unit = unit

    def _call(self, name: str, *args: Any) -> Any:
        buf = self.unit.buffer
        if buf is None:
            raise StoreError("the unit's buffer is not open")
        try:
            return getattr(buf, name)(*args)
        except (StoreError, sqlite3.Error) as exc:
            new = self.unit.storage_error(buf, exc)
            if new is None or new is buf:
                raise
            return getattr(new, name)(*args)

    def pending(self, limit: int = 100) -> list:
        return self._call("pending", limit)

    def mark_sent(self, read_ids: list[str]) -> None:
        self._call("mark_sent", read_ids)

    def mark_attempt(self, read_ids: list[str]) -> None:
        self._call("mark_attempt", read_ids)

    def quarantine(self, read_id: str, reason: str) -> None:
        self._call("quarantine", read_id, reason)

    def stats(self) -> dict[str, Any]:
        return self._call("stats")


class UnitService:
    """What `alpr-unit run` runs: the `Unit`, and, when the config's [uplink] has a `url`, the uplink
    and the heartbeat in two more threads. An uplink that cannot start (no identity key, say) leaves
    the unit running and storing reads, with `uplink: error` in its health; reads wait in the buffer.

    `stop(drain_s)` stops the loops, lets the uplink deliver what is pending for up to `drain_s`
    seconds (replay, the HIL harness), then stops uplink and heartbeat and closes the buffer."""

    def __init__(self, cfg: UnitConfig, source: FrameSource, *, clock: Callable[[], float] = time.time,
                 live: bool = True, recogniser_factory: Callable[[], Any] | None = None,
                 env: dict[str, str] | None = None):
        self.cfg = cfg
        self.unit = Unit(cfg, source, clock=clock, live=live, recogniser_factory=recogniser_factory, env=env)
        self.uplink: uplink_mod.Uplink | None = None
        self.heartbeat: heartbeat_mod.Heartbeat | None = None
        self.drain_s = cfg.uplink.drain_s
        self._net_stop = threading.Event()
        self._net_threads: list[threading.Thread] = []
        self._hb_versions: dict[str, str] = {"unit": software_version()}
        self.unit.health_hooks.append(self._uplink_health)

    @property
    def health(self) -> Health:
        return self.unit.health

    def start(self) -> None:
        self.unit.start()
        self._start_uplink()

    def _start_uplink(self) -> None:
        section = self.cfg.uplink
        if not section.url:
            self.health.set("uplink", "none", "no [uplink] url: reads stay in the buffer")
            return
        buffer = _UnitBuffer(self.unit)
        try:
            if not section.identity_key_path:
                raise ValueError("uplink.identity_key_path: missing (the unit's Ed25519 key from enrolment)")
            if section.url.rstrip("/").endswith(paths.READS):
                raise ValueError(f"uplink.url: expected the central store's base URL (the uplink appends "
                                 f"{paths.READS} itself), got {section.url!r}")
            self.uplink = uplink_mod.from_config(section, self.cfg.unit_id, buffer, uplink_state_path(self.cfg))
            collect = heartbeat_mod.collector(buffer, self.uplink, self._hb_versions, self._heartbeat_health)
            self.heartbeat = heartbeat_mod.from_config(section, self.uplink, collect, self.cfg.hotlist.path or None)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self.uplink = self.heartbeat = None
            detail = f"not started: {type(exc).__name__}: {exc}"
            self.health.set("uplink", "error", detail)
            log.error("uplink %s; reads stay in the buffer", detail, extra=_fields(event="uplink_error"))
            return
        for name, target in (("uplink", lambda: self.uplink.run(self._net_stop)),
                             ("heartbeat", lambda: self.heartbeat.run(self._net_stop))):
            t = threading.Thread(target=self.unit._guard(target, name), name=f"unit-{name}", daemon=True)
            t.start()
            self._net_threads.append(t)
        self._uplink_health()
        log.info("uplink started to %s", section.url, extra=_fields(event="uplink_started"))

    def _heartbeat_health(self) -> dict[str, Any]:
        """The service's part of each heartbeat; also brings the versions sent up to date (a model
        that failed at start may load later)."""
        self._hb_versions.update({"unit": software_version(), **self.unit.models.versions})
        snap = self.health.snapshot()
        return {"state": snap["state"], "problems": snap["problems"], "parts": snap["parts"],
                "lanes": snap.get("lanes", {}), "counters": snap["counters"],
                # the frame size the reads' plate boxes are measured in (context frames may be downscaled)
                "camera": {"resolution": list(self.cfg.camera.resolution),
                           "context_width": self.cfg.camera.context_width if self.cfg.camera.context_frame else None}}

    def _uplink_health(self) -> None:
        if self.uplink is None:
            return
        st = self.uplink.status()
        self.health.note("uplink", st)
        state = st["state"]
        if state == "refused":
            self.health.set("uplink", "refused", st.get("last_error") or "central refuses this unit")
        elif state == "backing_off" and st.get("consecutive_failures", 0) >= UPLINK_FAILURES_DEGRADED:
            self.health.set("uplink", "offline", st.get("last_error") or "central unreachable")
        else:
            self.health.set("uplink", "ok")

    def pending(self) -> int:
        """Reads waiting for the central store (unsent, not quarantined)."""
        buf = self.unit.buffer
        if buf is None:
            return 0
        try:
            return int(buf.stats()["depth"])
        except sqlite3.Error:
            return 0

    def drain(self, timeout: float) -> bool:
        """Wait until the uplink has delivered every pending read (True), or `timeout` seconds passed."""
        if self.uplink is None:
            return self.pending() == 0
        end = time.monotonic() + timeout
        while True:
            # delivered, and the uplink has looked again and found nothing (its state file says idle)
            if self.pending() == 0 and self.uplink.status()["state"] == "idle":
                return True
            if time.monotonic() >= end or not any(t.is_alive() for t in self._net_threads):
                return False
            time.sleep(0.05)

    def _stop_network(self, drain_s: float) -> None:
        if self.uplink is not None and drain_s > 0:
            if not self.drain(drain_s):
                log.warning("stopping with %d reads not yet delivered (they stay in the buffer)", self.pending(),
                            extra=_fields(event="uplink_undelivered"))
        self._net_stop.set()
        for t in self._net_threads:
            t.join(10.0)
            if t.is_alive():
                log.warning("%s thread still busy (a request in flight); leaving it", t.name)
        self._uplink_health()

    def stop(self, timeout: float = 30.0, drain_s: float = 0.0) -> None:
        self.unit.stop(timeout, before_close=lambda: self._stop_network(drain_s))


def watch_files(unit: Unit, cfg: UnitConfig) -> FileWatcher:
    watcher = FileWatcher()
    if cfg.path:
        watcher.watch(cfg.path, unit.reload_from)
    if cfg.hotlist.path:
        watcher.watch(cfg.hotlist.path, unit.reload_hotlist)
    watcher.start()
    return watcher


def serve(cfg: UnitConfig, source: FrameSource, stop: threading.Event, signalled: threading.Event) -> int:
    """Run the service on `source` until `stop` is set, a replay camera comes to its end, or a thread of
    the service dies, watching the config and hot-list files for changes. A replay that ended hands its
    reads over before it goes (up to `[uplink] drain_s`); a stop signal (`signalled`) does not wait for
    the network. Returns the exit status: 0, or 1 when a thread died (systemd then restarts the unit)."""
    service = UnitService(cfg, source, clock=source.clock, live=True)
    watcher = watch_files(service.unit, cfg)
    service.start()
    try:
        while not stop.wait(1.0) and not service.unit.failed.is_set():
            if service.unit.source_ended.is_set() and service.unit.wait_idle(0.1):
                break       # a replay camera came to its end
    finally:
        watcher.stop()
        failed = service.unit.failed.is_set()
        service.stop(drain_s=0.0 if signalled.is_set() or failed else service.drain_s)
    if service.unit.failed.is_set():
        log.critical("stopped because a thread of the service died (see above); exit status 1",
                     extra=_fields(event="failed"))
        return 1
    return 0
