#!/usr/bin/env python3
"""Robustness of PDQ matching to the edits re-uploads make, plain PDQ vs canonical extras (issue 21).

Benign sources only: the PDQ/pytx test-vector photos and provenance fixtures in ../shared, Debian
wallpapers when installed (/usr/share/backgrounds, /usr/share/wallpapers), and pictures this
script draws (landscapes, shapes, city blocks, textures). Every source is "stored"; every source
is then varied by each transform of the suite (JPEG, resize, crops, letterbox / pillarbox with
solid and blurred fill, phone screenshots, overlays, rotations, mirror, colour filters, blur,
grain, aspect stretch) and queried.

Matching is what the matcher does: the query's 8 dihedral variants against the stored hashes,
plain Hamming distance, threshold 31, hashes with quality < 50 unused. Side by side in one run:

  plain        stored {pdq}; query dihedral(pdq)                      (today)
  +trim        both sides also hash the image without borders (consentry.signals.canonical)
  +subcrops    stored also hash centre / corner windows of 95, 90 and 80 % of each side (15)
  +subgrid     stored also hash 9 anchored windows at 90 / 80 / 70 % (27)
  +screenshot  query also hashes the largest photo-like region
  +rot         stored also hash rotated variants (+-1..6 degrees by 1, cropped to fill)
  +deskew      query also hashes its de-skewed copy
  proposed     the improvements kept (see docs/robustness.md)
  all          everything

Prints recall per transform, the false-match rate over all unrelated (query, stored) pairs (query
and stored from different sources; >= 10^6 pairs by default), and stored hashes / bytes per image,
with ratios against plain.

Usage: python bench/robustness_bench.py [--quick] [--drawn N] [--workers 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from consentry.signals import canonical  # noqa: E402
from consentry.signals.pdq import PDQ_MIN_QUALITY, PDQ_THRESHOLD, pdq_dihedral_from_image, pdq_from_image  # noqa: E402

SHARED = REPO.parent / "shared"
PHOTO_FILES = [
    "testvectors/pdq/reg-test-input/dih/bridge-1-original.jpg",
    *[f"testvectors/pdq/reg-test-input/labelme-subset/q{n}.jpg" for n in ("0003", "0004", "0122", "0291", "0746", "1050", "2821")],
    "testvectors/pdq/misc-images/c.png",
    "testvectors/pdq/misc-images/small.jpg",
    "testvectors/pytx/hashing-resources/rgb.jpeg",
    "fixtures/provenance/Firefly_tabby_cat.jpg",
    "fixtures/provenance/car-es-Ps-Cr.jpg",
]
WALLPAPER_DIRS = ("/usr/share/backgrounds", "/usr/share/wallpapers")
SOURCE_SIDE = 640  # sources are brought to this long side (phone-upload scale), for speed

# --- sources --------------------------------------------------------------------------------


def photo_paths() -> list[Path]:
    paths = [SHARED / p for p in PHOTO_FILES if (SHARED / p).exists()]
    for d in WALLPAPER_DIRS:
        if os.path.isdir(d):
            for root, _, files in os.walk(d):
                paths += sorted(Path(root) / f for f in files if f.lower().endswith((".jpg", ".jpeg", ".png")))
    return paths[:200]


def _fit(img: Image.Image, side: int = SOURCE_SIDE) -> Image.Image:
    img = img.convert("RGB")
    k = side / max(img.size)
    return img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.LANCZOS)


def _noise(rng, h: int, w: int, octaves=(3, 8, 24)) -> np.ndarray:
    acc = np.zeros((h, w))
    for i, o in enumerate(octaves):
        small = rng.random((o, max(2, o * w // h)))
        layer = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), dtype=float)
        acc += layer / (2**i)
    return acc / acc.max()


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def draw_source(seed: int) -> Image.Image:
    """A benign picture: landscape, shapes, city blocks or texture, random aspect and palette."""
    rng = np.random.default_rng(1000 + seed)
    aspect = rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3])
    w, h = (SOURCE_SIDE, round(SOURCE_SIDE / aspect)) if aspect >= 1 else (round(SOURCE_SIDE * aspect), SOURCE_SIDE)
    kind = seed % 4
    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    c0, c1, c2 = (np.array(_colour(rng), float) for _ in range(3))
    ang = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (x - 0.5) * np.cos(ang) + (y - 0.5) * np.sin(ang), 0, 1)
    base = c0 * (1 - t) + c1 * t
    tex = _noise(rng, h, w)[:, :, None]
    base = base * (0.75 + 0.5 * tex) + c2 * 0.1 * tex
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    if kind == 0:  # landscape: layered ridges from 1-D noise, sun, trees
        d.ellipse(_box(rng, w, h, 0.06, 0.15, top=True), fill=_colour(rng))
        for layer in range(int(rng.integers(2, 5))):
            level = h * (0.35 + 0.15 * layer + rng.uniform(-0.08, 0.08))
            prof = _noise(rng, 1, w, (4, 12))[0] if w > 1 else np.zeros(1)
            pts = [(0, h)] + [(i, level - prof[i] * h * 0.3) for i in range(0, w, 8)] + [(w, h)]
            d.polygon(pts, fill=_colour(rng))
        for _ in range(int(rng.integers(3, 12))):
            tx, ty, s = rng.uniform(0, w), rng.uniform(0.55 * h, h), rng.uniform(0.03, 0.1) * h
            d.polygon([(tx, ty - 2 * s), (tx - s / 2, ty), (tx + s / 2, ty)], fill=_colour(rng))
    elif kind == 1:  # shapes
        for _ in range(int(rng.integers(6, 25))):
            b = _box(rng, w, h, 0.05, 0.35)
            f = (d.ellipse, d.rectangle, d.rounded_rectangle)[int(rng.integers(0, 3))]
            f(b, fill=_colour(rng)) if f is not d.rounded_rectangle else f(b, radius=8, fill=_colour(rng))
    elif kind == 2:  # city blocks with windows
        ground = h * rng.uniform(0.7, 0.95)
        xx = 0.0
        while xx < w:
            bw, bh = rng.uniform(0.06, 0.2) * w, rng.uniform(0.2, 0.7) * h
            col = _colour(rng)
            d.rectangle([xx, ground - bh, xx + bw, ground], fill=col)
            win = _colour(rng)
            for wy in np.arange(ground - bh + 6, ground - 8, 14):
                for wx in np.arange(xx + 4, xx + bw - 6, 10):
                    if rng.random() < 0.6:
                        d.rectangle([wx, wy, wx + 4, wy + 6], fill=win)
            xx += bw + rng.uniform(0, 0.03) * w
    else:  # texture with a few blobs
        for _ in range(int(rng.integers(2, 6))):
            d.ellipse(_box(rng, w, h, 0.1, 0.4), fill=_colour(rng))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
    arr = np.asarray(img, dtype=float) + rng.normal(0, 3, (h, w, 3))  # sensor-like grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _box(rng, w, h, lo, hi, top=False):
    s = rng.uniform(lo, hi) * min(w, h)
    x0 = rng.uniform(0, w - s)
    y0 = rng.uniform(0, (h * 0.4 if top else h) - s) if (h * 0.4 if top else h) > s else 0
    return [x0, y0, x0 + s, y0 + s]


def load_source(index: int, photos: list[Path]) -> Image.Image:
    if index < len(photos):
        with Image.open(photos[index]) as im:
            return _fit(ImageOps.exif_transpose(im))
    return draw_source(index - len(photos))


# --- transforms -----------------------------------------------------------------------------


def jpeg(img, q):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resize(img, k):
    return img.resize((max(8, round(img.width * k)), max(8, round(img.height * k))), Image.BICUBIC)


def crop(img, p, anchor):
    """Remove fraction ``p`` of each side; anchor (ax, ay) in [0, 1] places the window."""
    cw, ch = round(img.width * (1 - p)), round(img.height * (1 - p))
    x0 = round((img.width - cw) * anchor[0])
    y0 = round((img.height - ch) * anchor[1])
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def boxed(img, canvas_aspect, fill, canvas_long=1280):
    """Fit ``img`` into a canvas of ``canvas_aspect`` (w/h): letterbox / pillarbox."""
    cw, ch = (canvas_long, round(canvas_long / canvas_aspect)) if canvas_aspect >= 1 else (round(canvas_long * canvas_aspect), canvas_long)
    k = min(cw / img.width, ch / img.height)
    fg = img.resize((round(img.width * k), round(img.height * k)), Image.BICUBIC)
    if fill == "blur":  # as phones do: the picture scaled to cover, heavily blurred
        k2 = max(cw / img.width, ch / img.height)
        bg = img.resize((round(img.width * k2) + 1, round(img.height * k2) + 1), Image.BICUBIC)
        bg = bg.crop(((bg.width - cw) // 2, (bg.height - ch) // 2, (bg.width - cw) // 2 + cw, (bg.height - ch) // 2 + ch))
        bg = bg.filter(ImageFilter.GaussianBlur(cw * 0.04))
    else:
        bg = Image.new("RGB", (cw, ch), fill)
    bg.paste(fg, ((cw - fg.width) // 2, (ch - fg.height) // 2))
    return jpeg(bg, 85)


def _text_lines(d, x0, y0, x1, y1, colour, rng):
    """Caption-like text: the default font's glyphs in lines of benign words."""
    words = ["lighthouse", "teapot", "sunset", "morning", "walk", "river", "bridge", "coffee", "friends"]
    y = y0
    while y < y1 - 12:
        line = " ".join(rng.choice(words, int(rng.integers(2, 6))))
        d.text((x0, y), line, fill=colour)
        y += 16


def screenshot(img, seed, card=False):
    """The photo inside phone app chrome: status bar, header, caption, nav bar (720 x 1560)."""
    rng = np.random.default_rng(seed)
    W, H = 720, 1560
    dark = bool(rng.random() < 0.5)
    bgc, fgc = ((18, 18, 18), (235, 235, 235)) if dark else ((255, 255, 255), (20, 20, 20))
    shot = Image.new("RGB", (W, H), bgc)
    d = ImageDraw.Draw(shot)
    d.text((24, 14), "9:41", fill=fgc)
    for i in range(3):
        d.rectangle([W - 90 + i * 22, 16, W - 76 + i * 22, 30], fill=fgc)
    d.line([0, 150, W, 150], fill=(128, 128, 128))
    d.ellipse([20, 70, 90, 140], fill=_colour(rng))
    d.text((110, 95), "lighthouse_teapot", fill=fgc)
    m = 32 if card else 0
    k = (W - 2 * m) / img.width
    ph = min(round(img.height * k), 1000)
    photo = img.resize((W - 2 * m, ph), Image.BICUBIC)
    top = 170
    shot.paste(photo, (m, top))
    y = top + ph + 20
    for i in range(4):
        d.ellipse([24 + i * 70, y, 64 + i * 70, y + 40], outline=fgc, width=3)
    _text_lines(d, 24, y + 60, W - 24, min(H - 130, y + 200), fgc, rng)
    d.rectangle([0, H - 110, W, H], fill=(bgc[0] // 2 + 20,) * 3 if dark else (245, 245, 245))
    for i in range(5):
        d.rectangle([60 + i * 140, H - 75, 100 + i * 140, H - 35], outline=fgc, width=3)
    return jpeg(shot, 85)


def overlay(img, frac, seed):
    """Text / logo / emoji-like overlays covering ``frac`` of the area."""
    rng = np.random.default_rng(seed)
    out = img.copy()
    d = ImageDraw.Draw(out, "RGBA")
    w, h = out.size
    style = seed % 3
    if style == 0:  # caption band, top or bottom, full width
        bh = round(h * frac)
        y0 = 0 if rng.random() < 0.5 else h - bh
        d.rectangle([0, y0, w, y0 + bh], fill=(0, 0, 0, 200))
        _text_lines(d, 10, y0 + 4, w - 10, y0 + bh, (255, 255, 255, 255), rng)
    elif style == 1:  # logo / emoji-like discs and a watermark box
        s = math.sqrt(frac * w * h / 2)
        for _ in range(2):
            x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
            d.ellipse([x0, y0, x0 + s, y0 + s], fill=(*_colour(rng), 255))
            d.ellipse([x0 + s * 0.25, y0 + s * 0.3, x0 + s * 0.4, y0 + s * 0.45], fill=(0, 0, 0, 255))
            d.ellipse([x0 + s * 0.6, y0 + s * 0.3, x0 + s * 0.75, y0 + s * 0.45], fill=(0, 0, 0, 255))
    else:  # text boxes (meme-style) at top and bottom
        bw, bh = w * 0.8, frac * h / 1.6
        for y0 in (h * 0.04, h * 0.96 - bh):
            d.rectangle([w * 0.1, y0, w * 0.9, y0 + bh], fill=(255, 255, 255, 230))
            _text_lines(d, w * 0.12, y0 + 2, w * 0.88, y0 + bh, (0, 0, 0, 255), rng)
    return jpeg(out, 90)


def sepia(img):
    g = np.asarray(img.convert("L"), float)[:, :, None]
    return Image.fromarray(np.clip(g * np.array([1.07, 0.74, 0.43]) + np.array([20, 10, 0]), 0, 255).astype(np.uint8))


def grain(img, seed, sigma=12):
    rng = np.random.default_rng(seed)
    a = np.asarray(img, float) + rng.normal(0, sigma, (img.height, img.width, 1))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def rotate_fill(img, deg, fill=(0, 0, 0)):
    return jpeg(img.rotate(deg, resample=Image.BICUBIC, expand=True, fillcolor=fill), 90)


def _angle(nominal: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return (nominal + rng.uniform(-0.5, 0.5)) * (1 if seed % 2 else -1)


def transforms() -> dict[str, callable]:
    t: dict[str, callable] = {}
    for q in (30, 50, 70, 95):
        t[f"jpeg-q{q}"] = lambda im, s, q=q: jpeg(im, q)
    for k in (0.25, 0.5, 1.5, 2.0):
        t[f"resize-{k:g}x"] = lambda im, s, k=k: resize(im, k)
    for p in (5, 10, 20, 30):
        t[f"crop{p}-centre"] = lambda im, s, p=p: crop(im, p / 100, (0.5, 0.5))
        t[f"crop{p}-offcentre"] = lambda im, s, p=p: crop(im, p / 100, ((s * 0.37) % 1, (s * 0.61) % 1))
    t["crop10-mirror"] = lambda im, s: ImageOps.mirror(crop(im, 0.1, (0.2, 0.7)))
    t["letterbox-9:16-black"] = lambda im, s: boxed(im, 9 / 16, (0, 0, 0))
    t["letterbox-9:16-blur"] = lambda im, s: boxed(im, 9 / 16, "blur")
    t["letterbox-1:1-white"] = lambda im, s: boxed(im, 1.0 if im.width > im.height else 1.5, (255, 255, 255))
    t["pillarbox-2:1-black"] = lambda im, s: boxed(im, 2.2, (0, 0, 0))
    t["pillarbox-2:1-blur"] = lambda im, s: boxed(im, 2.2, "blur")
    t["screenshot-full"] = lambda im, s: screenshot(im, s)
    t["screenshot-card"] = lambda im, s: screenshot(im, s + 1, card=True)
    for f in (5, 10, 15, 20):
        t[f"overlay-{f}%"] = lambda im, s, f=f: overlay(im, f / 100, s + f)
    for deg in (2, 5, 10):  # nominal angle +- 0.5 degree, either way: not on the stored grid
        t[f"rotate{deg}-crop"] = lambda im, s, deg=deg: jpeg(canonical.rotated_variant(im, _angle(deg, s)), 90)
        t[f"rotate{deg}-fill"] = lambda im, s, deg=deg: rotate_fill(im, -_angle(deg, s))
    t["mirror"] = lambda im, s: ImageOps.mirror(im)
    t["filter-sepia"] = lambda im, s: sepia(im)
    t["filter-saturate"] = lambda im, s: ImageEnhance.Color(ImageEnhance.Contrast(im).enhance(1.3)).enhance(1.6)
    t["filter-grey"] = lambda im, s: ImageOps.grayscale(im).convert("RGB")
    t["filter-bright"] = lambda im, s: ImageEnhance.Brightness(im).enhance(1.25)
    t["blur-r2"] = lambda im, s: im.filter(ImageFilter.GaussianBlur(2))
    t["grain-12"] = lambda im, s: grain(im, s)
    t["stretch-w+10%"] = lambda im, s: im.resize((round(im.width * 1.1), im.height), Image.BICUBIC)
    t["stretch-h+10%"] = lambda im, s: im.resize((im.width, round(im.height * 1.1)), Image.BICUBIC)
    t["stretch-w-10%"] = lambda im, s: im.resize((round(im.width * 0.9), im.height), Image.BICUBIC)
    return t


QUICK_TRANSFORMS = {
    "jpeg-q30", "resize-0.25x", "crop10-centre", "crop20-centre", "crop20-offcentre", "crop30-offcentre",
    "crop10-mirror", "letterbox-9:16-black", "letterbox-9:16-blur", "pillarbox-2:1-blur", "screenshot-full",
    "screenshot-card", "overlay-10%", "overlay-15%", "rotate5-crop", "rotate5-fill", "mirror", "filter-sepia",
    "stretch-w+10%",
}

# --- hashing --------------------------------------------------------------------------------

STORED_KINDS = ("plain", "trimmed", "subcrops", "subgrid", "rot")
QUERY_KINDS = ("plain", "trimmed", "screenshot", "deskewed")
NO_HASH = np.full(4, 0, np.uint64)


def _words(hexes) -> np.ndarray:
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").astype(np.uint64).reshape(-1, 4)


def stored_hashes(img: Image.Image) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """kind -> (hashes (m, 4) uint64, usable mask (m,))."""
    out = {}
    v, q = pdq_from_image(img)
    out["plain"] = (_words([v]), np.array([q >= PDQ_MIN_QUALITY]))
    trimmed = canonical.stored_extra_hashes(img, subcrops=False, rotations=())
    out["trimmed"] = ((_words([trimmed[0].value]), np.array([trimmed[0].usable])) if trimmed else
                      (NO_HASH[None], np.array([False])))
    subs = canonical.stored_extra_hashes(img, trim=False, subcrops=True, rotations=())
    out["subcrops"] = (_words([h.value for h in subs]), np.array([h.usable for h in subs]))
    grid = canonical.stored_extra_hashes(img, trim=False, windows=canonical.SUBCROPS_GRID, rotations=())
    out["subgrid"] = (_words([h.value for h in grid]), np.array([h.usable for h in grid]))
    rots = canonical.stored_extra_hashes(img, trim=False, subcrops=False)
    out["rot"] = (_words([h.value for h in rots]), np.array([h.usable for h in rots]))
    return out


def query_hashes(img: Image.Image, timing: dict) -> dict[str, tuple[np.ndarray, bool]]:
    """kind -> (8 dihedral hashes (8, 4) uint64, usable)."""
    out = {}
    t0 = time.perf_counter()
    v, q = pdq_dihedral_from_image(img)
    out["plain"] = (_words(v), q >= PDQ_MIN_QUALITY)
    t1 = time.perf_counter()
    timing["plain"] = timing.get("plain", 0) + t1 - t0
    for kind, kw in (("trimmed", dict(screenshot=False)), ("screenshot", dict(trim=False)),
                     ("deskewed", dict(trim=False, screenshot=False, deskew=True))):
        t0 = time.perf_counter()
        hs = canonical.query_extra_hashes(img, **kw)
        timing[kind] = timing.get(kind, 0) + time.perf_counter() - t0
        out[kind] = (_words(hs[0].variants), hs[0].usable) if hs else (np.zeros((8, 4), np.uint64), False)
    return out


def work(args):
    index, photos, names, seed = args
    src = load_source(index, photos)
    stored = stored_hashes(src)
    if names is None:  # a distractor: stored only, never queried
        return index, stored, [], {}
    table = transforms()
    timing: dict = {}
    queries = []
    for ti, name in enumerate(names):
        img = table[name](src, seed * 7919 + index * 131 + ti).convert("RGB")
        queries.append(query_hashes(img, timing))
    return index, stored, queries, timing


# --- matching -------------------------------------------------------------------------------


def min_dist(qh: np.ndarray, qok: np.ndarray, sh: np.ndarray, sok: np.ndarray, chunk: int = 512) -> np.ndarray:
    """qh (Q, 8, 4), qok (Q,); sh (N, m, 4), sok (N, m) -> (Q, N) min Hamming distance (999 unusable)."""
    Q, N, m = qh.shape[0], sh.shape[0], sh.shape[1]
    flat = sh.reshape(N * m, 4)
    bad = ~sok.reshape(N * m)
    out = np.empty((Q, N), np.int16)
    for a in range(0, Q, chunk):
        q = qh[a : a + chunk]  # (c, 8, 4)
        d = np.bitwise_count(q[:, :, None, :] ^ flat[None, None, :, :]).sum(axis=3, dtype=np.int16)  # (c, 8, N*m)
        d = d.min(axis=1)
        d[:, bad] = 999
        out[a : a + chunk] = d.reshape(-1, N, m).min(axis=2)
    out[~qok] = 999
    return out


CONFIGS = {
    "plain": ({"plain"}, {"plain"}),
    "+trim": ({"plain", "trimmed"}, {"plain", "trimmed"}),
    "+subcrops": ({"plain"}, {"plain", "subcrops"}),
    "+subgrid": ({"plain"}, {"plain", "subgrid"}),
    "+screenshot": ({"plain", "screenshot"}, {"plain"}),
    "+rot": ({"plain"}, {"plain", "rot"}),
    "+deskew": ({"plain", "deskewed"}, {"plain"}),
    "proposed": ({"plain", "trimmed", "screenshot"}, {"plain", "trimmed", "subcrops", "rot"}),
    "all": ({"plain", "trimmed", "screenshot", "deskewed"}, {"plain", "trimmed", "subcrops", "subgrid", "rot"}),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sources and transforms (~1 min)")
    ap.add_argument("--drawn", type=int, default=None, help="drawn, queried sources (default 50, quick 24)")
    ap.add_argument("--distractors", type=int, default=None,
                    help="drawn sources stored but never queried, for unrelated pairs (default 500, quick 40)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated transform names (default: all)")
    args = ap.parse_args(argv)

    photos = photo_paths()
    drawn = args.drawn if args.drawn is not None else (24 if args.quick else 50)
    distractors = args.distractors if args.distractors is not None else (40 if args.quick else 500)
    names = [n for n in transforms() if not args.quick or n in QUICK_TRANSFORMS]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    n_src = len(photos) + drawn
    t0 = time.perf_counter()
    jobs = [(i, photos, names, args.seed) for i in range(n_src)]
    jobs += [(n_src + i, photos, None, args.seed) for i in range(distractors)]
    if args.workers > 1:
        with Pool(args.workers) as pool:
            results = pool.map(work, jobs, chunksize=2)
    else:
        results = [work(j) for j in jobs]
    results.sort(key=lambda r: r[0])
    t_hash = time.perf_counter() - t0

    # sources whose plain hash is unusable (flat drawings) cannot be stored: drop them
    usable = [r for r in results if r[1]["plain"][1][0]]
    keep = [r for r in usable if r[0] < n_src]  # queried sources first, then distractors
    stored_rs = keep + [r for r in usable if r[0] >= n_src]
    N, NS, T = len(keep), len(stored_rs), len(names)
    timing: dict = {}
    for r in keep:
        for k, v in r[3].items():
            timing[k] = timing.get(k, 0.0) + v
    stored = {}
    for k in STORED_KINDS:
        m = stored_rs[0][1][k][0].shape[0]
        stored[k] = (np.stack([r[1][k][0] for r in stored_rs]), np.stack([r[1][k][1] for r in stored_rs]).reshape(NS, m))
    query = {}
    for k in QUERY_KINDS:
        query[k] = (np.stack([q[k][0] for r in keep for q in r[2]]), np.array([q[k][1] for r in keep for q in r[2]]))
    src_of = np.repeat(np.arange(N), T)
    tr_of = np.tile(np.arange(T), N)

    t1 = time.perf_counter()
    D = {(qk, sk): min_dist(query[qk][0], query[qk][1], *stored[sk]) for qk in QUERY_KINDS for sk in STORED_KINDS}
    t_match = time.perf_counter() - t1

    own = np.zeros((N * T, NS), bool)
    own[np.arange(N * T), src_of] = True
    res = {}
    for cname, (qks, sks) in CONFIGS.items():
        d = np.minimum.reduce([D[(qk, sk)] for qk in qks for sk in sks])
        hit = d <= PDQ_THRESHOLD
        recall_q = hit[own]
        per_t = {names[t]: float(recall_q[tr_of == t].mean()) for t in range(T)}
        fm = hit[~own]
        per_img = sum(stored[sk][1].sum() for sk in sks) / NS
        res[cname] = dict(recall=per_t, mean_recall=float(recall_q.mean()), false_matches=int(fm.sum()),
                          pairs=int(fm.size), fmr=float(fm.mean()), hashes_per_image=float(per_img),
                          bytes_per_image=float(per_img * 32))

    cols = list(CONFIGS)
    n_ph = len([r for r in keep if r[0] < len(photos)])
    print(f"robustness_bench: {N} queried sources ({n_ph} photos, {N - n_ph} drawn) + {NS - N} stored-only "
          f"drawn distractors ({len(results) - NS} dropped for quality < {PDQ_MIN_QUALITY}); {T} transforms, "
          f"{N * T} queries; threshold {PDQ_THRESHOLD}, dihedral query")
    print(f"hashing {t_hash:.1f}s on {args.workers} workers, matching {t_match:.1f}s")
    print()
    w = max(len(n) for n in names) + 2
    print("recall".ljust(w) + "".join(c.rjust(12) for c in cols))
    for n in names:
        print(n.ljust(w) + "".join(f"{res[c]['recall'][n] * 100:11.1f}%" for c in cols))
    print("mean".ljust(w) + "".join(f"{res[c]['mean_recall'] * 100:11.1f}%" for c in cols))
    print()
    print("unrelated pairs".ljust(w) + "".join(f"{res[c]['pairs']:12d}" for c in cols))
    print("false matches".ljust(w) + "".join(f"{res[c]['false_matches']:12d}" for c in cols))
    print("false-match rate".ljust(w) + "".join(f"{res[c]['fmr']:12.2e}" for c in cols))
    base_fmr = res["plain"]["fmr"]
    print("  x plain".ljust(w) + "".join(
        (f"{res[c]['fmr'] / base_fmr:11.2f}x" if base_fmr else "         n/a") for c in cols))
    print("stored hashes/image".ljust(w) + "".join(f"{res[c]['hashes_per_image']:12.2f}" for c in cols))
    print("index bytes/image".ljust(w) + "".join(f"{res[c]['bytes_per_image']:12.0f}" for c in cols))
    print("  x plain".ljust(w) + "".join(
        f"{res[c]['hashes_per_image'] / res['plain']['hashes_per_image']:11.2f}x" for c in cols))
    nq = N * T
    print("query hashing ms/query: " + ", ".join(f"{k} {v / nq * 1000:.1f}" for k, v in timing.items()))
    if args.json:
        args.json.write_text(json.dumps(dict(sources=N, stored=NS, transforms=names, configs=res, timing_ms={k: v / nq * 1000 for k, v in timing.items()}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
