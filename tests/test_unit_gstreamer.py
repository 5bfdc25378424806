"""The GStreamer camera kinds with real GStreamer: `gstreamer` from videotestsrc and from a demo clip's
JPEG frames, the pipelines the `v4l2` and `jetson-csi` kinds build checked against gst-inspect-1.0
(refused, saying what is missing, where the elements are not installed), the `rtsp` kind's URL and
credentials, and `alpr-unit record-clip` from a videotestsrc pipeline."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_unit_sources import _config
from unit import clips, sources
from unit.config import ConfigError
from unit.sources.frames import Frame, SourceLost, decode_image

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "hil" / "clips" / "01-day-one-lane"

gst = pytest.importorskip("unit.sources.gstreamer")
try:
    gst.gst()
except gst.CameraUnavailable as exc:          # scripts/test.sh installs them; say so rather than fail obscurely
    pytest.skip(f"GStreamer bindings not installed: {exc}", allow_module_level=True)


def frames(src, n: int, timeout: float = 10.0) -> list[Frame]:
    out, end = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        f = src.read(0.5)
        if f is not None:
            out.append(f)
    return out


def gstreamer_config(tmp_path, pipeline: str, extra: str = ""):
    return _config(tmp_path, f"[camera]\nkind = \"gstreamer\"\nfps = 15\nresolution = [320, 240]\n{extra}"
                             f"[camera.gstreamer]\npipeline = '{pipeline}'")


def test_videotestsrc_frames_arrive_at_the_configured_rate_with_capture_times(tmp_path):
    # solid red (ARGB 0xffff0000): the frames must come out as RGB, not BGR
    cfg = gstreamer_config(tmp_path, "videotestsrc is-live=true pattern=solid-color foreground-color=0xffff0000 "
                                     "! video/x-raw,width=320,height=240,framerate=15/1")
    src = sources.open_source(cfg)
    assert src.live and src.clock is time.time
    src.open()
    try:
        got = frames(src, 16)
        now = time.time()
    finally:
        src.close()
    assert len(got) == 16 and src.is_live
    assert got[0].image.shape == (240, 320, 3) and got[0].image.dtype == np.uint8
    assert (got[0].image[..., 0] == 255).all() and (got[0].image[..., 1:] == 0).all()
    times = [f.t for f in got]
    steps = np.diff(times)
    assert (steps > 0).all() and np.median(steps) == pytest.approx(1 / 15, rel=0.1)   # 15 fps, from timestamps
    assert now - 2.0 < times[-1] <= now                                               # on the wall clock
    assert [f.seq for f in got] == list(range(1, 17))
    h = src.health()
    assert h["frames"] == 16 and h["reconnects"] == 0 and h["latency_ms"] < 1000


def test_multifilesrc_over_a_clip_s_jpeg_frames_is_paced_as_recorded(tmp_path):
    pipeline = (f"multifilesrc location={CLIP}/frames/%06d.jpg index=1 caps=image/jpeg,framerate=10/1 ! jpegdec")
    cfg = gstreamer_config(tmp_path, pipeline)
    src = sources.open_source(cfg)
    src.open()
    try:
        got = frames(src, 12)
    finally:
        src.close()
    assert not src.is_live                       # files: paced by their timestamps, not as fast as they decode
    steps = np.diff([f.t for f in got])
    assert len(got) == 12 and (steps > 0).all() and np.median(steps) == pytest.approx(0.1, rel=0.15)
    first = decode_image(CLIP / "frames" / "000001.jpg")
    assert got[0].image.shape == first.shape
    assert np.abs(got[0].image.astype(int) - first).mean() < 2.0     # the same picture, decoded by jpegdec


def test_a_pipeline_that_ends_or_fails_is_lost_and_reopens(tmp_path):
    cfg = gstreamer_config(tmp_path, "videotestsrc is-live=true num-buffers=3 ! video/x-raw,width=64,height=48")
    src = sources.open_source(cfg)
    src.open()
    got = []
    with pytest.raises(SourceLost, match="the stream ended"):
        for _ in range(40):
            f = src.read(0.5)
            if f is not None:
                got.append(f)
    assert len(got) == 3
    with pytest.raises(SourceLost, match="not connected"):        # closed on loss: nothing stale is kept
        src.read(0.1)
    src.open()                                                    # a new pipeline: frames again
    assert len(frames(src, 3)) == 3 and src.health()["reconnects"] == 1 and src.health()["lost"] == 1
    src.close()
    bad = sources.open_source(gstreamer_config(tmp_path, "v4l2src device=/dev/video-none ! videoconvert"))
    with pytest.raises(SourceLost, match="/dev/video-none"):
        bad.open()


def test_bad_pipelines_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="camera.gstreamer.pipeline: expected a pipeline"):
        sources.open_source(_config(tmp_path, '[camera]\nkind = "gstreamer"'))
    src = sources.open_source(gstreamer_config(tmp_path, "videotestsrc ! nosuchelement42 ! videoconvert"))
    with pytest.raises(gst.CameraUnavailable, match="nosuchelement42 not installed here"):
        src.open()
    src = sources.open_source(gstreamer_config(tmp_path, "videotestsrc no-such-property=1"))
    with pytest.raises(gst.CameraUnavailable, match="does not parse.*no-such-property"):
        src.open()
    # a pipeline ending in an appsink of its own in a format the unit does not take
    src = sources.open_source(gstreamer_config(tmp_path, "videotestsrc is-live=true ! video/x-raw,format=BGRx ! appsink"))
    src.open()
    try:
        from unit.sources.frames import BadFrame
        with pytest.raises(BadFrame, match="BGRx"):
            for _ in range(20):
                src.read(0.5)
    finally:
        src.close()


def test_description_ends_in_an_appsink_once():
    assert gst.with_sink("videotestsrc").endswith("videotestsrc ! videoconvert ! video/x-raw,format=RGB ! appsink name=alpr_sink")
    assert gst.with_sink("x ! video/x-raw,format=RGBA") == "x ! video/x-raw,format=RGBA ! appsink name=alpr_sink"
    assert gst.with_sink("x ! appsink name=mine") == "x ! appsink name=mine"
    assert gst.elements('a p="x ! y" ! video/x-raw,width=2 ! b name=t t. ! c') == ["a", "b", "c"]


# -- the presets: v4l2, jetson-csi, rtsp -----------------------------------------------------------------------
def inspect(element: str) -> str:
    return subprocess.run(["gst-inspect-1.0", element], capture_output=True, text=True, check=True).stdout


def properties(description: str) -> list[tuple[str, list[str]]]:
    """(element, properties set on it) for each element of a description."""
    out = []
    for chunk in gst._split_links(description):
        words = re.findall(r'(?:[^\s"]|"[^"]*")+', chunk)
        if words and words[0] in gst.elements(chunk):
            out.append((words[0], [w.split("=")[0] for w in words[1:] if "=" in w]))
    return out


@pytest.mark.skipif(not shutil.which("gst-inspect-1.0"), reason="gstreamer1.0-tools not installed")
@pytest.mark.parametrize("fmt", ["YUYV", "MJPG", "GREY", "H264"])
def test_v4l2_pipelines_from_config_match_what_gst_inspect_says(tmp_path, fmt):
    from gi.repository import Gst
    cfg = _config(tmp_path, f'[camera]\nkind = "v4l2"\nresolution = [1280, 720]\nfps = 29.97\n[camera.v4l2]\n'
                            f'device = "/dev/v4l/by-id/usb-cam-video-index0"\npixel_format = "{fmt}"\n'
                            "controls = { auto_exposure = 1, exposure_time_absolute = 10 }")
    from unit.sources.v4l2 import description
    desc = description(cfg.camera.options, cfg.camera)
    assert "width=1280,height=720,framerate=30000/1001" in desc
    assert 'extra-controls="c,auto_exposure=1,exposure_time_absolute=10"' in desc
    for element, props in properties(desc):
        text = inspect(element)                         # the element exists here, with these properties
        for prop in props:
            assert re.search(rf"^\s+{re.escape(prop)}\s+:", text, re.M), (element, prop)
    for caps in re.findall(r"(?:video|image)/[^ !]+", desc):
        assert Gst.Caps.from_string(caps) is not None, caps
    Gst.parse_launch(gst.with_sink(desc))               # and the whole description parses as is
    src = sources.open_source(cfg)
    with pytest.raises(SourceLost, match="usb-cam-video-index0"):   # no such camera here: said plainly
        src.open()


def test_jetson_csi_is_refused_where_its_elements_do_not_exist(tmp_path):
    cfg = _config(tmp_path, '[camera]\nkind = "jetson-csi"\nresolution = [1920, 1080]\nfps = 30\n'
                            '[camera.jetson-csi]\nsensor_id = 1\nexposure_us_min = 500\nexposure_us_max = 500\n'
                            'gain_max = 4\nflip_method = 2')
    from unit.sources.jetson_csi import description
    desc = description(cfg.camera.options, cfg.camera)
    assert desc.startswith("nvarguscamerasrc sensor-id=1 sensor-mode=-1 ")
    assert 'exposuretimerange="500000 500000" gainrange="1 4" ispdigitalgainrange="1 1"' in desc
    assert "video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1,format=NV12" in desc
    assert desc.endswith("nvvidconv flip-method=2 ! video/x-raw,format=RGBA")
    assert gst.with_sink(desc).endswith("RGBA ! appsink name=alpr_sink")     # RGBA goes straight to the unit
    for element in gst.elements(desc):
        if gst.have(element):
            assert element not in ("nvarguscamerasrc", "nvvidconv")
            inspect(element)
    src = sources.open_source(cfg)
    if gst.have("nvarguscamerasrc"):
        pytest.skip("a Jetson: the refusal is for other boards")
    with pytest.raises(gst.CameraUnavailable, match=r"elements nvarguscamerasrc, nvvidconv not installed here.*"
                                                     r"nvidia-l4t-gstreamer\): a Jetson only"):
        src.open()
    with pytest.raises(ConfigError, match="camera.jetson-csi.exposure_us_max: expected a number >= exposure_us_min"):
        _config(tmp_path, '[camera]\nkind = "jetson-csi"\n[camera.jetson-csi]\nexposure_us_min = 900\nexposure_us_max = 100')


def test_decoders_are_chosen_by_what_is_installed():
    assert gst.decoder("h264", "avdec_h264") == "avdec_h264"
    auto = gst.decoder("h264")
    assert auto in gst.DECODERS["h264"] and gst.have(auto)
    for hw in ("nvv4l2decoder", "v4l2h264dec"):        # a board's hardware decoder comes first where it exists
        if gst.have(hw):
            assert auto == hw
            break
    assert gst.to_system_memory("nvv4l2decoder").startswith("nvvidconv")
    assert gst.to_system_memory("avdec_h264").startswith("videoconvert")
    assert gst.decoder("h265") in gst.DECODERS["h265"]


def test_rtsp_url_and_credentials(tmp_path):
    from unit.sources.rtsp import description
    with pytest.raises(ConfigError, match=r"camera.rtsp.url: expected a URL without user or password.*credentials_file, "
                                          r"got 'rtsp://10.0.0.5/s1'"):
        _config(tmp_path, '[camera]\nkind = "rtsp"\n[camera.rtsp]\nurl = "rtsp://admin:secret@10.0.0.5/s1"')
    with pytest.raises(ConfigError, match="camera.rtsp.url: expected an rtsp:// URL"):
        _config(tmp_path, '[camera]\nkind = "rtsp"\n[camera.rtsp]\nurl = "http://10.0.0.5/s1"')
    with pytest.raises(ConfigError, match="camera.rtsp.url: expected the camera's rtsp:// URL"):
        sources.open_source(_config(tmp_path, '[camera]\nkind = "rtsp"'))
    cred = tmp_path / "camera.cred"
    cred.write_text("admin:s3cr:et\n")
    os.chmod(cred, 0o644)
    text = '[camera]\nkind = "rtsp"\n[camera.rtsp]\nurl = "rtsp://127.0.0.1:9/s1"\ncredentials_file = "camera.cred"\ncodec = "h265"'
    with pytest.raises(ConfigError, match="credentials_file: .* is readable by every user; chmod 0640"):
        sources.open_source(_config(tmp_path, text))
    os.chmod(cred, 0o640)
    src = sources.open_source(_config(tmp_path, text))
    desc = description(src.opts)
    assert "rtph265depay ! h265parse" in desc and "s3cr" not in desc and "admin" not in desc
    from gi.repository import Gst
    pipeline = Gst.parse_launch(gst.with_sink(desc))
    src._configure(pipeline)                         # the credentials go to rtspsrc as properties only
    cam = pipeline.get_by_name("cam")
    assert (cam.get_property("user-id"), cam.get_property("user-pw")) == ("admin", "s3cr:et")
    assert cam.get_property("location") == "rtsp://127.0.0.1:9/s1"
    with pytest.raises(SourceLost, match="rtsp://127.0.0.1:9/s1") as err:    # nothing listens there
        src.open()
    assert "s3cr" not in str(err.value)


def test_record_clip_from_a_videotestsrc_pipeline(tmp_path):
    """Done means: `alpr-unit record-clip --seconds 3 OUT --config FILE` with a gstreamer camera."""
    cfg_path = tmp_path / "unit.toml"
    gstreamer_config(tmp_path, "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1")
    out = tmp_path / "clip"
    res = subprocess.run([sys.executable, "-m", "unit.cli", "record-clip", "--seconds", "3", str(out),
                          "--config", str(cfg_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    clip = clips.load(out)
    assert 35 <= len(clip.frames) <= 46                             # 3 s at 15 fps, from the first frame
    assert clip.capture["camera"] == "gstreamer" and "videotestsrc" in clip.capture["pipeline"]
    assert clip.capture["resolution"] == [320, 240]
    times = [f.t for f in clip.frames]
    assert times == sorted(times) and times[-1] <= 3.0
    assert decode_image(out / clip.frames[-1].file).shape == (240, 320, 3)
    assert f"{len(clip.frames)} frames" in res.stdout


# -- provisioning: selftest and aim with a GStreamer camera ----------------------------------------------------
def provisioned(tmp_path, capsys, camera: str, source: str, resolution: str = "320x240", fps: str = "15"):
    from provisioning import cli
    from test_provision_selftest import enrolled_root
    root = enrolled_root(tmp_path, "http://127.0.0.1:9")
    assert cli.main(["site", "--root", str(root), "--lane", "name=in,sensor=none", "--camera", camera,
                     "--camera-source", source, "--resolution", resolution, "--fps", fps]) == 0
    capsys.readouterr()
    return cli, root


def selftest_camera(cli, root, capsys) -> dict:
    import json
    cli.main(["selftest", "--root", str(root), "--only", "camera", "--camera-timeout", "8", "--json"])
    return {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}


def test_selftest_measures_a_gstreamer_camera_against_the_config(tmp_path, capsys):
    cli, root = provisioned(tmp_path, capsys, "gstreamer",
                            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1")
    checks = selftest_camera(cli, root, capsys)
    cam = checks["camera"]
    assert cam["status"] == "pass", cam
    assert re.match(r"gstreamer: \d+ frames 320x240 at 1[45]\.\d fps", cam["detail"]) and "dropped" in cam["detail"]
    assert set(checks) == {"camera"}                              # size and rate as configured: no warnings
    # the config says 1280x720 at 30 fps; the camera gives 320x240 at 15: both said, with what to do
    cli, root = provisioned(tmp_path / "b", capsys, "gstreamer",
                            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1",
                            resolution="1280x720", fps="30")
    checks = selftest_camera(cli, root, capsys)
    assert checks["camera"]["status"] == "pass"
    assert checks["camera:resolution"]["status"] == "warn" and "320x240" in checks["camera:resolution"]["detail"]
    assert checks["camera:rate"]["status"] == "warn" and "camera.fps says 30" in checks["camera:rate"]["detail"]


def test_selftest_and_aim_say_what_is_missing_for_a_jetson_camera(tmp_path, capsys):
    if gst.have("nvarguscamerasrc"):
        pytest.skip("a Jetson")
    cli, root = provisioned(tmp_path, capsys, "jetson-csi", "0", resolution="1920x1080", fps="30")
    cam = selftest_camera(cli, root, capsys)["camera"]
    assert cam["status"] == "fail" and cam["detail"].startswith("jetson-csi: the camera cannot run with what is installed")
    assert "nvarguscamerasrc" in cam["detail"] and "camera.kind" in cam["advice"]


def test_aim_takes_its_frame_from_an_rtsp_camera(tmp_path, capsys):
    """`alpr-provision aim --once` with the camera an IP camera on loopback serving a demo clip while a
    vehicle stands at the barrier."""
    import json
    try:
        import gi
        gi.require_version("GstRtspServer", "1.0")
    except ValueError:
        pytest.skip("gst-rtsp-server not installed")
    from hil.rtsp_server import CameraServer
    stops = ROOT / "hil" / "clips" / "04-vehicle-stops"            # a vehicle waits at the barrier 1.2-6.2 s
    with CameraServer(stops, t0=time.time() - 1.5) as server:
        cli, root = provisioned(tmp_path, capsys, "rtsp", server.url, resolution="1280x720", fps="10")
        code = cli.main(["aim", "--root", str(root), "--once", "--json", "--out", str(tmp_path / "aim")])
    doc = json.loads(capsys.readouterr().out)
    assert doc["frame"] == [1280, 720] and Path(doc["jpeg"]).stat().st_size > 10_000
    assert doc["plates"] and code in (0, 1)


def test_a_corrupt_model_is_still_an_error_once_gstreamer_is_loaded(tmp_path):
    """GStreamer brings libunwind into the process's global symbols; without libgcc_s put first, LiteRT's
    C++ exception for a corrupt model aborted the whole process (a unit would die, not degrade)."""
    shutil.copy(ROOT / "models" / "detector.tflite", tmp_path / "detector.tflite")
    (tmp_path / "reader.tflite").write_bytes(b"this is not a flatbuffer")
    code = ("from unit.sources.gstreamer import gst; gst()\n"
            "from unit.recognise import ModelError, Recogniser\n"
            f"try:\n    Recogniser(model_dir={str(tmp_path)!r})\n"
            "except ModelError as exc:\n    print('model error:', exc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0 and "model error:" in res.stdout, res.stderr[-2000:]
