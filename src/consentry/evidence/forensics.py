"""Forensic views for the one-file report: pictures and estimates, never verdicts.

Error level analysis, noise residual, frequency spectrum, the JPEG quantisation tables and a
double-compression estimate.  Each is a *weak* signal that an expert reads next to the evidence;
none of them changes the verdict (:mod:`consentry.evidence.assess` never sees them), and each
comes with a plain "what this can and cannot show" note.

Bounded memory: the picture views work on a copy no larger than :data:`MAX_SIDE` pixels a side;
the DCT statistics read at most a :data:`MAX_SIDE` square of the decoded luminance at full
resolution (aligned to the 8×8 JPEG grid: resampling would destroy what they measure).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps

MAX_SIDE = 1024
ELA_QUALITY = 90
#: Zig-zag positions 1..N (the lowest AC frequencies) used by the double-compression estimate.
DQ_COEFFICIENTS = 12
#: Score above which double compression is reported as likely (measured on drawn 512 px textures:
#: single saves at q=50..95 scored 0.6-1.3; q=90 then 70: 4.2-5.6; q=85 then 75: ~25; q=60 then 80:
#: ~50; q=95 then 70 was missed (~0.9): a much finer first compression leaves no trace).
DQ_THRESHOLD = 3.0

_ZIGZAG = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
    60, 61, 54, 47, 55, 62, 63,
]

NOTES = {
    "ela": ("Error level analysis: the picture is saved again as JPEG at quality {q} and the difference is "
            "amplified. Areas that were compressed differently from the rest (e.g. pasted in) can stand out. "
            "It cannot show AI generation; edges, texture and bright areas also stand out, a file saved many "
            "times looks uniform, and a downscaled copy shows mostly edges."),
    "noise": ("Noise residual: the picture minus a median-filtered copy of itself, amplified. Regions whose "
              "grain differs from their surroundings (pasted, retouched, generated) can stand out. It cannot "
              "show AI generation; texture, edges and compression also leave residue."),
    "spectrum": ("Frequency spectrum: the log-magnitude of the 2-D Fourier transform of the luminance (centre "
                 "= low frequencies). Regular patterns (resampling, JPEG blocks, some generators' upsampling) "
                 "show as bright dots or lines. It cannot show AI generation on its own: fabrics, grids and "
                 "screens also make peaks. A magnitude spectrum does not show the picture's content."),
    "jpeg": ("JPEG quantisation tables: how coarsely the file was last compressed, with the IJG (libjpeg) "
             "quality they match. They say nothing about how the content was made; editors and platforms "
             "re-compress with their own tables."),
    "double": ("Double-compression estimate: periodic gaps and peaks in the histograms of the low-frequency DCT "
               "coefficients appear when a JPEG was compressed twice with different tables. It is an "
               "estimate: it assumes the 8×8 grid was not shifted (no cropping), misses re-saves at the "
               "same quality or after a much finer first compression, and a double compression is ordinary (any re-save) — it is not a sign of AI."),
}


@dataclass
class ForensicView:
    """One view: a greyscale picture (or none), the note, and the numbers behind it."""

    key: str
    title: str
    note: str
    image: Image.Image | None = None
    #: True when the picture shows the content (it then follows the thumbnail's blur policy).
    shows_content: bool = True
    details: dict[str, Any] = field(default_factory=dict)


def working_copy(image: Image.Image, side: int = MAX_SIDE) -> Image.Image:
    """An RGB copy no larger than ``side`` a side (box-reduced, then resampled)."""
    factor = max(1, max(image.size) // (2 * side))
    im = image.reduce(factor) if factor > 1 else image
    im = im.convert("RGB")
    if max(im.size) > side:
        im = im.copy()
        im.thumbnail((side, side), Image.Resampling.BILINEAR)
    return im


def _to_l(arr: np.ndarray, gain: float | None = None) -> Image.Image:
    """A float array as an 8-bit greyscale picture: scaled by ``gain``, else to its 99.5th percentile."""
    a = np.abs(arr.astype(np.float32))
    if gain is None:
        top = float(np.percentile(a, 99.5)) if a.size else 0.0
        gain = 255.0 / top if top > 0 else 1.0
    return Image.fromarray(np.clip(a * gain, 0, 255).astype(np.uint8), "L")


def _stretch(arr: np.ndarray) -> Image.Image:
    lo, hi = float(arr.min()), float(arr.max())
    return Image.fromarray(((arr - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)).astype(np.uint8), "L")


def ela(image: Image.Image, quality: int = ELA_QUALITY) -> np.ndarray:
    """Per-pixel error level (max over R, G, B of |image - JPEG(image, quality)|) of the working copy."""
    im = working_copy(image)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    again = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    diff = np.abs(np.asarray(im, dtype=np.int16) - np.asarray(again, dtype=np.int16))
    return diff.max(axis=2).astype(np.float32)


def noise_residual(image: Image.Image, size: int = 3) -> np.ndarray:
    """Luminance minus its ``size``×``size`` median, on the working copy."""
    grey = ImageOps.grayscale(working_copy(image))
    med = grey.filter(ImageFilter.MedianFilter(size))
    return np.asarray(grey, dtype=np.float32) - np.asarray(med, dtype=np.float32)


def spectrum(image: Image.Image) -> np.ndarray:
    """log(1 + |FFT|) of the working copy's luminance, zero frequency in the centre (Hann window)."""
    g = np.asarray(ImageOps.grayscale(working_copy(image)), dtype=np.float32)
    g = g - g.mean()
    win = np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1])).astype(np.float32)
    f = np.fft.fftshift(np.fft.fft2(g * win))
    return np.log1p(np.abs(f)).astype(np.float32)


def _ijg_table(base: list[int], quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [max(1, min(255, (b * scale + 50) // 100)) for b in base]


_IJG_BASE = {
    0: [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    1: [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32,
}


def quantization_tables(data: bytes) -> dict[str, Any] | None:
    """The JPEG's quantisation tables (natural 8×8 order, as Pillow reads them) and the IJG quality each
    matches exactly (None when it is not a scaled IJG table); None for a non-JPEG."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG":
                return None
            tables = {int(k): [int(x) for x in v] for k, v in (getattr(im, "quantization", None) or {}).items()}
    except Exception:  # noqa: BLE001 - unreadable header: no table view
        return None
    out: dict[str, Any] = {"tables": {}, "ijg_quality": {}}
    for k, t in sorted(tables.items())[:4]:
        if len(t) != 64:
            continue
        out["tables"][str(k)] = t
        base = _IJG_BASE.get(min(k, 1))
        match = next((q for q in range(1, 101) if _ijg_table(base, q) == t), None) if base else None
        out["ijg_quality"][str(k)] = match
    return out if out["tables"] else None


_DCT = np.array([[np.sqrt((1 if u == 0 else 2) / 8) * np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)]
                 for u in range(8)], dtype=np.float64)


def _luma_blocks(data: bytes) -> np.ndarray | None:
    """The decoded luminance (JPEG's own Y, not re-derived from RGB) of at most a MAX_SIDE square,
    cropped at a multiple of 8 so the 8×8 grid is kept, as (n, 8, 8) blocks minus 128."""
    with Image.open(io.BytesIO(data)) as im:
        if im.format != "JPEG":
            return None
        im.draft("YCbCr", None)  # libjpeg's Y plane, without a round trip through RGB
        w, h = im.size
        cw, ch = min(w, MAX_SIDE) // 8 * 8, min(h, MAX_SIDE) // 8 * 8
        if cw < 64 or ch < 64:
            return None
        x0, y0 = (w - cw) // 16 * 8, (h - ch) // 16 * 8
        y = im.crop((x0, y0, x0 + cw, y0 + ch))
        y = y.getchannel(0) if y.mode != "L" else y
        arr = np.asarray(y, dtype=np.float64) - 128.0
    return arr.reshape(ch // 8, 8, cw // 8, 8).swapaxes(1, 2).reshape(-1, 8, 8)


def double_compression(data: bytes) -> dict[str, Any] | None:
    """Estimate whether a JPEG was compressed twice: for the lowest AC frequencies, the histogram of the
    re-computed DCT coefficients divided by the file's quantisation step is checked for local
    curvature beyond Poisson noise; periodic gaps and peaks left by an earlier, different quantisation
    give a large excess.  ``score``: the median over the coefficients (about 1 for one compression)."""
    tables = quantization_tables(data)
    if not tables or "0" not in tables["tables"]:
        return None
    q = np.array(tables["tables"]["0"], dtype=np.float64).reshape(8, 8)
    try:
        blocks = _luma_blocks(data)
    except Exception:  # noqa: BLE001 - undecodable: no estimate
        return None
    if blocks is None or len(blocks) < 64:
        return None
    coef = np.einsum("ux,nxy,vy->nuv", _DCT, blocks, _DCT)
    scores = []
    for pos in _ZIGZAG[1:1 + DQ_COEFFICIENTS]:
        u, v = divmod(pos, 8)
        step = q[u, v]
        if step < 2:
            continue  # step 1: the quantised values are the coefficients themselves; nothing to see
        k = np.abs(np.rint(coef[:, u, v] / step)).astype(np.int64)
        hist = np.bincount(k, minlength=2)[1:]  # |k| = 1, 2, … (0 is dominated by flat blocks)
        n = int(np.searchsorted(np.cumsum(hist), 0.98 * hist.sum())) + 1
        hist = hist[:max(n, 4)].astype(np.float64)
        if len(hist) < 3:
            continue
        # A smooth histogram is locally log-linear: the curvature d_k = log h_k - mean(log h_k±1) is
        # small and of one sign; an earlier quantisation makes it alternate (periodic gaps and peaks).
        # (an empty bin between populated ones, the strongest sign, counts as a count of 1)
        good = (hist[:-2] + hist[1:-1] + hist[2:]) >= 15
        if good.sum() < 3:
            continue
        h1 = np.maximum(hist, 1.0)
        lh = np.log(h1)
        d = (lh[1:-1] - (lh[:-2] + lh[2:]) / 2)[good]
        var = (1 / h1[1:-1] + 1 / (4 * h1[:-2]) + 1 / (4 * h1[2:]))[good]
        chi = ((d - np.median(d)) ** 2 / var).mean()
        scores.append(float(chi))
    if not scores:
        return {"score": None, "likely": None, "coefficients_used": 0,
                "estimate": "not enough texture (or too fine a quantisation) to estimate"}
    score = float(np.median(scores))
    likely = score > DQ_THRESHOLD
    return {
        "score": round(score, 2), "threshold": DQ_THRESHOLD, "likely": likely, "coefficients_used": len(scores),
        "estimate": ("likely compressed more than once (estimate)" if likely
                     else "no sign of an earlier, different compression (estimate)"),
    }


def forensic_views(image: Image.Image, data: bytes | None = None) -> list[ForensicView]:
    """Every view that applies to this picture (the JPEG views only for JPEG bytes); never raises."""
    views: list[ForensicView] = []
    im = working_copy(image)
    scaled = {"analysed_size": list(im.size), "original_size": list(image.size)}
    for key, title, fn in (("ela", "Error level analysis", lambda: _to_l(ela(im))),
                           ("noise", "Noise residual", lambda: _to_l(noise_residual(im))),
                           ("spectrum", "Frequency spectrum", lambda: _stretch(spectrum(im)))):
        try:
            pic = fn()
        except Exception as exc:  # noqa: BLE001 - one view failing must not lose the report
            views.append(ForensicView(key, title, f"not computed ({type(exc).__name__})", None))
            continue
        note = NOTES[key].format(q=ELA_QUALITY)
        views.append(ForensicView(key, title, note, pic, shows_content=key != "spectrum", details=dict(scaled)))
    if data is not None:
        tables = quantization_tables(data)
        if tables:
            views.append(ForensicView("jpeg", "JPEG quantisation tables", NOTES["jpeg"], None, False, tables))
            try:
                dq = double_compression(data)
            except Exception:  # noqa: BLE001
                dq = None
            if dq:
                views.append(ForensicView("double", "Double compression (estimate)", NOTES["double"], None, False, dq))
    return views
