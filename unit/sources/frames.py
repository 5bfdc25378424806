"""What every camera source hands out, and the one check a frame passes before it is used.

A source's `read(timeout)` gives the next `Frame`, an `Edge` (recorded kinds only: a sensor change as
it was recorded), a `Gap` when its frames broke off and came back (a pipeline restarted, a stream
reconnected: the pre-trigger ring then forgets what came before), or None when nothing came in time
(the capture loop turns a long run of None into a "stalled" camera). It raises `SourceEnded` when a
recording has no more, `SourceLost` when a live stream has gone (the loop reports the camera lost,
and reconnects it after a backoff), and `BadFrame` for a frame it cannot use; the loop logs that,
counts it and carries on.

`check_frame` is the one frame check, applied by the unit's capture loop and by the recogniser. It
gives an RGB uint8 H x W x 3 array of at least 16 x 16: grey frames (H x W, or H x W x 1) and
four-channel frames (RGBA, RGBX) are converted, since infrared and machine-vision cameras give grey
and many capture pipelines give four channels; anything else is refused with a BadFrame saying why.
"""
from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from PIL import Image, ImageFile

ImageFile.LOAD_TRUNCATED_IMAGES = False     # a truncated JPEG is an error, never half a picture
MIN_SIDE = 16
# The decompression-bomb limit, set here once for every image the unit decodes: far above any camera
# frame (a Pi HQ camera gives 12 MP, a 48 MP industrial camera 8000 x 6000) and far below what would
# exhaust a unit's memory (this many RGB pixels are 200 MB). Pillow checks it while reading an image's
# header, before decoding; over it is an error in this process, never just a warning.
MAX_FRAME_PIXELS = 8192 * 8192
Image.MAX_IMAGE_PIXELS = MAX_FRAME_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)


class BadFrame(ValueError):
    """A frame that cannot be used (empty, wrong shape or type, undecodable); the message says why."""


class SourceEnded(Exception):
    """A recording has no more events."""


class SourceLost(Exception):
    """A live stream was lost (it ended, its connection dropped, its pipeline failed, or it stopped
    delivering): the caller reports the camera lost, forgets every frame from before the gap and
    opens the source again after a backoff. The message says why."""


@dataclass
class Frame:
    image: np.ndarray      # RGB uint8, H x W x 3
    t: float               # clock seconds (UTC epoch) when it was captured
    seq: int               # increasing per source; lets stages share work on one frame


@dataclass
class Edge:
    """A recorded sensor change; whoever replays it turns it into a pin change."""
    lane: str
    active: bool
    t: float


@dataclass
class Gap:
    """The camera's frames broke off: frames from before it must never go with a vehicle seen after it.
    The capture loop sends one whenever it reopens the camera; a source whose pipeline restarts by itself
    returns one from `read`."""
    t: float
    reason: str


@dataclass(frozen=True)
class ReplayEvent:
    """One moment of a recording: a frame to decode (`path`) or a sensor change (`edge`: lane, active).
    `t` is seconds from the start of the recording."""
    t: float
    path: Path | None = None
    edge: tuple[str, bool] | None = None


class FrameSource(Protocol):
    """A camera. `clock` stamps its frames (a recording brings a `ManualClock` that follows it);
    `live` is True when frames come at the camera's pace and one not taken in time is gone, False
    for a recording that waits for its reader."""
    clock: Callable[[], float]
    live: bool

    def open(self) -> None: ...
    def read(self, timeout: float) -> Frame | Edge | Gap | None: ...
    def close(self) -> None: ...


class ManualClock:
    """A clock that only moves when told: replay and tests use it so times follow the recording."""

    def __init__(self, t: float = 1_700_000_000.0):
        self._t = float(t)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = max(self._t, float(t))

    def advance(self, dt: float) -> float:
        with self._lock:
            self._t += dt
            return self._t


def check_frame(image: object) -> np.ndarray:
    """The frame as RGB uint8 H x W x 3 (the same array when it is one already; grey and four-channel
    frames converted), or BadFrame saying why it cannot be used."""
    if image is None:
        raise BadFrame("no image (None)")
    if not isinstance(image, np.ndarray):
        raise BadFrame(f"not an array ({type(image).__name__})")
    if image.size == 0:
        raise BadFrame(f"empty frame {image.shape}")
    if image.dtype != np.uint8:
        raise BadFrame(f"wrong dtype {image.dtype}, expected uint8")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[..., :3])
    if image.ndim != 3 or image.shape[2] != 3:
        raise BadFrame(f"wrong shape {image.shape}, expected H x W x 3 (RGB), H x W (grey) or H x W x 4")
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise BadFrame(f"frame too small {image.shape}")
    return image


def decode_image(data: bytes | str | Path) -> np.ndarray:
    """Decode a JPEG/PNG (bytes or path) to RGB uint8; truncated, corrupt, too small or too large
    (MAX_FRAME_PIXELS) data raises BadFrame."""
    try:
        src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
        with Image.open(src) as im:
            if im.width * im.height > MAX_FRAME_PIXELS:      # (whatever the warnings filter says)
                raise Image.DecompressionBombError(f"{im.width} x {im.height} pixels")
            im.load()
            return check_frame(np.asarray(im.convert("RGB")))
    except BadFrame:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadFrame(f"image larger than any camera frame (limit {MAX_FRAME_PIXELS / 1e6:.0f} MP): "
                       f"{str(exc).split(' exceeds')[0]}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadFrame(f"cannot decode image: {exc}") from None


def encode_jpeg(image: np.ndarray, quality: int = 85, max_width: int | None = None) -> bytes:
    im = Image.fromarray(image)
    if max_width and im.width > max_width:
        im = im.resize((max_width, max(1, round(im.height * max_width / im.width))), Image.BILINEAR)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()
