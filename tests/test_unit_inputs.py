"""Hostile or careless inputs to the unit: each is named (the key or the file) and refused, or skipped,
never a traceback. Deeply nested TOML, nan and inf settings, a sealing key no read can be sealed to, an
unreadable detector card, and images no camera gives (decompression bombs, 1 x 1) in `alpr-unit eval`."""
from __future__ import annotations

import base64
import io
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image

from unit import cli
from unit.config import ConfigError, load
from unit.litert import ModelError
from unit.recognise import MODEL_DIR, Recogniser
from unit.sources import frames
from unit.sources.frames import BadFrame, decode_image
from wire import seal

EXAMPLE = Path(__file__).resolve().parents[1] / "unit" / "example-config.toml"
US = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark" / "endtoend" / "us"


def write_config(tmp_path: Path, text: str | None = None, **replace: str) -> Path:
    key = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(key.public_key()))
    text = EXAMPLE.read_text() if text is None else text
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "unit.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("nest", ["x = " + "[" * 5000 + "]" * 5000, "x = " + "{a = " * 5000 + "1" + "}" * 5000])
def test_deeply_nested_toml_is_a_one_line_error_naming_the_file(tmp_path, capsys, nest):
    path = write_config(tmp_path, 'unit_id = "u"\n' + nest + "\n")
    with pytest.raises(ConfigError, match=r"unit\.toml: .*nested too deeply"):
        load(path)
    assert cli.main(["status", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unit.toml" in err and "Traceback" not in err


@pytest.mark.parametrize("old, new, key", [
    ("fps = 15", "fps = nan", "camera.fps"),
    ("fps = 15", "fps = inf", "camera.fps"),
    ("stall_after_s = 5", "stall_after_s = inf", "camera.stall_after_s"),      # no upper bound: inf passed
    ("window_s = 10", "window_s = -nan", "dedup.window_s"),
    ("max_age_days = 30", "max_age_days = +inf", "buffer.max_age_days"),
    ("stuck_after_s = 120", "stuck_after_s = inf", "lanes[0].sensor.stuck_after_s"),
    ("roi = [0.0, 0.3, 0.5, 1.0]", "roi = [0.0, 0.3, nan, 1.0]", "lanes[0].roi"),
])
def test_nan_and_inf_are_refused_naming_the_key(tmp_path, old, new, key):
    with pytest.raises(ConfigError) as exc:
        load(write_config(tmp_path, **{old: new}))
    assert str(exc.value).startswith(key + ":"), str(exc.value)


@pytest.mark.parametrize("raw", [bytes(32), b"\x01" + bytes(31), bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")],    # zero, one, an order-8 point
    ids=["all-zero", "one", "order-8"])
def test_a_sealing_key_no_read_can_be_sealed_to_is_refused_at_load(tmp_path, raw):
    with pytest.raises(seal.SealError, match="low-order"):
        seal.load_sealing_public(base64.b64encode(raw).decode())
    path = write_config(tmp_path, **{'public_key_path = "central-seal.pub"':
                                     f'public_key = "{base64.b64encode(raw).decode()}"'})
    with pytest.raises(ConfigError, match=r"^central\.public_key: .*low-order"):
        load(path)
    (tmp_path / "zero.pub").write_text(base64.b64encode(raw).decode())
    with pytest.raises(ConfigError, match=r"^central\.public_key_path: .*low-order"):
        load(write_config(tmp_path, **{'"central-seal.pub"': '"zero.pub"'}))
    good = X25519PrivateKey.generate().public_key()        # a real key still loads
    assert seal.sealing_key_id(seal.load_sealing_public(seal.sealing_public_b64(good))) == seal.sealing_key_id(good)


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    for name in ("detector.tflite", "reader.tflite", "detector.json"):
        shutil.copy(MODEL_DIR / name, d / name)
    return d


@pytest.mark.parametrize("card, why", [
    ('{"score_threshold": 0.35,', "not a readable model card"),
    ("[0.35]", "a model card is a JSON object"),
    ('{"score_threshold": "0.35"}', "score_threshold must be a number"),
    ('{"score_threshold": NaN}', "score_threshold must be a number"),
    ('{"score_threshold": 7}', "score_threshold must be a number"),
    ("[" * 100000 + "]" * 100000, "not a readable model card"),
])
def test_a_detector_card_that_is_not_valid_is_an_error_naming_the_file(model_dir, capsys, card, why):
    assert Recogniser(model_dir).score_threshold == 0.35             # the shipped card, as shipped
    (model_dir / "detector.json").write_text(card)
    with pytest.raises(ModelError, match=why) as exc:
        Recogniser(model_dir)
    assert str(model_dir / "detector.json") in str(exc.value)
    assert cli.main(["eval", str(US), "--models", str(model_dir)]) == 1
    assert "detector.json" in capsys.readouterr().err
    (model_dir / "detector.json").unlink()                          # no card at all: the default, as before
    assert Recogniser(model_dir).score_threshold == 0.4


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a few bytes of image data after it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")     # as unit.sources.frames sets it
def test_eval_names_images_no_camera_gives_and_goes_on(tmp_path, capsys):
    photos = sorted(US.glob("*.jpg"))[:3]
    for p in photos:
        shutil.copy(p, tmp_path / p.name)
        shutil.copy(p.with_suffix(".txt"), tmp_path / p.with_suffix(".txt").name)
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")              # a real 400 MP image
    (tmp_path / "claims.png").write_bytes(_png_header_only(60000, 60000))    # a header claiming 3600 MP
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "dot.png")
    Image.new("L", (9000, 9000)).save(tmp_path / "big.png")                  # 81 MP: under Pillow's own error
    for name in ("huge.png", "claims.png", "dot.png", "big.png"):
        (tmp_path / name).with_suffix(".txt").write_text(f"{name}\t1\t1\t5\t5\tABC123\n")
    assert cli.main(["eval", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    import json
    result = json.loads(captured.out)
    assert result["images"] == 3
    named = {e.split(":")[0]: e for e in result["unreadable"]}
    assert set(named) == {"huge.png", "claims.png", "dot.png", "big.png"}
    assert "too small" in named["dot.png"]
    assert all("larger than any camera frame" in named[n] for n in ("huge.png", "claims.png", "big.png"))
    for name in named:
        assert f"unreadable image {name}" in captured.err


def test_a_real_camera_frame_is_far_below_the_limit():
    assert frames.MAX_FRAME_PIXELS >= 8000 * 6000                              # a 48 MP industrial camera
    out = io.BytesIO()
    Image.new("RGB", (4056, 3040), (90, 90, 90)).save(out, "JPEG")      # a Pi HQ camera's full frame
    assert decode_image(out.getvalue()).shape == (3040, 4056, 3)
    with pytest.raises(BadFrame, match="too small"):
        decode_image((lambda b: (Image.new("RGB", (1, 1)).save(b, "PNG"), b.getvalue())[1])(io.BytesIO()))
