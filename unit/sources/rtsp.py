"""The `rtsp` kind: an IP camera's H.264 or H.265 stream over RTSP, decoded in GStreamer.

Its options (`[camera.rtsp]`): the stream's `url` (no credentials in it: the URL is logged), the
jitter buffer's `latency_ms`, the `transport` (TCP by default: no lost packets tearing a large key
frame, one port through a firewall), the `codec`, a `decoder` to force (empty: the board's hardware
decoder where it has one, nvv4l2decoder on a Jetson, v4l2h264dec on a Pi, else software), and a
`credentials_file` holding `user:password` on one line, readable by the service alone. The user and
password are set on rtspsrc as properties, never written into the pipeline description or a log.
"""
from __future__ import annotations

import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from unit.schema import BadValue, ConfigError, key
from unit.sources import SourceKind
from unit.sources.gstreamer import DECODERS, GstSource, decoder, to_system_memory

if TYPE_CHECKING:
    from unit.config import UnitConfig


def _url(s: Any, k: str, default: Any) -> str:
    url = s.text(k, default)
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps", "rtspt") or not parts.hostname:
        raise s.bad(k, "an rtsp:// URL of the camera's stream, e.g. rtsp://192.0.2.10:554/stream1", url)
    if "@" in parts.netloc:
        raise s.bad(k, "a URL without user or password (they would be logged): put them in credentials_file",
                    parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl())
    if any(c in url for c in "\"'!\\ "):
        raise s.bad(k, "a URL without quotes, spaces, backslashes or '!'", url)
    return url


@dataclass(frozen=True)
class Options:
    url: str = field(default="", metadata=key(read=_url))
    latency_ms: int = field(default=200, metadata=key(0, 10000))     # jitter buffer: late packets wait this long
    transport: str = field(default="tcp", metadata=key(choices=("tcp", "udp")))
    codec: str = field(default="h264", metadata=key(choices=tuple(DECODERS)))
    decoder: str = ""                       # empty: the first of unit.sources.gstreamer.DECODERS installed
    credentials_file: str = field(default="", metadata=key(path=True))   # "user:password", one line

    def __post_init__(self) -> None:
        if self.decoder and not all(c.isalnum() or c in "_-" for c in self.decoder):
            raise BadValue("decoder", "a GStreamer element name such as avdec_h264", self.decoder)

    def capture_facts(self) -> dict[str, Any]:
        """What a clip recorded from this camera keeps (the URL carries no credentials)."""
        return {"url": self.url, "transport": self.transport, "codec": self.codec}


def read_credentials(path: str) -> tuple[str, str]:
    """(user, password) from the credentials file; ConfigError naming the key when it is unusable."""
    name = "camera.rtsp.credentials_file"
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read {p} ({type(exc).__name__}); it must be readable by the "
                          "service (owner root, group alpr, mode 0640)") from None
    if mode & stat.S_IROTH:
        raise ConfigError(f"{name}: {p} is readable by every user; chmod 0640 it (owner root, group alpr)")
    line = text.strip().splitlines()[0] if text.strip() else ""
    user, sep, password = line.partition(":")
    if not sep or not user:
        raise ConfigError(f"{name}: expected one line 'user:password' in {p}")
    return user, password


def description(opts: Options) -> str:
    """The pipeline for these options (without URL or credentials: `configure` sets those)."""
    dec = decoder(opts.codec, opts.decoder)
    return (f"rtspsrc name=cam latency={opts.latency_ms} protocols={opts.transport} drop-on-latency=true "
            f"! rtp{opts.codec}depay ! {opts.codec}parse ! {dec} ! {to_system_memory(dec)}")


class RtspSource(GstSource):
    def __init__(self, opts: Options, *, stall_after_s: float, clock: Callable[[], float]):
        self.opts = opts
        self._credentials = read_credentials(opts.credentials_file) if opts.credentials_file else None
        super().__init__(lambda: description(opts), what=f"rtsp {opts.url}", stall_after_s=stall_after_s, clock=clock,
                         configure=self._configure)

    def _configure(self, pipeline: Any) -> None:
        cam = pipeline.get_by_name("cam")
        cam.set_property("location", self.opts.url)
        if self._credentials:
            cam.set_property("user-id", self._credentials[0])
            cam.set_property("user-pw", self._credentials[1])


def open_rtsp(cfg: "UnitConfig", clock: Callable[[], float] | None = None, realtime: bool = True) -> RtspSource:
    opts = cfg.camera.options
    if not opts.url:
        raise ConfigError("camera.rtsp.url: expected the camera's rtsp:// URL when camera.kind = 'rtsp'")
    return RtspSource(opts, stall_after_s=cfg.camera.stall_after_s, clock=clock or time.time)


KIND = SourceKind(Options, open_rtsp)
