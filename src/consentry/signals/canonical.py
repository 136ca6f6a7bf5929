"""Canonical PDQ variants: extra, *local* hashes that survive the edits re-uploads make (issue 21).

Plain PDQ (plus the dihedral query) survives re-encoding, resizing, colour changes, 90° turns and
mirrors, but not borders, crops, screenshots or small rotations. This module computes extra PDQ
hashes for both sides of a match; the matcher keeps comparing with plain Hamming distance at the
usual threshold, over the union of hashes:

* **border canonicalisation** (both sides): :func:`trim_box` finds uniform or blurred-fill bands
  (letterbox / pillarbox, as phones make them) along the edges and the image is hashed again
  without them;
* **crop tolerance** (stored side): :func:`subcrop_boxes` gives the centre 80 % window and the four
  corner-anchored 80 % windows of a stored photo; a query cropped by up to ~30 % meets one of them;
* **screenshot region** (query side): :func:`screenshot_box` finds the largest photo-like
  rectangle between app chrome (status bar, header, caption) and it is hashed too;
* **small rotations** (stored side): :func:`rotated_variant` rotates a stored photo by a few
  degrees (:data:`STORED_ROTATIONS`) and crops the largest same-aspect rectangle inside, the way
  "straighten" tools do; :func:`estimate_skew` is the query-side alternative (de-skew), measured
  by ``bench/robustness_bench.py`` against the stored variants.

Everything is deterministic and uses Pillow + numpy only, so the same steps can be ported (and
tested for equality) elsewhere. These hashes are local signals: what is exchanged with other
programs stays standard PDQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from consentry.signals.pdq import PDQ_MIN_QUALITY, pdq_dihedral_from_image, pdq_from_image

if TYPE_CHECKING:
    from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom (PIL crop order)

#: Long side of the grey working copy used to find borders and regions.
WORK_SIDE = 512
#: Solid bar: row standard deviation (grey levels) below this, all rows the same colour.
SOLID_STD = 3.0
#: Blurred fill: row detail (mean |horizontal step|) below max(MIN, RATIO x the centre's detail).
FILL_DETAIL_MIN = 0.4
FILL_DETAIL_RATIO = 0.5
#: Blurred fills must be centred: top and bottom sizes within this fraction of the side.
FILL_SYMMETRY = 0.03
#: Grey-level step across a border boundary that counts at one column.
EDGE_STEP = 7.0
#: Fraction of columns that must show the step for a straight full-width boundary.
EDGE_FRACTION = 0.5
#: Smallest border worth trimming, as a fraction of the side.
MIN_BORDER = 0.02
#: The content kept must be at least this fraction of each side.
MIN_KEEP = 0.25
#: Window size (fraction of each side) of the stored sub-crops.
SUBCROP_FRACTION = 0.8
#: Window anchors (x, y in [0, 1]): the centre and the four corners.
CORNER_ANCHORS = ((0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
#: A denser set: centre, corners and edge midpoints.
GRID_ANCHORS = CORNER_ANCHORS + ((0.5, 0.0), (0.5, 1.0), (0.0, 0.5), (1.0, 0.5))
#: Sub-crop window sets: centre + corners at 95, 90 and 80 % (the default: the 95 % windows catch
#: 5 % crops, which fall between the full picture and the 90 % windows), and a denser grid of
#: nine anchors at 90 / 80 / 70 % (measured, see docs/robustness.md).
SUBCROPS_CORNERS = ((0.95, CORNER_ANCHORS), (0.9, CORNER_ANCHORS), (SUBCROP_FRACTION, CORNER_ANCHORS))
SUBCROPS_GRID = ((0.9, GRID_ANCHORS), (0.8, GRID_ANCHORS), (0.7, GRID_ANCHORS))
#: Stored variants are computed on a copy whose long side is at most this (see stored_base).
STORED_MAX_SIDE = 1024
#: Stored rotated variants (degrees, counter-clockwise positive as in PIL). PDQ moves ~25-40
#: bits per degree of rotation, so the variants must be about 1 degree apart.
STORED_ROTATIONS = (-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
#: A chrome band: this fraction of its pixels share one (quantised) colour.
CHROME_MODE_FRACTION = 0.55


@dataclass(frozen=True)
class CanonicalHash:
    """One extra PDQ hash: which canonical variant it is, its hex value and quality.

    ``variants`` holds the 8 dihedral variants (query side only, as the matcher queries them).
    """

    kind: str
    value: str
    quality: int
    variants: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> bool:
        return self.quality >= PDQ_MIN_QUALITY


# --- working copy ---------------------------------------------------------------------------


def _grey(image: "Image.Image") -> tuple[np.ndarray, float]:
    """Grey float working copy with long side <= WORK_SIDE (box-filtered), and its scale."""
    from PIL import Image as _Image

    im = image.convert("L")
    w, h = im.size
    scale = min(1.0, WORK_SIDE / max(w, h))
    if scale < 1.0:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), _Image.BOX)
    return np.asarray(im, dtype=np.float32), (im.size[0] / w if w else 1.0)


def _smooth(g: np.ndarray) -> np.ndarray:
    """3x3 box blur: JPEG noise and grain must not look like edges."""
    if min(g.shape) < 3:
        return g
    p = np.pad(g, 1, mode="edge")
    return sum(p[i : i + g.shape[0], j : j + g.shape[1]] for i in range(3) for j in range(3)) / 9.0


def _solid_run(g: np.ndarray) -> int:
    """Leading rows of one flat colour (a solid letterbox bar)."""
    std = g.std(axis=1)
    mean = g.mean(axis=1)
    ok = (std < SOLID_STD) & (np.abs(mean - mean[0]) < SOLID_STD * 2)
    return int(np.argmin(ok)) if not ok.all() else g.shape[0]


def _fill_run(g: np.ndarray, level: float) -> int:
    """Leading rows of low detail (a blurred fill) ending at a sharp onset of detail."""
    detail = np.abs(np.diff(g, axis=1)).mean(axis=1)
    low = detail < level
    n = int(np.argmin(low)) if not low.all() else g.shape[0]
    onset = detail[n : n + 4]
    return n if len(onset) == 4 and (onset >= level).all() else 0


def _sharp(sm: np.ndarray, n: int) -> bool:
    """A straight boundary between rows n-1 and n of the smoothed copy ``sm``."""
    return bool((np.abs(sm[n] - sm[n - 1]) > EDGE_STEP).mean() >= EDGE_FRACTION)


def _axis_borders(g: np.ndarray, fills: bool = True) -> tuple[int, int]:
    """Border rows at the top and bottom of ``g``.

    Each side's band is a run of flat-colour rows (solid bar) or of low-detail rows ending at a
    sharp onset of detail (blurred fill). Bands are accepted as a centred pair (top and bottom of
    about the same size, as phones centre a picture on a bar or a blurred copy of itself); a lone
    band only when it is a solid bar ending at a straight edge. So a clear sky at the top of a
    plain photo is not taken for a border.
    """
    h = g.shape[0]
    if h < 16 or g.shape[1] < 8:
        return 0, 0
    mid = g[int(h * 0.4) : int(h * 0.6) + 1]
    content = float(np.median(np.abs(np.diff(mid, axis=1)).mean(axis=1)))
    level = max(FILL_DETAIL_MIN, FILL_DETAIL_RATIO * content)
    lo, hi = max(2, int(h * MIN_BORDER)), int(h * (1 - MIN_KEEP) / 2)
    sm = _smooth(g)
    out = []
    for side, sside in ((g, sm), (g[::-1], sm[::-1])):
        # a solid bar ending at a straight edge (a grey-level step at most columns) is definitive;
        # otherwise a blurred fill (low detail up to a sharp onset of detail) is the candidate
        solid = _solid_run(side)
        if lo <= solid <= 2 * hi and solid < h and _sharp(sside, solid):
            out.append((solid, True))
            continue
        fill = _fill_run(side, level) if fills else 0
        out.append((fill if lo <= fill <= hi else 0, False))
    (t, t_alone), (b, b_alone) = out
    if not (t and b and abs(t - b) <= FILL_SYMMETRY * h + 2):
        # not a centred pair: only a solid bar with a straight edge stands on its own
        t, b = (t if t_alone else 0), (b if b_alone else 0)
    if h - t - b < MIN_KEEP * h:
        return 0, 0
    return t, b


def _trim_work(g: np.ndarray) -> tuple[int, int, int, int]:
    """Border sizes (top, bottom, left, right) in working-copy pixels.

    One pass over each axis of the whole image: a second pass inside the trimmed content would
    take the picture's own smooth margins (a sky, a wall) for borders.
    """
    top, bottom = _axis_borders(g)
    # windowboxing (bars on all four sides) is solid; a blurred fill is on one axis only
    left, right = _axis_borders(g[top : g.shape[0] - bottom].T, fills=not (top or bottom))
    return top, bottom, left, right


def _to_image_box(box_work: tuple[int, int, int, int], shape: tuple[int, int], scale: float,
                  size: tuple[int, int]) -> Box:
    """Working-copy (top, bottom, left, right) borders -> image crop box, 1 work pixel inward."""
    top, bottom, left, right = box_work
    hh, ww = shape
    w, h = size

    def inward(v: int, edge: int) -> int:
        return 0 if v == 0 else min(edge, v + 1)

    x0 = math.ceil(inward(left, ww) / scale) if left else 0
    y0 = math.ceil(inward(top, hh) / scale) if top else 0
    x1 = math.floor((ww - inward(right, ww)) / scale) if right else w
    y1 = math.floor((hh - inward(bottom, hh)) / scale) if bottom else h
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def _refine(image: "Image.Image", box: Box, scale: float) -> Box:
    """Move each trimmed edge to the strongest row / column step near it, at full resolution."""
    full = np.asarray(image.convert("L"), dtype=np.float32)
    h, w = full.shape
    r = int(math.ceil(2.0 / scale)) + 2
    x0, y0, x1, y1 = box

    def best(step_at, lo: int, hi: int, default: int) -> int:
        lo = max(1, lo)
        if hi <= lo:
            return default
        return lo + int(np.argmax([step_at(i) for i in range(lo, hi)]))

    def row_step(i: int) -> float:  # step between row i-1 and row i, inside the column span
        return float(np.abs(full[i, x0:x1] - full[i - 1, x0:x1]).mean())

    def col_step(i: int) -> float:
        return float(np.abs(full[y0:y1, i] - full[y0:y1, i - 1]).mean())

    if y0 > 0:
        y0 = best(row_step, y0 - r, min(h, y0 + r), y0)
    if y1 < h:
        y1 = best(row_step, y1 - r, min(h, y1 + r), y1)
    if x0 > 0:
        x0 = best(col_step, x0 - r, min(w, x0 + r), x0)
    if x1 < w:
        x1 = best(col_step, x1 - r, min(w, x1 + r), x1)
    return x0, y0, x1, y1


def trim_box(image: "Image.Image") -> Box | None:
    """The crop box without letterbox / pillarbox borders (solid or blurred fill), or None."""
    g, scale = _grey(image)
    borders = _trim_work(g)
    if not any(borders):
        return None
    box = _refine(image, _to_image_box(borders, g.shape, scale, image.size), scale)
    w, h = image.size
    if box[2] - box[0] < MIN_KEEP * w or box[3] - box[1] < MIN_KEEP * h:
        return None
    return box


def trim_borders(image: "Image.Image") -> "Image.Image | None":
    """The image without its borders, or None when it has none."""
    box = trim_box(image)
    return None if box is None else image.crop(box)


# --- crop tolerance -------------------------------------------------------------------------


def subcrop_boxes(width: int, height: int, windows=SUBCROPS_CORNERS) -> dict[str, Box]:
    """Sub-crop windows: for each (fraction, anchors), a window of ``fraction`` of each side
    placed at each anchor (x, y in [0, 1]; (0.5, 0.5) is the centre, (0, 0) the top-left)."""
    out: dict[str, Box] = {}
    for fraction, anchors in windows:
        cw, ch = max(1, round(width * fraction)), max(1, round(height * fraction))
        for ax, ay in anchors:
            x0, y0 = round((width - cw) * ax), round((height - ch) * ay)
            out[f"crop{round(fraction * 100)}@{ax:g},{ay:g}"] = (x0, y0, x0 + cw, y0 + ch)
    return out


# --- screenshots ----------------------------------------------------------------------------


def _bands(g: np.ndarray) -> list[tuple[int, int]]:
    """Split rows at straight full-width boundaries into bands [start, end)."""
    steps = (np.abs(np.diff(g, axis=0)) > EDGE_STEP).mean(axis=1)
    cuts = [0] + [r + 1 for r in np.flatnonzero(steps >= EDGE_FRACTION)] + [g.shape[0]]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def _is_chrome(band: np.ndarray) -> bool:
    """App chrome: mostly one exactly flat grey level (with sparse text / icons), not a photo.

    ``band`` is the unsmoothed working copy: photos (even a clear sky) carry noise and grain,
    rendered app chrome does not.
    """
    q = np.rint(band).astype(np.int32).ravel()
    return bool(q.size and np.bincount(q).max() >= CHROME_MODE_FRACTION * q.size)


def screenshot_box(image: "Image.Image", min_area: float = 0.1, max_area: float = 0.9) -> Box | None:
    """The largest photo-like rectangle of a screenshot or composite, or None.

    Rows are split at straight full-width boundaries; bands that are mostly one flat colour are
    chrome (status bar, header, caption, buttons); the largest run of non-chrome bands is the
    photo, then its side margins and fills are trimmed. None when no region covers between
    ``min_area`` and ``max_area`` of the image (a plain photo is its own region).
    """
    raw, scale = _grey(image)
    g = _smooth(raw)
    hh, ww = g.shape
    if hh < 16 or ww < 16:
        return None
    best: tuple[int, int] | None = None
    run: tuple[int, int] | None = None
    for a, b in _bands(g):
        if b - a >= 2 and not _is_chrome(raw[a:b]):
            run = (run[0], b) if run else (a, b)
            if best is None or run[1] - run[0] > best[1] - best[0]:
                best = run
        else:
            run = None
    if best is None:
        return None
    a, b = best
    region = g[a:b]
    t, bt, lft, rgt = _trim_work(raw[a:b])
    y0, y1 = a + t, b - bt
    x0, x1 = lft, ww - rgt
    # chrome columns at the sides (e.g. a card with margins): trim flat-colour columns
    cols = raw[a:b][t : region.shape[0] - bt]
    while x1 - x0 > 8 and _is_chrome(cols[:, x0 : x0 + 2]):
        x0 += 2
    while x1 - x0 > 8 and _is_chrome(cols[:, x1 - 2 : x1]):
        x1 -= 2
    area = (y1 - y0) * (x1 - x0) / float(hh * ww)
    if not (min_area <= area <= max_area):
        return None
    w, h = image.size
    box = (math.ceil(x0 / scale), math.ceil(y0 / scale), math.floor(x1 / scale), math.floor(y1 / scale))
    box = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    return box if box[2] - box[0] >= 16 and box[3] - box[1] >= 16 else None


# --- small rotations ------------------------------------------------------------------------


def inscribed_scale(width: int, height: int, degrees: float) -> float:
    """Scale of the largest same-aspect rectangle inside a ``width`` x ``height`` image turned
    by ``degrees`` (what "straighten" tools keep)."""
    t = math.radians(abs(degrees))
    c, s = math.cos(t), math.sin(t)
    return min(width / (width * c + height * s), height / (width * s + height * c))


def rotated_variant(image: "Image.Image", degrees: float) -> "Image.Image":
    """``image`` turned by ``degrees`` (counter-clockwise) and cropped to fill, same aspect."""
    from PIL import Image as _Image

    w, h = image.size
    turned = image.convert("RGB").rotate(degrees, resample=_Image.BICUBIC, expand=False)
    k = inscribed_scale(w, h, degrees)
    cw, ch = max(1, round(w * k)), max(1, round(h * k))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return turned.crop((x0, y0, x0 + cw, y0 + ch))


def derotate_expanded(image: "Image.Image", degrees: float) -> "Image.Image":
    """Undo a turn by ``degrees`` made with the canvas expanded (corners filled): turn back and
    keep the centred original-size rectangle."""
    from PIL import Image as _Image

    W, H = image.size
    t = math.radians(abs(degrees))
    c, s = math.cos(t), math.sin(t)
    den = c * c - s * s
    w = max(8, min(W, round((W * c - H * s) / den)))
    h = max(8, min(H, round((H * c - W * s) / den)))
    back = image.convert("RGB").rotate(-degrees, resample=_Image.BICUBIC, expand=False)
    x0, y0 = (W - w) // 2, (H - h) // 2
    return back.crop((x0, y0, x0 + w, y0 + h))


def estimate_skew(image: "Image.Image", max_degrees: float = 12.0) -> float:
    """Dominant skew (degrees) from near-horizontal / near-vertical edge orientations, 0 if none.

    A magnitude-weighted histogram of gradient orientations folded onto [-45°, 45°) around the
    axes; the peak within ``max_degrees`` is the skew when it stands out from the rest.
    """
    g = _smooth(_grey(image)[0])
    if min(g.shape) < 16:
        return 0.0
    gx = g[1:-1, 2:] - g[1:-1, :-2]
    gy = g[2:, 1:-1] - g[:-2, 1:-1]
    mag = np.hypot(gx, gy)
    strong = mag > max(20.0, float(np.percentile(mag, 90)))
    if strong.sum() < 50:
        return 0.0
    ang = np.degrees(np.arctan2(gy[strong], gx[strong]))
    folded = (ang + 45.0) % 90.0 - 45.0  # edge normal relative to the nearest axis
    hist, edges = np.histogram(folded, bins=180, range=(-45, 45), weights=mag[strong])
    hist = np.convolve(hist, np.ones(3) / 3, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    window = np.abs(centres) <= max_degrees
    peak = int(np.argmax(np.where(window, hist, -1)))
    if hist[peak] < 2.0 * np.median(hist) or abs(centres[peak]) < 1.0:
        return 0.0
    # edge normal turned by +a means content turned by -a in image coordinates (y down)
    return float(-centres[peak])


# --- hashes ---------------------------------------------------------------------------------


def _hash(kind: str, image: "Image.Image", dihedral: bool) -> CanonicalHash:
    rgb = image.convert("RGB")
    if dihedral:
        variants, quality = pdq_dihedral_from_image(rgb)
        return CanonicalHash(kind, variants[0], quality, tuple(variants))
    value, quality = pdq_from_image(rgb)
    return CanonicalHash(kind, value, quality)


def stored_base(image: "Image.Image") -> "Image.Image":
    """The copy of a stored photo its variants are computed on: RGB, long side at most
    :data:`STORED_MAX_SIDE` (Pillow's BOX resize; the browser does the same, bit for bit). PDQ
    hardly moves with size (96-100 % recall at 0.25-2x), while all the variants of a 12 Mpixel
    photo took 19.3 s at full size and 1.2 s on this copy (one measurement, 2-core machine)."""
    from PIL import Image as _Image

    base = image.convert("RGB")
    side = max(base.size)
    if side > STORED_MAX_SIDE:
        k = STORED_MAX_SIDE / side
        base = base.resize((max(1, round(base.width * k)), max(1, round(base.height * k))), _Image.BOX)
    return base


def stored_extra_hashes(
    image: "Image.Image",
    *,
    trim: bool = True,
    subcrops: bool = True,
    windows=SUBCROPS_CORNERS,
    rotations: Sequence[float] = STORED_ROTATIONS,
) -> list[CanonicalHash]:
    """Extra hashes of a stored photo (beyond its plain PDQ): trimmed, sub-crops, rotations.

    Sub-crops and rotations are taken of the trimmed photo when it had borders.
    """
    out: list[CanonicalHash] = []
    base = stored_base(image)
    if trim:
        trimmed = trim_borders(base)
        if trimmed is not None:
            out.append(_hash("trimmed", trimmed, False))
            base = trimmed
    if subcrops:
        for kind, box in subcrop_boxes(*base.size, windows).items():
            out.append(_hash(kind, base.crop(box), False))
    for deg in rotations:
        out.append(_hash(f"rot{deg:+g}", rotated_variant(base, deg), False))
    return out


def query_extra_hashes(
    image: "Image.Image", *, trim: bool = True, screenshot: bool = True, deskew: bool = False
) -> list[CanonicalHash]:
    """Extra hashes of a query (beyond its plain dihedral PDQ), each with its 8 dihedral variants."""
    out: list[CanonicalHash] = []
    base = image.convert("RGB")
    if trim:
        trimmed = trim_borders(base)
        if trimmed is not None:
            out.append(_hash("trimmed", trimmed, True))
    if screenshot:
        box = screenshot_box(base)
        if box is not None:
            out.append(_hash("screenshot", base.crop(box), True))
    if deskew:
        skew = estimate_skew(base)
        if skew:
            out.append(_hash("deskewed", derotate_expanded(base, skew), True))
    return out
