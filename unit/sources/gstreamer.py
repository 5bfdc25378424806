"""Cameras through GStreamer: the `gstreamer` kind (any pipeline), and the source the `rtsp`, `v4l2`
and `jetson-csi` kinds build their pipelines for.

Decoding and colour conversion happen in the pipeline, in the board's hardware where it has a decoder
(`decoder()` picks by what is installed), never in Python. The pipeline ends in an appsink that hands
each frame to a callback at once; the callback keeps the newest `KEEP` frames and counts every one
pushed out unread, so a slow reader gets fresh frames and never a backlog. Each frame carries its
capture time: the buffer's timestamp, in the pipeline's running time, mapped to the wall clock through
the pipeline clock and base time (for a live source that is when the frame was captured or, over
RTSP, when its first packet arrived). A pipeline that fails, ends, or delivers nothing for
`[camera] stall_after_s` raises `SourceLost`: the service reports the camera lost, forgets the frames
from before the gap, and opens it again after a backoff; opening builds a new pipeline, so no frame
from before the gap survives a reconnect.

PyGObject (`gi`) is imported only when a camera opens, so a config naming a GStreamer kind validates
on any machine. Its `[camera.gstreamer]` key, `pipeline`, is a description in gst-launch-1.0 syntax;
when it does not end in an appsink one is added after a conversion to RGB.
"""
from __future__ import annotations

import collections
import functools
import logging
import re
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from unit.schema import ConfigError
from unit.sources import SourceKind
from unit.sources.frames import BadFrame, Frame, SourceLost

if TYPE_CHECKING:
    from unit.config import UnitConfig

log = logging.getLogger("unit.sources.gstreamer")

KEEP = 2                 # newest frames held for the reader; older ones are dropped (counted)
SINK = "alpr_sink"       # the name of the appsink this module adds
OPEN_TIMEOUT_S = 10.0    # how long open() waits for the first frame or an error
FORMATS = {"RGB": 3, "RGBA": 4, "RGBx": 4, "GRAY8": 1}   # what the appsink may hand us (unit.sources.frames converts)

# where an element comes from, for the message when it is missing
PACKAGES = {
    "nvarguscamerasrc": "JetPack's GStreamer plugins (nvidia-l4t-gstreamer): a Jetson only",
    "nvvidconv": "JetPack's GStreamer plugins (nvidia-l4t-gstreamer): a Jetson only",
    "nvv4l2decoder": "JetPack's GStreamer plugins (nvidia-l4t-gstreamer): a Jetson only",
    "v4l2h264dec": "gstreamer1.0-plugins-good, on a board with a V4L2 hardware decoder (a Raspberry Pi 4)",
    "v4l2h265dec": "gstreamer1.0-plugins-good, on a board with a V4L2 hardware decoder",
    "avdec_h264": "gstreamer1.0-libav", "avdec_h265": "gstreamer1.0-libav",
    "openh264dec": "gstreamer1.0-plugins-bad", "libde265dec": "gstreamer1.0-plugins-bad",
    "h264parse": "gstreamer1.0-plugins-bad", "h265parse": "gstreamer1.0-plugins-bad",
    "rtspsrc": "gstreamer1.0-plugins-good", "rtph264depay": "gstreamer1.0-plugins-good",
    "rtph265depay": "gstreamer1.0-plugins-good", "v4l2src": "gstreamer1.0-plugins-good",
    "jpegdec": "gstreamer1.0-plugins-good", "multifilesrc": "gstreamer1.0-plugins-good",
    "x264enc": "gstreamer1.0-plugins-ugly", "videoconvert": "gstreamer1.0-plugins-base",
    "videoscale": "gstreamer1.0-plugins-base", "videorate": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base", "videotestsrc": "gstreamer1.0-plugins-base",
}

# decoders by preference: the board's hardware first, then software. A decoder into NVIDIA's own
# memory is followed by nvvidconv into system memory (RGBA), any other by videoconvert (RGB).
DECODERS: dict[str, tuple[str, ...]] = {
    "h264": ("nvv4l2decoder", "v4l2h264dec", "avdec_h264", "openh264dec"),
    "h265": ("nvv4l2decoder", "v4l2h265dec", "avdec_h265", "libde265dec"),
}
NVIDIA = ("nvv4l2decoder", "nvarguscamerasrc")


class CameraUnavailable(RuntimeError):
    """The camera cannot be opened with what is installed (no PyGObject, an element missing); the
    message says what to install. Opening again will not help until someone does."""


def _keep_cxx_exceptions_working() -> None:
    """Put libgcc_s's unwinder first in the process's global symbols before GStreamer loads.

    libgstreamer links libunwind (for its backtraces), and GObject introspection opens it with
    RTLD_GLOBAL; libunwind also exports the `_Unwind_*` functions that C++ exceptions are thrown with,
    so a C++ library loaded after it (LiteRT) would throw through the wrong unwinder and abort the
    process at its first exception - a corrupt model file would kill the unit instead of degrading it.
    Loaded globally first, libgcc_s's own functions are the ones every library finds."""
    import ctypes
    import ctypes.util
    try:
        ctypes.CDLL(ctypes.util.find_library("gcc_s") or "libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def gst() -> Any:
    """The Gst module, initialised once; CameraUnavailable saying how to get it where it is missing."""
    _keep_cxx_exceptions_working()
    try:
        import gi
        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp  # noqa: F401  (GstApp gives the appsink its methods)
    except (ImportError, ValueError) as exc:
        raise CameraUnavailable(
            f"GStreamer's Python bindings are not installed ({exc}): on a unit, firmware/install.sh installs "
            "python3-gi and gir1.2-gstreamer-1.0 and makes the venv see them; in a development venv, "
            "pip install '.[gstreamer]' (needs libgirepository1.0-dev) and apt gir1.2-gstreamer-1.0") from None
    Gst.init(None)
    return Gst


def have(element: str) -> bool:
    """True when the GStreamer element is installed here."""
    return gst().ElementFactory.find(element) is not None


def decoder(codec: str, choice: str = "") -> str:
    """The decoder element for `codec`: `choice` if given, else the first of DECODERS installed here
    (hardware first). CameraUnavailable when there is none."""
    if choice:
        return choice
    for name in DECODERS[codec]:
        if have(name):
            return name
    raise CameraUnavailable(f"no {codec.upper()} decoder installed (tried {', '.join(DECODERS[codec])}): "
                            "install gstreamer1.0-libav")


def to_system_memory(element: str) -> str:
    """What follows `element` (a decoder or a camera source) to give frames the appsink takes: NVIDIA's
    converter out of its own memory into RGBA on a Jetson, videoconvert into RGB elsewhere."""
    if element in NVIDIA:
        return "nvvidconv ! video/x-raw,format=RGBA"
    return "videoconvert ! video/x-raw,format=RGB"


def fraction(fps: float) -> str:
    """A frame rate as GStreamer writes it (15 -> 15/1, 29.97 -> 30000/1001)."""
    ntsc = round(fps * 1.001)
    if fps != int(fps) and abs(fps - ntsc / 1.001) < 0.005:       # 29.97, 59.94: n * 1000/1001
        return f"{ntsc * 1000}/1001"
    f = Fraction(fps).limit_denominator(1001)
    return f"{f.numerator}/{f.denominator}"


def elements(description: str) -> list[str]:
    """The element names a gst-launch description uses (caps, pad references and bins left out)."""
    out: list[str] = []
    for chunk in _split_links(description):
        words = chunk.replace("(", " ").replace(")", " ").split()
        if not words:
            continue
        first = words[0]
        if "/" in first or first.endswith(".") or "=" in first or "." in first.split("=")[0]:
            continue
        out.append(first)
    return out


def _split_links(description: str) -> list[str]:
    """The description cut at each `!` outside quotes."""
    parts, cur, quote = [], [], ""
    for ch in description:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "!":
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def missing(description: str) -> list[str]:
    """The elements of `description` that are not installed here."""
    return [e for e in dict.fromkeys(elements(description)) if not have(e)]


def refuse_missing(description: str, what: str) -> None:
    """CameraUnavailable naming each missing element and where it comes from."""
    gone = missing(description)
    if gone:
        where = "; ".join(f"{e}: {PACKAGES.get(e, 'a GStreamer plugin package')}" for e in gone)
        raise CameraUnavailable(f"{what}: GStreamer element{'s' if len(gone) > 1 else ''} "
                                f"{', '.join(gone)} not installed here (gst-inspect-1.0 finds nothing) - {where}")


def with_sink(description: str) -> str:
    """`description` ending in an appsink: its own if it has one, else conversion to RGB and ours."""
    last = _split_links(description)[-1].strip()
    if last.split() and last.split()[0] == "appsink":
        return description
    fmt = re.fullmatch(r"video/x-raw,(?:.*,)?format=(\w+)(?:,.*)?", last)
    if fmt and fmt.group(1) in FORMATS:        # already raw in a format we take: the sink alone
        return f"{description.rstrip()} ! appsink name={SINK}"
    return f"{description.rstrip()} ! videoconvert ! video/x-raw,format=RGB ! appsink name={SINK}"


@dataclass
class Stats:
    """What a GStreamer source has done since it was made (across reconnects)."""
    frames: int = 0            # handed to the reader
    arrived: int = 0           # reached the appsink
    dropped: int = 0           # pushed out unread by newer frames (only the newest KEEP are held)
    opens: int = 0             # times the pipeline started
    lost: int = 0              # times the stream was lost
    latency_s: float = 0.0     # capture to hand-out, moving average
    last_error: str = ""


class GstSource:
    """Frames from a GStreamer pipeline's appsink, newest first; see the module text.

    `description` is the pipeline, or a function that makes it when the camera opens (a preset picks
    its decoder by what is installed). `configure(pipeline)` runs after the description is parsed and
    before it plays: the RTSP kind sets the URL and the credentials there, so they are never part of
    the description (which is logged)."""
    live = True

    def __init__(self, description: str | Callable[[], str], *, what: str, stall_after_s: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 configure: Callable[[Any], None] | None = None, open_timeout_s: float = OPEN_TIMEOUT_S):
        self._describe = description if callable(description) else (lambda: description)
        self.description = ""     # made when the camera opens (a preset picks its decoder by what is installed)
        self.what = what
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.configure = configure
        self.open_timeout_s = open_timeout_s
        self.stats = Stats()
        self._pipeline: Any = None
        self._sink: Any = None
        self._frames: collections.deque[tuple[Any, float]] = collections.deque()
        self._cond = threading.Condition()
        self._seq = 0
        self._last = 0.0          # monotonic time of the last frame (or of opening)
        self.is_live = True       # the pipeline's source is live (set when it opens)

    # -- the pipeline --------------------------------------------------------------------------------------
    def open(self) -> None:
        Gst = gst()
        self.close()
        self.description = with_sink(self._describe())
        refuse_missing(self.description, self.what)
        try:
            pipeline = Gst.parse_launch(self.description)
        except Exception as exc:            # GLib.Error: a syntax error, a property the element lacks
            raise CameraUnavailable(f"{self.what}: the pipeline does not parse: {_message(exc)}") from None
        sink = _appsink(pipeline)
        if sink is None:
            raise CameraUnavailable(f"{self.what}: the pipeline has no appsink")
        sink.set_property("emit-signals", True)
        sink.set_property("max-buffers", KEEP)
        sink.set_property("drop", True)
        sink.set_property("sync", False)
        sink.connect("new-sample", self._on_sample)
        if self.configure is not None:
            self.configure(pipeline)
        with self._cond:
            self._frames.clear()
            self._pipeline, self._sink = pipeline, sink
        self._last = time.monotonic()
        # a live source (a camera, a stream) is taken as fast as it comes; a recording (files) is paced
        # by its timestamps, as a camera would deliver it
        started = pipeline.set_state(Gst.State.PAUSED)
        if started != Gst.StateChangeReturn.FAILURE:
            self.is_live = started == Gst.StateChangeReturn.NO_PREROLL
            sink.set_property("sync", not self.is_live)
            started = pipeline.set_state(Gst.State.PLAYING)
        if started == Gst.StateChangeReturn.FAILURE:
            err = self._bus_error(0) or "the pipeline would not start"
            self.close()
            raise SourceLost(f"{self.what}: {err}")
        end = time.monotonic() + self.open_timeout_s
        while time.monotonic() < end:       # the first frame, or the reason there is none
            err = self._bus_error(0)
            if err:
                self.close()
                raise SourceLost(f"{self.what}: {err}")
            with self._cond:
                if self._frames or self._cond.wait(0.05):
                    if self._frames:
                        break
        else:
            log.warning("%s: no frame within %.0f s of starting", self.what, self.open_timeout_s)
        self.stats.opens += 1

    def close(self) -> None:
        with self._cond:
            pipeline, self._pipeline, self._sink = self._pipeline, None, None
        if pipeline is not None:
            pipeline.set_state(gst().State.NULL)
        with self._cond:
            self._frames.clear()              # nothing from before a gap is ever handed out

    def _bus_error(self, timeout_s: float) -> str:
        """The first error or end of stream waiting on the bus, as one line; "" when none."""
        Gst = gst()
        if self._pipeline is None:
            return ""
        bus = self._pipeline.get_bus()
        msg = bus.timed_pop_filtered(int(timeout_s * Gst.SECOND), Gst.MessageType.ERROR | Gst.MessageType.EOS)
        if msg is None:
            return ""
        if msg.type == Gst.MessageType.EOS:
            return "the stream ended"
        err, debug = msg.parse_error()
        src = msg.src.get_name() if msg.src is not None else "?"
        return f"{src}: {err.message}" + (f" ({_first_line(debug)})" if debug else "")

    # -- frames --------------------------------------------------------------------------------------------
    def _on_sample(self, sink: Any) -> Any:
        """The appsink's callback, on GStreamer's streaming thread: stamp the frame, keep the newest."""
        Gst = gst()
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        t = self._capture_time(sink, sample)
        with self._cond:
            if sink is not self._sink:            # a pipeline being closed: its frames are from before a gap
                return Gst.FlowReturn.OK
            self.stats.arrived += 1
            while len(self._frames) >= KEEP:
                self._frames.popleft()
                self.stats.dropped += 1
            self._frames.append((sample, t))
            self._cond.notify()
        return Gst.FlowReturn.OK

    def _capture_time(self, sink: Any, sample: Any) -> float:
        """The buffer's timestamp on the wall clock: now, less how long ago (on the pipeline clock) the
        buffer's running time was."""
        Gst = gst()
        now = self.clock()
        pts = sample.get_buffer().pts
        clock = sink.get_clock()
        if pts == Gst.CLOCK_TIME_NONE or clock is None:
            return now
        running = sample.get_segment().to_running_time(Gst.Format.TIME, pts)
        if running == Gst.CLOCK_TIME_NONE:
            return now
        ago = (clock.get_time() - (sink.get_base_time() + running)) / 1e9
        return now - max(0.0, ago)

    def read(self, timeout: float) -> Frame | None:
        if self._pipeline is None:
            raise SourceLost(f"{self.what}: not connected")
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            item = self._frames.popleft() if self._frames else None
        if item is None:
            err = self._bus_error(0)
            quiet = time.monotonic() - self._last
            if not err and quiet > self.stall_after_s:
                err = f"no frame for {quiet:.1f} s"
            if err:
                self.stats.lost += 1
                self.stats.last_error = err
                self.close()
                raise SourceLost(f"{self.what}: {err}")
            return None
        sample, t = item
        self._last = time.monotonic()
        image = to_array(sample)                 # BadFrame for what the appsink should never give
        self._seq += 1
        self.stats.frames += 1
        lag = max(0.0, self.clock() - t)
        self.stats.latency_s = lag if self.stats.frames == 1 else 0.9 * self.stats.latency_s + 0.1 * lag
        return Frame(image, t, self._seq)

    def health(self) -> dict[str, Any]:
        """Figures for the unit's status: frames, drops, reconnects, capture-to-hand-out latency."""
        s = self.stats
        return {"kind": self.what, "frames": s.frames, "dropped": s.dropped, "reconnects": max(0, s.opens - 1),
                "lost": s.lost, "latency_ms": round(s.latency_s * 1000, 1),
                **({"last_error": s.last_error} if s.last_error else {})}


def to_array(sample: Any) -> np.ndarray:
    """The sample's pixels as an H x W x C uint8 array (one copy; row padding removed)."""
    st = sample.get_caps().get_structure(0)
    fmt, width, height = st.get_value("format"), st.get_value("width"), st.get_value("height")
    channels = FORMATS.get(fmt)
    if channels is None:
        raise BadFrame(f"the pipeline gives {fmt} frames; end it in videoconvert ! video/x-raw,format=RGB "
                       "(or leave the appsink out and one is added)")
    buf = sample.get_buffer()
    data = np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8)
    stride = data.size // height if height else 0
    if stride < width * channels:
        raise BadFrame(f"a {width}x{height} {fmt} frame of {data.size} bytes")
    rows = data[: stride * height].reshape(height, stride)[:, : width * channels]
    return rows.reshape(height, width, channels) if channels > 1 else rows


def _appsink(pipeline: Any) -> Any:
    sink = pipeline.get_by_name(SINK)
    if sink is not None:
        return sink
    it = pipeline.iterate_sinks()
    while True:
        ok, element = it.next()
        if ok != gst().IteratorResult.OK:
            return None
        if element.get_factory() is not None and element.get_factory().get_name() == "appsink":
            return element


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[-1][:300] if text and text.strip() else ""


def quote(value: str) -> str:
    """A property value for a gst-launch description."""
    if re.fullmatch(r"[\w./:@+-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the `gstreamer` kind ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    pipeline: str = ""      # gst-launch-1.0 syntax; an appsink (after conversion to RGB) is added if it ends in none

    def capture_facts(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline}


def open_gstreamer(cfg: "UnitConfig", clock: Callable[[], float] | None = None, realtime: bool = True) -> GstSource:
    opts = cfg.camera.options
    if not opts.pipeline.strip():
        raise ConfigError("camera.gstreamer.pipeline: expected a pipeline in gst-launch-1.0 syntax when "
                          "camera.kind = 'gstreamer', e.g. \"videotestsrc is-live=true ! video/x-raw,width=1280,height=720\"")
    return GstSource(opts.pipeline, what="gstreamer", stall_after_s=cfg.camera.stall_after_s, clock=clock or time.time)


KIND = SourceKind(Options, open_gstreamer)
