"""Derivation proof: is SUSPECT made from ORIGINAL, how much of it, and which regions differ?

A person whose photo was altered (a "nudify" edit, a face swap, a pasted region) usually still
holds the original. This module shows what the suspect shares with it and where it differs:

1. **Alignment.** SIFT keypoints on both pictures (grey, at most :data:`WORK_SIDE` pixels a side),
   ratio-tested matches and a RANSAC (MAGSAC++) homography, suspect -> original. The mirrored
   suspect is tried too. Tolerates crops, scaling, rotation, mirroring, re-encoding and
   screenshots (a picture inside a larger frame).
2. **Sanity.** A pair counts as aligned only with enough inliers (:data:`MIN_INLIERS`), a
   sufficient inlier ratio, and a sane transform: positive determinant (after the mirror), bounded
   scale, anisotropy and perspective, a convex footprint. Unrelated pictures fail here.
3. **Difference.** The suspect is warped into the original's frame; both are normalised
   photometrically (mean/std matched per channel over the overlap), then compared with an SSIM
   map (grey) and a blurred chroma difference, thresholded, cleaned with morphology, and blobs
   smaller than :data:`MIN_BLOB_SHARE` of the overlap dropped. The regions are reported as boxes in
   the original's pixel coordinates.
4. **Share derived.** The share of the suspect's area that lies inside the original and does not
   differ from it. **Derived** needs an aligned pair and a share of at least
   :data:`MIN_SHARE_DERIVED`.
5. **Aligned PDQ.** PDQ of the overlapping crop of the original and of the suspect warped onto it.

Memory is bounded: pictures are decoded with the project's safe decoder and reduced to at most
:data:`WORK_SIDE` pixels a side before any feature work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from PIL import Image

from consentry import __version__
from consentry.config import MediaLimits
from consentry.errors import ConsentryError, UnsupportedMedia

#: Feature work happens on pictures reduced to this many pixels a side (at most).
WORK_SIDE = 1024
#: The difference map is computed at this many pixels a side (at most) of the original's frame.
DIFF_SIDE = 512
#: RANSAC inliers needed to call a pair aligned.
MIN_INLIERS = 20
#: Inliers over ratio-tested matches needed to call a pair aligned.
MIN_INLIER_RATIO = 0.25
#: Scale between the pictures (either way) beyond which an alignment is refused.
MAX_SCALE = 12.0
#: Ratio of the larger to the smaller singular value of the linear part (stretch, shear).
MAX_ANISOTROPY = 1.6
#: Largest ratio of the local area scale between the footprint's corners (perspective).
MAX_PERSPECTIVE = 1.8
#: A derived suspect is explained by the original over at least this share of its area.
MIN_SHARE_DERIVED = 0.15
#: SSIM below this marks a pixel as differing.
SSIM_THRESHOLD = 0.35
#: Chroma difference (0-255 scale, after blurring) above this marks a pixel as differing.
CHROMA_THRESHOLD = 28.0
#: Differing blobs smaller than this share of the overlap are dropped.
MIN_BLOB_SHARE = 0.002
SIFT_FEATURES = 3000
SIFT_CONTRAST = 0.02
RATIO = 0.78

LIMITATIONS = [
    "It does not show who made the suspect picture, when, or with what tool.",
    "It does not show whether anyone consented to it being made or shared.",
    "It does not show that the original itself is authentic or unedited; it is compared as given.",
    "A region may differ for harmless reasons too (a sticker, a caption, a crop border, heavy "
    "compression); the outlines show where the pictures differ, not why.",
]


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConsentryError("comparison needs OpenCV (pip install opencv-python-headless)") from exc
    cv2.setNumThreads(1)  # predictable CPU use in the server and the bench
    return cv2


@dataclass
class Features:
    """SIFT keypoints of one picture at working size, and that size's factor to the full size."""

    size: tuple[int, int]  # (width, height) at working size
    factor: float  # full-size pixels per working pixel
    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray | None  # (n, 128) float32


@dataclass
class Alignment:
    ok: bool
    reason: str
    homography: np.ndarray | None = None  # suspect (full size) -> original (full size)
    mirrored: bool = False
    inliers: int = 0
    matches: int = 0
    inlier_ratio: float = 0.0
    scale: float | None = None  # suspect pixels per original pixel
    rotation: float | None = None  # degrees, counter-clockwise, of the suspect against the original
    anisotropy: float | None = None


@dataclass
class Region:
    x: int
    y: int
    width: int
    height: int
    share: float  # of the overlap's area

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height,
                "share_of_overlap": round(self.share, 4)}


@dataclass
class Derivation:
    derived: bool = False
    share_derived: float = 0.0
    share_differing: float = 0.0  # of the overlap
    overlap_of_original: float = 0.0  # share of the original's area the suspect shows
    regions: list[Region] = field(default_factory=list)
    alignment: Alignment | None = None
    original_size: tuple[int, int] | None = None
    suspect_size: tuple[int, int] | None = None
    pdq_original: str | None = None
    pdq_suspect: str | None = None
    pdq_distance: int | None = None
    summary: str = ""
    caveats: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=lambda: list(LIMITATIONS))
    error: str | None = None
    original: dict[str, Any] = field(default_factory=dict)  # name, sha256, size
    suspect: dict[str, Any] = field(default_factory=dict)
    tool: str = f"consentry {__version__}"
    compared_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # for the report only (not serialised): the differing mask at DIFF size in the original frame
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        a = self.alignment
        transform = None
        if a is not None and a.ok:
            transform = {"scale": _r(a.scale, 4), "rotation_degrees": _r(a.rotation, 2), "mirrored": a.mirrored,
                         "anisotropy": _r(a.anisotropy, 3),
                         "homography": [[round(float(v), 8) for v in row] for row in a.homography]}
        return {
            "original": self.original, "suspect": self.suspect,
            "derived": self.derived,
            "share_derived": round(self.share_derived, 4),
            "share_differing": round(self.share_differing, 4),
            "overlap_of_original": round(self.overlap_of_original, 4),
            "regions": [r.to_dict() for r in self.regions],
            "aligned": bool(a and a.ok),
            "alignment_note": a.reason if a else None,
            "transform": transform,
            "inliers": a.inliers if a else 0,
            "matches": a.matches if a else 0,
            "inlier_ratio": round(a.inlier_ratio, 3) if a else 0.0,
            "aligned_pdq": ({"original": self.pdq_original, "suspect": self.pdq_suspect,
                             "distance": self.pdq_distance} if self.pdq_distance is not None else None),
            "summary": self.summary,
            "caveats": list(self.caveats),
            "limitations": list(self.limitations),
            "error": self.error,
            "tool": self.tool,
            "compared_at": self.compared_at,
        }


def _r(v: float | None, n: int) -> float | None:
    return None if v is None else round(float(v), n)


# ------------------------------------------------------------------ pictures and features
def working_copy(image: Image.Image, side: int = WORK_SIDE) -> tuple[np.ndarray, float]:
    """``image`` as an RGB uint8 array of at most ``side`` pixels a side, and the factor back."""
    w, h = image.size
    factor = max(w, h) / side if max(w, h) > side else 1.0
    img = image.convert("RGB")
    if factor > 1.0:
        box = max(1, int(factor // 2))
        if box > 1:
            img = img.reduce(box)  # cheap box filter first
        img = img.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr, (w / arr.shape[1])


def features(rgb: np.ndarray, factor: float = 1.0, *, mirrored: bool = False) -> Features:
    cv2 = _cv2()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if mirrored:
        grey = np.ascontiguousarray(grey[:, ::-1])
    # local contrast evened out (CLAHE) and a lower contrast threshold: soft, low-contrast or
    # washed-out pictures still give enough keypoints
    grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    sift = cv2.SIFT_create(nfeatures=SIFT_FEATURES, contrastThreshold=SIFT_CONTRAST)
    kps, desc = sift.detectAndCompute(grey, None)
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    return Features((grey.shape[1], grey.shape[0]), factor, pts, desc)


def _matches(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray]:
    """Ratio-tested, mutually consistent matches: points in ``a`` and in ``b``."""
    cv2 = _cv2()
    if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    bf = cv2.BFMatcher(cv2.NORM_L2)
    knn = bf.knnMatch(a.descriptors, b.descriptors, k=2)
    ia, ib = [], []
    for pair in knn:
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            ia.append(pair[0].queryIdx)
            ib.append(pair[0].trainIdx)
    if not ia:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    # one keypoint of b used by several of a: keep only the first (duplicates inflate inliers)
    _, first = np.unique(np.array(ib), return_index=True)
    ia = np.array(ia)[first]
    ib = np.array(ib)[first]
    return a.points[ia], b.points[ib]


def _flip_x(width_full: float) -> np.ndarray:
    return np.array([[-1.0, 0.0, width_full], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _scale(f: float) -> np.ndarray:
    return np.diag([f, f, 1.0])


def _check_transform(H: np.ndarray, suspect_wh: tuple[float, float]) -> tuple[str, float, float, float]:
    """'' if ``H`` (suspect -> original, no mirror) is sane, else why; and scale, rotation,
    anisotropy of the suspect against the original."""
    if not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return "degenerate transform", 0.0, 0.0, 0.0
    H = H / H[2, 2]
    w, h = suspect_wh
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    den = corners @ H[2, :2] + H[2, 2]
    if np.any(den <= 1e-6):
        return "the transform folds the picture over", 0.0, 0.0, 0.0
    # local Jacobian determinant at the corners: perspective must stay mild, orientation kept
    dets = []
    for (x, y), d in zip(corners, den):
        J = (H[:2, :2] - np.outer(H[:2, :2] @ [x, y] + H[:2, 2], H[2, :2]) / d) / d
        dets.append(np.linalg.det(J))
    dets = np.array(dets)
    if np.any(dets <= 0):
        return "the transform would mirror part of the picture", 0.0, 0.0, 0.0
    if dets.max() / dets.min() > MAX_PERSPECTIVE ** 2:
        return "the transform is too strongly distorted", 0.0, 0.0, 0.0
    A = H[:2, :2] / H[2, 2]
    sv = np.linalg.svd(A, compute_uv=False)
    if sv[1] <= 0:
        return "degenerate transform", 0.0, 0.0, 0.0
    aniso = float(sv[0] / sv[1])
    scale = 1.0 / math.sqrt(float(np.linalg.det(A)))  # suspect pixels per original pixel
    if aniso > MAX_ANISOTROPY:
        return "the transform stretches or shears too much", scale, 0.0, aniso
    if not (1.0 / MAX_SCALE <= scale <= MAX_SCALE):
        return "the scale between the pictures is implausible", scale, 0.0, aniso
    Ainv = np.linalg.inv(A)  # original -> suspect
    rotation = math.degrees(math.atan2(Ainv[1, 0] - Ainv[0, 1], Ainv[0, 0] + Ainv[1, 1]))
    # image y points down: report counter-clockwise as seen on screen
    return "", scale, -rotation, aniso


def align(orig: Features, suspect: Features, suspect_mirrored: Features | None = None,
          suspect_full_size: tuple[int, int] | None = None) -> Alignment:
    """The best sane homography suspect -> original (full-size coordinates), plain or mirrored."""
    cv2 = _cv2()
    sw, sh = suspect_full_size or (suspect.size[0] * suspect.factor, suspect.size[1] * suspect.factor)
    best = Alignment(False, "too few matching features")
    for mirrored, feats in ((False, suspect), (True, suspect_mirrored)):
        if feats is None:
            continue
        ps, po = _matches(feats, orig)
        n = len(ps)
        if n < MIN_INLIERS:
            if best.matches < n and not best.ok:
                best = Alignment(False, "too few matching features", matches=n, mirrored=mirrored)
            continue
        H, inl = cv2.findHomography(ps.astype(np.float64), po.astype(np.float64), cv2.USAC_MAGSAC, 4.0,
                                    maxIters=5000, confidence=0.999)
        if H is None or inl is None:
            continue
        k = int(inl.sum())
        # to full size: suspect working (maybe mirrored) -> original working -> original full
        Hf = _scale(orig.factor) @ H @ _scale(1.0 / feats.factor)
        cand = Alignment(False, "", mirrored=mirrored, inliers=k, matches=n, inlier_ratio=k / n)
        if k < MIN_INLIERS:
            cand.reason = f"too few consistent matches ({k})"
        elif cand.inlier_ratio < MIN_INLIER_RATIO:
            cand.reason = f"too few of the matches agree ({k} of {n})"
        else:
            why, scale, rot, aniso = _check_transform(Hf, (sw, sh))
            cand.reason = why
            cand.scale, cand.rotation, cand.anisotropy = scale, rot, aniso
            if not why:
                cand.ok = True
                cand.reason = "aligned"
                cand.homography = (Hf @ _flip_x(sw)) if mirrored else Hf
                cand.homography = cand.homography / cand.homography[2, 2]
        if (cand.ok, cand.inliers) > (best.ok, best.inliers):
            best = cand
    return best


# ------------------------------------------------------------------ difference map
def _box_blur(cv2, a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), sigma)


def ssim_map(x: np.ndarray, y: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """SSIM per pixel (Wang et al. 2004) of two float arrays on a 0-255 scale, Gaussian window."""
    cv2 = _cv2()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box_blur(cv2, x, sigma), _box_blur(cv2, y, sigma)
    vx = _box_blur(cv2, x * x, sigma) - mx * mx
    vy = _box_blur(cv2, y * y, sigma) - my * my
    cxy = _box_blur(cv2, x * y, sigma) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _normalise(src: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``src`` with each channel's mean and std matched to ``ref`` over ``valid`` (robustly: the
    statistics come from the middle 90 % of values, so an edited region moves them little)."""
    out = np.empty_like(src)
    for c in range(src.shape[2]):
        s, r = src[..., c][valid], ref[..., c][valid]
        s_lo, s_hi = np.percentile(s, (5, 95))
        r_lo, r_hi = np.percentile(r, (5, 95))
        gain = (r_hi - r_lo) / (s_hi - s_lo) if s_hi - s_lo > 4 else 1.0
        gain = float(np.clip(gain, 0.5, 2.0))
        out[..., c] = (src[..., c] - np.median(s)) * gain + np.median(r)
    return out


def difference(orig_rgb: np.ndarray, warped_rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A boolean mask (original frame) of where the warped suspect differs, within ``valid``."""
    cv2 = _cv2()
    o = orig_rgb.astype(np.float32)
    s = _normalise(warped_rgb.astype(np.float32), o, valid)
    s[~valid] = o[~valid]  # outside the overlap nothing differs (and SSIM windows see no edge)
    grey = np.array([0.299, 0.587, 0.114], np.float32)
    side = max(o.shape[:2])
    sigma = max(1.5, side / 256)
    ssim = ssim_map(o @ grey, s @ grey, sigma)
    # chroma: what greyscale SSIM misses (a region recoloured at the same brightness)
    co = cv2.cvtColor(np.clip(o, 0, 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)[..., 1:]
    cs = cv2.cvtColor(np.clip(s, 0, 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)[..., 1:]
    chroma = np.abs(_box_blur(cv2, co, 2 * sigma) - _box_blur(cv2, cs, 2 * sigma)).max(axis=2)
    mask = ((ssim < SSIM_THRESHOLD) | (chroma > CHROMA_THRESHOLD)) & valid
    k = max(3, int(round(side / 128)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    m = _fill_holes(cv2, m)
    m &= valid.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, bool)
    min_area = MIN_BLOB_SHARE * max(1, int(valid.sum()))
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def padding_mask(rgb: np.ndarray, tol: int = 8, side: int = 256) -> np.ndarray:
    """Uniform areas touching the border of a picture: rotation fill, letterbox and screenshot bars
    (text on a bar included). They show nothing of any photo and are left out of the comparison.
    Found on a copy of at most ``side`` pixels a side, then scaled back."""
    cv2 = _cv2()
    H, W = rgb.shape[:2]
    f = min(1.0, side / max(H, W))
    small = cv2.resize(rgb, (max(2, round(W * f)), max(2, round(H * f))), interpolation=cv2.INTER_AREA) if f < 1 else rgb
    img = cv2.medianBlur(np.ascontiguousarray(small), 3)
    h, w = img.shape[:2]
    mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
    step = max(1, min(w, h) // 48)
    seeds = [(x, 0) for x in range(0, w, step)] + [(x, h - 1) for x in range(0, w, step)]
    seeds += [(0, y) for y in range(0, h, step)] + [(w - 1, y) for y in range(0, h, step)]
    for x, y in seeds:
        if mask[y + 1, x + 1]:
            continue
        m = np.zeros_like(mask)
        area = cv2.floodFill(img, m, (x, y), 0, (tol,) * 3, (tol,) * 3, flags)[0]
        # a band or corner of some size (a sky touching the top edge varies too much to be filled
        # far with a fixed range; a bar or a rotation fill does not vary)
        if area >= 0.004 * w * h:
            mask |= m
    pad = mask[1:-1, 1:-1]
    if pad.any():  # swallow the text and icons on bars
        k = max(3, min(w, h) // 40) | 1
        pad = cv2.morphologyEx(pad, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        pad = cv2.dilate(pad, np.ones((3, 3), np.uint8))  # and the blurred seam next to it
        if f < 1:
            pad = cv2.resize(pad, (W, H), interpolation=cv2.INTER_NEAREST)
    return pad > 0


def _fill_holes(cv2, m: np.ndarray) -> np.ndarray:
    """Fill the enclosed holes of a 0/1 mask (a replaced region's flat middle may match SSIM)."""
    h, w = m.shape
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flood[1:-1, 1:-1] = m
    filled = flood.copy()
    cv2.floodFill(filled, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = (filled[1:-1, 1:-1] == 0)
    return (m | holes).astype(np.uint8)


def _regions(mask: np.ndarray, to_full: float, overlap: int) -> list[Region]:
    cv2 = _cv2()
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        out.append(Region(int(x * to_full), int(y * to_full), max(1, int(math.ceil(w * to_full))),
                          max(1, int(math.ceil(h * to_full))), area / max(1, overlap)))
    out.sort(key=lambda r: -r.share)
    return out


# ------------------------------------------------------------------ the comparison
def compare_images(original: Image.Image, suspect: Image.Image, *,
                   orig_features: tuple[np.ndarray, float, Features] | None = None) -> Derivation:
    """Compare two decoded pictures; see the module docstring."""
    cv2 = _cv2()
    d = Derivation(original_size=original.size, suspect_size=suspect.size)
    if orig_features is None:
        o_rgb, o_f = working_copy(original)
        fo = features(o_rgb, o_f)
    else:
        o_rgb, o_f, fo = orig_features
    s_rgb, s_f = working_copy(suspect)
    fs = features(s_rgb, s_f)
    fsm = features(s_rgb, s_f, mirrored=True)
    a = align(fo, fs, fsm, suspect.size)
    d.alignment = a
    if not a.ok:
        d.summary = ("This picture could not be matched to your photo: we found no sign that it was made "
                     "from it.")
        d.caveats.append(f"No alignment: {a.reason} ({a.inliers} consistent of {a.matches} matching "
                         "features). A picture made from your photo but changed beyond recognition, or "
                         "from another photo of the same moment, would also not match.")
        return d
    # difference map at DIFF size in the original's frame
    ow, oh = original.size
    dfac = max(ow, oh) / DIFF_SIDE if max(ow, oh) > DIFF_SIDE else 1.0
    dw, dh = max(1, round(ow / dfac)), max(1, round(oh / dfac))
    o_small = cv2.resize(o_rgb, (dw, dh), interpolation=cv2.INTER_AREA)
    # suspect working -> original DIFF frame; pre-shrink the suspect if it is much larger there
    Hd = _scale(1.0 / dfac) @ a.homography @ _scale(s_f)
    shrink = (1.0 / a.scale) * s_f / dfac  # DIFF pixels per suspect working pixel
    src = s_rgb
    if shrink < 0.5:
        f = max(shrink, 1.0 / 16)
        src = cv2.resize(s_rgb, (max(1, round(s_rgb.shape[1] * f)), max(1, round(s_rgb.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
        Hd = Hd @ _scale(s_rgb.shape[1] / src.shape[1])
    warped = cv2.warpPerspective(src, Hd, (dw, dh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    pad = padding_mask(src)
    content = np.where(pad, 0, 255).astype(np.uint8)
    valid = cv2.warpPerspective(content, Hd, (dw, dh), flags=cv2.INTER_NEAREST)
    erode = max(3, (max(dw, dh) // 170) | 1)
    valid = cv2.erode(valid, np.ones((erode, erode), np.uint8)) > 0
    overlap = int(valid.sum())
    if overlap < 0.01 * dw * dh:
        a.ok = False
        a.reason = "the pictures overlap too little"
        d.summary = "This picture could not be matched to your photo: they share too little."
        d.caveats.append("The alignment found covers almost none of your photo.")
        return d
    mask = difference(o_small, warped, valid)
    d.mask = mask
    differing = int(mask.sum())
    d.share_differing = differing / overlap
    d.overlap_of_original = overlap / float(dw * dh)
    # the suspect's area, in DIFF pixels of the original's frame (a homography's area scale varies
    # a little over the picture: use the footprint polygon)
    sw, sh = suspect.size
    quad = cv2.perspectiveTransform(np.array([[[0, 0], [sw, 0], [sw, sh], [0, sh]]], np.float64),
                                    _scale(1.0 / dfac) @ a.homography)[0]
    pad_share = float(pad.mean())
    footprint = abs(float(cv2.contourArea(quad.astype(np.float32)))) * (1.0 - pad_share)
    if pad_share >= 0.01:
        d.caveats.append(f"{100 * pad_share:.0f} % of the suspect picture is a plain border or bar (padding, "
                         "screenshot frame); it was left out of the comparison.")
    d.share_derived = float(np.clip((overlap - differing) / max(footprint, 1.0), 0.0, 1.0))
    d.regions = _regions(mask, dfac, overlap)
    # aligned PDQ: the overlap's bounding box in both
    ys, xs = np.nonzero(valid)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if (y1 - y0) >= 16 and (x1 - x0) >= 16:
        from consentry.signals._hex import hamming_hex
        from consentry.signals.pdq import pdq_from_image

        oc = np.ascontiguousarray(o_small[y0:y1, x0:x1])
        sc = np.ascontiguousarray(np.where(valid[..., None], warped, o_small)[y0:y1, x0:x1])
        d.pdq_original, _ = pdq_from_image(Image.fromarray(oc))
        d.pdq_suspect, _ = pdq_from_image(Image.fromarray(sc))
        d.pdq_distance = hamming_hex(d.pdq_original, d.pdq_suspect)
    d.derived = d.share_derived >= MIN_SHARE_DERIVED
    _words(d)
    return d


def _words(d: Derivation) -> None:
    a = d.alignment
    pct = int(round(100 * d.share_derived))
    how = []
    if a.mirrored:
        how.append("mirrored")
    if a.rotation is not None and abs(a.rotation) >= 1:
        how.append(f"rotated by about {abs(a.rotation):.0f}°")
    if a.scale is not None and abs(math.log(a.scale)) > 0.05:
        how.append(f"resized to {100 * a.scale:.0f} %")
    if d.overlap_of_original < 0.97:
        how.append(f"cropped (it shows {100 * d.overlap_of_original:.0f} % of your photo)")
    if not d.derived:
        d.summary = (f"This picture lines up with your photo, but only {pct} % of it matches; we do not "
                     "call it derived from your photo.")
        d.caveats.append("It may share a background or an object with your photo, or be heavily changed.")
        return
    n = len(d.regions)
    if n == 0:
        changed = "We found no region that differs beyond what compression and resizing explain."
    elif n == 1:
        changed = "The outlined region on your photo was replaced or changed."
    else:
        changed = f"The {n} outlined regions on your photo were replaced or changed."
    d.summary = (f"{pct} % of this image is derived from your photo. " + changed +
                 (" It was " + ", ".join(how) + "." if how else ""))
    if a.inliers < 2 * MIN_INLIERS:
        d.caveats.append(f"The alignment rests on few matching points ({a.inliers}); check the outlines.")
    if d.pdq_distance is not None and n == 0 and d.pdq_distance > 31:
        d.caveats.append("The aligned perceptual hashes differ more than usual for a plain copy.")


# ------------------------------------------------------------------ videos
#: Sampled video frames are reduced to at most this many pixels a side (= the difference map's
#: size, so per-frame masks share the source frame's grid).
FRAME_SIDE = DIFF_SIDE
#: The suspect clip is sampled once a second, and at most this many of its frames are compared.
SUSPECT_STEP = 1.0
MAX_FRAME_PAIRS = 60
#: The source video is hashed every SOURCE_STEP seconds (coarser for long videos: at most
#: MAX_SOURCE_HASHES hashes), so a re-cut with any time offset finds a near frame.
SOURCE_STEP = 0.2
MAX_SOURCE_HASHES = 3000
#: PDQ distance at which a suspect frame is matched to a source frame (vPDQ's threshold).
FRAME_PDQ_THRESHOLD = 31
#: A suspect frame whose nearest source frame is within this distance is laid over it with the
#: picture pipeline even though PDQ alone does not match it: an edited region (a pasted patch, a
#: replaced face) moves PDQ by 30-50 bits while the rest of the frame still lines up. Unrelated
#: frames are ~100-128 bits apart; the picture alignment decides.
FRAME_PDQ_CANDIDATE = 70
#: Frames whose PDQ quality is below this (flat, dark, fades) cannot be matched reliably.
FRAME_QUALITY_THRESHOLD = 50
#: A clip is derived when at least this share of its usable sampled frames line up with the source.
MIN_SHARE_FRAMES_DERIVED = 0.5
#: A pixel differing in at least this share of the compared frames belongs to a consistent region.
STABLE_FRACTION = 0.6
#: Consistent regions need at least this many compared frame pairs.
MIN_STABLE_FRAMES = 2

VIDEO_LIMITATIONS = [
    "It does not show who made the suspect clip, when, or with what tool.",
    "It does not show whether anyone consented to it being made or shared.",
    "It does not show that the source video itself is authentic or unedited; it is compared as given.",
    "Only sampled frames are compared (about one a second, at most 60), and not the sound.",
    "A region may differ for harmless reasons too (a caption, a logo, a crop border, heavy "
    "compression); the outlines show where the videos differ, not why.",
]


@dataclass
class FramePair:
    suspect_t: float
    source_t: float | None
    pdq_distance: int | None
    quality: int
    matched_by: str | None = None  # "pdq", "features" (picture alignment) or None
    share_differing: float | None = None
    share_derived: float | None = None
    regions: list[Region] = field(default_factory=list)  # boxes in the source video's pixels

    @property
    def aligned(self) -> bool:
        return self.matched_by is not None

    def to_dict(self) -> dict[str, Any]:
        return {"suspect_t": self.suspect_t, "source_t": self.source_t, "pdq_distance": self.pdq_distance,
                "quality": self.quality, "aligned": self.aligned, "matched_by": self.matched_by,
                "share_differing": _r(self.share_differing, 4), "share_derived": _r(self.share_derived, 4),
                "regions": [r.to_dict() for r in self.regions]}


@dataclass
class StableRegion:
    x: int
    y: int
    width: int
    height: int
    fraction: float  # mean share of the compared frames in which its pixels differ
    share: float  # of the source frame's area

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height,
                "fraction_of_frames": round(self.fraction, 3), "share_of_frame": round(self.share, 4)}


@dataclass
class VideoDerivation:
    kind: str = "video"
    derived: bool = False
    share_aligned: float = 0.0  # of the usable sampled suspect frames
    frames_sampled: int = 0
    frames_usable: int = 0
    frames_aligned: int = 0
    frames_compared: int = 0  # pairs the picture pipeline aligned (the stable map's denominator)
    offset_seconds: float | None = None  # median source t minus suspect t over the aligned pairs
    pairs: list[FramePair] = field(default_factory=list)
    stable_regions: list[StableRegion] = field(default_factory=list)
    share_differing: float | None = None  # median per-frame share differing
    source_size: tuple[int, int] | None = None
    suspect_size: tuple[int, int] | None = None
    source_duration: float | None = None
    suspect_duration: float | None = None
    summary: str = ""
    caveats: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=lambda: list(VIDEO_LIMITATIONS))
    error: str | None = None
    original: dict[str, Any] = field(default_factory=dict)
    suspect: dict[str, Any] = field(default_factory=dict)
    tool: str = f"consentry {__version__}"
    compared_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # for the report only (not serialised): a representative source frame and its suspect frame
    # (both reduced to FRAME_SIDE), and the consistent-difference mask on the source frame's grid
    source_frame: Image.Image | None = field(default=None, repr=False)
    suspect_frame: Image.Image | None = field(default=None, repr=False)
    stable_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "video", "original": self.original, "suspect": self.suspect,
            "derived": self.derived,
            "share_aligned": round(self.share_aligned, 4),
            "frames_sampled": self.frames_sampled, "frames_usable": self.frames_usable,
            "frames_aligned": self.frames_aligned, "frames_compared": self.frames_compared,
            "offset_seconds": _r(self.offset_seconds, 3),
            "stable_regions": [r.to_dict() for r in self.stable_regions],
            "share_differing": _r(self.share_differing, 4),
            "pairs": [p.to_dict() for p in self.pairs],
            "source_size": list(self.source_size) if self.source_size else None,
            "suspect_size": list(self.suspect_size) if self.suspect_size else None,
            "source_duration": _r(self.source_duration, 3), "suspect_duration": _r(self.suspect_duration, 3),
            "summary": self.summary, "caveats": list(self.caveats), "limitations": list(self.limitations),
            "error": self.error, "tool": self.tool, "compared_at": self.compared_at,
        }


def _small_frame(image: Image.Image, side: int = FRAME_SIDE) -> Image.Image:
    img = image.convert("RGB")
    if max(img.size) > side:
        img.thumbnail((side, side), Image.Resampling.BILINEAR)
    return img


def _pdq_words(hexes: list[str]) -> np.ndarray:
    if not hexes:
        return np.zeros((0, 4), np.uint64)
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").astype(np.uint64).reshape(-1, 4)


def compare_videos(source, suspect, limits: MediaLimits | None = None) -> VideoDerivation:
    """Compare a suspect clip with a source video (paths), within ``limits`` and the decode deadline.

    1. The suspect is sampled once a second (at most :data:`MAX_FRAME_PAIRS` frames, reduced to
       :data:`FRAME_SIDE`), each frame PDQ-hashed.
    2. The source is decoded once, hashed every :data:`SOURCE_STEP` seconds; for each suspect frame
       the nearest source frame by PDQ distance is kept (only those frames stay in memory), so any
       time offset or re-cut is followed.
    3. If any frame's nearest source frame is within :data:`FRAME_PDQ_CANDIDATE`, every usable
       pair goes through the picture pipeline (:func:`compare_images`); a pair is aligned by PDQ
       (within :data:`FRAME_PDQ_THRESHOLD`) or by the pictures' features (aligned and derived). Per-frame differing masks are counted on the source frame's grid; pixels that
       differ in at least :data:`STABLE_FRACTION` of the compared pairs form consistent regions.
    """
    from contextlib import closing

    from consentry.media import guard
    from consentry.media.video import iter_frames, probe_video
    from consentry.signals.pdq import pdq_from_image

    limits = limits or MediaLimits()
    v = VideoDerivation()
    try:
        info_o = probe_video(source, limits)
        info_s = probe_video(suspect, limits)
        v.source_size, v.suspect_size = (info_o.width, info_o.height), (info_s.width, info_s.height)
        v.source_duration, v.suspect_duration = info_o.duration, info_s.duration
        # 1. the suspect's sampled frames
        s_step = max(SUSPECT_STEP, (info_s.duration or 0.0) / MAX_FRAME_PAIRS)
        sus: list[tuple[float, Image.Image, str, int]] = []
        with closing(iter_frames(suspect, limits, s_step)) as frames:
            for vf in frames:
                img = _small_frame(vf.image)
                h, q = pdq_from_image(img)
                sus.append((vf.timestamp, img, h, q))
                if len(sus) >= MAX_FRAME_PAIRS:
                    break
        v.frames_sampled = len(sus)
        usable = [i for i, (_, _, _, q) in enumerate(sus) if q >= FRAME_QUALITY_THRESHOLD]
        v.frames_usable = len(usable)
        n = len(sus)
        best_d = np.full(n, 257, np.int32)
        best_t: list[float | None] = [None] * n
        best_img: list[Image.Image | None] = [None] * n
        if usable:
            sw = _pdq_words([sus[i][2] for i in usable])
            # 2. the source, once, keeping only each suspect frame's nearest frame
            o_step = max(SOURCE_STEP, (info_o.duration or 0.0) / MAX_SOURCE_HASHES)
            with closing(iter_frames(source, limits, o_step)) as frames:
                for vf in frames:
                    img = _small_frame(vf.image)
                    h, q = pdq_from_image(img)
                    if q < FRAME_QUALITY_THRESHOLD:
                        continue
                    w = _pdq_words([h])[0]
                    dist = np.zeros(len(usable), np.int32)
                    for k in range(4):
                        dist += np.bitwise_count(sw[:, k] ^ w[k]).astype(np.int32)
                    for j in np.flatnonzero(dist < best_d[usable]):
                        i = usable[j]
                        best_d[i], best_t[i], best_img[i] = int(dist[j]), vf.timestamp, img
        for i, (t, _, _, q) in enumerate(sus):
            p = FramePair(t, best_t[i], int(best_d[i]) if best_img[i] is not None else None, q)
            if p.pdq_distance is not None and p.pdq_distance <= FRAME_PDQ_THRESHOLD:
                p.matched_by = "pdq"
            v.pairs.append(p)
        # 3. per-frame differences, only when the clip has at least one near frame
        counts = None
        best_pair, best_score = None, -1.0
        if any(p.pdq_distance is not None and p.pdq_distance <= FRAME_PDQ_CANDIDATE for p in v.pairs):
            cache: dict[int, tuple[np.ndarray, float, Features]] = {}
            masks_by_pair: list[tuple[int, np.ndarray]] = []
            for i in usable:
                guard.check()  # the request's deadline covers the comparison too
                src_img = best_img[i]
                if src_img is None:
                    continue
                key = id(src_img)
                if key not in cache:
                    o_rgb, o_f = working_copy(src_img)
                    cache[key] = (o_rgb, o_f, features(o_rgb, o_f))
                d = compare_images(src_img, sus[i][1], orig_features=cache[key])
                p = v.pairs[i]
                if not (d.alignment and d.alignment.ok and d.mask is not None):
                    continue
                if d.derived and p.matched_by is None:
                    p.matched_by = "features"
                if p.matched_by is None:
                    continue
                p.share_differing, p.share_derived = d.share_differing, d.share_derived
                f = info_o.width / src_img.width  # source video pixels per frame pixel
                p.regions = [Region(int(r.x * f), int(r.y * f), max(1, int(math.ceil(r.width * f))),
                                    max(1, int(math.ceil(r.height * f))), r.share) for r in d.regions]
                if counts is None:
                    counts = np.zeros(d.mask.shape, np.int32)
                if d.mask.shape == counts.shape:
                    counts += d.mask
                    v.frames_compared += 1
                    masks_by_pair.append((i, d.mask))
                if best_pair is None:
                    best_pair = i
            if counts is not None and v.frames_compared >= MIN_STABLE_FRAMES:
                stable = counts >= STABLE_FRACTION * v.frames_compared
                v.stable_regions, v.stable_mask = _stable_regions(stable, counts, v.frames_compared,
                                                                  info_o.width / counts.shape[1])
                if v.stable_mask is not None and v.stable_mask.any():
                    for i, m in masks_by_pair:  # the frame showing the consistent region best
                        score = float((m & v.stable_mask).sum())
                        if score > best_score:
                            best_pair, best_score = i, score
        if best_pair is None:
            best_pair = next((i for i in usable if best_img[i] is not None and v.pairs[i].aligned), None)
        if best_pair is not None:
            v.source_frame, v.suspect_frame = best_img[best_pair], sus[best_pair][1]
        elif sus:
            v.suspect_frame = sus[0][1]
    except ConsentryError as exc:
        return _failed(v, str(exc))
    aligned = [p for p in v.pairs if p.aligned]
    v.frames_aligned = len(aligned)
    v.share_aligned = len(aligned) / v.frames_usable if v.frames_usable else 0.0
    if aligned:
        v.offset_seconds = float(np.median([p.source_t - p.suspect_t for p in aligned]))
    diffs = [p.share_differing for p in aligned if p.share_differing is not None]
    v.share_differing = float(np.median(diffs)) if diffs else None
    v.derived = v.share_aligned >= MIN_SHARE_FRAMES_DERIVED and v.frames_aligned >= 1
    _video_words(v)
    return v


def _stable_regions(stable: np.ndarray, counts: np.ndarray, frames: int,
                    to_full: float) -> tuple[list[StableRegion], np.ndarray]:
    cv2 = _cv2()
    # pieces of one change (a replaced region whose middle happens to match) are merged: close
    # gaps up to ~1/16 of the frame's side, fill enclosed holes
    k = max(5, (max(stable.shape) // 16) | 1)
    merged = cv2.morphologyEx(stable.astype(np.uint8), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    merged = _fill_holes(cv2, merged)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(merged, connectivity=8)
    area_all = stable.size
    keep = np.zeros(n, bool)
    out = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < MIN_BLOB_SHARE * area_all:
            continue
        keep[i] = True
        core = (labels == i) & stable
        frac = float(counts[core].mean()) / frames if core.any() else 0.0
        out.append(StableRegion(int(x * to_full), int(y * to_full), max(1, int(math.ceil(w * to_full))),
                                max(1, int(math.ceil(h * to_full))), frac, area / area_all))
    out.sort(key=lambda r: -r.share)
    return out, keep[labels]


def _video_words(v: VideoDerivation) -> None:
    pct = int(round(100 * v.share_aligned))
    v.caveats.append(f"{v.frames_sampled} frames of the suspect clip were sampled (about one every "
                     f"{max(SUSPECT_STEP, (v.suspect_duration or 0) / MAX_FRAME_PAIRS):.0f} s); "
                     f"{v.frames_usable} had enough detail to be matched.")
    if v.frames_usable == 0:
        v.summary = ("This clip could not be compared with your video: none of its sampled frames has enough "
                     "detail to be matched.")
        return
    if v.frames_aligned == 0:
        v.summary = ("This clip could not be matched to your video: none of its sampled frames is close to a "
                     "frame of your video.")
        v.caveats.append("A clip made from your video but changed beyond recognition, or from another "
                         "recording of the same moment, would also not match.")
        return
    if not v.derived:
        v.summary = (f"Only {pct} % of the sampled frames of this clip line up with frames of your video; we "
                     "do not call it derived from your video.")
        v.caveats.append("It may share a scene or a few shots with your video, or be heavily changed.")
        return
    off = v.offset_seconds or 0.0
    when = f" (about {abs(off):.1f} s {'later' if off > 0 else 'earlier'} in your video)" if abs(off) >= 0.1 else ""
    n = len(v.stable_regions)
    if v.frames_compared < MIN_STABLE_FRAMES:
        changed = "Too few frames could be laid over your video to look for a region that differs consistently."
    elif n == 0:
        changed = "We found no region that differs consistently across frames."
    elif n == 1:
        r = v.stable_regions[0]
        changed = (f"One region differs consistently across frames (on average in {100 * r.fraction:.0f} % of the "
                   "compared frames); it is outlined on a frame of your video.")
    else:
        changed = (f"{n} regions differ consistently across frames; they are outlined on a frame of your "
                   "video.")
    v.summary = (f"{pct} % of the sampled frames of this clip line up with frames of your video{when}. "
                 + changed)
    if v.frames_compared < v.frames_aligned:
        v.caveats.append(f"{v.frames_aligned - v.frames_compared} aligned frame(s) could not be laid over your "
                         "video exactly; they count as aligned but add no region.")
    v.caveats.append("A changed region that moves across the picture differs in different places from frame to "
                     "frame and may not show as consistent; the per-frame regions show where each frame differs.")


# ------------------------------------------------------------------ from files and bytes
def _describe(content, name: str) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, "size": content.size}
    try:
        info["sha256"] = content.digests(("sha256",))["sha256"]
    except ConsentryError:
        pass
    return info


def compare_contents(original, suspect, *, original_name: str = "original",
                     suspect_name: str = "suspect") -> Derivation:
    """Compare two :class:`~consentry.media.content.Content`; decoding problems become ``error``."""
    from consentry.media.sniff import PHOTO, VIDEO

    d = Derivation()
    d.original = _describe(original, original_name)
    d.suspect = _describe(suspect, suspect_name)
    kinds = (original.content_type, suspect.content_type)
    if kinds == (VIDEO, VIDEO):
        with original.video_path() as op, suspect.video_path() as sp:
            v = compare_videos(op, sp, original.limits)
        v.original, v.suspect = d.original, d.suspect
        return v
    if VIDEO in kinds and all(k in (PHOTO, VIDEO) for k in kinds):
        return _failed(d, MIXED_MEDIA)
    images = []
    for which, content in (("original", original), ("suspect", suspect)):
        if content.content_type != PHOTO:
            return _failed(d, f"the {which} is not a supported picture")
        try:
            img = content.image()
        except ConsentryError as exc:
            return _failed(d, f"the {which} could not be read: {exc}")
        if min(img.size) < 32:
            return _failed(d, f"the {which} is too small to compare ({img.size[0]}x{img.size[1]})")
        images.append(img)
    result = compare_images(images[0], images[1])
    result.original, result.suspect = d.original, d.suspect
    return result


MIXED_MEDIA = ("a picture and a video cannot be compared with each other: give two pictures or two videos "
               "(a frame taken from the video can be compared as a picture)")


def _failed(d, error: str):
    d.error = error
    what = "videos" if isinstance(d, VideoDerivation) else "pictures"
    d.summary = f"The {what} could not be compared: {error}."
    return d


def compare_paths(original, suspect, *, limits: MediaLimits | None = None) -> Derivation:
    from consentry.media.content import Content

    limits = limits or MediaLimits()
    contents = []
    for which, p in (("original", original), ("suspect", suspect)):
        try:
            contents.append(Content.from_path(p, limits))
        except ConsentryError as exc:
            d = Derivation(original={"name": str(original)}, suspect={"name": str(suspect)})
            return _failed(d, f"the {which} could not be read: {exc}")
    return compare_contents(contents[0], contents[1], original_name=str(original), suspect_name=str(suspect))


__all__ = ["Derivation", "Region", "Alignment", "compare_images", "compare_contents", "compare_paths",
           "VideoDerivation", "FramePair", "StableRegion", "compare_videos", "UnsupportedMedia"]
