"""One recogniser from `[recognition]` (`unit.recognise.from_config`): `framings` and `two_row_plates`
mean the same in `alpr-provision aim` and `selftest` and in the HIL harness as in the service and
`alpr-unit eval` (test_unit_config.py, test_recognise.py)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from unit import clips, recognise
from unit.config import RecognitionConfig, parse
from unit.recognise import framing_sets
from wire import seal

ROOT = Path(__file__).resolve().parents[1]
ONE_PASS_ONE_ROW = {"framings": 1, "two_row_plates": False}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _config(tmp_path, recognition: dict):
    doc = {"unit_id": "u1", "site": "s1", "recognition": recognition, "lanes": [{"name": "in"}],
           "central": {"public_key": seal.sealing_public_b64(X25519PrivateKey.generate().public_key())},
           "camera": {"kind": "replay", "replay": {"path": str(tmp_path)}}}
    return parse(doc, base=tmp_path)


def _is_one_pass_one_row(rec) -> bool:
    return (rec.framings, rec.crop_framings) == framing_sets(1) and rec.two_row is False


@pytest.fixture
def built(monkeypatch):
    """Every recogniser from_config builds, as built (the real one: the shipped models load)."""
    out = []
    real = recognise.from_config

    def spy(rec):
        out.append(real(rec))
        return out[-1]
    monkeypatch.setattr(recognise, "from_config", spy)
    return out


def test_aim_reads_as_the_unit_does(tmp_path):
    from provisioning.aim import Aimer
    aimer = Aimer(_config(tmp_path, ONE_PASS_ONE_ROW))
    assert _is_one_pass_one_row(aimer.rec)
    default = Aimer(_config(tmp_path, {}))
    assert (default.rec.framings, default.rec.crop_framings) == framing_sets(2) and default.rec.two_row


def test_selftest_models_check_reads_as_the_unit_does(tmp_path, built):
    from provisioning.selftest import Context, Options, check_models
    from unit.layout import Layout
    ctx = Context(Layout(tmp_path / "root"), Options())
    ctx.cfg = _config(tmp_path, ONE_PASS_ONE_ROW)
    check = check_models(ctx)[0]
    assert check.name == "models" and check.status in ("pass", "fail"), check
    assert len(built) == 1 and _is_one_pass_one_row(built[0])


def test_hil_harness_reads_as_its_unit_config_says(tmp_path, built):
    from hil.central import Enrolment
    from hil.harness import Harness, Options, unit_config
    enrolment = Enrolment("http://127.0.0.1:9", "hil-u", "s1", tmp_path / "id.pem",
                          seal.sealing_public_b64(X25519PrivateKey.generate().public_key()),
                          _b64(Ed25519PrivateKey.generate().public_key().public_bytes_raw()))
    opts = Options(base_config={"recognition": ONE_PASS_ONE_ROW}, workdir=tmp_path)
    clip = clips.load(ROOT / "hil" / "clips" / "01-day-one-lane")
    cfg = unit_config(clip, enrolment, tmp_path, opts)
    assert cfg.recognition == RecognitionConfig(framings=1, two_row_plates=False)
    harness = Harness(enrolment, "sqlite://", opts)
    rec = harness.recogniser(cfg.recognition)
    assert _is_one_pass_one_row(rec) and built == [rec]
    assert harness.recogniser(cfg.recognition) is rec          # made once for every clip that shares it
