"""Plate recognition on the device: detect on a downscaled frame, read from the full-resolution crop.

Two int8 LiteRT models ship in `models/`: the detector (letterboxed DET_W x DET_H frame -> boxes) and
the reader (grey READER_H x READER_W crop -> per-column character scores, CTC). Reading from the
full-resolution crop keeps small, distant plates legible while detection stays cheap.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from unit import ctc, plates, rows
from unit.detect import decode, scale_box
from unit.litert import Model, ModelError
from unit.preprocess import READER_H, READER_W, letterbox, reader_input
from unit.sources.frames import check_frame

if TYPE_CHECKING:
    from unit.config import RecognitionConfig

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_SCORE_THRESHOLD = 0.4
# Each plate is read at several framings, (x, y) padding in fractions of the box (negative trims),
# and the candidates' probabilities are averaged over them: a box a little off, or a crop tighter or
# looser than the reader learned on, is then read right more often. Chosen on the training sets'
# valid photos and crops (models/README.md): a detector box as it is and widened, since the reader
# learned on loose crops; a given crop trimmed a little and padded a little (edge pixels repeated).
Framings = tuple[tuple[float, float], ...]
FRAMINGS: Framings = ((0.0, 0.0), (0.12, 0.22))
CROP_FRAMINGS: Framings = ((-0.03, -0.06), (0.05, 0.10))
# One pass per plate, for a unit too slow for two: the box padded as the reader learned (loose), the
# crop as given. Fewer exact reads (models/README.md), half the reader's time.
ONE_FRAMING: tuple[Framings, Framings] = (((0.05, 0.10),), ((0.0, 0.0),))


def framing_sets(passes: int) -> tuple[Framings, Framings]:
    """(box framings, crop framings) for 1 or 2 reader passes per plate."""
    if passes == 1:
        return ONE_FRAMING
    if passes == 2:
        return FRAMINGS, CROP_FRAMINGS
    raise ValueError(f"framings: 1 or 2 reader passes per plate, not {passes}")


def from_config(rec: "RecognitionConfig") -> "Recogniser":
    """The recogniser a unit's `[recognition]` describes: its models, threads and candidates, the
    shipped framings for its `framings` reader passes per plate, two-row plates read or not. The
    service, `alpr-unit eval`, `alpr-provision aim` and `selftest` and the HIL harness all build
    theirs here, so the keys mean the same everywhere."""
    boxes, crops = framing_sets(rec.framings)
    return Recogniser(rec.model_dir or None, threads=rec.threads, top_n=rec.top_n, framings=boxes,
                      crop_framings=crops, two_row=rec.two_row_plates)


@dataclass
class Candidate:
    plate: str
    score: float


@dataclass
class PlateRead:
    box: tuple[int, int, int, int]      # x0, y0, x1, y1 in pixels of the image given
    text: str                           # normalised A-Z0-9, best candidate after format re-ranking
    confidence: float                   # 0..1
    candidates: list[Candidate] = field(default_factory=list)   # top-N, best first
    det_score: float = 0.0              # detector confidence of the box
    region: str = ""                    # region guess from the plate layout ("us-ca", "us", "eu", "")
    crop: np.ndarray | None = None      # RGB uint8 crop from the full-resolution image


class Recogniser:
    """Finds and reads plates in RGB frames. One instance per thread; not thread-safe."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 1, top_n: int = 5,
                 score_threshold: float | None = None, min_confidence: float = 0.0,
                 framings: Framings = FRAMINGS, crop_framings: Framings = CROP_FRAMINGS,
                 two_row: bool = True):
        """`framings` / `crop_framings`: how a detector box / a given crop is read (see FRAMINGS);
        `framing_sets(n)` gives the shipped sets for n passes, `from_config(rec)` a recogniser as a
        unit's config describes it. `two_row`: a plate that looks like two rows of characters is also read with its rows
        side by side (`unit.rows`), one more reader pass for each of its framings."""
        d = Path(model_dir) if model_dir else MODEL_DIR
        self.detector = Model(d / "detector.tflite", threads=threads)
        self.reader = Model(d / "reader.tflite", threads=threads)
        card = _read_card(d / "detector.json")
        if score_threshold is None:
            score_threshold = _card_value(card, "score_threshold", DEFAULT_SCORE_THRESHOLD, d / "detector.json")
        self.score_threshold = float(score_threshold)
        # the detector's boxes run smaller than the plates (the reader learned truth-centred framings):
        # its card carries the per-axis growth that brings their median to the plate's size
        self.box_scale = card_box_scale(card, d / "detector.json")
        self.top_n = top_n
        self.min_confidence = min_confidence
        self.two_row = two_row
        if not framings or not crop_framings:
            raise ValueError("framings: at least one (pad_x, pad_y) is needed")
        self.framings, self.crop_framings = tuple(framings), tuple(crop_framings)
        h, w = self.detector.input_shape[1:3]
        self._det_size = (w, h)
        self._versions = {"detector": f"detector-{self.detector.sha256[:12]}",
                          "reader": f"reader-{self.reader.sha256[:12]}"}
        if self.reader.input_shape[1:3] != (READER_H, READER_W):
            raise ModelError(f"reader input {self.reader.input_shape} does not match unit.preprocess")

    def versions(self) -> dict[str, str]:
        return dict(self._versions)

    def detect(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Plate boxes in image pixels with detector scores. A frame `check_frame` refuses raises
        BadFrame (`unit.sources.frames`); a grey or four-channel one is read as RGB."""
        return self._detect(check_frame(image))

    def _detect(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        x, lb = letterbox(image, self._det_size)
        out = self.detector.run(x[None].astype(np.float32) / 255.0)[0]
        sx, sy = self.box_scale
        return [(scale_box(lb.to_original(d[:4]), sx, sy), d[4]) for d in decode(out, self.score_threshold)]

    def _ctc(self, crop: np.ndarray) -> list[tuple[str, float]]:
        x = reader_input(crop)[None, ..., None].astype(np.float32) / 255.0
        return ctc.beam(ctc.log_softmax(self.reader.run(x)[0]), width=8, top_n=self.top_n)

    def _beam(self, crop: np.ndarray, row: int | None = None) -> list[tuple[str, float]]:
        """Candidates for one framing; with `row` (a two-row plate's gap in this crop), also those of
        its rows side by side, each text at the likelier of its two readings."""
        cands = self._ctc(crop)
        h = crop.shape[0]
        # each row at least a fifth of the crop (split_row's gap lies in its middle 40 %, which the
        # shipped framings keep above 0.24): a sliver stretched to the other row's height reads as noise
        if row is None or not 0.2 * h <= row <= 0.8 * h:
            return cands
        best = dict(cands)
        for t, p in self._ctc(rows.side_by_side(crop, row)):
            best[t] = max(best.get(t, 0.0), p)
        return sorted(best.items(), key=lambda kv: -kv[1])[:self.top_n]

    def _split_row(self, crop: np.ndarray) -> int | None:
        return rows.split_row(crop) if self.two_row else None

    def _best(self, beams: list[list[tuple[str, float]]]) -> tuple[str, float, list[Candidate]]:
        cands = plates.rerank(average_candidates(beams)[:self.top_n])
        if not cands:
            return "", 0.0, []
        return cands[0][0], float(min(1.0, cands[0][1])), [Candidate(t, round(float(s), 4)) for t, s in cands]

    def read_crop(self, crop: np.ndarray) -> tuple[str, float, list[Candidate]]:
        """Read a plate crop (the whole image is the plate): text, confidence, candidates."""
        row = self._split_row(crop)
        return self._best([self._beam(reframe(crop, px, py), reframed_row(crop.shape[0], py, row))
                           for px, py in self.crop_framings])

    def read(self, image: np.ndarray) -> list[PlateRead]:
        """All plates in a frame, the likeliest plate first."""
        image = check_frame(image)
        H, W = image.shape[:2]
        out: list[PlateRead] = []
        for (x0, y0, x1, y1), score in self._detect(image):
            bw, bh = x1 - x0, y1 - y0
            if bw < 4 or bh < 2:
                continue
            box = (int(max(0, x0)), int(max(0, y0)), int(min(W, x1)), int(min(H, y1)))
            # a two-row plate's gap, found in the box itself, in image rows
            # (a box wholly outside the frame clips to a negative extent: no rows to look at)
            has_pixels = box[2] - box[0] >= 4 and box[3] - box[1] >= 4
            row = self._split_row(image[box[1]:box[3], box[0]:box[2]]) if has_pixels else None
            crops, tops = [], []
            for px, py in self.framings:
                cx0 = int(max(0, round(x0 - px * bw))); cy0 = int(max(0, round(y0 - py * bh)))
                cx1 = int(min(W, round(x1 + px * bw))); cy1 = int(min(H, round(y1 + py * bh)))
                if cx1 - cx0 >= 4 and cy1 - cy0 >= 2:
                    crops.append(image[cy0:cy1, cx0:cx1]); tops.append(cy0)
            if not crops:
                continue
            crop = max(crops, key=lambda c: c.shape[0] * c.shape[1])   # evidence: the loosest framing
            text, conf, cands = self._best([self._beam(c, None if row is None else box[1] + row - top)
                                            for c, top in zip(crops, tops)])
            if not text or conf < self.min_confidence:
                continue
            out.append(PlateRead(box, text, conf, cands, float(score), plates.region_of(text), crop.copy()))
        # plate-likeness of the text breaks ties between a plate and other lettering in the frame
        # (chosen on the training sets' valid scenes, see models/README.md)
        out.sort(key=lambda r: -(r.confidence * r.det_score * plates.format_prior(r.text)))
        return out


def average_candidates(beams: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """Candidates of several readings of one plate, each text's probability averaged over all the
    readings (0 where a reading did not propose it), likeliest first."""
    total: dict[str, float] = {}
    for b in beams:
        for t, p in b:
            total[t] = total.get(t, 0.0) + p / len(beams)
    return sorted(total.items(), key=lambda kv: -kv[1])


def reframe(crop: np.ndarray, px: float, py: float) -> np.ndarray:
    """The crop padded (edge pixels repeated) or trimmed by fractions of its width and height."""
    h, w = crop.shape[:2]
    dx, dy = int(round(abs(px) * w)), int(round(abs(py) * h))
    if px < 0 and w - 2 * dx >= 4:
        crop = crop[:, dx:w - dx]
    if py < 0 and h - 2 * dy >= 2:
        crop = crop[dy:h - dy]
    if px > 0 or py > 0:
        pad = ((dy if py > 0 else 0,) * 2, (dx if px > 0 else 0,) * 2) + ((0, 0),) * (crop.ndim - 2)
        crop = np.pad(crop, pad, mode="edge")
    return crop


def reframed_row(h: int, py: float, row: int | None) -> int | None:
    """Where row `row` of a crop `h` rows high lands in `reframe(crop, px, py)`."""
    if row is None:
        return None
    src = reframe(np.arange(h).reshape(h, 1), 0.0, py)[:, 0]    # each new row's source row
    return int(np.searchsorted(src, row))


def _read_card(path: Path) -> dict:
    """A model card, or {} where there is none (a model folder may carry none). A card that is there but
    cannot be read is a ModelError naming the file: ignoring it would silently change the detection
    threshold (and the box growth) the unit runs with."""
    if not path.exists():
        return {}
    try:
        card = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: not a readable model card ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path}: a model card is a JSON object, not {type(card).__name__}")
    return card


def card_box_scale(card: dict, path: Path) -> tuple[float, float]:
    """`box_scale` [sx, sy] of a detector card; (1, 1) where the key is absent (older models). A value
    that is there but wrong is an error naming `path`: silently reading unscaled boxes would cost reads."""
    if "box_scale" not in card:
        return (1.0, 1.0)
    v = card["box_scale"]
    ok = (isinstance(v, list) and len(v) == 2
          and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0.5 <= x <= 2.0 for x in v))
    if not ok:
        raise ModelError(f"{path}: box_scale must be [sx, sy], each between 0.5 and 2, not {v!r}")
    return (float(v[0]), float(v[1]))


def _card_value(card: dict, key: str, default: float, path: Path) -> float:
    """A score threshold from the card (`default` where the key is absent); one that is there but not a
    number within 0..1 is a ModelError naming the file and key."""
    if key not in card:
        return default
    v = card[key]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 < v < 1.0:
        raise ModelError(f"{path}: {key} must be a number between 0 and 1, not {v!r}")
    return float(v)
