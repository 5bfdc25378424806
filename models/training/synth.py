"""Synthetic licence plates: rendered from fonts and plate styles, composited into real scenes,
then damaged the way a roadside camera damages them (perspective, blur, noise, glare, night, JPEG).

Everything is driven by a `numpy.random.Generator`, so a seed gives the same plates every time.
Styles: California (the shipped template, rjindael/ca-dmv-bot, MIT), generic US state plates with
header and slogan clutter, dark plates, EU long plates and Brazilian Mercosul plates.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from models.training.datasets import SYNTH_ROOT, Scene

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"

FONT_FILES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationMono-Bold.ttf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSansNarrow-Bold.otf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSans-Bold.otf",
    "/usr/share/fonts/opentype/urw-base35/NimbusMonoPS-Bold.otf",
    "/usr/share/fonts/truetype/opendin/OSP-DIN.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Bold.ttf",
    "/usr/share/fonts/opentype/bebas-neue/BebasNeue-Bold.otf",
    "/usr/share/fonts/opentype/bebas-neue/BebasNeue-Regular.otf",
]
DECOR_FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-BoldItalic.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Italic.ttf",
    "/usr/share/fonts/opentype/urw-base35/URWBookman-DemiItalic.otf",
    "/usr/share/fonts/opentype/urw-base35/Z003-MediumItalic.otf",
    "/usr/share/fonts/opentype/urw-base35/C059-BdIta.otf",
]

STATES = ["ALABAMA", "Alaska", "ARIZONA", "Arkansas", "COLORADO", "Connecticut", "DELAWARE", "Florida",
          "GEORGIA", "Hawaii", "IDAHO", "Illinois", "INDIANA", "Iowa", "KANSAS", "Kentucky", "LOUISIANA",
          "Maine", "MARYLAND", "Massachusetts", "MICHIGAN", "Minnesota", "MISSISSIPPI", "Missouri",
          "MONTANA", "Nebraska", "NEVADA", "New Hampshire", "NEW JERSEY", "New Mexico", "NEW YORK",
          "North Carolina", "NORTH DAKOTA", "Ohio", "OKLAHOMA", "Oregon", "PENNSYLVANIA", "Rhode Island",
          "SOUTH CAROLINA", "South Dakota", "TENNESSEE", "Texas", "UTAH", "Vermont", "VIRGINIA",
          "Washington", "WEST VIRGINIA", "Wisconsin", "WYOMING", "District of Columbia", "Baja California"]
SLOGANS = ["Land of Lincoln", "Great Lakes", "Sunshine State", "Live Free or Die", "Vacationland",
           "Empire State", "Garden State", "Famous Potatoes", "First in Flight", "Lone Star State",
           "Heart of Dixie", "Grand Canyon State", "The Silver State", "Evergreen State", "Aloha State",
           "America's Dairyland", "dmv.gov", "Wild Wonderful", "Taxation Without Representation",
           "The Natural State", "Sportsman's Paradise", "10,000 Lakes", "Peach State", "Ocean State",
           "MY OLD KENTUCKY HOME", "Choose Life", "In God We Trust", "COUNTY", "Centennial State"]
# lettering on the plastic frames dealers and owners put round US plates
FRAME_WORDS = ["TOYOTA", "HONDA", "FORD", "CHEVROLET", "NISSAN", "LEXUS", "BMW", "SUBARU", "MAZDA", "KIA",
               "HYUNDAI", "DODGE", "JEEP", "ACURA", "AUDI", "VOLKSWAGEN", "MERCEDES-BENZ", "TESLA"]
FRAME_PLACES = ["SANTA MONICA", "SAN DIEGO", "FRESNO", "OAKLAND", "RIVERSIDE", "SACRAMENTO", "VALENCIA",
                "TORRANCE", "PASADENA", "SAN JOSE", "GLENDALE", "ONTARIO", "IRVINE", "CERRITOS", "DOWNEY"]
FRAME_PHRASES = ["DRIVE SAFE", "ALUMNI", "GO BEARS", "PROUD PARENT", "I'D RATHER BE SURFING", "MOM'S TAXI",
                 "NAVY", "MARINES", "ARMY", "USC", "UCLA", "CARMAX", "AUTONATION", "dealer.com",
                 "SOLD BY", "WWW.AUTOGROUP.COM", "800-555-0199"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]

# (pattern, weight): L letter, D digit, X either
FORMATS_US = [("DLLLDDD", 6), ("LLLDDDD", 4), ("LLLDDD", 4), ("DDDLLL", 2), ("LLDDDDD", 1), ("DLLDDDD", 1),
              ("DDDDDD", 1), ("LLLLDDD", 1), ("DDLLDDD", 1), ("LDDDLLL", 1), ("DDDDLL", 1), ("LLLLDD", 1),
              ("XXXXX", 1), ("XXXXXX", 2), ("XXXXXXX", 2), ("DDDDDDD", 1), ("DLDDDDD", 1), ("LDDDDDD", 1),
              ("DDDLLLL", 1), ("DDLLLDD", 1)]
FORMATS_EU = [("LLDDLLL", 2), ("LLDDDLL", 2), ("LLLDDDD", 1), ("LLDDDD", 1), ("LLLDDD", 1), ("LLDDLL", 1),
              ("XXXXXXX", 1), ("DDDLLL", 1)]
FORMATS_BR = [("LLLDLDD", 2), ("LLLDDDD", 2)]


@dataclass
class RenderedPlate:
    image: Image.Image   # RGBA, the plate alone (opaque where plate)
    text: str            # ground truth, A-Z0-9 only


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _pick_weighted(rng: np.random.Generator, pairs):
    w = np.array([p[1] for p in pairs], float)
    return pairs[int(rng.choice(len(pairs), p=w / w.sum()))][0]


def plate_text(rng: np.random.Generator, pattern: str) -> str:
    out = []
    for ch in pattern:
        pool = LETTERS if ch == "L" else DIGITS if ch == "D" else LETTERS + DIGITS
        out.append(_pick(rng, pool))
    return "".join(out)


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=65536)
def _bbox(path: str, size: int, text: str) -> tuple[int, int, int, int]:
    return _font(path, size).getbbox(text)


def available_fonts(paths: list[str]) -> list[str]:
    return [p for p in paths if Path(p).exists()]


@lru_cache(maxsize=1)
def _ca_template() -> Image.Image:
    im = Image.open(SYNTH_ROOT / "ca" / "template.png").convert("RGB")
    return im.crop((52, 52, 1232, 662)).resize((600, 310), Image.LANCZOS)


def _rand_color(rng, lo, hi):
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _draw_text_fit(draw: ImageDraw.ImageDraw, text: str, font_path: str, box, fill, rng, spacing_jitter=True):
    """Draw `text` centred in box (x0,y0,x1,y1), as large as fits; per-char so spacing can vary."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    size = max(8, int(bh * 1.25))
    for _ in range(12):
        font = _font(font_path, size)
        widths = [_bbox(font_path, size, c)[2] - _bbox(font_path, size, c)[0] for c in text]
        gap = max(1, int(size * rng.uniform(0.03, 0.14))) if spacing_jitter else int(size * 0.08)
        total = sum(widths) + gap * (len(text) - 1)
        asc = _bbox(font_path, size, "A0")[3] - _bbox(font_path, size, "A0")[1]
        if total <= bw and asc <= bh:
            break
        size = int(size * min(0.95, max(0.6, min(bw / max(total, 1), bh / max(asc, 1)))))
    x = x0 + (bw - total) / 2
    top = _bbox(font_path, size, "A0")[1]
    y = y0 + (bh - asc) / 2 - top
    for c, wdt in zip(text, widths):
        l = _bbox(font_path, size, c)[0]
        draw.text((x - l, y), c, font=font, fill=fill)
        x += wdt + gap


def _separator_positions(text: str, rng) -> list[int]:
    if len(text) >= 6 and rng.random() < 0.35:
        return [int(rng.integers(2, len(text) - 2))]
    return []


def _main_text_with_separator(text: str, rng) -> str:
    """Visible rendering of the plate text: sometimes a space, dash or dot inside (not in the label)."""
    pos = _separator_positions(text, rng)
    if not pos:
        return text
    sep = _pick(rng, [" ", "-", " ", "·"])
    p = pos[0]
    return text[:p] + sep + text[p:]


def render_us(rng: np.random.Generator, fonts: list[str], decor: list[str],
              frames: float = 0.0) -> RenderedPlate:
    """`frames`: the share drawn inside a dealer's plate frame (`plate_frame`). At 0 no random number is
    drawn for it, so a seed renders what it rendered before frames existed."""
    W, H = 600, 310
    style = rng.random()
    text = plate_text(rng, _pick_weighted(rng, FORMATS_US))
    dark = False
    if style < 0.3:
        img = _ca_template().copy()
        if rng.random() < 0.6:
            text = plate_text(rng, "DLLLDDD")
        fill = _pick(rng, [(25, 35, 95), (20, 30, 80), (10, 10, 10), (30, 45, 110)])
        font = str(SYNTH_ROOT / "ca" / "licenseplate.ttf") if rng.random() < 0.6 else _pick(rng, fonts)
    else:
        font = _pick(rng, fonts)
        if rng.random() < 0.15:
            dark = True
            bg = _rand_color(rng, 0, 70)
            fill = _pick(rng, [(240, 240, 240), (235, 200, 40), (220, 220, 200)])
        else:
            bg = _rand_color(rng, 170, 256)
            fill = _pick(rng, [(20, 30, 90), (10, 10, 10), (150, 20, 20), (20, 90, 40), (90, 20, 30),
                               (40, 40, 40), (20, 60, 120)])
        img = Image.new("RGB", (W, H), bg)
        d = ImageDraw.Draw(img)
        # gradients / graphic bands: plates carry pictures that the reader must ignore
        if rng.random() < 0.6:
            c2 = _rand_color(rng, 60, 256)
            for k in range(int(rng.integers(1, 4))):
                y = int(rng.integers(0, H))
                hh = int(rng.integers(8, 60))
                d.rectangle((0, y, W, y + hh), fill=tuple(int((a + b) / 2) for a, b in zip(bg, c2)))
        if rng.random() < 0.3:
            for k in range(int(rng.integers(3, 15))):
                cx, cy, r = int(rng.integers(0, W)), int(rng.integers(0, H)), int(rng.integers(4, 30))
                d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_rand_color(rng, 100, 256))
        state = _pick(rng, STATES)
        _draw_text_fit(d, state, _pick(rng, decor + fonts), (60, 12, W - 60, int(H * rng.uniform(0.14, 0.24))),
                       _rand_color(rng, 0, 200), rng)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.75:
        _draw_text_fit(d, _pick(rng, SLOGANS), _pick(rng, decor + fonts),
                       (90, int(H * 0.82), W - 90, H - 14), _rand_color(rng, 0, 220), rng)
    # registration stickers in the corners
    for corner in range(int(rng.integers(0, 3))):
        sw, sh = int(rng.integers(50, 90)), int(rng.integers(28, 50))
        x = 18 if corner == 0 else W - 18 - sw
        y = int(rng.integers(12, 40)) if rng.random() < 0.6 else H - sh - int(rng.integers(12, 30))
        d.rectangle((x, y, x + sw, y + sh), fill=_rand_color(rng, 0, 256))
        _draw_text_fit(d, _pick(rng, MONTHS + [str(int(rng.integers(1998, 2030)))]), _pick(rng, fonts),
                       (x + 4, y + 4, x + sw - 4, y + sh - 4), _rand_color(rng, 0, 256), rng)
    top = int(H * rng.uniform(0.24, 0.32))
    bottom = int(H * rng.uniform(0.76, 0.84))
    margin = int(W * rng.uniform(0.05, 0.14))
    _draw_text_fit(d, _main_text_with_separator(text, rng), font, (margin, top, W - margin, bottom), fill, rng)
    if not dark and rng.random() < 0.5:
        d.rounded_rectangle((3, 3, W - 4, H - 4), radius=18, outline=_rand_color(rng, 0, 160),
                            width=int(rng.integers(2, 8)))
    if frames and rng.random() < frames:
        img = plate_frame(rng, img, (margin, top, W - margin, bottom), decor + fonts)
    return RenderedPlate(_rounded(img, 20), text)


def _frame_text(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.45:
        return _pick(rng, FRAME_WORDS) + _pick(rng, [" OF ", " ", " - "]) + _pick(rng, FRAME_PLACES)
    if r < 0.8:
        return _pick(rng, FRAME_PHRASES)
    return _pick(rng, FRAME_WORDS)


def plate_frame(rng: np.random.Generator, img: Image.Image, text_box: tuple[int, int, int, int],
                fonts: list[str]) -> Image.Image:
    """The plate inside a plastic or chrome frame, as most US cars carry one: bands over the plate's
    edges (the bottom one widest, often lettered with a dealer's name, sometimes the top one too),
    hiding part of the state name and slogan but never the registration in `text_box`. Real US plates
    with text are few in the training sets, and a reader that has never seen a frame reads its
    lettering as characters."""
    W, H = img.size
    x0, y0, x1, y1 = text_box
    side = int(min(min(x0, W - x1) - 4, W * rng.uniform(0.015, 0.06)))
    top = int(min(y0 - 0.02 * H, H * rng.uniform(0.03, 0.15)))
    bottom = int(min(H - y1 - 0.01 * H, H * rng.uniform(0.07, 0.2)))
    style = rng.random()
    if style < 0.55:
        colour, ink = _rand_color(rng, 0, 45), _pick(rng, [(230, 230, 230), (200, 200, 205), (210, 180, 90)])
    elif style < 0.8:
        colour, ink = _rand_color(rng, 150, 215), _pick(rng, [(20, 20, 20), (40, 40, 60)])
    else:
        colour, ink = _rand_color(rng, 0, 256), _rand_color(rng, 0, 256)
    band = Image.new("RGB", (W, H), colour)
    d = ImageDraw.Draw(band)
    if bottom >= 14 and rng.random() < 0.75:
        _draw_text_fit(d, _frame_text(rng), _pick(rng, fonts), (side + 30, H - bottom + 3, W - side - 30, H - 4),
                       ink, rng)
    if top >= 14 and rng.random() < 0.3:
        _draw_text_fit(d, _frame_text(rng), _pick(rng, fonts), (side + 40, 3, W - side - 40, top - 2), ink, rng)
    mask = Image.new("L", (W, H), 255)
    ImageDraw.Draw(mask).rounded_rectangle((max(0, side), max(0, top), W - 1 - max(0, side), H - 1 - max(0, bottom)),
                                           radius=int(rng.integers(4, 22)), fill=0)
    return Image.composite(band, img, mask)


EU_COUNTRIES = ["D", "F", "GB", "RO", "I", "NL", "PL", "E", "UK", "B", "CZ"]


def _euroband(d: ImageDraw.ImageDraw, rng: np.random.Generator, fonts: list[str], left: int, H: int,
              countries: list[str], text_box: tuple[int, int, int, int], stars: bool = False) -> None:
    """The blue band at a European plate's left edge, with its country code (and the ring of stars)."""
    d.rectangle((0, 0, left, H), fill=(20, 50, 160))
    if stars:
        for k in range(12):      # the ring of stars, as dots
            a = 2 * math.pi * k / 12
            x, y = left / 2 + left * 0.28 * math.cos(a), H * 0.3 + left * 0.28 * math.sin(a)
            d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(240, 200, 30))
    _draw_text_fit(d, _pick(rng, countries), _pick(rng, fonts), text_box, (240, 240, 240), rng)


def _eu_canvas(rng: np.random.Generator, W: int, H: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A European-style blank: yellow one time in five (NL, UK rear, LU), else near-white."""
    bg = (250, 205, 20) if rng.random() < 0.2 else _rand_color(rng, 215, 256)
    img = Image.new("RGB", (W, H), bg)
    return img, ImageDraw.Draw(img)


def render_eu(rng: np.random.Generator, fonts: list[str]) -> RenderedPlate:
    W, H = 520, 112
    text = plate_text(rng, _pick_weighted(rng, FORMATS_EU))
    img, d = _eu_canvas(rng, W, H)
    left = 0
    if rng.random() < 0.8:
        left = 46
        _euroband(d, rng, fonts, left, H, EU_COUNTRIES[:-1], (6, int(H * 0.6), left - 6, H - 8))
    font = _pick(rng, fonts)
    _draw_text_fit(d, _main_text_with_separator(text, rng), font, (left + 14, 14, W - 14, H - 14), (15, 15, 15), rng)
    d.rectangle((1, 1, W - 2, H - 2), outline=(10, 10, 10), width=3)
    return RenderedPlate(_rounded(img, 8), text)


def render_br(rng: np.random.Generator, fonts: list[str]) -> RenderedPlate:
    W, H = 400, 130
    text = plate_text(rng, _pick_weighted(rng, FORMATS_BR))
    img = Image.new("RGB", (W, H), (245, 245, 245))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, W, 30), fill=(20, 60, 170))
    _draw_text_fit(d, "BRASIL", _pick(rng, fonts), (120, 5, W - 120, 26), (240, 240, 240), rng)
    _draw_text_fit(d, text, _pick(rng, fonts), (16, 38, W - 16, H - 10), (15, 15, 15), rng)
    d.rectangle((1, 1, W - 2, H - 2), outline=(10, 10, 10), width=3)
    return RenderedPlate(_rounded(img, 8), text)


# two-row plates (European square plates, trucks' and trailers' rear plates, motorcycles): the rows'
# layouts, drawn independently; the label is the top row then the bottom row, as unit.rows reads them
TWO_ROW_TOP = [("DDDD", 2), ("LL", 2), ("LLL", 2), ("L", 1), ("LLDD", 2), ("DD", 1), ("LD", 1)]
TWO_ROW_BOTTOM = [("LLL", 2), ("DDDD", 2), ("DDDL", 1), ("LDDDD", 1), ("DDLL", 1), ("LLDD", 1), ("DDDDD", 1),
                  ("LDDD", 1), ("DDLLL", 1)]


def render_two_row(rng: np.random.Generator, fonts: list[str]) -> tuple[RenderedPlate, float]:
    """A plate with two rows of characters, and where the gap between them lies (share of its height).
    Often with a euroband, and sometimes with round registration stickers beside the characters (read
    as 0 or O by a reader that has not seen them)."""
    W, H = (340, 220) if rng.random() < 0.6 else (280, 200)
    top = plate_text(rng, _pick_weighted(rng, TWO_ROW_TOP))
    bottom = plate_text(rng, _pick_weighted(rng, TWO_ROW_BOTTOM))
    img, d = _eu_canvas(rng, W, H)
    left = 0
    if rng.random() < 0.6:
        left = int(W * 0.13)
        _euroband(d, rng, fonts, left, H, EU_COUNTRIES, (3, int(H * 0.6), left - 3, int(H * 0.85)), stars=True)
    gap = rng.uniform(0.46, 0.54)
    font = _pick(rng, fonts)
    m = int(W * 0.05)
    row_boxes = [(left + m, int(H * 0.08), W - m, int(H * (gap - 0.04))),
                 (left + m, int(H * (gap + 0.04)), W - m, int(H * 0.92))]
    for text, box in zip((top, bottom), row_boxes):
        _draw_text_fit(d, text, font, box, (15, 15, 15), rng)
    if rng.random() < 0.35:      # stickers: between the rows' end and the edge, or above the gap
        r = int(H * rng.uniform(0.06, 0.1))
        cx = int(rng.uniform(left + r + 4, W - r - 4))
        cy = int(H * gap) + int(rng.choice([-1, 1]) * rng.uniform(0, 0.25) * H)
        for rr, c in ((r, _rand_color(rng, 60, 256)), (int(r * 0.6), _rand_color(rng, 60, 256))):
            d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=c)
    d.rectangle((1, 1, W - 2, H - 2), outline=(10, 10, 10), width=3)
    return RenderedPlate(_rounded(img, 8), top + bottom), gap


def two_row_sample(rng: np.random.Generator, scenes: list[Scene] | None) -> tuple[Image.Image, str]:
    """A synthetic two-row plate in a real scene, damaged and framed as a detector box is, then laid
    side by side at its gap (`unit.rows.side_by_side`, the cut a little off as the unit's may be):
    what the reader sees of a two-row plate at run time."""
    from unit.rows import side_by_side
    plate, gap = render_two_row(rng, _fonts()[0])
    patch, box = composite(rng, plate.image, scenes, int(rng.uniform(60, 200)))
    framed = detector_framing(rng, box) if rng.random() < 0.5 else jitter_box(rng, box)
    framed = tuple(int(round(v)) for v in framed)
    crop = np.asarray(damage(rng, patch.crop(framed)).convert("RGB"))
    h = crop.shape[0]
    row = box[1] + gap * (box[3] - box[1]) - framed[1] + rng.normal(0, 0.04) * (box[3] - box[1])
    row = int(np.clip(round(row), int(0.25 * h), int(0.75 * h)))
    return Image.fromarray(side_by_side(crop, row)), plate.text


def _rounded(img: Image.Image, radius: int) -> Image.Image:
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, img.size[0] - 1, img.size[1] - 1), radius=radius, fill=255)
    out = img.convert("RGBA")
    out.putalpha(mask)
    return out


@lru_cache(maxsize=1)
def _warn_no_fonts() -> None:
    warnings.warn("none of the Debian fonts in synth.FONT_FILES is installed: synthetic plates use only "
                  "the California plate font (apt-get install the fonts named in the README for variety)")


def _fonts() -> tuple[list[str], list[str]]:
    """(plate fonts, decoration fonts) installed here; the shipped California font where none is."""
    fonts = available_fonts(FONT_FILES)
    if not fonts:
        _warn_no_fonts()
        fonts = [str(SYNTH_ROOT / "ca" / "licenseplate.ttf")]
    return fonts, available_fonts(DECOR_FONTS) or fonts


def render_plate(rng: np.random.Generator, frames: float = 0.0) -> RenderedPlate:
    """A random plate: US (with `frames` of them in a plate frame), EU or Brazilian."""
    fonts, decor = _fonts()
    r = rng.random()
    if r < 0.78:
        return render_us(rng, fonts, decor, frames)
    if r < 0.93:
        return render_eu(rng, fonts)
    return render_br(rng, fonts)


# ---------------------------------------------------------------- geometry and damage

def _perspective_coeffs(src, dst):
    """Coefficients for PIL's PERSPECTIVE transform mapping output (dst) points to input (src)."""
    a = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = np.array([p for uv in src for p in uv], float)
    return np.linalg.solve(np.array(a, float), b).tolist()


def scene_patch(rng: np.random.Generator, scenes: list[Scene], size: tuple[int, int]) -> Image.Image:
    sc = _pick(rng, scenes)
    im = _load_scene(str(sc.image))
    w, h = size
    scale = rng.uniform(0.6, 2.0)
    cw, ch = min(im.width, int(w / scale)), min(im.height, int(h / scale))
    x = int(rng.integers(0, im.width - cw + 1))
    y = int(rng.integers(0, im.height - ch + 1))
    return im.crop((x, y, x + cw, y + ch)).resize(size, Image.BILINEAR)


@lru_cache(maxsize=64)
def _load_scene(path: str) -> Image.Image:
    return Image.open(path).convert("RGB")


def composite(rng: np.random.Generator, plate: Image.Image, scenes: list[Scene] | None,
              plate_w: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Warp a plate into a scene patch; returns the patch and the plate's box in it."""
    aspect = plate.height / plate.width
    ph = plate_w * aspect
    pad_x, pad_y = plate_w * 0.6, ph * 1.2
    W, H = int(plate_w + 2 * pad_x), int(ph + 2 * pad_y)
    if scenes:
        bg = scene_patch(rng, scenes, (W, H))
    else:
        bg = Image.new("RGB", (W, H), _rand_color(rng, 0, 256))
    # plate corners with perspective: yaw/pitch/roll as independent corner jitter plus rotation
    ang = math.radians(rng.normal(0, 4))
    cx, cy = W / 2, H / 2
    corners = np.array([[-plate_w / 2, -ph / 2], [plate_w / 2, -ph / 2], [plate_w / 2, ph / 2], [-plate_w / 2, ph / 2]])
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    corners = corners @ rot.T
    yaw = rng.normal(0, 0.08)
    corners[:, 1] *= 1 + yaw * np.sign(corners[:, 0])          # one side taller: turned plate
    corners[:, 0] *= 1 + rng.normal(0, 0.05) * np.sign(corners[:, 1])   # pitch
    corners += rng.normal(0, plate_w * 0.012, size=corners.shape)
    corners += [cx, cy]
    src = [(0, 0), (plate.width, 0), (plate.width, plate.height), (0, plate.height)]
    coeffs = _perspective_coeffs(src, [tuple(c) for c in corners])
    warped = plate.transform((W, H), Image.PERSPECTIVE, coeffs, Image.BICUBIC)
    bg.paste(warped, (0, 0), warped)
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    return bg, (float(x0), float(y0), float(x1), float(y1))


def paste_over(rng: np.random.Generator, im: Image.Image,
               box: tuple[float, float, float, float]) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A synthetic plate warped over a real plate's box, in place: the detector then sees the styles
    the real scenes lack (US plates above all) where plates really are, on real cars. The plate is
    rendered at the box's size (so as soft as the scene), toned to the region it covers and slightly
    turned; returns the image and the new plate's box."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    fonts, decor = _fonts()
    plate = render_eu(rng, fonts) if w / max(h, 1.0) > 3.2 else render_us(rng, fonts, decor)
    # corners a little inside the box, jittered: a plate seen slightly from the side
    j = lambda s: rng.uniform(0.0, 0.06) * s
    corners = [(x0 + j(w), y0 + j(h)), (x1 - j(w), y0 + j(h)), (x1 - j(w), y1 - j(h)), (x0 + j(w), y1 - j(h))]
    ox, oy = int(np.floor(x0)), int(np.floor(y0))
    W, H = max(2, int(np.ceil(x1)) - ox), max(2, int(np.ceil(y1)) - oy)
    local = [(cx - ox, cy - oy) for cx, cy in corners]
    # render near the target size first so the warp does not alias
    pw = max(8, int(W * 1.5))
    small = plate.image.resize((pw, max(4, int(pw * plate.image.height / plate.image.width))), Image.LANCZOS)
    src = [(0, 0), (small.width, 0), (small.width, small.height), (0, small.height)]
    warped = small.transform((W, H), Image.PERSPECTIVE, _perspective_coeffs(src, local), Image.BILINEAR)
    region = np.asarray(im.crop((ox, oy, ox + W, oy + H)), np.float32)
    rgb = np.asarray(warped.convert("RGB"), np.float32)
    alpha = np.asarray(warped.getchannel("A"), np.float32)[..., None] / 255.0
    if region.size and alpha.sum() > 0:
        # match the covered region's brightness, so a bright plate does not glow in a dark scene
        target = float(region.mean())
        mine = float((rgb * alpha).sum() / (alpha.sum() * 3))
        rgb = rgb * float(np.clip(target / max(mine, 1.0) * rng.uniform(0.9, 1.6), 0.35, 1.2))
    patch = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        patch = patch.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    out = im.copy()
    out.paste(patch, (ox, oy), Image.fromarray((alpha[..., 0] * 255).astype(np.uint8)))
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return out, (min(xs), min(ys), max(xs), max(ys))


def damage(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Camera damage: blur (focus, motion), exposure, glare, night, noise, low resolution, JPEG."""
    arr = np.asarray(im, dtype=np.float32)
    # exposure / contrast / gamma and colour cast
    if rng.random() < 0.8:
        arr = arr * rng.uniform(0.55, 1.35) + rng.uniform(-40, 40)
        arr = arr * rng.uniform(0.85, 1.15, size=3)
    if rng.random() < 0.15:   # night: dark, bluish or sodium-orange, noisy
        arr = arr * rng.uniform(0.3, 0.6) * _pick(rng, [np.array([0.8, 0.9, 1.2]), np.array([1.25, 1.0, 0.6])])
    if rng.random() < 0.15:   # glare blob
        h, w = arr.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.1, 0.5) * w
        arr = arr + rng.uniform(80, 220) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    arr = np.clip(arr, 0, 255)
    gamma = rng.uniform(0.7, 1.4)
    arr = 255.0 * (arr / 255.0) ** gamma
    im = Image.fromarray(arr.astype(np.uint8))
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.6)))
    if rng.random() < 0.25:   # horizontal motion blur
        k = 3 if rng.random() < 0.5 else 5
        kernel = np.zeros((k, k)); kernel[k // 2, :] = 1.0 / k
        im = im.filter(ImageFilter.Kernel((k, k), kernel.flatten().tolist(), scale=1))
    if rng.random() < 0.4:    # low resolution
        f = rng.uniform(0.25, 0.7)
        small = im.resize((max(8, int(im.width * f)), max(4, int(im.height * f))), Image.BILINEAR)
        im = small.resize(im.size, Image.BILINEAR)
    arr = np.asarray(im, dtype=np.float32)
    if rng.random() < 0.6:
        arr = arr + rng.normal(0, rng.uniform(2, 14), size=arr.shape)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.7:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(12, 92)))
        buf.seek(0)
        im = Image.open(buf).convert("RGB")
    return im


def jitter_box(rng: np.random.Generator, box, scale: float = 1.0):
    """Loosen or tighten a plate box the way a detector would (it never fits exactly)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    s = scale
    return (x0 - w * rng.uniform(-0.04, 0.12) * s, y0 - h * rng.uniform(-0.08, 0.25) * s,
            x1 + w * rng.uniform(-0.04, 0.12) * s, y1 + h * rng.uniform(-0.08, 0.25) * s)


def detector_framing(rng: np.random.Generator, box: tuple[float, float, float, float]) -> tuple[float, ...]:
    """A truth box moved the way the unit's crops are: the detector's edges are off by about a tenth of
    the plate (p10-p90 -0.14..+0.16 of its width or height per edge on the valid photos) and the unit
    reads each box as it is and widened by 12 % / 22 % (unit.recognise.FRAMINGS). Read tight only, the
    reader lost a tenth of the plates it read from truth boxes once they were padded by 12 % / 24 %."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    px, py = (0.12, 0.22) if rng.random() < 0.5 else (0.0, 0.0)
    e = lambda pad, sd, lo: max(lo, pad + rng.normal(0, sd))
    return (x0 - w * e(px, 0.09, -0.06), y0 - h * e(py, 0.12, -0.10),
            x1 + w * e(px, 0.09, -0.06), y1 + h * e(py, 0.12, -0.10))


def reader_sample(rng: np.random.Generator, scenes: list[Scene] | None,
                  detector_share: float = 0.0, frames: float = 0.0) -> tuple[Image.Image, str]:
    """One training crop for the reader: a synthetic plate in a real scene, damaged, loosely cropped;
    `detector_share` of them cropped as the unit frames a detector box (detector_framing), `frames` of
    the US plates in a plate frame."""
    plate = render_plate(rng, frames)
    plate_w = int(rng.uniform(70, 260))
    patch, box = composite(rng, plate.image, scenes, plate_w)
    framed = detector_framing(rng, box) if detector_share and rng.random() < detector_share else jitter_box(rng, box)
    crop = patch.crop(tuple(int(round(v)) for v in framed))
    return damage(rng, crop), plate.text
