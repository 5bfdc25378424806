"""`alpr-provision selftest`: is this unit ready to run at its gate? One line per check, pass or fail,
and for each failure what to do about it. Never a traceback: an unexpected error is a failed check.

Checks, in order (`--only` / `--skip` pick them by name):

| check | passes when |
| --- | --- |
| `config` | the unit config loads and validates (as the service would load it) |
| `identity` | the identity key is readable and its unit id is the config's |
| `camera` | the configured camera (any kind) opens and delivers frames, not black; a live camera's size and frame rate are measured against `camera.resolution` and `camera.fps` (a warning when they differ) |
| `sensors` | the GPIO backend loads (`[gpio]`: gpiozero on a Pi, libgpiod on a Jetson), and every lane's sensor shows a live edge: present, then absent, within `--sensor-wait` s (walk through the beam, drive over the loop) |
| `models` | the models load and read the bundled test plate exactly |
| `clock` | the clock is within `--max-skew` s of the central store's (HTTP Date), and NTP is synchronised where systemd can say |
| `disk` | free space at the buffer's folder covers `buffer.max_mb` plus a margin |
| `central` | the store answers, and accepts a heartbeat signed with this unit's key |

The camera and the GPIO pins can be held by one process only: stop the service first
(`systemctl stop alpr-unit`). Exit 0 when nothing failed, 1 when a check failed, 2 when the tool
cannot start (not provisioned, bad arguments).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable

from provisioning.common import layout
from unit import identity
from unit.config import ConfigError, UnitConfig, load
from unit.layout import SERVICE, Layout, read_json

CHECKS = ("config", "identity", "camera", "sensors", "models", "clock", "disk", "central")
DISK_MARGIN_MB = 256.0
RATE_WINDOW_S = 2.0      # a live camera is watched this long to measure its frame rate
RATE_SLACK = 0.8         # a rate below this share of camera.fps is warned about
STOP_SERVICE = f"stop the service while testing: systemctl stop {SERVICE} (start it again afterwards)"


@dataclass
class Check:
    name: str
    status: str                 # pass | fail | warn | skip
    detail: str
    advice: str = ""


@dataclass
class Options:
    sensor_wait: float = 30.0
    camera_timeout: float = 10.0
    camera_frames: int = 3
    max_skew: float = 3.0
    timeout: float = 5.0
    config: Path | None = None
    say: Callable[[str], None] = lambda _m: None     # live prompts for the technician


class Context:
    def __init__(self, lay: Layout, opts: Options):
        self.lay, self.opts = lay, opts
        self.cfg: UnitConfig | None = None
        self.identity: tuple[str, Any] | None = None
        self.central = read_json(lay.central_json) or {}

    @property
    def url(self) -> str | None:
        if self.cfg is not None and self.cfg.uplink.url:
            return self.cfg.uplink.url.rstrip("/")
        return self.central.get("url")

    @property
    def verify(self) -> bool | str:
        ca = (self.cfg.uplink.ca_bundle if self.cfg else None) or self.central.get("ca_bundle")
        return ca or True


def _need_config(ctx: Context, name: str) -> Check | None:
    if ctx.cfg is None:
        return Check(name, "skip", "no usable config (see the config check)")
    return None


# -- the checks --------------------------------------------------------------------------------------------
def check_config(ctx: Context) -> list[Check]:
    path = ctx.opts.config or ctx.lay.config
    try:
        ctx.cfg = load(path)
    except ConfigError as exc:
        missing = not Path(path).exists()
        return [Check("config", "fail", str(exc),
                      "write it: alpr-provision site --lane ... (or -i to be asked)" if missing
                      else "fix the key named above (docs/unit-config.md), or rewrite it with alpr-provision site")]
    lanes = ", ".join(f"{ln.name} ({ln.sensor.kind})" for ln in ctx.cfg.lanes)
    return [Check("config", "pass", f"{path}: unit {ctx.cfg.unit_id} at {ctx.cfg.site}; lanes {lanes}")] + [
        Check("config:lanes", "warn", w, "set each lane's roi to its own part of the frame: alpr-provision site --lane "
                                   "name=..,roi=x0:y0:x1:y1 (alpr-provision aim shows the frame)")
        for w in ctx.cfg.warnings]


def check_identity(ctx: Context) -> list[Check]:
    try:
        unit_id, key = identity.load(ctx.lay)
    except identity.IdentityError as exc:
        return [Check("identity", "fail", str(exc), "alpr-provision init, then enroll again")]
    ctx.identity = (unit_id, key)
    if ctx.cfg is not None and ctx.cfg.unit_id != unit_id:
        return [Check("identity", "fail", f"the config says unit {ctx.cfg.unit_id}, the identity is {unit_id}",
                      "rewrite the config from the identity: alpr-provision site ...")]
    if ctx.central and ctx.central.get("unit_key_id") not in (None, identity.key_id(key)):
        return [Check("identity", "fail", f"key {identity.key_id(key)} is not the key enrolled "
                                          f"({ctx.central.get('unit_key_id')}): the identity was replaced",
                      "enroll again with a new token: alpr-provision enroll --central URL --token TOKEN --force")]
    return [Check("identity", "pass", f"unit {unit_id}, key {identity.key_id(key)}")]


# what to look at when a camera of each kind does not open or gives nothing
_CAMERA_CHECKS = {
    "picamera2": "check the ribbon cable is seated at both ends (contacts facing the right way) and the camera has "
                 "power; `rpicam-hello --list-cameras` must list it; camera_auto_detect=1 in /boot/firmware/config.txt; "
                 "reboot after reconnecting",
    "rtsp": "check the camera answers at its address (ping it), the URL's path (it differs by make: /stream1, "
            "/h264, /Streaming/Channels/101), the user and password in camera.rtsp.credentials_file, and try "
            "transport = \"tcp\"; `gst-launch-1.0 rtspsrc location=URL ! fakesink` shows the camera's own answer",
    "v4l2": "`v4l2-ctl --list-devices` must list the camera; `v4l2-ctl -d DEVICE --list-formats-ext` shows the "
            "formats, sizes and rates it offers (set camera.v4l2.pixel_format, camera.resolution and camera.fps "
            "from it); the service user must be in group video; a USB camera wants a port with enough power",
    "jetson-csi": "`gst-launch-1.0 nvarguscamerasrc sensor-id=N num-buffers=30 ! fakesink` must run; sudo systemctl "
                  "restart nvargus-daemon; check the ribbon cable, and that the sensor is enabled for its CSI port "
                  "(/opt/nvidia/jetson-io/jetson-io.py); the service user must be in group video",
    "gstreamer": "run the pipeline as `gst-launch-1.0 PIPELINE ! fakesink` to see GStreamer's own error",
}


def _camera_advice(exc: BaseException, kind: str = "picamera2") -> tuple[str, str]:
    from unit.sources.gstreamer import CameraUnavailable
    msg = f"{type(exc).__name__}: {exc}"
    low = msg.lower()
    if isinstance(exc, ModuleNotFoundError) and "picamera2" in low:
        return ("no camera software: picamera2 is not installed (or this is not a Raspberry Pi)",
                "on Raspberry Pi OS: sudo apt install python3-picamera2; the unit's venv must see system "
                "packages (firmware/install.sh makes it with --system-site-packages)")
    if isinstance(exc, CameraUnavailable):
        return (f"the camera cannot run with what is installed: {exc}",
                "install what is named (firmware/install.sh installs the GStreamer packages a unit needs), "
                "or choose the camera kind this board has (camera.kind)")
    if "busy" in low or "acquire" in low:
        return (f"camera is in use by another process ({msg})", STOP_SERVICE)
    return (f"no camera found ({msg})", _CAMERA_CHECKS.get(kind, _CAMERA_CHECKS["gstreamer"]))


def check_camera(ctx: Context) -> list[Check]:
    if (skip := _need_config(ctx, "camera")):
        return [skip]
    from unit.sources import open_source
    from unit.sources.frames import BadFrame, Frame, SourceEnded
    cfg = ctx.cfg
    assert cfg is not None
    kind = cfg.camera.kind
    try:
        src = open_source(cfg)
    except ValueError as exc:
        return [Check("camera", "fail", f"camera source: {exc}",
                      f"set the key named above in [camera.{kind}] (docs/unit-config.md, Camera kinds)")]
    t0 = time.monotonic()
    try:
        src.open()
    except Exception as exc:                              # picamera2 raises anything from IndexError to RuntimeError
        detail, advice = _camera_advice(exc, kind)
        return [Check("camera", "fail", f"{kind}: {detail}", advice)]
    # a camera is watched long enough to measure its frame rate; a recording gives a few frames
    want_s = RATE_WINDOW_S if kind != "replay" and getattr(src, "live", False) else 0.0
    times: list[float] = []
    bad, size, brightness = 0, None, []
    try:
        deadline = t0 + ctx.opts.camera_timeout
        while time.monotonic() < deadline and (len(times) < ctx.opts.camera_frames
                                               or (times and times[-1] - times[0] < want_s)):
            try:
                item = src.read(timeout=0.5)
            except SourceEnded:
                break
            except BadFrame:
                bad += 1
                continue
            if isinstance(item, Frame):
                times.append(item.t)
                size = (item.image.shape[1], item.image.shape[0])
                brightness.append(float(item.image[::8, ::8].mean()))
    except Exception as exc:
        detail, advice = _camera_advice(exc, kind)
        return [Check("camera", "fail", f"{kind}: camera failed while capturing: {detail}", advice)]
    finally:
        try:
            src.close()
        except Exception:
            pass
    took = time.monotonic() - t0
    frames = len(times)
    if frames == 0:
        return [Check("camera", "fail", f"{kind}: camera opened but gave no frame in {ctx.opts.camera_timeout:.0f} s"
                      + (f" ({bad} bad frames)" if bad else ""),
                      "a camera that opens but delivers nothing: " + (
                          "reseat the cable, check the power supply (5 V 3 A for a Pi 4, 5 A for a Pi 5), then reboot"
                          if kind == "picamera2" else _CAMERA_CHECKS.get(kind, _CAMERA_CHECKS["gstreamer"])))]
    mean = sum(brightness) / len(brightness)
    if mean < 8:
        return [Check("camera", "fail", f"{kind}: {frames} frames {size[0]}x{size[1]} but black (mean level {mean:.0f}/255)",
                      "lens cap on, the lens covered, or no light at night (IR illuminator); "
                      "exposure too short (the camera kind's exposure keys)?")]
    detail = f"{kind}: {frames} frames {size[0]}x{size[1]}"
    rate = (frames - 1) / (times[-1] - times[0]) if frames > 1 and times[-1] > times[0] else None
    if want_s and rate is not None:
        detail += f" at {rate:.1f} fps"
    detail += f" in {took:.1f} s, mean level {mean:.0f}/255"
    figures = getattr(src, "health", None)
    if want_s and callable(figures):
        detail += f", {figures().get('dropped', 0)} dropped, capture to pipeline {figures().get('latency_ms', 0):.0f} ms"
    out = [Check("camera", "pass", detail)]
    res = tuple(cfg.camera.resolution)
    if want_s and size != res:
        out.append(Check("camera:resolution", "warn", f"the camera gives {size[0]}x{size[1]}, camera.resolution "
                         f"says {res[0]}x{res[1]}",
                         "set camera.resolution to what the camera gives, or set the camera's stream "
                         "(its web page, or the pipeline's caps) to the configured size"))
    if want_s and rate is not None and rate < RATE_SLACK * cfg.camera.fps:
        out.append(Check("camera:rate", "warn", f"the camera gives {rate:.1f} frames a second, camera.fps says "
                         f"{cfg.camera.fps:g}",
                         "set the camera's frame rate (its web page, or the pipeline's caps) to camera.fps, or "
                         "lower camera.fps; in the dark some cameras lengthen the exposure and slow down"))
    return out


_WIRING = {
    "loop": "check the loop detector has power and its output relay is wired to GPIO {pin} and GND; a relay output "
            "needs pull = up and active = low; the detector's LED must light when a vehicle is on the loop",
    "ir_beam": "check the emitter and receiver have power and face each other (the receiver's LED goes out when the "
               "beam is cut), and the receiver output is wired to GPIO {pin}",
    "radar": "check the radar has power, faces the lane, and its presence output is wired to GPIO {pin} and GND",
}


GPIOD_ADVICE = ("with libgpiod (a Jetson) sensor.pin is the kernel's GPIO line: `gpioinfo` lists chips, offsets and "
                "names (docs/unit-config.md says how to find a header pin's line); the service user must be in "
                "group gpio and /dev/gpiochip* must belong to it (firmware/install.sh writes the udev rule; "
                "ls -l /dev/gpiochip*)")


def check_sensors(ctx: Context) -> list[Check]:
    if (skip := _need_config(ctx, "sensors")):
        return [skip]
    from unit.sensors import LaneSensor
    cfg = ctx.cfg
    assert cfg is not None
    lanes = [ln for ln in cfg.lanes if ln.has_sensor]
    if not lanes:
        return [Check("sensors", "skip", "no lane has a sensor: every lane is triggered by motion")]
    from unit import gpio
    try:
        backend = gpio.setup(cfg.gpio)
    except ImportError as exc:
        return [Check("gpio", "fail", str(exc), "firmware/install.sh installs the GPIO library this board needs; "
                      "or choose another [gpio] backend")]
    out: list[Check] = [Check("gpio", "pass", f"backend {backend}")]
    on_gpiod = gpio.backend(cfg.gpio) == "gpiod"
    opened: dict[str, Any] = {}
    events: dict[str, list[tuple[bool, float]]] = {ln.name: [] for ln in lanes}
    lock = threading.Lock()
    done = threading.Event()

    def on_edge(p) -> None:
        with lock:
            events[p.lane].append((p.active, time.monotonic()))
            ctx.opts.say(f"  lane {p.lane}: {'vehicle present' if p.active else 'clear'} ({p.sensor})")
            if all(any(a for a, _ in ev) and any(not a for a, _ in ev) for ev in events.values()):
                done.set()

    for ln in lanes:
        try:
            opened[ln.name] = LaneSensor(ln, on_edge)
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            busy = "busy" in msg.lower()
            out.append(Check(f"sensor:{ln.name}", "fail", f"cannot open GPIO {ln.sensor.pin} ({msg})",
                             STOP_SERVICE if busy else GPIOD_ADVICE if on_gpiod else
                             "on a Pi: sudo apt install python3-lgpio, and the service user must be in group gpio; "
                             "check sensor.pin is a BCM number (GPIO17, not header pin 11)"))
    try:
        if opened:
            ctx.opts.say(f"walk through the beam / drive over the loop of each lane now: "
                         f"{', '.join(opened)} (waiting up to {ctx.opts.sensor_wait:.0f} s)")
            start = time.monotonic()
            done.wait(ctx.opts.sensor_wait)
            waited = time.monotonic() - start
        for ln in lanes:
            sensor = opened.get(ln.name)
            if sensor is None:
                continue
            with lock:
                ev = list(events[ln.name])
            name, pin, kind = f"sensor:{ln.name}", ln.sensor.pin, ln.sensor.kind
            polarity = f"active {'high' if ln.sensor.active_high else 'low'}"
            if any(a for a, _ in ev) and any(not a for a, _ in ev):
                out.append(Check(name, "pass", f"{kind} on GPIO {pin}: {len(ev)} edges (present, then clear)"))
            elif ev:
                out.append(Check(name, "fail", f"{kind} on GPIO {pin} went {'active' if ev[-1][0] else 'inactive'} "
                                               "once and stayed so", "pass through once more, fully; if it stays "
                                               f"'present' with no vehicle, the polarity ({polarity}) is wrong"))
            elif sensor.active:
                out.append(Check(name, "fail", f"{kind} on GPIO {pin} reads 'vehicle present' all the time, no edge "
                                               f"in {waited:.0f} s",
                                 f"the polarity is probably inverted: set active = {'low' if ln.sensor.active_high else 'high'} "
                                 "(alpr-provision site); or the sensor is unpowered or disconnected (a loose wire reads "
                                 "as the pull resistor's level), the beam blocked, or a vehicle stands on the loop; "
                                 + _WIRING[kind].format(pin=pin)))
            else:
                out.append(Check(name, "fail", f"dead sensor: no edge from the {kind} on GPIO {pin} in {waited:.0f} s "
                                               "(reads 'clear' throughout)",
                                 _WIRING[kind].format(pin=pin) + f"; `pinctrl get {pin}` shows the pin's level live"))
    finally:
        for s in opened.values():
            s.close()
    return out


def check_models(ctx: Context) -> list[Check]:
    from provisioning import testplate
    from unit.config import RecognitionConfig
    from unit.recognise import from_config
    t0 = time.monotonic()
    try:
        rec = from_config(ctx.cfg.recognition if ctx.cfg else RecognitionConfig())
    except Exception as exc:
        return [Check("models", "fail", f"the models do not load ({type(exc).__name__}: {exc})",
                      "the software slot may be damaged: alpr-unit update status --verify; reinstall the release "
                      "(alpr-unit update apply BUNDLE --allow-downgrade) if it reports damage")]
    loaded = time.monotonic() - t0
    try:
        reads = rec.read(testplate.load())
    except Exception as exc:
        return [Check("models", "fail", f"the models loaded but could not read ({type(exc).__name__}: {exc})",
                      "the software slot may be damaged: alpr-unit update status --verify")]
    took = time.monotonic() - t0 - loaded
    got = reads[0].text if reads else None
    if got != testplate.TEXT:
        return [Check("models", "fail", f"the reader read {got or 'nothing'} from the test plate, not {testplate.TEXT}",
                      "the models are not the shipped ones or are damaged: alpr-unit update status --verify; "
                      "check recognition.model_dir in the config")]
    return [Check("models", "pass", f"loaded in {loaded:.1f} s, read the test plate {got} in {took * 1000:.0f} ms "
                                    f"(confidence {reads[0].confidence:.2f}); {', '.join(rec.versions().values())}")]


def _central_time(ctx: Context) -> tuple[float, float] | None:
    """(local - central seconds, round trip) from the store's HTTP Date header; None if unreachable."""
    import requests
    url = ctx.url
    if not url:
        return None
    try:
        t0 = time.time()
        resp = requests.get(url + "/policy", timeout=ctx.opts.timeout, verify=ctx.verify)
        t1 = time.time()
        server = parsedate_to_datetime(resp.headers["Date"]).timestamp()
    except Exception:
        return None
    return (t0 + t1) / 2 - (server + 0.5), t1 - t0    # Date truncates to the second: +0.5 on average


def _ntp_synced(lay: Layout) -> str | None:
    if not lay.is_system or not shutil.which("timedatectl"):
        return None
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def check_clock(ctx: Context) -> list[Check]:
    measured = _central_time(ctx)
    ntp = _ntp_synced(ctx.lay)
    ntp_txt = {"yes": "NTP synchronised", "no": "NTP NOT synchronised"}.get(ntp or "", "")
    ntp_advice = ("check time sync: timedatectl timesync-status; the network must allow NTP (UDP 123) or set a "
                  "reachable server in /etc/systemd/timesyncd.conf (NTP=...)")
    if measured is None:
        if ntp == "yes":
            return [Check("clock", "pass", "NTP synchronised (central store not reachable to compare)")]
        if ntp == "no":
            return [Check("clock", "fail", "NTP not synchronised and the central store is not reachable to compare", ntp_advice)]
        return [Check("clock", "warn", "cannot tell: the central store is not reachable and systemd cannot say")]
    skew, rtt = measured
    tolerance = ctx.opts.max_skew + rtt
    detail = f"{skew:+.1f} s from the central store's clock" + (f"; {ntp_txt}" if ntp_txt else "")
    if abs(skew) > tolerance:
        return [Check("clock", "fail", detail, "the unit's clock is wrong (a Pi has no battery clock): " + ntp_advice
                      + "; reads carry capture times, and the store refuses requests more than 2 minutes off")]
    if ntp == "no":
        return [Check("clock", "warn", detail, ntp_advice)]
    return [Check("clock", "pass", detail)]


def check_disk(ctx: Context) -> list[Check]:
    if (skip := _need_config(ctx, "disk")):
        return [skip]
    cfg = ctx.cfg
    assert cfg is not None
    p = Path(cfg.buffer.path).parent
    while not p.exists() and p != p.parent:
        p = p.parent
    du = shutil.disk_usage(p)
    free_mb = du.free / 1e6
    need = cfg.buffer.max_mb + DISK_MARGIN_MB
    detail = f"{free_mb:,.0f} MB free at {p} (buffer may use {cfg.buffer.max_mb:,.0f} MB, + {DISK_MARGIN_MB:.0f} MB margin)"
    if free_mb < need:
        return [Check("disk", "fail", detail, "use a larger card, remove what else fills it (journalctl --vacuum-size=100M), "
                      "or lower buffer.max_mb in the config")]
    return [Check("disk", "pass", detail)]


def check_central(ctx: Context) -> list[Check]:
    import requests
    from unit.heartbeat import system_facts
    from unit.uplink import SignedClient
    from wire import paths
    from wire.times import utc_now
    url = ctx.url
    if not url:
        return [Check("central", "fail", "no central store URL (uplink.url)", "enroll first: alpr-provision enroll")]
    try:
        resp = requests.get(url + "/policy", timeout=ctx.opts.timeout, verify=ctx.verify)
    except requests.exceptions.SSLError as exc:
        return [Check("central", "fail", f"TLS to {url} failed: {exc.__class__.__name__}",
                      "the store's certificate is not trusted: set uplink.ca_bundle to its CA file")]
    except requests.exceptions.Timeout:
        return [Check("central", "fail", f"{url} did not answer in {ctx.opts.timeout:.0f} s",
                      "check the network route and firewall to the store (and the store itself)")]
    except requests.RequestException as exc:
        return [Check("central", "fail", f"central store unreachable at {url} ({exc.__class__.__name__})",
                      "check the network cable / modem, DNS, the firewall (outbound HTTPS to the store), "
                      "and uplink.url in the config; ask the administrator whether the store is up")]
    if ctx.identity is None:
        return [Check("central", "fail", f"{url} answers (HTTP {resp.status_code}) but there is no identity to sign with",
                      "alpr-provision init, then enroll")]
    unit_id, key = ctx.identity
    session = requests.Session()
    session.verify = ctx.verify
    client = SignedClient(url, unit_id, key, session, timeout=(ctx.opts.timeout, ctx.opts.timeout))
    try:
        hb = client.post_json(paths.HEARTBEAT, {"sent_at": utc_now(),
                                                "selftest": True, **system_facts(ctx.lay.state if ctx.lay.state.exists() else "/")})
    except requests.RequestException as exc:
        return [Check("central", "fail", f"{url} answered once, then failed ({exc.__class__.__name__})",
                      "an unstable link: check the network, then run the selftest again")]
    if hb.status_code == 200:
        return [Check("central", "pass", f"{url} reachable; unit {unit_id} accepted (signed heartbeat stored)")]
    try:
        err = hb.json().get("error", "")
    except ValueError:
        err = hb.text[:120]
    if hb.status_code == 401 and "stale" in str(err):
        return [Check("central", "fail", f"the store refuses this unit's clock ({err})",
                      "set the clock right (see the clock check); the store accepts requests up to 2 minutes off")]
    if hb.status_code == 401:
        return [Check("central", "fail", f"the store does not accept this unit's signature ({err})",
                      "this identity is not enrolled with this store (or was replaced): get a new token and run "
                      "alpr-provision enroll --central URL --token TOKEN --force")]
    if hb.status_code == 403:
        return [Check("central", "fail", f"the store refuses this unit: {err}",
                      "the unit was revoked at the central store; ask the administrator (a new unit id and token are needed)")]
    return [Check("central", "fail", f"unexpected answer HTTP {hb.status_code}: {err}",
                  "is uplink.url the central store's base URL? ask the administrator")]


FUNCS: dict[str, Callable[[Context], list[Check]]] = {
    "config": check_config, "identity": check_identity, "camera": check_camera, "sensors": check_sensors,
    "models": check_models, "clock": check_clock, "disk": check_disk, "central": check_central,
}


def selftest(lay: Layout, opts: Options, only: list[str] | None = None, skip: list[str] | None = None) -> list[Check]:
    wanted = [c for c in CHECKS if (not only or c in only) and c not in (skip or [])]
    ctx = Context(lay, opts)
    results: list[Check] = []
    for name in CHECKS:
        run_it = name in wanted
        if not run_it and name not in ("config", "identity"):
            continue
        try:
            got = FUNCS[name](ctx)
        except Exception as exc:                  # a check must never end in a traceback
            got = [Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                         "run again; if it repeats, report it with this line")]
        # config and identity always load (the others need them); a broken config is shown even when not asked for
        if run_it or (name == "config" and any(c.status == "fail" for c in got)):
            results.extend(got)
    return results


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in CHECKS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown check {bad[0]!r} (checks: {', '.join(CHECKS)})")
    return names


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("selftest", help="check camera, sensors, models, clock, disk and central; advice for each failure",
                       description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", type=_names, help=f"comma list of checks to run ({', '.join(CHECKS)})")
    p.add_argument("--skip", type=_names, default=[], help="comma list of checks to leave out")
    p.add_argument("--sensor-wait", type=float, default=30.0, help="seconds to wait for each sensor's edges (default 30)")
    p.add_argument("--camera-timeout", type=float, default=10.0)
    p.add_argument("--max-skew", type=float, default=3.0, help="allowed clock difference to the store, seconds")
    p.add_argument("--config", type=Path, help="the unit config (default ROOT/etc/alpr-unit/config.toml)")
    p.add_argument("--json", action="store_true")
    return p


def render(results: list[Check]) -> str:
    lines = []
    for c in results:
        lines.append(f"{c.status.upper():<5} {c.name:<14} {c.detail}")
        if c.advice and c.status in ("fail", "warn"):
            lines.append(f"{'':20}what to do: {c.advice}")
    failed = sum(c.status == "fail" for c in results)
    lines.append(f"{sum(c.status == 'pass' for c in results)} passed, {failed} failed"
                 + (f", {sum(c.status == 'warn' for c in results)} warnings" if any(c.status == "warn" for c in results) else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    lay = layout(args)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if not args.json else (lambda _m: None)
    opts = Options(sensor_wait=args.sensor_wait, camera_timeout=args.camera_timeout, max_skew=args.max_skew,
                   config=args.config, say=say)
    results = selftest(lay, opts, args.only, args.skip)
    ok = not any(c.status == "fail" for c in results)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in results]}, indent=1))
    else:
        print(render(results))
    return 0 if ok else 1
