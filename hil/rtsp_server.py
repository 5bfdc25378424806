"""An IP camera on loopback: a clip's frames served as H.264 over RTSP, in real time (gst-rtsp-server).

    python -m hil.rtsp_server CLIP --port 8554 [--mount /clip] [--t0 EPOCH] [--loop] [--bitrate KBPS]
                                  [--size WxH] [--fps N] [--mark --stamps FILE]

Frame i of the clip is sent at wall time `t0 + t_i` (t0 defaults to when the server starts). A
client that connects late, or a server restarted with the same `--t0` after being killed, starts at
the frame due now, as a camera that was running all along would: what happened while nobody was
watching is gone. After the last frame the server goes on sending it (the empty lane), or with
`--loop` starts the clip again. Frames are encoded by x264 (zero-latency tuning, baseline profile,
a key frame a second), so what the unit reads has been through H.264 as from a real camera.

`--size` scales the frames, `--fps` replaces the clip's times by a steady rate, and `--mark` draws
each frame's number as a row of black and white blocks along the top edge and appends "number
wall-time" lines to `--stamps` as frames are sent: `benchmarks/bench_rtsp.py` reads the number back
from the frames it receives to measure the latency from send to pipeline. `--preencode N` encodes N
frames once at start and sends them in a loop (numbered modulo N), so the server costs next to no CPU
while it is measured against.

The server prints `ready rtsp://127.0.0.1:PORT/MOUNT` on stdout once it listens. Loopback only.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from hil.loopback import free_port

MARK_BITS = 24          # frame number bits drawn by --mark
MARK_BLOCK = 32         # block side in pixels (survives H.264 at any sane bitrate)


def draw_mark(image: np.ndarray, number: int) -> None:
    """Frame `number` as MARK_BITS blocks along the top edge, most significant first (white = 1)."""
    for b in range(MARK_BITS):
        bit = (number >> (MARK_BITS - 1 - b)) & 1
        image[:MARK_BLOCK, b * MARK_BLOCK:(b + 1) * MARK_BLOCK] = 255 if bit else 0


def read_mark(image: np.ndarray) -> int:
    """The number `draw_mark` drew (from the centre of each block)."""
    c = MARK_BLOCK // 2
    bits = [int(image[c - 4:c + 4, b * MARK_BLOCK + c - 4:b * MARK_BLOCK + c + 4].mean() > 127) for b in range(MARK_BITS)]
    return int("".join(map(str, bits)), 2)


class Feed:
    """What the server sends: the clip's frames (JPEG bytes, or raw RGB when resized or marked) at
    their times from `t0`; `frame(k)` is the k-th frame sent since t0 (k grows past the clip's end)."""

    def __init__(self, clip_dir: Path, t0: float, *, loop: bool, size: tuple[int, int] | None, fps: float | None,
                 mark: bool, preencode: int = 0, bitrate: int = 2048):
        from unit import clips
        clip = clips.load(clip_dir)
        self.files = [clip.path / f.file for f in clip.frames]
        if not self.files:
            raise SystemExit(f"{clip_dir}: the clip has no frames")
        self.times = [i / fps for i in range(len(self.files))] if fps else [f.t for f in clip.frames]
        self.period = (1.0 / fps if fps else
                       max(1e-3, (self.times[-1] - self.times[0]) / max(1, len(self.times) - 1)))
        self.duration = self.times[-1] + self.period
        self.t0, self.loop, self.size, self.mark = t0, loop, size, mark
        self.raw = size is not None or mark
        self._cache: dict[Path, Any] = {}
        with open(self.files[0], "rb") as f:
            from PIL import Image
            with Image.open(f) as im:
                self.width, self.height = size or im.size
        self.fps = fps or round(1.0 / self.period, 3)
        self.bitrate = bitrate
        self.encoded: list[bytes] = []
        if preencode:
            self.encoded = encode([self.data(k) for k in range(preencode)], self)

    def due(self, k: int) -> float:
        """Wall time at which frame k is sent."""
        n = len(self.times)
        if k < n:
            return self.t0 + self.times[k]
        if self.loop:
            return self.t0 + (k // n) * self.duration + self.times[k % n]
        return self.t0 + self.times[-1] + (k - n + 1) * self.period     # the last frame, held

    def first_due(self, now: float) -> int:
        """The first frame not yet late at `now`."""
        k = 0
        while self.due(k) < now - self.period / 2:
            k += 1
        return k

    def data(self, k: int) -> bytes:
        if self.encoded:
            return self.encoded[k % len(self.encoded)]
        n = len(self.files)
        path = self.files[k % n] if self.loop else self.files[min(k, n - 1)]
        if not self.raw:
            if path not in self._cache:
                self._cache[path] = path.read_bytes()
            return self._cache[path]
        if path not in self._cache:
            from PIL import Image
            with Image.open(path) as im:
                im = im.convert("RGB")
                if self.size and im.size != self.size:
                    im = im.resize(self.size, Image.BILINEAR)
                self._cache[path] = np.asarray(im)
        image = self._cache[path]
        if self.mark:
            image = image.copy()
            draw_mark(image, k)
        return image.tobytes()

    def caps(self) -> str:
        if self.encoded:
            return "video/x-h264,stream-format=byte-stream,alignment=au"
        if self.raw:
            return f"video/x-raw,format=RGB,width={self.width},height={self.height},framerate={round(self.fps)}/1"
        return f"image/jpeg,framerate={round(self.fps)}/1"


def x264(feed: Feed) -> str:
    """Decoded frames to H.264 as a camera would send them: no B-frames, no lookahead, a key frame a second."""
    return (f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={feed.bitrate} key-int-max={max(1, round(feed.fps))} "
            "! video/x-h264,profile=baseline")


def launch(feed: Feed) -> str:
    if feed.encoded:
        encode_ = "h264parse"
    else:
        encode_ = ("videoconvert" if feed.raw else "jpegdec ! videoconvert") + f" ! video/x-raw,format=I420 ! {x264(feed)}"
    return (f"( appsrc name=src is-live=true format=time do-timestamp=true caps=\"{feed.caps()}\" ! {encode_} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )")


def encode(frames: list[bytes], feed: Feed) -> list[bytes]:
    """Raw RGB frames as H.264 access units, one per frame (frame 0 a key frame, so the loop can restart)."""
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    pipe = Gst.parse_launch(f'appsrc name=src format=time caps="video/x-raw,format=RGB,width={feed.width},'
                            f'height={feed.height},framerate={round(feed.fps)}/1" ! videoconvert ! video/x-raw,format=I420 '
                            f"! {x264(feed)},stream-format=byte-stream,alignment=au ! appsink name=out sync=false")
    src, out = pipe.get_by_name("src"), pipe.get_by_name("out")
    pipe.set_state(Gst.State.PLAYING)
    step = int(Gst.SECOND / feed.fps)
    for i, data in enumerate(frames):
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts, buf.duration = i * step, step
        src.emit("push-buffer", buf)
    src.emit("end-of-stream")
    units = []
    while (sample := out.emit("pull-sample")) is not None:
        b = sample.get_buffer()
        units.append(b.extract_dup(0, b.get_size()))
    pipe.set_state(Gst.State.NULL)
    if len(units) != len(frames):
        raise SystemExit(f"pre-encoding gave {len(units)} access units for {len(frames)} frames")
    return units


def push(feed: Feed, appsrc: Any, stop: threading.Event, stamps: Any) -> None:
    """Send frames as they come due until the client goes or the media is torn down."""
    from gi.repository import Gst
    k = feed.first_due(time.time())
    while not stop.is_set():
        wait = feed.due(k) - time.time()
        if wait > 0 and stop.wait(wait):
            break
        data = feed.data(k)
        sent = time.time()
        if appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data)) != Gst.FlowReturn.OK:
            break
        if stamps is not None:
            stamps.write(f"{k} {sent:.6f}\n")
            stamps.flush()
        k += 1


def serve(feed: Feed, port: int, mount: str, stamps_path: str | None = None) -> None:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
    Gst.init(None)
    stamps = open(stamps_path, "a", encoding="ascii") if stamps_path else None
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch(feed))
    factory.set_shared(False)

    def configure(_factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name("src")
        stop = threading.Event()
        media.connect("unprepared", lambda *_: stop.set())
        threading.Thread(target=push, args=(feed, appsrc, stop, stamps), daemon=True).start()

    factory.connect("media-configure", configure)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print(f"ready rtsp://127.0.0.1:{port}{mount}", flush=True)
    GLib.MainLoop().run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.rtsp_server", description=__doc__.split("\n\n")[0])
    p.add_argument("clip", help="a clip folder (clip.json and frames/)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mount", default="/clip")
    p.add_argument("--t0", type=float, help="wall time (epoch s) of the clip's start (default: now)")
    p.add_argument("--loop", action="store_true", help="start the clip again at its end")
    p.add_argument("--bitrate", type=int, default=2048, help="H.264 bit rate, kbit/s (default 2048)")
    p.add_argument("--size", help="scale frames to WxH, e.g. 1920x1080")
    p.add_argument("--fps", type=float, help="send at this steady rate instead of the clip's times")
    p.add_argument("--mark", action="store_true", help="draw each frame's number along the top edge")
    p.add_argument("--stamps", help="with --mark: append 'number wall-time' per frame sent")
    p.add_argument("--preencode", type=int, default=0, metavar="N",
                   help="encode N frames once and send them in a loop (the server then costs next to no CPU)")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    feed = Feed(Path(args.clip), args.t0 if args.t0 is not None else time.time(), loop=args.loop or bool(args.preencode),
                size=size, fps=args.fps, mark=args.mark, preencode=args.preencode, bitrate=args.bitrate)
    serve(feed, args.port, args.mount if args.mount.startswith("/") else "/" + args.mount,
          args.stamps if args.mark else None)
    return 0


# -- the server as a child process (the HIL harness, tests, benchmarks) -----------------------------------------
class CameraServer:
    """`python -m hil.rtsp_server` as a child process: `start()` returns once it listens; `kill()` is a
    SIGKILL, as a camera losing power; `start()` again brings it back on the same port and `t0`, so
    the stream resumes where the clip is by then."""

    def __init__(self, clip: str | Path, *, port: int | None = None, t0: float | None = None,
                 args: tuple[str, ...] = (), cpu: int | None = None):
        self.clip, self.port = Path(clip), port or free_port()
        self.t0 = time.time() + 1.0 if t0 is None else t0
        self.args, self.cpu = args, cpu
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/clip"

    def start(self, timeout: float = 30.0) -> "CameraServer":
        import selectors
        import subprocess
        cmd = [sys.executable, "-m", "hil.rtsp_server", str(self.clip), "--port", str(self.port),
               "--t0", repr(self.t0), *self.args]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sel.select(max(0.0, end - time.monotonic())):
                line = self.proc.stdout.readline()
                if line.startswith("ready"):
                    return self
                if not line and self.proc.poll() is not None:
                    break
        self.stop()
        raise RuntimeError(f"the RTSP server for {self.clip} did not start")

    def kill(self) -> None:
        import signal
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "CameraServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
