"""Frame sources: replay of stills and clips with an injectable clock, pushed frames, frame checks."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from unit.camera import (BadFrame, Edge, Frame, ManualClock, QueueSource, ReplaySource, SourceEnded, check_frame,
                         decode_image, encode_jpeg)
from unit.config import CameraConfig

US = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark" / "endtoend" / "us"  # shared/ beside the repo
PHOTOS = sorted(str(p) for p in US.glob("*.jpg"))
CAM = CameraConfig(kind="replay", fps=10, pre_trigger_frames=2, burst_frames=3, burst_fps=5)


def drain(src):
    out = []
    while True:
        try:
            out.append(src.read(0))
        except SourceEnded:
            return out


def test_stills_replay_one_vehicle_per_image_on_recorded_time(tmp_path):
    for p in PHOTOS[:2]:
        (tmp_path / Path(p).name).symlink_to(p)
    clock = ManualClock(1000.0)
    src = ReplaySource(tmp_path, CAM, "in", clock=clock, gap_s=5.0)
    assert src.frames == 2 * (2 + 3) and len(src) == 2 * (2 + 3 + 2)
    src.open()
    events = drain(src)
    kinds = ["E" if isinstance(e, Edge) else "F" for e in events]
    assert "".join(kinds) == "FFEFFFE" * 2
    edges = [e for e in events if isinstance(e, Edge)]
    assert [(e.lane, e.active) for e in edges] == [("in", True), ("in", False)] * 2
    frames = [e for e in events if isinstance(e, Frame)]
    assert frames[0].image is frames[4].image                      # decoded once per still
    assert frames[0].image.shape == decode_image(PHOTOS[0]).shape
    times = [e.t for e in events]
    assert times == sorted(times) and times[0] == 1000.0
    assert frames[3].t - frames[2].t == pytest.approx(0.2)        # burst at 5 fps
    assert edges[2].t - edges[1].t > 5.0                           # the gap between vehicles
    assert clock() == times[-1]                                    # the clock followed the replay
    assert [f.seq for f in frames] == list(range(1, 11))


def test_clip_replay_orders_edges_and_frames(tmp_path):
    for i, p in enumerate(PHOTOS[:3]):
        (tmp_path / f"{i}.jpg").symlink_to(p)
    (tmp_path / "clip.json").write_text(json.dumps({
        "frames": [{"file": "0.jpg", "t": 0.0}, {"file": "1.jpg", "t": 0.5}, {"file": "2.jpg", "t": 1.0}],
        "edges": [{"t": 0.5, "lane": "out", "active": True}, {"t": 1.2, "lane": "out", "active": False}]}))
    src = ReplaySource(tmp_path, CAM, "in", clock=ManualClock(0.0), start=50.0)
    events = drain(src)
    desc = [(type(e).__name__, e.t) for e in events]
    assert desc == [("Frame", 50.0), ("Edge", 50.5), ("Frame", 50.5), ("Frame", 51.0), ("Edge", 51.2)]
    assert events[1].lane == "out"


def test_replay_source_rejects_what_is_not_a_clip(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        ReplaySource(tmp_path, CAM, "in")
    (tmp_path / "clip.json").write_text("{not json")
    with pytest.raises(ValueError, match="clip.json: not a usable clip"):
        ReplaySource(tmp_path, CAM, "in")
    with pytest.raises(ValueError, match="must be a clip folder"):
        ReplaySource(tmp_path / "nope", CAM, "in")


def test_queue_source_join_means_the_loop_has_passed_the_frame_on():
    src = QueueSource(ManualClock(5.0))
    img = np.zeros((32, 32, 3), np.uint8)
    src.push(img)
    src.push(img, t=7.0)
    passed = []

    def loop():
        while True:
            try:
                f = src.read(0.5)
            except SourceEnded:
                return
            if f is not None:
                passed.append(f)
    t = threading.Thread(target=loop)
    t.start()
    src.join()
    assert [(f.t, f.seq) for f in passed] == [(5.0, 1), (7.0, 2)]
    src.end()
    t.join(2)
    assert not t.is_alive()


def test_frame_checks_and_jpeg_round_trip(tmp_path):
    good = decode_image(PHOTOS[0])
    assert check_frame(good) is good
    for bad, why in [(None, "no image"), ([1, 2], "not an array"), (np.zeros((0, 5, 3), np.uint8), "empty"),
                     (good[..., 0], "wrong shape"), (good.astype(np.uint16), "wrong dtype"),
                     (good[:8, :8], "too small")]:
        with pytest.raises(BadFrame, match=why):
            check_frame(bad)
    data = Path(PHOTOS[0]).read_bytes()
    with pytest.raises(BadFrame, match="cannot decode"):
        decode_image(data[:2000])
    with pytest.raises(BadFrame, match="cannot decode"):
        decode_image(b"")
    small = decode_image(encode_jpeg(good, 80, max_width=320))
    assert small.shape == (180, 320, 3)
