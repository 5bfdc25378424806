"""`alpr-provision site`: write the unit config for this gate, from flags or by asking.

The file (`/etc/alpr-unit/config.toml`) is checked with the service's own validator (`unit.config`)
before it is written, so anything the service would refuse is refused here, naming the key. The unit id
and site come from the identity and the enrolment (reads naming another site are rejected centrally);
the central keys, uplink URL and identity path from what `enroll` pinned. A lane is given as

    --lane name=in,direction=in,sensor=loop,pin=17,active=low,pull=up,roi=0:0.3:0.5:1

(`sensor` loop | ir_beam | radar | none; `pin` a BCM number or a gpiozero name such as GPIO17;
`active` high | low: the level that means "vehicle present"; `pull` up | down | floating; `roi` the
lane's part of the frame as fractions x0:y0:x1:y1). Defaults per sensor kind: loop and radar detectors
switch a relay to ground (active low, pull-up), IR break-beam receivers go high when the beam is cut
(active high, pull-up). `selftest` shows whether the polarity is right. The gate is not a config key
(reads carry site and lane): it is recorded in `site.json` and the config's header, and the default
lane names start with it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from provisioning.common import Usage, emit, layout
from unit import identity
from unit.config import SENSOR_KINDS, ConfigError, parse
from unit.layout import Layout, chown_service, read_json, secure_dir, write_file
from unit.sources import KINDS
from wire.read import DIRECTIONS
from wire.times import utc_now

CAMERA_KINDS = tuple(KINDS)
# what --camera-source sets for each kind: its [camera.<kind>] key, and whether the kind needs it
CAMERA_SOURCE = {"replay": ("path", True, "a clip or stills folder"), "rtsp": ("url", True, "the stream's rtsp:// URL"),
                 "gstreamer": ("pipeline", True, "a gst-launch-1.0 pipeline"),
                 "v4l2": ("device", False, "the device, /dev/video0 or /dev/v4l/by-id/..."),
                 "jetson-csi": ("sensor_id", False, "the CSI sensor id, 0 or 1")}
SENSOR_ALIASES = {"ir": "ir_beam", "beam": "ir_beam", "ir-beam": "ir_beam", "irbeam": "ir_beam", "": "none"}
POLARITY_DEFAULTS = {"loop": (False, True), "radar": (False, True), "ir_beam": (True, True), "none": (True, None)}
LANE_KEYS = ("name", "direction", "sensor", "pin", "active", "pull", "roi")
BCM_PINS = range(2, 28)


@dataclass
class Lane:
    name: str
    direction: str = "unknown"
    sensor: str = "none"
    pin: int | str | None = None
    active_high: bool = True
    pull_up: bool | None = None
    roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


@dataclass
class Site:
    gate: str = ""
    lanes: list[Lane] = field(default_factory=list)
    camera: str = "picamera2"
    camera_source: str = ""
    resolution: tuple[int, int] = (1920, 1080)
    fps: float = 15.0
    shutter_us: int | None = None
    lens_position: float | None = None
    buffer_max_mb: float = 512.0


def _pin(value: str, where: str) -> int | str:
    v = value.strip()
    if v.isdigit():
        n = int(v)
        if n not in BCM_PINS:
            raise Usage(f"{where}: pin {n} is not a usable BCM GPIO number (2-27; 0 and 1 belong to the HAT EEPROM)")
        return n
    if not v:
        raise Usage(f"{where}: pin is empty")
    return v.upper()


def _roi(value: str, where: str) -> tuple[float, float, float, float]:
    parts = value.replace("/", ":").replace(" ", ":").split(":")
    try:
        nums = tuple(float(x) for x in parts if x != "")
    except ValueError:
        raise Usage(f"{where}: roi {value!r}: expected four fractions x0:y0:x1:y1, e.g. 0:0.3:0.5:1") from None
    if len(nums) != 4:
        raise Usage(f"{where}: roi {value!r}: expected four fractions x0:y0:x1:y1, e.g. 0:0.3:0.5:1")
    return nums  # type: ignore[return-value]


def parse_lane(spec: str) -> Lane:
    """One --lane value (key=value pairs separated by commas)."""
    where = f"--lane {spec!r}"
    fields: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        k = k.strip().lower()
        if not sep:
            raise Usage(f"{where}: {part!r} is not key=value (keys: {', '.join(LANE_KEYS)})")
        if k not in LANE_KEYS:
            raise Usage(f"{where}: unknown key {k!r} (keys: {', '.join(LANE_KEYS)})")
        fields[k] = v.strip()
    return lane_from(fields, where)


def lane_from(fields: dict[str, str], where: str) -> Lane:
    name = fields.get("name", "")
    if not name:
        raise Usage(f"{where}: name= is required")
    direction = fields.get("direction", "unknown").lower()
    if direction not in DIRECTIONS:
        raise Usage(f"{where}: direction {direction!r}: one of {', '.join(DIRECTIONS)}")
    sensor = fields.get("sensor", "none").lower()
    sensor = SENSOR_ALIASES.get(sensor, sensor)
    if sensor not in SENSOR_KINDS:
        raise Usage(f"{where}: sensor {sensor!r}: one of {', '.join(SENSOR_KINDS)}")
    active_high, pull_up = POLARITY_DEFAULTS[sensor]
    pin = None
    if sensor != "none":
        if not fields.get("pin"):
            raise Usage(f"{where}: a {sensor} sensor needs pin= (the BCM GPIO number it is wired to)")
        pin = _pin(fields["pin"], where)
        if "active" in fields:
            a = fields["active"].lower()
            if a not in ("high", "low"):
                raise Usage(f"{where}: active {a!r}: high or low (the level that means 'vehicle present')")
            active_high = a == "high"
        if "pull" in fields:
            pl = fields["pull"].lower()
            if pl not in ("up", "down", "floating"):
                raise Usage(f"{where}: pull {pl!r}: up, down or floating (external resistor)")
            pull_up = {"up": True, "down": False, "floating": None}[pl]
    elif fields.get("pin"):
        raise Usage(f"{where}: pin= given but sensor is none (a lane without a sensor is triggered by motion)")
    roi = _roi(fields["roi"], where) if fields.get("roi") else (0.0, 0.0, 1.0, 1.0)
    return Lane(name, direction, sensor, pin, active_high, pull_up, roi)


# -- the TOML ----------------------------------------------------------------------------------------------
def _q(s: str) -> str:
    return json.dumps(s)            # a JSON string is a valid TOML basic string


def _num(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else f"{float(x):.1f}"


def render(lay: Layout, site: Site, unit_id: str, enrolled: dict[str, Any]) -> str:
    state = lay.state
    lines = [
        f"# alpr-unit config written by `alpr-provision site` at {utc_now()}" + (f" - gate {site.gate}" if site.gate else ""),
        "# Reference: docs/unit-config.md. Rerunning `alpr-provision site` rewrites this file (the old one is kept",
        "# beside it as config.toml.bak-TIME). Keys marked LIVE there apply on save; others need a restart.",
        "",
        f"unit_id = {_q(unit_id)}",
        f"site = {_q(enrolled['site'])}",
        "",
        "[central]",
        f"public_key_path = {_q(lay.seal_pub.name)}   # pinned at enrolment (sealing key {enrolled.get('sealing_key_id', '?')})",
        "",
        "[buffer]",
        f"path = {_q(str(state / 'buffer.sqlite'))}",
        f"max_mb = {_num(site.buffer_max_mb)}",
        "",
        "[camera]",
        f"kind = {_q(site.camera)}",
        f"resolution = [{site.resolution[0]}, {site.resolution[1]}]",
        f"fps = {_num(site.fps)}",
    ]
    pi = []                          # the Pi camera's own options, under its kind's table
    if site.shutter_us is not None:
        pi.append(f"shutter_us = {int(site.shutter_us)}")
    if site.lens_position is not None:
        pi.append(f"lens_position = {_num(site.lens_position)}   # dioptres: 1 / focus distance in metres")
    if pi:
        lines += ["", "[camera.picamera2]", *pi]
    if site.camera_source and site.camera in CAMERA_SOURCE:
        key = CAMERA_SOURCE[site.camera][0]
        value = site.camera_source if key != "sensor_id" else int(site.camera_source)
        lines += ["", f"[camera.{site.camera}]", f"{key} = {_q(value) if isinstance(value, str) else value}"]
    for lane in site.lanes:
        lines += ["", "[[lanes]]", f"name = {_q(lane.name)}", f"direction = {_q(lane.direction)}",
                  "roi = [" + ", ".join(_num(v) for v in lane.roi) + "]", "  [lanes.sensor]",
                  f"  kind = {_q(lane.sensor)}"]
        if lane.sensor != "none":
            lines.append(f"  pin = {lane.pin if isinstance(lane.pin, int) else _q(str(lane.pin))}")
            lines.append(f"  active_high = {'true' if lane.active_high else 'false'}")
            lines.append(f"  pull_up = {_q('floating') if lane.pull_up is None else ('true' if lane.pull_up else 'false')}")
    lines += ["", "[hotlist]", f"path = {_q(str(state / 'hotlist.txt'))}   # kept in step with the central store",
              "", "[log]", 'level = "INFO"', 'format = "json"', "",
              "[uplink]", f"url = {_q(enrolled['url'])}",
              f"identity_key_path = {_q(lay.service_identity_path)}",
              f"central_signing_key = {_q(enrolled['signing_public_key'])}"]
    if enrolled.get("ca_bundle"):
        lines.append(f"ca_bundle = {_q(enrolled['ca_bundle'])}")
    return "\n".join(lines) + "\n"


def validate(text: str, config_path: Path) -> list[str]:
    """Check the generated file as the service will; its warnings (overlapping lanes) are returned."""
    try:
        return parse(tomllib.loads(text), base=config_path.parent, path=str(config_path)).warnings
    except ConfigError as exc:
        raise Usage(f"config error: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Usage(f"config error: generated TOML does not parse ({exc}) - a value has characters it cannot hold")


# -- asking ------------------------------------------------------------------------------------------------
def _ask(prompt: str, default: str, check: Callable[[str], Any]) -> Any:
    out = sys.stderr
    while True:
        print(f"{prompt} [{default}]: ", end="", file=out, flush=True)
        line = sys.stdin.readline()
        if not line:
            raise Usage(f"no answer to {prompt!r} (end of input)")
        value = line.strip() or default
        try:
            return check(value)
        except Usage as exc:
            print(f"  {exc}", file=out)


def _choice(options: tuple[str, ...], aliases: dict[str, str] | None = None) -> Callable[[str], str]:
    def check(v: str) -> str:
        v = v.lower()
        v = (aliases or {}).get(v, v)
        if v not in options:
            raise Usage(f"one of {', '.join(options)}")
        return v
    return check


def interactive(site: Site) -> Site:
    site.gate = _ask("gate (as signed at the site, e.g. G3)", site.gate or "", lambda v: v)
    n = _ask("how many lanes does this camera watch", str(max(1, len(site.lanes))), _lane_count)
    lanes = []
    for i in range(n):
        d = site.lanes[i] if i < len(site.lanes) else None
        print(f"-- lane {i + 1}", file=sys.stderr)
        default_name = d.name if d else (f"{site.gate}-{i + 1}" if site.gate else str(i + 1))
        f: dict[str, str] = {"name": _ask("  name", default_name, _nonempty)}
        f["direction"] = _ask("  direction of travel (in/out/unknown)", d.direction if d else "in", _choice(DIRECTIONS))
        f["sensor"] = _ask("  sensor (loop/ir_beam/radar/none)", d.sensor if d else "loop", _choice(SENSOR_KINDS, SENSOR_ALIASES))
        if f["sensor"] != "none":
            ah, pu = POLARITY_DEFAULTS[f["sensor"]]
            f["pin"] = str(_ask("  GPIO (BCM number) it is wired to", str(d.pin) if d and d.pin is not None else "17",
                                lambda v: _pin(v, "pin")))
            f["active"] = _ask("  level meaning 'vehicle present' (high/low)", "high" if ah else "low", _choice(("high", "low")))
            f["pull"] = _ask("  pull resistor (up/down/floating)", {True: "up", False: "down", None: "floating"}[pu],
                             _choice(("up", "down", "floating")))
        roi = d.roi if d else (0.0, 0.0, 1.0, 1.0)
        f["roi"] = ":".join(_num(v) for v in _ask("  region of the frame x0:y0:x1:y1", ":".join(_num(v) for v in roi),
                                                  lambda v: _roi(v, "roi")))
        lanes.append(lane_from(f, f"lane {i + 1}"))
    site.lanes = lanes
    site.camera = _ask(f"camera ({'/'.join(CAMERA_KINDS)})", site.camera, _choice(CAMERA_KINDS))
    if site.camera in CAMERA_SOURCE:
        key, needed, what = CAMERA_SOURCE[site.camera]
        site.camera_source = _ask(f"{site.camera} camera: {what}", site.camera_source or "",
                                  _nonempty if needed else (lambda v: v.strip()))
    site.resolution = _ask("resolution WxH", f"{site.resolution[0]}x{site.resolution[1]}", _resolution)
    lens = _ask("lens position in dioptres (1/metres; 'none' for a fixed-focus lens)",
                "none" if site.lens_position is None else _num(site.lens_position),
                lambda v: None if v.lower() in ("none", "") else _float(v, "lens position"))
    site.lens_position = lens
    return site


def _lane_count(v: str) -> int:
    if not v.isdigit() or not 1 <= int(v) <= 4:
        raise Usage("a number from 1 to 4")
    return int(v)


def _nonempty(v: str) -> str:
    if not v.strip():
        raise Usage("cannot be empty")
    return v.strip()


def _float(v: str, what: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise Usage(f"{what}: {v!r} is not a number") from None


def _resolution(v: str) -> tuple[int, int]:
    w, sep, h = v.lower().partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        raise Usage(f"resolution {v!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    return int(w), int(h)


# -- the command -------------------------------------------------------------------------------------------
def write_site(lay: Layout, site: Site, config_path: Path | None = None, expect_site: str | None = None,
               dry_run: bool = False) -> dict[str, Any]:
    unit_id, _key = identity.load(lay)
    enrolled = read_json(lay.central_json)
    if not enrolled or not lay.seal_pub.exists():
        raise Usage("this unit is not enrolled yet: run `alpr-provision enroll --central URL --token TOKEN` first")
    if expect_site and expect_site != enrolled["site"]:
        raise Usage(f"--site {expect_site!r}: the central store enrolled this unit at site {enrolled['site']!r}; "
                    "reads naming another site are rejected. Enroll with a token for the right site")
    if not site.lanes:
        raise Usage("give at least one --lane (or run with --interactive)")
    names = [lane.name for lane in site.lanes]
    if len(set(names)) != len(names):
        raise Usage(f"lane names must differ: {', '.join(names)}")
    if site.camera in CAMERA_SOURCE and CAMERA_SOURCE[site.camera][1] and not site.camera_source:
        raise Usage(f"--camera {site.camera} needs --camera-source ({CAMERA_SOURCE[site.camera][2]})")
    if site.camera == "jetson-csi" and site.camera_source and not site.camera_source.isdigit():
        raise Usage(f"--camera-source for a jetson-csi camera is the sensor id (0, 1, ...), not {site.camera_source!r}")
    if site.camera == "replay" and site.camera_source:
        site.camera_source = str(Path(site.camera_source).resolve())
    config_path = config_path or lay.config
    text = render(lay, site, unit_id, enrolled)
    warnings = validate(text, config_path)
    res: dict[str, Any] = {"config": str(config_path), "unit_id": unit_id, "site": enrolled["site"], "gate": site.gate,
                           "lanes": [lane.__dict__ for lane in site.lanes], "written": not dry_run,
                           "warnings": warnings}
    if dry_run:
        return {**res, "text": text}
    if config_path.exists():
        backup = config_path.with_name(f"{config_path.name}.bak-{time.strftime('%Y%m%dT%H%M%S')}")
        if config_path.read_text("utf-8", "replace") != text:
            os.replace(config_path, backup)
            res["backup"] = str(backup)
    write_file(config_path, text, 0o640)
    chown_service(lay, config_path, user=False)
    secure_dir(lay.state, 0o750)
    chown_service(lay, lay.state)
    hot = lay.state / "hotlist.txt"
    if not hot.exists():
        write_file(hot, "# hot list from the central store; replaced on every change, do not edit\n", 0o640)
        chown_service(lay, hot)
    write_file(lay.site_json, json.dumps({"gate": site.gate, "site": enrolled["site"], "unit_id": unit_id,
                                          "lanes": res["lanes"], "camera": site.camera,
                                          "written_at": utc_now()}, indent=1) + "\n", 0o644)
    return res


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("site", help="write the unit config for this gate (lanes, sensors, camera), validated",
                       description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", help="expected site (must be the one the unit was enrolled at)")
    p.add_argument("--gate", default="", help="the gate this unit watches (recorded; default lane names use it)")
    p.add_argument("--lane", action="append", default=[], metavar="SPEC",
                   help="name=..,direction=in|out|unknown,sensor=loop|ir_beam|radar|none,pin=N,active=high|low,"
                        "pull=up|down|floating,roi=x0:y0:x1:y1 (repeat for each lane)")
    p.add_argument("--camera", choices=CAMERA_KINDS, default="picamera2")
    p.add_argument("--camera-source", default="",
                   help="the camera: " + "; ".join(f"{k}: {w}" for k, (_, _, w) in CAMERA_SOURCE.items()))
    p.add_argument("--resolution", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--shutter-us", type=int, help="exposure in microseconds (default 1000)")
    p.add_argument("--lens-position", type=float, help="focus in dioptres (1/metres) for a motorised lens")
    p.add_argument("--buffer-max-mb", type=float, default=512.0)
    p.add_argument("--config", type=Path, help="where to write (default ROOT/etc/alpr-unit/config.toml)")
    p.add_argument("-i", "--interactive", action="store_true", help="ask for each value (defaults from the flags)")
    p.add_argument("--dry-run", action="store_true", help="print the config instead of writing it")
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    lay = layout(args)
    site = Site(gate=args.gate, lanes=[parse_lane(s) for s in args.lane], camera=args.camera,
                camera_source=args.camera_source, resolution=_resolution(args.resolution), fps=args.fps,
                shutter_us=args.shutter_us, lens_position=args.lens_position, buffer_max_mb=args.buffer_max_mb)
    if args.interactive or (not site.lanes and sys.stdin.isatty() and not args.json):
        site = interactive(site)
    res = write_site(lay, site, args.config, args.site, args.dry_run)
    if not args.json:
        for warning in res["warnings"]:
            print(f"alpr-provision: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        emit(args, {"ok": True, **res}, res["text"].rstrip())
        return 0
    lanes = "; ".join(f"{ln['name']} ({ln['direction']}, {ln['sensor']}"
                      + (f" on GPIO {ln['pin']}, active {'high' if ln['active_high'] else 'low'}" if ln['sensor'] != 'none' else "")
                      + ")" for ln in res["lanes"])
    text = (f"config written: {res['config']}\n  unit {res['unit_id']} at site {res['site']}"
            + (f", gate {res['gate']}" if res["gate"] else "") + f"\n  lanes: {lanes}"
            + (f"\n  previous config kept as {res['backup']}" if res.get("backup") else "")
            + "\nnext: alpr-provision selftest   (then: systemctl restart alpr-unit)")
    emit(args, {"ok": True, **res}, text)
    return 0
