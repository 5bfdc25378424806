"""The unit's configuration: one TOML file per unit, validated at start.

Every error names the dotted key and what was expected, so a technician at a gate can fix the file
without reading code. Unknown keys are errors too: a typo must not silently fall back to a default.

Each table is a frozen dataclass whose fields carry their own default, bounds and whether they are
live (`unit.schema.key`): live keys (thresholds, dedup window, hot list, log level and format) apply
while the unit runs; `changed_keys()` tells the reloader which changed keys it may apply and
`merge_live()` applies them. A camera kind's own options are its `[camera.<kind>]` table
(`unit.sources`). See `docs/unit-config.md` and `unit/example-config.toml`.
"""
from __future__ import annotations

import base64
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from unit import sources
from unit.gpio import BACKENDS
from unit.schema import DERIVED, ConfigError, Section, is_live, key, read   # ConfigError: callers take it from here
from wire import seal
from wire.read import CANDIDATES_MAX, DIRECTIONS, ID_MAX, ID_RE, LANE_MAX

SENSOR_KINDS = ("loop", "ir_beam", "radar", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")


def _pin(s: Section, k: str, default: Any) -> int | str | None:
    kind, pin = s.data.get("kind", "none"), s.data.get(k, default)
    if kind != "none":
        if pin is None or isinstance(pin, bool) or not isinstance(pin, (int, str)) or pin == "":
            raise s.bad(k, f"a GPIO number or pin name for a {kind} sensor", pin)
    elif pin is not None:
        raise s.bad(k, "no pin when kind = 'none' (the lane is motion-triggered)", pin)
    return pin


def _pull(s: Section, k: str, default: Any) -> bool | None:
    pull = s.data.get(k, default)
    if pull == "floating":
        return None
    if pull is not None and not isinstance(pull, bool):
        raise s.bad(k, "true, false (pull-down) or \"floating\" (external resistor)", pull)
    return pull


@dataclass(frozen=True)
class SensorConfig:
    kind: str = field(default="none", metadata=key(choices=SENSOR_KINDS))   # none: a motion-triggered lane
    pin: int | str | None = field(default=None, metadata=key(read=_pin))    # BCM number or a gpiozero pin name
    active_high: bool = True
    pull_up: bool | None = field(default=None, metadata=key(read=_pull))    # True up, False down, None floating
    debounce_ms: float = field(default=20.0, metadata=key(0, 1000))
    min_presence_ms: float = field(default=80.0, metadata=key(0, 10000))   # shorter presences are glitches
    stuck_after_s: float = field(default=120.0, metadata=key(1))           # active this long: reported stuck
    silent_after_motions: int = field(default=5, metadata=key(1))          # motions with no edge: silent


def _roi(s: Section, k: str, default: Any) -> tuple[float, float, float, float]:
    v = s.value(k, list(default))
    if (not isinstance(v, list) or len(v) != 4
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1 for x in v)
            or not (v[0] < v[2] and v[1] < v[3])):
        raise s.bad(k, "[x0, y0, x1, y1] as fractions 0..1 of the frame with x0 < x1 and y0 < y1", v)
    return (float(v[0]), float(v[1]), float(v[2]), float(v[3]))


@dataclass(frozen=True)
class LaneConfig:
    name: str = field(metadata=key(max_len=LANE_MAX))     # travels in every read: the store's limits
    direction: str = field(default="unknown", metadata=key(choices=DIRECTIONS))
    roi: tuple[float, float, float, float] = field(default=(0.0, 0.0, 1.0, 1.0), metadata=key(read=_roi))
    sensor: SensorConfig = field(default_factory=SensorConfig, metadata=DERIVED)   # its own table

    @property
    def has_sensor(self) -> bool:
        """False for a lane that motion alone triggers (sensor kind `none`)."""
        return self.sensor.kind != "none"


def _resolution(s: Section, k: str, default: Any) -> tuple[int, int]:
    res = s.value(k, list(default))
    if (not isinstance(res, list) or len(res) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 16 <= x <= 10000 for x in res)):
        raise s.bad(k, "[width, height] in pixels", res)
    return (res[0], res[1])


@dataclass(frozen=True)
class CameraConfig:
    """What every camera kind shares; `options` are the chosen kind's own (`[camera.<kind>]`)."""
    kind: str = "picamera2"            # a name in unit.sources.KINDS
    resolution: tuple[int, int] = field(default=(1920, 1080), metadata=key(read=_resolution))
    fps: float = field(default=15.0, metadata=key(0.1, 240))
    pre_trigger_frames: int = field(default=3, metadata=key(0, 30))
    burst_frames: int = field(default=5, metadata=key(1, 60))
    burst_fps: float = field(default=10.0, metadata=key(0.1, 240))
    stall_after_s: float = field(default=5.0, metadata=key(0.1))   # no frame this long: reported stalled
    context_frame: bool = False                                      # send a downscaled scene frame with each read
    context_width: int = field(default=960, metadata=key(64, 8000))
    options: Any = field(default=None, metadata=DERIVED)

    def __post_init__(self) -> None:
        if self.options is None:           # the kind's defaults
            object.__setattr__(self, "options", sources.kind(self.kind).options())

    @property
    def burst_window_s(self) -> float:
        """The burst window: how long a burst takes at `burst_fps` (or the pre-trigger ring's span at
        `fps` with a frame to spare, when that is longer). No frame older than this before a trigger is
        used for it (`unit.burst.PreTriggerRing`)."""
        return max(self.burst_frames / self.burst_fps, (self.pre_trigger_frames + 1) / self.fps)


@dataclass(frozen=True)
class RecognitionConfig:
    model_dir: str = field(default="", metadata=key(path=True))   # empty: the models shipped in the package
    threads: int = field(default=1, metadata=key(1, 16))
    top_n: int = field(default=5, metadata=key(1, CANDIDATES_MAX))
    framings: int = field(default=2, metadata=key(1, 2))           # reader passes per plate (unit.recognise)
    two_row_plates: bool = True        # also read a two-row plate with its rows side by side (unit.rows)
    min_det_score: float = field(default=0.3, metadata=key(0, 1, live=True))
    min_frame_confidence: float = field(default=0.0, metadata=key(0, 1, live=True))   # both chosen on
    min_read_confidence: float = field(default=0.2, metadata=key(0, 1, live=True))    # valid clips: docs/unit-config.md
    min_chars: int = field(default=2, metadata=key(1, 10, live=True))
    # a plate found and read, but voted below min_read_confidence: stored marked low-confidence (true), or dropped
    low_confidence_reads: bool = field(default=True, metadata=key(live=True))
    retry_model_s: float = field(default=60.0, metadata=key(1))   # a missing or corrupt model is retried this often


@dataclass(frozen=True)
class DedupConfig:
    window_s: float = field(default=10.0, metadata=key(0, 3600, live=True))
    max_edits: int = field(default=1, metadata=key(0, 3, live=True))


@dataclass(frozen=True)
class MotionConfig:
    threshold: float = field(default=25.0, metadata=key(1, 255, live=True))          # grey-level change that counts as moved
    min_fraction: float = field(default=0.03, metadata=key(0.0001, 1, live=True))    # share of ROI samples that must move
    quiet_frames: int = field(default=3, metadata=key(1, 1000, live=True))           # still frames that end a motion episode
    sample_px: int = field(default=64, metadata=key(8, 512))      # ROI subsampled to about this many samples across


@dataclass(frozen=True)
class BufferConfig:
    path: str = field(default="/var/lib/alpr-unit/buffer.sqlite", metadata=key(path=True))
    max_mb: float = field(default=512.0, metadata=key(0.01))
    max_age_days: float = field(default=30.0, metadata=key(0.0001))


@dataclass(frozen=True)
class HotlistConfig:
    path: str = field(default="", metadata=key(path=True, live=True))    # empty: no hot list


@dataclass(frozen=True)
class LogConfig:
    level: str = field(default="INFO", metadata=key(choices=LOG_LEVELS, live=True))
    format: str = field(default="json", metadata=key(choices=LOG_FORMATS, live=True))


@dataclass(frozen=True)
class GpioConfig:
    """The lane sensors' GPIO library (`unit.gpio`): auto is gpiozero's own on a Pi, libgpiod on a Jetson."""
    backend: str = field(default="auto", metadata=key(choices=BACKENDS))
    chip: str = field(default="gpiochip0", metadata=key(nonempty=True))     # gpiod: where bare line offsets are


@dataclass(frozen=True)
class HealthConfig:
    status_path: str = field(default="", metadata=key(path=True))     # empty: "<buffer>.status.json"
    interval_s: float = field(default=5.0, metadata=key(0.1, 3600))


def _url(s: Section, k: str, default: Any) -> str:
    url = s.text(k, default)
    if url and not url.startswith(("https://", "http://")):
        raise s.bad(k, "an http(s) URL of the central ingest API", url)
    return url


@dataclass(frozen=True)
class UplinkConfig:
    """The uplink and the heartbeat (`unit.uplink`, `unit.heartbeat`); they run when `url` is set."""
    url: str = field(default="", metadata=key(read=_url))          # the central store's base URL
    identity_key_path: str = field(default="", metadata=key(path=True))   # the unit's Ed25519 key (enrolment)
    central_signing_key: str = ""      # base64 Ed25519 from enrolment: verifies pulled hot lists
    ca_bundle: str = field(default="", metadata=key(path=True))    # a private CA for the store's certificate
    batch_size: int = field(default=100, metadata=key(1, 10000))
    max_batch_bytes: int = field(default=8 * 1024 * 1024, metadata=key(1024, 1 << 30))
    backoff_base_s: float = field(default=1.0, metadata=key(0.001, 3600))
    backoff_cap_s: float = field(default=300.0, metadata=key(0.001, 86400))
    idle_s: float = field(default=5.0, metadata=key(0.001, 3600))   # poll interval with nothing to send
    connect_timeout_s: float = field(default=5.0, metadata=key(0.1, 600))
    read_timeout_s: float = field(default=30.0, metadata=key(0.1, 3600))
    heartbeat_interval_s: float = field(default=60.0, metadata=key(0.1, 86400))
    state_path: str = field(default="", metadata=key(path=True))   # empty: "<buffer>.uplink.json"
    drain_s: float = field(default=10.0, metadata=key(0, 3600))    # a replay's end: wait for delivery this long


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
    hotlist: HotlistConfig
    log: LogConfig
    health: HealthConfig
    uplink: UplinkConfig
    gpio: GpioConfig = field(default_factory=GpioConfig)
    path: str = ""

    @property
    def status_path(self) -> str:
        return self.health.status_path or (self.buffer.path + ".status.json")

    @property
    def warnings(self) -> list[str]:
        """What is allowed but probably wrong: said by the service at start, by `alpr-provision site`
        and by `selftest` (today: lanes whose regions overlap)."""
        return lane_overlaps(self.lanes)

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, for diffing two configs."""
        out: dict[str, Any] = {"unit_id": self.unit_id, "site": self.site, "central.kid": self.central_kid}
        for name in SECTIONS:
            out.update(_flat(getattr(self, name), name))
        out.update(_flat(self.camera.options, f"camera.{self.camera.kind}"))
        for i, lane in enumerate(self.lanes):
            out.update(_flat(lane, f"lanes[{i}]"))
            out.update(_flat(lane.sensor, f"lanes[{i}].sensor"))
        return out


# the tables read into a dataclass of the same name
SECTIONS = tuple(name for name, hint in typing.get_type_hints(UnitConfig).items()
                 if is_dataclass(hint) and name != "camera") + ("camera",)


def _flat(section: Any, prefix: str) -> dict[str, Any]:
    return {f"{prefix}.{f.name}": getattr(section, f.name) for f in fields(section) if not f.metadata.get("derived")}


def live_keys(cfg: UnitConfig) -> set[str]:
    """The dotted keys a running unit applies without a restart (fields marked live)."""
    out = {f"{name}.{f.name}" for name in SECTIONS for f in fields(getattr(cfg, name)) if is_live(f)}
    return out | {f"camera.{cfg.camera.kind}.{f.name}" for f in fields(cfg.camera.options) if is_live(f)}


def changed_keys(old: UnitConfig, new: UnitConfig) -> tuple[list[str], list[str]]:
    """(live keys that changed, keys that changed but need a restart)."""
    a, b = old.flat(), new.flat()
    live = live_keys(old)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in changed if k in live], [k for k in changed if k not in live]


def _take_live(old: Any, new: Any) -> Any:
    live = {f.name: getattr(new, f.name) for f in fields(old) if is_live(f)}
    return replace(old, **live) if live else old


def merge_live(old: UnitConfig, new: UnitConfig) -> UnitConfig:
    """`old` with the values of its live keys taken from `new`: the config a running unit goes on
    with after a reload (every other change waits for a restart)."""
    out = {name: _take_live(getattr(old, name), getattr(new, name)) for name in SECTIONS}
    if old.camera.kind == new.camera.kind:
        out["camera"] = replace(out["camera"], options=_take_live(old.camera.options, new.camera.options))
    return replace(old, **out)


def _load_key(top: Section, base: Path) -> X25519PublicKey:
    c = Section(top.table("central"), "central", {"public_key", "public_key_path"})
    c.check_unknown()
    inline, path = c.data.get("public_key"), c.data.get("public_key_path")
    if (inline is None) == (path is None):
        raise ConfigError("central.public_key: give exactly one of central.public_key (base64 or PEM) "
                          "or central.public_key_path")
    if inline is not None:
        name, text = "central.public_key", c.text("public_key", nonempty=True)
    else:
        name = "central.public_key_path"
        p = Path(c.text("public_key_path", nonempty=True))
        p = p if p.is_absolute() else base / p
        try:
            text = p.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}: expected a readable X25519 public key file, got {str(p)!r} "
                              f"({type(exc).__name__})") from None
    try:
        return seal.load_sealing_public(text)
    except (ValueError, base64.binascii.Error, UnicodeError) as exc:
        raise ConfigError(f"{name}: expected an X25519 public key (raw base64 or PEM), {exc}") from None


def _lanes(top: Section) -> tuple[LaneConfig, ...]:
    raw = top.data.get("lanes")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"lanes: expected at least one [[lanes]] table, got {raw!r}")
    lanes, names, pins = [], set(), set()
    for i, item in enumerate(raw):
        s = Section(item, f"lanes[{i}]")
        sensor = read(s.table("sensor"), f"lanes[{i}].sensor", SensorConfig)
        lane = read(item, f"lanes[{i}]", LaneConfig, extra_keys={"sensor"}, given={"sensor": sensor})
        if lane.name in names:
            raise s.bad("name", "a name no other lane has", lane.name)
        names.add(lane.name)
        if sensor.pin is not None:
            if sensor.pin in pins:
                raise ConfigError(f"lanes[{i}].sensor.pin: expected a pin no other lane uses, got {sensor.pin!r}")
            pins.add(sensor.pin)
        lanes.append(lane)
    return tuple(lanes)


def lane_overlaps(lanes: tuple[LaneConfig, ...] | list[LaneConfig]) -> list[str]:
    """A warning for each pair of lanes whose regions (roi) overlap. A plate whose centre lies in the
    overlap belongs to both lanes, so when both are triggered together (motion in the overlap, two
    vehicles side by side) one vehicle is read on both: two reads, two alerts. Allowed, since a camera
    can need it, but said; regions that only touch (0.5 and 0.5) do not overlap."""
    out = []
    for i, a in enumerate(lanes):
        for j in range(i + 1, len(lanes)):
            b = lanes[j]
            w = min(a.roi[2], b.roi[2]) - max(a.roi[0], b.roi[0])
            h = min(a.roi[3], b.roi[3]) - max(a.roi[1], b.roi[1])
            if w > 0 and h > 0:
                share = w * h / min((r[2] - r[0]) * (r[3] - r[1]) for r in (a.roi, b.roi))
                out.append(f"lanes[{i}] {a.name!r} and lanes[{j}] {b.name!r}: their regions (roi) overlap "
                           f"({share:.0%} of the smaller): a vehicle seen there can be read on both lanes, "
                           "two reads and two alerts; give each lane its own part of the frame")
    return out


def _camera(top: Section, resolve: Callable[[str], str]) -> CameraConfig:
    """[camera] and the table of each kind it has (all checked; the chosen kind's options kept)."""
    s = Section(top.table("camera"), "camera")
    kinds = tuple(sources.KINDS)
    for k in s.data:              # a key that moved into a kind's table: say where it goes now
        homes = [n for n in kinds if k in sources.kind(n).options.__dataclass_fields__ and n != k]
        if homes and k not in CameraConfig.__dataclass_fields__:
            raise ConfigError(f"camera.{k}: unknown key in [camera]; it belongs to the "
                              f"{' and '.join(homes)} camera: put it under " + " or ".join(f"[camera.{n}]" for n in homes))
    if "source" in s.data:
        raise ConfigError("camera.source: unknown key in [camera]; a replay camera's folder is "
                          "[camera.replay] path")
    chosen = s.choice("kind", kinds, CameraConfig.kind)
    options = {n: read(s.table(n), f"camera.{n}", sources.kind(n).options, resolve)
               for n in kinds if n in s.data or n == chosen}
    return read(s.data, "camera", CameraConfig, resolve, extra_keys=set(kinds), given={"options": options[chosen]})


def _identifier(top: Section, k: str) -> str:
    """The unit id or the site: as the central store accepts them at enrolment and in every read."""
    v = top.text(k, nonempty=True)
    if not ID_RE.fullmatch(v):
        raise top.bad(k, f"1-{ID_MAX} of A-Z a-z 0-9 . _ - starting with a letter or digit (as enrolled)", v)
    return v


def parse(data: dict[str, Any], base: Path = Path("."), path: str = "") -> UnitConfig:
    """Validate a parsed TOML document; relative paths are resolved against `base`."""
    top = Section(data, "", {"unit_id", "site", "central", "lanes", *SECTIONS})
    top.check_unknown()
    public_key = _load_key(top, base)

    def resolve(p: str) -> str:
        return str(p if Path(p).is_absolute() else (base / p))

    tables: dict[str, Any] = {name: read(top.table(name), name, typing.get_type_hints(UnitConfig)[name], resolve)
                              for name in SECTIONS if name != "camera"}
    return UnitConfig(
        unit_id=_identifier(top, "unit_id"),
        site=_identifier(top, "site"),
        central_public_key=public_key,
        central_kid=seal.sealing_key_id(public_key),
        camera=_camera(top, resolve),
        lanes=_lanes(top),
        path=path,
        **tables,
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
    except RecursionError:     # tomllib recurses per level of nesting: a hostile file must not crash us
        raise ConfigError(f"{p}: not a usable config (arrays or tables nested too deeply)") from None
    return parse(data, base=p.resolve().parent, path=str(p.resolve()))
