"""The unit's configuration: one TOML file per unit, validated at start.

Every error names the dotted key and what was expected, so a technician at a gate can fix the file
without reading code. Unknown keys are errors too (a typo must not silently fall back to a default),
except inside `[uplink]`, which belongs to the uplink and is passed through as given.

Some keys can change while the unit runs (`LIVE_KEYS`: thresholds, dedup window, hot list, log level
and format); `changed_keys()` tells the reloader which changed keys it may apply and which need a restart.
See `docs/unit-config.md` and `unit/example-config.toml`.
"""
from __future__ import annotations

import base64
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from wire import seal
from wire.read import CANDIDATES_MAX, DIRECTIONS

SENSOR_KINDS = ("loop", "ir_beam", "radar", "none")
CAMERA_KINDS = ("picamera2", "replay")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")

# Keys applied on reload without a restart. Everything else is read once at start.
LIVE_KEYS = frozenset({
    "recognition.min_det_score", "recognition.min_frame_confidence", "recognition.min_read_confidence",
    "recognition.min_chars",
    "motion.threshold", "motion.min_fraction", "motion.quiet_frames",
    "dedup.window_s", "dedup.max_edits",
    "hotlist.path",
    "log.level", "log.format",
})

_REQUIRED = object()


class ConfigError(ValueError):
    """The config file is unusable; the message starts with the dotted key at fault."""


@dataclass(frozen=True)
class SensorConfig:
    kind: str = "none"                 # loop | ir_beam | radar | none (motion-triggered lane)
    pin: int | str | None = None       # BCM number or a gpiozero pin name ("GPIO17", "BOARD11")
    active_high: bool = True
    pull_up: bool | None = None        # True: internal pull-up, False: pull-down, None: floating (external)
    debounce_ms: float = 20.0
    min_presence_ms: float = 80.0      # shorter presences are glitches, not vehicles
    stuck_after_s: float = 120.0       # active this long without a break: reported stuck
    silent_after_motions: int = 5      # this many motion episodes with no edge: reported silent


@dataclass(frozen=True)
class LaneConfig:
    name: str
    direction: str = "unknown"
    roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)   # fractions x0, y0, x1, y1
    sensor: SensorConfig = field(default_factory=SensorConfig)


@dataclass(frozen=True)
class CameraConfig:
    kind: str = "picamera2"
    resolution: tuple[int, int] = (1920, 1080)
    fps: float = 15.0
    shutter_us: int = 1000             # short exposure freezes a moving vehicle
    gain_min: float = 1.0
    gain_max: float = 8.0              # caps noise at night
    lens_position: float | None = None  # dioptres for a fixed focus; None for a fixed-focus lens
    pre_trigger_frames: int = 3
    burst_frames: int = 5
    burst_fps: float = 10.0
    stall_after_s: float = 5.0         # no frame for this long: the camera is reported stalled
    source: str = ""                   # replay: a folder of stills or a clip folder
    context_frame: bool = False        # send a downscaled scene frame with each read
    context_width: int = 960


@dataclass(frozen=True)
class RecognitionConfig:
    model_dir: str = ""                # empty: the models shipped in the package
    threads: int = 1
    top_n: int = 5
    framings: int = 2                  # reader passes per plate (unit.recognise.framing_sets)
    two_row_plates: bool = True        # also read a two-row plate with its rows side by side (unit.rows)
    min_det_score: float = 0.3
    min_frame_confidence: float = 0.0   # both chosen on valid-split clips: see docs/hil.md
    min_read_confidence: float = 0.15
    min_chars: int = 2
    retry_model_s: float = 60.0        # a missing or corrupt model is retried this often


@dataclass(frozen=True)
class DedupConfig:
    window_s: float = 10.0
    max_edits: int = 1


@dataclass(frozen=True)
class MotionConfig:
    threshold: float = 25.0            # grey-level change (0-255) that counts as moved
    min_fraction: float = 0.03         # share of ROI samples that must move
    quiet_frames: int = 3              # still frames that end a motion episode
    sample_px: int = 64                # ROI is subsampled to about this many samples across


@dataclass(frozen=True)
class BufferConfig:
    path: str = "/var/lib/alpr-unit/buffer.sqlite"
    max_mb: float = 512.0
    max_age_days: float = 30.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True)
class HealthConfig:
    status_path: str = ""              # empty: next to the buffer, "<buffer>.status.json"
    interval_s: float = 5.0


@dataclass(frozen=True)
class UnitConfig:
    unit_id: str
    site: str
    central_public_key: X25519PublicKey = field(compare=False, repr=False)
    central_kid: str
    buffer: BufferConfig
    camera: CameraConfig
    lanes: tuple[LaneConfig, ...]
    recognition: RecognitionConfig
    dedup: DedupConfig
    motion: MotionConfig
    hotlist_path: str
    log: LogConfig
    health: HealthConfig
    uplink: dict[str, Any]
    path: str = ""

    @property
    def status_path(self) -> str:
        return self.health.status_path or (self.buffer.path + ".status.json")

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, for diffing two configs."""
        out: dict[str, Any] = {"unit_id": self.unit_id, "site": self.site, "central.kid": self.central_kid,
                               "hotlist.path": self.hotlist_path}
        for name in ("buffer", "camera", "recognition", "dedup", "motion", "log", "health"):
            for k, v in asdict(getattr(self, name)).items():
                out[f"{name}.{k}"] = v
        for i, lane in enumerate(self.lanes):
            for k, v in _flatten(asdict(lane)).items():
                out[f"lanes[{i}].{k}"] = v
        for k, v in _flatten(self.uplink).items():
            out[f"uplink.{k}"] = v
        return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(old: UnitConfig, new: UnitConfig) -> tuple[list[str], list[str]]:
    """(live keys that changed, keys that changed but need a restart)."""
    a, b = old.flat(), new.flat()
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in changed if k in LIVE_KEYS], [k for k in changed if k not in LIVE_KEYS]


class _Section:
    """Typed reads from one table of the TOML document; every failure names the dotted key."""

    def __init__(self, data: Any, prefix: str, known: set[str] | None = None):
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix or 'top level'}: expected a table, got {type(data).__name__}")
        self.data, self.prefix, self.known = data, prefix, known

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def _get(self, k: str, default: Any) -> Any:
        if k not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.key(k)}: missing (required)")
            return default
        return self.data[k]

    def _bad(self, k: str, what: str, got: Any) -> ConfigError:
        return ConfigError(f"{self.key(k)}: expected {what}, got {got!r}")

    def text(self, k: str, default: Any = _REQUIRED, nonempty: bool = False) -> str:
        v = self._get(k, default)
        if not isinstance(v, str) or (nonempty and not v.strip()):
            raise self._bad(k, "a non-empty string" if nonempty else "a string", v)
        return v

    def choice(self, k: str, options: tuple[str, ...], default: Any = _REQUIRED) -> str:
        v = self._get(k, default)
        if v not in options:
            raise self._bad(k, "one of " + ", ".join(repr(o) for o in options), v)
        return v

    def flag(self, k: str, default: Any = _REQUIRED) -> bool:
        v = self._get(k, default)
        if not isinstance(v, bool):
            raise self._bad(k, "true or false", v)
        return v

    def num(self, k: str, default: Any = _REQUIRED, lo: float | None = None, hi: float | None = None,
            integer: bool = False) -> Any:
        v = self._get(k, default)
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type or (lo is not None and v < lo) or (hi is not None and v > hi):
            what = "an integer" if integer else "a number"
            if lo is not None and hi is not None:
                what += f" from {lo} to {hi}"
            elif lo is not None:
                what += f" >= {lo}"
            raise self._bad(k, what, v)
        return int(v) if integer else float(v)

    def table(self, k: str) -> dict[str, Any]:
        v = self._get(k, {})
        if not isinstance(v, dict):
            raise self._bad(k, "a table", v)
        return v

    def check_unknown(self) -> None:
        if self.known is None:
            return
        for k in self.data:
            if k not in self.known:
                raise ConfigError(f"{self.key(k)}: unknown key (known: {', '.join(sorted(self.known))})")


def _fields(cls: type) -> set[str]:
    return set(cls.__dataclass_fields__)


def _load_key(top: _Section, base: Path) -> X25519PublicKey:
    c = _Section(top.table("central"), "central", {"public_key", "public_key_path"})
    c.check_unknown()
    inline, path = c.data.get("public_key"), c.data.get("public_key_path")
    if (inline is None) == (path is None):
        raise ConfigError("central.public_key: give exactly one of central.public_key (base64 or PEM) "
                          "or central.public_key_path")
    if inline is not None:
        key, text = "central.public_key", c.text("public_key", nonempty=True)
    else:
        key = "central.public_key_path"
        p = Path(c.text("public_key_path", nonempty=True))
        p = p if p.is_absolute() else base / p
        try:
            text = p.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key}: expected a readable X25519 public key file, got {str(p)!r} "
                              f"({type(exc).__name__})") from None
    try:
        return seal.load_sealing_public(text)
    except (ValueError, base64.binascii.Error, UnicodeError) as exc:
        raise ConfigError(f"{key}: expected an X25519 public key (raw base64 or PEM), {exc}") from None


def _roi(s: _Section, k: str) -> tuple[float, float, float, float]:
    v = s._get(k, [0.0, 0.0, 1.0, 1.0])
    if (not isinstance(v, list) or len(v) != 4
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1 for x in v)
            or not (v[0] < v[2] and v[1] < v[3])):
        raise s._bad(k, "[x0, y0, x1, y1] as fractions 0..1 of the frame with x0 < x1 and y0 < y1", v)
    return (float(v[0]), float(v[1]), float(v[2]), float(v[3]))


def _sensor(data: Any, prefix: str) -> SensorConfig:
    s = _Section(data, prefix, _fields(SensorConfig))
    s.check_unknown()
    d = SensorConfig()
    kind = s.choice("kind", SENSOR_KINDS, d.kind)
    pin = s.data.get("pin")
    if kind != "none":
        if pin is None or isinstance(pin, bool) or not isinstance(pin, (int, str)) or pin == "":
            raise s._bad("pin", f"a GPIO number or pin name for a {kind} sensor", pin)
    elif pin is not None:
        raise s._bad("pin", "no pin when kind = 'none' (the lane is motion-triggered)", pin)
    pull = s.data.get("pull_up", None)
    if pull == "floating":
        pull = None
    elif pull is not None and not isinstance(pull, bool):
        raise s._bad("pull_up", "true, false (pull-down) or \"floating\" (external resistor)", pull)
    return SensorConfig(
        kind=kind, pin=pin,
        active_high=s.flag("active_high", d.active_high),
        pull_up=pull,
        debounce_ms=s.num("debounce_ms", d.debounce_ms, 0, 1000),
        min_presence_ms=s.num("min_presence_ms", d.min_presence_ms, 0, 10000),
        stuck_after_s=s.num("stuck_after_s", d.stuck_after_s, 1),
        silent_after_motions=s.num("silent_after_motions", d.silent_after_motions, 1, integer=True),
    )


def _lanes(top: _Section) -> tuple[LaneConfig, ...]:
    raw = top.data.get("lanes")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"lanes: expected at least one [[lanes]] table, got {raw!r}")
    lanes, names, pins = [], set(), set()
    for i, item in enumerate(raw):
        s = _Section(item, f"lanes[{i}]", {"name", "direction", "roi", "sensor"})
        s.check_unknown()
        name = s.text("name", nonempty=True)
        if name in names:
            raise s._bad("name", "a name no other lane has", name)
        names.add(name)
        sensor = _sensor(s.table("sensor"), f"lanes[{i}].sensor")
        if sensor.pin is not None:
            if sensor.pin in pins:
                raise ConfigError(f"lanes[{i}].sensor.pin: expected a pin no other lane uses, got {sensor.pin!r}")
            pins.add(sensor.pin)
        lanes.append(LaneConfig(name=name, direction=s.choice("direction", DIRECTIONS, "unknown"),
                                roi=_roi(s, "roi"), sensor=sensor))
    return tuple(lanes)


def _camera(top: _Section) -> CameraConfig:
    s = _Section(top.table("camera"), "camera", _fields(CameraConfig))
    s.check_unknown()
    d = CameraConfig()
    res = s.data.get("resolution", list(d.resolution))
    if (not isinstance(res, list) or len(res) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 16 <= x <= 10000 for x in res)):
        raise s._bad("resolution", "[width, height] in pixels", res)
    gain_min = s.num("gain_min", d.gain_min, 1.0, 64.0)
    gain_max = s.num("gain_max", d.gain_max, 1.0, 64.0)
    if gain_max < gain_min:
        raise s._bad("gain_max", f"a number >= camera.gain_min ({gain_min})", gain_max)
    lens = s.data.get("lens_position")
    if lens is not None:
        lens = s.num("lens_position", None, 0.0, 32.0)
    kind = s.choice("kind", CAMERA_KINDS, d.kind)
    return CameraConfig(
        kind=kind, resolution=(res[0], res[1]),
        fps=s.num("fps", d.fps, 0.1, 240),
        shutter_us=s.num("shutter_us", d.shutter_us, 10, 1_000_000, integer=True),
        gain_min=gain_min, gain_max=gain_max, lens_position=lens,
        pre_trigger_frames=s.num("pre_trigger_frames", d.pre_trigger_frames, 0, 30, integer=True),
        burst_frames=s.num("burst_frames", d.burst_frames, 1, 60, integer=True),
        burst_fps=s.num("burst_fps", d.burst_fps, 0.1, 240),
        stall_after_s=s.num("stall_after_s", d.stall_after_s, 0.1),
        source=s.text("source", d.source),
        context_frame=s.flag("context_frame", d.context_frame),
        context_width=s.num("context_width", d.context_width, 64, 8000, integer=True),
    )


def _simple(top: _Section, name: str, cls: type, spec: dict[str, tuple]) -> Any:
    """Read a flat section of numbers, strings, choices and flags: spec maps key -> (kind, lo, hi)."""
    s = _Section(top.table(name), name, _fields(cls))
    s.check_unknown()
    d = cls()
    out = {}
    for k, (kind, *rest) in spec.items():
        if kind == "str":
            out[k] = s.text(k, getattr(d, k))
        elif kind == "choice":
            out[k] = s.choice(k, rest[0], getattr(d, k))
        elif kind == "flag":
            out[k] = s.flag(k, getattr(d, k))
        else:
            out[k] = s.num(k, getattr(d, k), rest[0], rest[1] if len(rest) > 1 else None, integer=kind == "int")
    return cls(**out)


def _uplink(top: _Section) -> dict[str, Any]:
    """Permissive: the uplink owns this section. Only the documented keys are type-checked."""
    s = _Section(top.table("uplink"), "uplink")
    out = dict(s.data)
    if "url" in out:
        url = s.text("url")
        if url and not url.startswith(("https://", "http://")):
            raise s._bad("url", "an http(s) URL of the central ingest API", url)
    if "batch_size" in out:
        s.num("batch_size", None, 1, 10000, integer=True)
    if "identity_key_path" in out:
        s.text("identity_key_path")
    return out


def parse(data: dict[str, Any], base: Path = Path("."), path: str = "") -> UnitConfig:
    """Validate a parsed TOML document; relative paths are resolved against `base`."""
    top = _Section(data, "", {"unit_id", "site", "central", "buffer", "camera", "lanes", "recognition",
                              "dedup", "motion", "hotlist", "log", "health", "uplink"})
    top.check_unknown()
    key = _load_key(top, base)

    def resolve(p: str) -> str:
        return "" if not p else str(p if Path(p).is_absolute() else (base / p))

    buf = _simple(top, "buffer", BufferConfig, {"path": ("str",), "max_mb": ("num", 0.01), "max_age_days": ("num", 0.0001)})
    buf = replace(buf, path=resolve(buf.path))
    cam = _camera(top)
    if cam.kind == "replay" and cam.source:
        cam = replace(cam, source=resolve(cam.source))
    rec = _simple(top, "recognition", RecognitionConfig, {
        "model_dir": ("str",), "threads": ("int", 1, 16), "top_n": ("int", 1, CANDIDATES_MAX), "framings": ("int", 1, 2),
        "two_row_plates": ("flag",),
        "min_det_score": ("num", 0, 1), "min_frame_confidence": ("num", 0, 1),
        "min_read_confidence": ("num", 0, 1), "min_chars": ("int", 1, 10), "retry_model_s": ("num", 1)})
    if rec.model_dir:
        rec = replace(rec, model_dir=resolve(rec.model_dir))
    hot = _Section(top.table("hotlist"), "hotlist", {"path"})
    hot.check_unknown()
    health = _simple(top, "health", HealthConfig, {"status_path": ("str",), "interval_s": ("num", 0.1, 3600)})
    health = replace(health, status_path=resolve(health.status_path))
    return UnitConfig(
        unit_id=top.text("unit_id", nonempty=True),
        site=top.text("site", nonempty=True),
        central_public_key=key,
        central_kid=seal.sealing_key_id(key),
        buffer=buf,
        camera=cam,
        lanes=_lanes(top),
        recognition=rec,
        dedup=_simple(top, "dedup", DedupConfig, {"window_s": ("num", 0, 3600), "max_edits": ("int", 0, 3)}),
        motion=_simple(top, "motion", MotionConfig, {
            "threshold": ("num", 1, 255), "min_fraction": ("num", 0.0001, 1),
            "quiet_frames": ("int", 1, 1000), "sample_px": ("int", 8, 512)}),
        hotlist_path=resolve(hot.text("path", "")),
        log=_simple(top, "log", LogConfig, {"level": ("choice", LOG_LEVELS), "format": ("choice", LOG_FORMATS)}),
        health=health,
        uplink=_uplink(top),
        path=path,
    )


def load(path: str | Path) -> UnitConfig:
    """Read and validate a unit config file; raise ConfigError naming the key at fault."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return parse(data, base=p.resolve().parent, path=str(p.resolve()))
