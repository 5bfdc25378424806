"""The lane sensors on a Jetson: the libgpiod pin factory (`unit.gpiod_pins`) with only the calls that
reach the hardware replaced - `gpiod.request_lines` and the chips' line lookup - by a fake GPIO chip
that keeps each line's level and makes the kernel's edge events (real `gpiod.EdgeEvent`s, read through
a real file descriptor). gpiozero, the lane sensor, motion fallback, bursts and recognition above it
are the unit's own, run for real. Also: the backend chosen from [gpio] or from the board."""
from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.exc import GPIOPinInUse, PinInvalidPin

from unit import board, gpio
from unit.config import ConfigError, GpioConfig, LaneConfig, MotionConfig, SensorConfig, load
from unit.sensors import Lane, LaneSensor

gpiod = pytest.importorskip("gpiod")
from gpiod.line import Bias, Direction, Edge, Value  # noqa: E402

from test_unit_faults import wait_for  # noqa: E402
from unit.gpiod_pins import GpiodFactory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "hil" / "clips" / "01-day-one-lane"


class FakeChips:
    """GPIO lines as the kernel keeps them: a level per line (None: undriven, so the bias decides),
    requests with their settings, and edge events queued per request. `refuse_debounce` is a kernel
    without debounce support."""

    def __init__(self, names: dict[str, tuple[str, int]] | None = None, refuse_debounce: bool = False):
        self.names = names or {}
        self.refuse_debounce = refuse_debounce
        self.levels: dict[tuple[str, int], int | None] = {}
        self.requests: list[FakeRequest] = []
        self.lock = threading.Lock()

    def request(self, path: str, offset: int, settings) -> "FakeRequest":
        with self.lock:
            if any(r.key == (path, offset) and not r.released for r in self.requests):
                raise OSError(errno.EBUSY, "Device or resource busy")
            if self.refuse_debounce and settings.debounce_period.total_seconds() > 0:
                raise OSError(errno.EINVAL, "Invalid argument")
            req = FakeRequest(self, (path, offset), settings)
            self.requests.append(req)
            return req

    def find_line(self, name: str) -> tuple[str, int]:
        if name not in self.names:
            raise PinInvalidPin(f"no GPIO line named {name!r} on any chip (gpioinfo lists them)")
        return self.names[name]

    def level(self, key: tuple[str, int], bias) -> int:
        lv = self.levels.get(key)
        if lv is not None:
            return lv
        return 1 if bias == Bias.PULL_UP else 0

    def drive(self, key: tuple[str, int], level: int | None) -> None:
        """Set a line's electrical level (None: let it float to its bias); requests watching it get an
        edge event when the level they read changes."""
        with self.lock:
            live = [r for r in self.requests if r.key == key and not r.released]
            before = {id(r): self.level(key, r.settings.bias) for r in live}
            self.levels[key] = level
            for r in live:
                now = self.level(key, r.settings.bias)
                if now != before[id(r)]:
                    r.edge(now)

    def live(self, key: tuple[str, int]) -> "FakeRequest":
        return next(r for r in self.requests if r.key == key and not r.released)


class FakeRequest:
    """What `gpiod.request_lines` returns, for one line: values, and edge events behind a real fd."""

    def __init__(self, chips: FakeChips, key: tuple[str, int], settings):
        self.chips, self.key, self.settings = chips, key, settings
        self.released = False
        self.events: list = []
        self.seq = 0
        self._r, self._w = os.pipe()

    def edge(self, level: int) -> None:
        wanted = {Edge.BOTH: (0, 1), Edge.RISING: (1,), Edge.FALLING: (0,)}.get(self.settings.edge_detection, ())
        if level not in wanted:
            return
        self.seq += 1
        kind = gpiod.EdgeEvent.Type.RISING_EDGE if level else gpiod.EdgeEvent.Type.FALLING_EDGE
        self.events.append(gpiod.EdgeEvent(kind.value, time.monotonic_ns(), self.key[1], self.seq, self.seq))
        os.write(self._w, b"e")

    def get_value(self, offset: int) -> Value:
        assert offset == self.key[1]
        with self.chips.lock:
            return Value.ACTIVE if self.chips.level(self.key, self.settings.bias) else Value.INACTIVE

    def wait_edge_events(self, timeout) -> bool:
        from gpiod._internal import poll_fd          # the library's own wait, on our descriptor
        return poll_fd(self._r, timeout)

    def read_edge_events(self, max_events=None) -> list:
        with self.chips.lock:
            out, self.events = self.events, []
            os.read(self._r, 4096)
        return out

    def release(self) -> None:
        if not self.released:
            self.released = True
            os.close(self._w)
            os.close(self._r)


@pytest.fixture
def chips():
    chips = FakeChips({"PQ.05": ("/dev/gpiochip0", 105), "PAC.06": ("/dev/gpiochip1", 6)})
    previous = Device.pin_factory
    Device.pin_factory = GpiodFactory("gpiochip0", request=chips.request, find_line=chips.find_line)
    yield chips
    Device.pin_factory.close()
    Device.pin_factory = previous


def lane(pin, **kw) -> LaneConfig:
    return LaneConfig(name="in", direction="in", sensor=SensorConfig(kind="loop", pin=pin, **kw))


def test_a_loop_on_a_jetson_line_gives_presence_and_absence(chips):
    got = []
    s = LaneSensor(lane("PQ.05", active_high=False, pull_up=True, debounce_ms=20), got.append)
    req = chips.live(("/dev/gpiochip0", 105))
    st = req.settings                                   # what the kernel was asked for
    assert (st.direction, st.bias, st.edge_detection) == (Direction.INPUT, Bias.PULL_UP, Edge.BOTH)
    assert st.debounce_period.total_seconds() == pytest.approx(0.020)     # the kernel debounces
    assert s.name == "loop:gpiochip0:105" and not s.active                # pulled up: no vehicle
    chips.drive(("/dev/gpiochip0", 105), 0)             # the detector's relay pulls the input low
    assert wait_for(lambda: len(got) == 1)
    chips.drive(("/dev/gpiochip0", 105), 1)
    assert wait_for(lambda: len(got) == 2)
    assert [(p.active, p.kind, p.sensor) for p in got] == [(True, "sensor", "loop:gpiochip0:105"),
                                                           (False, "sensor", "loop:gpiochip0:105")]
    assert got[0].t <= got[1].t and s.edges == 2
    s.close()
    assert req.released


def test_without_kernel_debounce_the_pin_debounces_in_software():
    chips = FakeChips(refuse_debounce=True)
    previous = Device.pin_factory
    Device.pin_factory = GpiodFactory("gpiochip3", request=chips.request, find_line=chips.find_line)
    try:
        got = []
        s = LaneSensor(lane(12, active_high=True, pull_up=False, debounce_ms=30), got.append)
        key = ("/dev/gpiochip3", 12)
        assert chips.live(key).settings.debounce_period.total_seconds() == 0     # asked again without it
        for level in (1, 0, 1, 0, 1):                   # contact bounce on arrival, settling high
            chips.drive(key, level)
            time.sleep(0.003)
        assert wait_for(lambda: len(got) == 1) and got[0].active
        time.sleep(0.1)
        assert len(got) == 1                            # the bounces were not edges
        chips.drive(key, 0)                             # a 10 ms dip: shorter than the debounce, ignored
        time.sleep(0.01)
        chips.drive(key, 1)
        time.sleep(0.1)
        assert len(got) == 1 and s.active
        chips.drive(key, 0)                             # the vehicle leaves
        assert wait_for(lambda: len(got) == 2) and not got[1].active
        s.close()
    finally:
        Device.pin_factory.close()
        Device.pin_factory = previous


def test_the_shared_lane_logic_runs_on_gpiod_pins(chips):
    """Stuck and silent detection and the motion fallback are the Pi's code, unchanged."""
    class Clock:
        t = 1000.0

        def __call__(self):
            return self.t
    clock = Clock()
    ln = Lane(lane("gpiochip1:PAC.06", stuck_after_s=60), MotionConfig(), lambda p: None, clock)
    key = ("/dev/gpiochip1", 6)
    assert ln.mode(clock()) == "sensor" and ln.health(clock())["pin"] == "gpiochip1:6"
    chips.drive(key, 1)                                # active high, and it stays so
    assert wait_for(lambda: ln.sensor.active)
    clock.t += 61
    assert ln.sensor_state(clock()) == "stuck" and ln.mode(clock()) == "motion"
    chips.drive(key, 0)
    assert wait_for(lambda: ln.sensor_state(clock()) == "ok")
    ln.close()
    bad = Lane(lane("GPIO17"), MotionConfig(), lambda p: None, clock)    # a Pi name on a Jetson
    assert bad.sensor is None and bad.mode(clock()) == "motion"
    assert "Raspberry Pi pin name" in bad.health(clock())["detail"]


def test_pin_names_and_a_line_used_twice(chips):
    f = Device.pin_factory
    assert f.resolve(105) == f.resolve("105") == f.resolve("gpiochip0:105") == f.resolve("PQ.05") == ("/dev/gpiochip0", 105)
    assert f.resolve("gpiochip2:7") == ("/dev/gpiochip2", 7)
    with pytest.raises(PinInvalidPin, match="no GPIO line named 'PZ.99'"):
        f.resolve("PZ.99")
    with pytest.raises(PinInvalidPin, match="is on /dev/gpiochip0, not /dev/gpiochip1"):
        f.resolve("gpiochip1:PQ.05")
    with pytest.raises(PinInvalidPin, match="Raspberry Pi pin name"):
        f.resolve("BOARD11")
    a = LaneSensor(lane("PQ.05"), lambda p: None)
    with pytest.raises(GPIOPinInUse):                  # the same line by another name
        LaneSensor(lane(105), lambda p: None)
    a.close()
    b = LaneSensor(lane(105), lambda p: None)          # free again once closed: requested afresh
    assert chips.live(("/dev/gpiochip0", 105)) is not None
    b.close()


def test_a_unit_on_gpiod_pins_reads_a_vehicle(tmp_path, chips):
    """The unit service with its lane sensor on a (fake) Jetson line: the clip's first vehicle, its
    frames pushed as a camera gives them and its loop driven on the line, is read and sealed."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from unit import clips
    from unit.service import Unit
    from unit.sources.frames import ManualClock, decode_image
    from unit.sources.pushed import QueueSource
    from wire import seal
    clip = clips.load(CLIP)
    key = seal.sealing_public_b64(X25519PrivateKey.generate().public_key())
    (tmp_path / "unit.toml").write_text(f'''unit_id = "jetson-1"
site = "s"
[central]
public_key = "{key}"
[buffer]
path = "{tmp_path / 'buf.sqlite'}"
[camera]
kind = "replay"
[gpio]
backend = "gpiod"
chip = "gpiochip0"
[[lanes]]
name = "in"
[lanes.sensor]
kind = "loop"
pin = "PQ.05"
active_high = false
pull_up = true
''')
    cfg = load(tmp_path / "unit.toml")
    assert gpio.backend(cfg.gpio) == "gpiod"
    clock = ManualClock(1_700_000_000.0)
    src = QueueSource(clock)
    unit = Unit(cfg, src, clock=clock, live=False, env={})
    reads = []
    unit.stage.listeners.append(lambda read, info: reads.append(read))
    unit.start()
    line = ("/dev/gpiochip0", 105)
    try:
        edges = [e for e in clip.edges if e.t < 2.5]     # the first vehicle
        for f in (f for f in clip.frames if f.t < 2.5):
            while edges and edges[0].t <= f.t:
                e = edges.pop(0)
                clock.set(1_700_000_000.0 + e.t)
                chips.drive(line, 0 if e.active else 1)  # active low
                assert wait_for(lambda: unit.lanes["in"].sensor.active == e.active)
            src.push(decode_image(clip.path / f.file), t=1_700_000_000.0 + f.t)
            src.join()
            clock.set(1_700_000_000.0 + f.t)
        assert unit.wait_idle(30)
    finally:
        unit.stop()
    assert [r.plate for r in reads] == [clip.truth.vehicles[0].plate]
    assert reads[0].trigger["sensor"] == "loop:gpiochip0:105" and reads[0].trigger["kind"] == "sensor"
    assert unit.health.snapshot()["lanes"]["in"]["edges"] == 2


def test_the_backend_follows_the_board_or_the_config(tmp_path):
    jetson, pi, pc = tmp_path / "jetson", tmp_path / "pi", tmp_path / "pc"
    (jetson / "proc/device-tree").mkdir(parents=True)
    (jetson / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\0")
    (pi / "proc/device-tree").mkdir(parents=True)
    (pi / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    (pc / "etc").mkdir(parents=True)
    assert [board.detect(r) for r in (jetson, pi, pc)] == ["jetson", "pi", "other"]
    (pc / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 3.0\n")
    assert board.detect(pc) == "jetson"                   # JetPack's release file alone says Jetson
    auto = GpioConfig()
    assert (gpio.backend(auto, str(jetson)), gpio.backend(auto, str(pi))) == ("gpiod", "gpiozero")
    assert gpio.backend(GpioConfig(backend="mock"), str(jetson)) == "mock"
    previous = Device.pin_factory
    try:
        assert gpio.setup(GpioConfig(backend="gpiod", chip="gpiochip2"), str(pi)).startswith("gpiod")
        assert isinstance(Device.pin_factory, GpiodFactory) and Device.pin_factory.chip == "/dev/gpiochip2"
    finally:
        Device.pin_factory = previous


def test_gpio_table_is_checked(tmp_path):
    from test_unit_sources import _config
    cfg = _config(tmp_path, '[camera]\n[gpio]\nbackend = "gpiod"\nchip = "gpiochip1"')
    assert (cfg.gpio.backend, cfg.gpio.chip) == ("gpiod", "gpiochip1")
    assert _config(tmp_path, "[camera]").gpio == GpioConfig()
    with pytest.raises(ConfigError, match="gpio.backend: expected one of 'auto', 'gpiozero', 'gpiod', 'mock', got 'jetson'"):
        _config(tmp_path, '[camera]\n[gpio]\nbackend = "jetson"')
    with pytest.raises(ConfigError, match="gpio.pins: unknown key"):
        _config(tmp_path, '[camera]\n[gpio]\npins = 1')
