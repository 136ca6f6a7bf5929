"""Invisible watermarks of open image generators (``invisible-watermark``, method ``dwtDct``).

The reference code of several open generators marks every output with ShieldMnt's
``invisible-watermark`` library (``imwatermark``), method ``dwtDct``:

- ``sd1``: CompVis/stable-diffusion ``scripts/txt2img.py``/``img2img.py`` (Stable Diffusion
  1.x), bytes ``StableDiffusionV1``, 136 bits;
- ``sd2``: Stability-AI/stablediffusion scripts (SD 2.x), bytes ``SDV2``, 32 bits;
- ``sdxl``: Stability-AI/generative-models ``WatermarkEmbedder`` (SDXL, SDXL-Turbo, SVD) and
  diffusers' SDXL pipelines, ``0xB3EC907BB19E``, 48 bits;
- ``flux``: black-forest-labs/flux ``src/flux/util.py``, ``0x2AFE879CF52E``, 46 bits.

FLUX's ``WATERMARK_BITS`` are ``bin(WATERMARK_MESSAGE)[2:]`` of a 48-bit literal that starts with
two zero bits, which ``bin()`` drops: 46 bits are embedded.

The algorithm, as read from ``imwatermark/maxDct.py`` (``EmbedMaxDct``, defaults
``scales=[0, 36, 36]``, ``block=4``) — despite the name there is no DCT in it:

1. BGR → YUV with OpenCV (``COLOR_BGR2YUV``; 8-bit fixed point, see :func:`opencv_u_channel`);
2. only the **U** channel is marked: the loop runs ``for channel in range(2)`` and Y's scale is 0,
   so the V scale (36) is never used;
3. the U plane, cropped to a multiple of 4, goes through a one-level Haar DWT; the approximation
   band is cut into 4×4 blocks (8×8 pixels) numbered in raster order; block ``num`` carries bit
   ``num % length`` of the payload (bits in the order ``np.unpackbits`` gives for bytes, i.e.
   most significant first, and in list order for ``bits`` payloads);
4. in each block the coefficient with the largest magnitude, the DC position ``[0, 0]`` excluded,
   is quantised with step 36 to ``(⌊|v|/36⌋ + 0.25 + 0.5·bit)·36`` (sign kept);
5. decoding reads the same coefficient, votes ``1`` when ``|v| mod 36 > 18``, averages the votes
   of every block carrying the same bit and outputs ``mean·255 > 127``.

The ``uint8`` reading here reproduces that exactly (no OpenCV, no torch; a compiled kernel
performs PyWavelets' float operations in the same order, checked against a numpy + PyWavelets
reference by the tests), so its bit counts are the counts the reference detector
(``scripts/demo/detect.py`` of generative-models) would print for the same pixels.  But the SDXL
and FLUX embedders hand the library a *float32* array (0..255), and OpenCV's float YUV offsets U
by 0.5 instead of 128: the marked plane then sits about 127.5 away from the one the reference
detector reads, every block coefficient moves by about 255 (≡ 3 mod 36) and the magnitude ordering
that picks the marked coefficient changes, so the reference reading often sees noise in those
images (chance level on smooth test pictures, a damaged count on textured ones).  A second,
``float`` reading (:func:`float_u_channel`) decodes the plane they actually marked.  Every payload
is tried in both readings and the better count is kept; chance probabilities are doubled for it.
When several payloads pass, only the most significant is evidence: one mark overwrites another, and
an SD 2.x mark also reads as a partial SD 1.x match (both ASCII, periods 32 and 136).

Interpretation.  For a picture that does not carry a payload, the number of matching bits behaves
like ``Binomial(n, 1/2)``; a payload is reported only at or above a threshold whose chance
probability, both readings together, is at most 2.5e-5 (:data:`PAYLOADS`,
``docs/evidence-watermark.md``).
Below the threshold nothing is claimed and the raw report says "not found": the watermark is easily
lost (resizing, cropping, rotation, strong JPEG) and most generators never add one, so not finding
it proves nothing.  And since the algorithm and the payloads are public, anyone can add the mark to
any image: a found mark shows the pixels went through software that embeds it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pywt
from PIL import Image

from consentry.config import MediaLimits, get_settings
from consentry.jit import cached_njit
from consentry.evidence.model import Evidence, Findings

#: Quantisation step on the U channel (imwatermark ``scales=[0, 36, 36]``, only U is visited).
SCALE = 36
#: Block side, in DWT approximation coefficients (= 8 pixels).
BLOCK = 4
#: The embedder refuses images with fewer pixels than this (``r*c < 256*256``).
MIN_PIXELS = 256 * 256
#: Pixels decoded per strip (whole 8-pixel block rows), bounding memory on large images.
_STRIP_PIXELS = 4_000_000

# OpenCV's BT.601 YUV constants, 14-bit fixed point (imgproc/src/color_yuv.simd.hpp).
_YUV_SHIFT = 14
_R2Y, _G2Y, _B2Y = 4899, 9617, 1868
_B2UI = 8061  # 0.492 * 16384


def _bits_of_int(value: int, length: int) -> tuple[int, ...]:
    return tuple((value >> (length - 1 - i)) & 1 for i in range(length))


def _bits_of_bytes(data: bytes) -> tuple[int, ...]:
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(data, dtype=np.uint8)))


#: Each image is read twice (the ``uint8`` and ``float`` U planes, see :data:`DOMAINS`); chance
#: probabilities are multiplied by this (Bonferroni), so two looks never inflate the claim.
READINGS = 2


def chance_p_value(n: int, k: int) -> float:
    """Chance that an unmarked image shows ``k`` or more of ``n`` bits in either reading."""
    return min(1.0, READINGS * binomial_tail(n, k))


@functools.lru_cache(maxsize=4096)
def binomial_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the chance of ``k`` or more matching bits by luck.

    Cached: an exact big-integer sum (about 0.1 ms), asked several times per image with the same
    few arguments."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


@dataclass(frozen=True)
class Payload:
    """A known watermark message and the threshold at which it is reported."""

    key: str
    generator: str
    embedded_by: str
    bits: tuple[int, ...]
    threshold: int

    @property
    def length(self) -> int:
        return len(self.bits)

    @property
    def hex(self) -> str:
        return bits_to_hex(self.bits)

    @property
    def threshold_p_value(self) -> float:
        """Chance that an unmarked image reaches the threshold in either reading."""
        return chance_p_value(self.length, self.threshold)


def bits_to_hex(bits) -> str:
    """Lowercase hex of a bit sequence read most significant bit first (46 bits -> 12 digits)."""
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return f"{value:0{(len(bits) + 3) // 4}x}"


#: Thresholds: the smallest count whose chance probability, both readings together, is at most
#: 2.5e-5 (Binomial(n, 1/2), Bonferroni x2): sd1 93/136 (2.2e-5), sd2 28/32 (1.9e-5), sdxl 39/48
#: (1.5e-5), flux 38/46 (9.2e-6); all four together about 6.6e-5 per image.
PAYLOADS: tuple[Payload, ...] = (
    Payload("sd1", "Stable Diffusion 1.x",
            "the CompVis/stable-diffusion reference scripts (txt2img, img2img)",
            _bits_of_bytes(b"StableDiffusionV1"), 93),
    Payload("sd2", "Stable Diffusion 2.x",
            "the Stability-AI/stablediffusion reference scripts",
            _bits_of_bytes(b"SDV2"), 28),
    Payload("sdxl", "Stable Diffusion XL family",
            "Stability AI's generative-models code (SDXL, SDXL-Turbo, SVD) and diffusers' "
            "SDXL pipelines",
            _bits_of_int(0xB3EC907BB19E, 48), 39),
    Payload("flux", "FLUX.1",
            "the black-forest-labs/flux reference code",
            _bits_of_int(0x2AFE879CF52E, 46), 38),
)

_CAVEATS = (
    "The dwtDct watermark algorithm and this payload are public: anyone can add the mark to any "
    "image. A found mark shows the pixels went through software that embeds it (normally the "
    "generator's reference code), not who made the image.",
)


# ----------------------------------------------------------------------------- decoding

def opencv_u_channel(rgb: np.ndarray) -> np.ndarray:
    """U plane of ``cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)`` for 8-bit input, bit-exact.

    ``Y = (1868 B + 9617 G + 4899 R + 2^13) >> 14`` and
    ``U = sat(((B - Y) * 8061 + 128 * 2^14 + 2^13) >> 14)`` (arithmetic shift), as in OpenCV's
    ``RGB2YCrCb_i<uchar>`` (its SIMD path gives the same integers; IPP is disabled for this
    conversion).  Input is an ``H x W x 3`` uint8 **RGB** array.
    """
    rgb32 = rgb.astype(np.int32, copy=False)
    r, g, b = rgb32[..., 0], rgb32[..., 1], rgb32[..., 2]
    half = 1 << (_YUV_SHIFT - 1)
    y = (b * _B2Y + g * _G2Y + r * _R2Y + half) >> _YUV_SHIFT
    u = ((b - y) * _B2UI + (128 << _YUV_SHIFT) + half) >> _YUV_SHIFT
    return np.clip(u, 0, 255).astype(np.uint8)


def float_u_channel(rgb: np.ndarray) -> np.ndarray:
    """U plane of OpenCV's *float* ``COLOR_BGR2YUV`` applied to 0..255 values.

    OpenCV's float conversion assumes a 0..1 range and offsets U by 0.5, not 128: this is the plane
    the SDXL (generative-models, diffusers) and FLUX embedders mark, since they hand the library a
    float32 array in 0..255.  Read from 8-bit pixels it differs from :func:`opencv_u_channel` by
    about 127.5, which moves every block coefficient by about 255 and often breaks the reference
    reading.
    """
    rgb64 = rgb.astype(np.float64)
    r, g, b = rgb64[..., 0], rgb64[..., 1], rgb64[..., 2]
    y = 0.114 * b + 0.587 * g + 0.299 * r
    return (b - y) * 0.492 + 0.5


_U_PLANES = {"uint8": opencv_u_channel, "float": float_u_channel}
#: The two readings: ``uint8`` is the reference decoder's (and how the SD 1.x/2.x scripts embed),
#: ``float`` is how SDXL and FLUX embed (see :func:`float_u_channel`).
DOMAINS = tuple(_U_PLANES)


def _block_votes(u: np.ndarray) -> np.ndarray:
    """One vote (0/1) per 4x4 block of the Haar approximation of ``u``, in raster order.

    The numpy + PyWavelets reference of the compiled :func:`_votes_kernel` (used by the tests and
    by ``bench/watermark_bench.py``, not by the decoder).
    """
    rows, cols = u.shape
    rows4, cols4 = rows // 4 * 4, cols // 4 * 4
    if rows4 == 0 or cols4 == 0:
        return np.zeros(0, dtype=np.uint8)
    # pywt (not a hand-written sum) so that the float rounding, and hence ties and the
    # `mod 36 > 18` boundary, are those of the reference; the approximation band of
    # `pywt.dwt2(u, "haar")` (rows first, then columns, as dwtn does) without the detail bands.
    plane = np.asarray(u[:rows4, :cols4], dtype=np.float64)
    ca = pywt.dwt(pywt.dwt(plane, "haar", axis=0)[0], "haar", axis=1)[0]
    br, bc = ca.shape[0] // BLOCK, ca.shape[1] // BLOCK
    if br == 0 or bc == 0:
        return np.zeros(0, dtype=np.uint8)
    blocks = (ca[: br * BLOCK, : bc * BLOCK]
              .reshape(br, BLOCK, bc, BLOCK).transpose(0, 2, 1, 3).reshape(br * bc, BLOCK * BLOCK))
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1  # largest non-DC coefficient, first on ties
    val = np.abs(blocks[np.arange(blocks.shape[0]), pos])
    return (np.mod(val, SCALE) > 0.5 * SCALE).astype(np.uint8)


@dataclass
class _Tally:
    """Running vote sums per bit position for one payload length."""

    length: int
    ones: np.ndarray
    counts: np.ndarray

    @classmethod
    def new(cls, length: int) -> "_Tally":
        return cls(length, np.zeros(length, dtype=np.float64), np.zeros(length, dtype=np.int64))

    def add(self, votes: np.ndarray, first_block: int) -> None:
        if votes.size == 0:
            return
        idx = (np.arange(votes.size, dtype=np.int64) + first_block) % self.length
        self.ones += np.bincount(idx, weights=votes, minlength=self.length)
        self.counts += np.bincount(idx, minlength=self.length)

    def bits(self) -> np.ndarray:
        """``mean * 255 > 127`` as imwatermark computes it (a bit with no block reads 0)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.counts > 0, self.ones / np.maximum(self.counts, 1), 0.0)
        return (mean * 255 > 127).astype(np.uint8)


def _reference_tally(image: Image.Image, lengths: list[int], domains: tuple[str, ...] = DOMAINS,
                     pixels: np.ndarray | None = None) -> tuple[dict[tuple[str, int], _Tally], int]:
    """:func:`_tally` computed with numpy and PyWavelets (float64 U planes, :func:`_block_votes`).

    The reference the compiled decoder is checked against (tests, ``bench/watermark_bench.py``);
    the decoder itself does not use it.
    """
    rgb_image = _as_rgb(image)
    width, height = rgb_image.size
    tallies = {(d, n): _Tally.new(n) for d in domains for n in lengths}
    # Block rows cover 8 pixel rows; strips of whole block rows decode exactly like the whole image
    # (the Haar transform of an even-length signal has no boundary effects).
    usable_rows = height // 8 * 8
    strip = max(8, (_STRIP_PIXELS // max(width, 1)) // 8 * 8)
    done = 0
    for top in range(0, usable_rows, strip):
        bottom = min(top + strip, usable_rows)
        rgb = np.asarray(rgb_image.crop((0, top, width, bottom)), dtype=np.uint8)
        for domain in domains:
            votes = _block_votes(_U_PLANES[domain](rgb))
            for (d, _n), t in tallies.items():
                if d == domain:
                    t.add(votes, done)
        done += votes.size
    return tallies, done


# ----------------------------------------------------------------------------- compiled decoder

#: PyWavelets' ``haar`` analysis low-pass tap (both taps are equal), taken from pywt itself so the
#: compiled kernel multiplies by the very same double.
_HAAR_LO = float(pywt.Wavelet("haar").dec_lo[0])
#: Whether the kernel is cached on disk (False only when numba found no writable cache dir).
KERNEL_CACHED = True


def _kernel(fn):
    """A compiled kernel with numba's disk cache (:func:`consentry.jit.cached_njit`); ``KERNEL_CACHED``
    turns False when the cache cannot be used (each process then compiles)."""
    global KERNEL_CACHED
    kernel, cached = cached_njit(fn)
    KERNEL_CACHED = KERNEL_CACHED and cached
    return kernel


@_kernel
def _block_vote(p, c):
    """Vote of one 8x8 U block ``p`` (float64): Haar approximation, largest non-DC coefficient.

    The same float operations as ``pywt.dwt(pywt.dwt(p, "haar", axis=0)[0], "haar", axis=1)[0]``
    (``c*a + c*b`` per pair, rows first; a sum of two products is the same whichever comes first),
    then ``np.argmax`` (first maximum wins) over ``|ca|`` without ``[0, 0]``, and
    ``|v| mod 36 > 18`` (``np.mod`` of a non-negative value is ``fmod``, which is exact).
    """
    best = -1.0
    for i in range(4):
        for j in range(4):
            left = c * p[2 * i, 2 * j] + c * p[2 * i + 1, 2 * j]  # row pass, column 2j
            right = c * p[2 * i, 2 * j + 1] + c * p[2 * i + 1, 2 * j + 1]  # column 2j+1
            v = abs(c * left + c * right)  # column pass
            if (i > 0 or j > 0) and v > best:
                best = v
    return 1 if np.fmod(best, 36.0) > 18.0 else 0


@_kernel
def _votes_kernel(rgb, c, want_u8, want_float, votes_u8, votes_float):
    """Votes of every 8x8 pixel block of ``rgb`` (``H x W x 3`` uint8 RGB), raster order.

    Per block, the U values of :func:`opencv_u_channel` (integer, bit-exact) and of
    :func:`float_u_channel` (float64, same expression order as numpy evaluates it) are computed for
    its 64 pixels only and voted with :func:`_block_vote`; no full-size plane is materialised.
    Blocks are those of the reference: ``H // 8`` rows of ``W // 8`` (the Haar band of the plane
    cropped to a multiple of 4, cut into whole 4x4 blocks).
    """
    rows = rgb.shape[0] // 8
    cols = rgb.shape[1] // 8
    pu = np.empty((8, 8), dtype=np.float64)
    pf = np.empty((8, 8), dtype=np.float64)
    for bi in range(rows):
        for bj in range(cols):
            for i in range(8):
                y0 = bi * 8 + i
                for j in range(8):
                    x0 = bj * 8 + j
                    r = np.int64(rgb[y0, x0, 0])
                    g = np.int64(rgb[y0, x0, 1])
                    b = np.int64(rgb[y0, x0, 2])
                    if want_u8:
                        y = (b * 1868 + g * 9617 + r * 4899 + 8192) >> 14
                        u = ((b - y) * 8061 + (128 << 14) + 8192) >> 14
                        if u < 0:
                            u = 0
                        elif u > 255:
                            u = 255
                        pu[i, j] = np.float64(u)
                    if want_float:
                        bf = np.float64(b)
                        yf = 0.114 * bf + 0.587 * np.float64(g) + 0.299 * np.float64(r)
                        pf[i, j] = (bf - yf) * 0.492 + 0.5
            k = bi * cols + bj
            if want_u8:
                votes_u8[k] = _block_vote(pu, c)
            if want_float:
                votes_float[k] = _block_vote(pf, c)


@_kernel
def _tally_kernel(votes_u8, votes_float, first, lengths, ones, counts):
    """Add one strip's votes (block ``first`` onwards) to the tallies of every payload length:
    ``ones[domain, l, bit]`` (0: uint8, 1: float) and ``counts[l, bit]``, bit = block mod length."""
    for li in range(lengths.shape[0]):
        n = lengths[li]
        bit = first % n
        for k in range(votes_u8.shape[0]):
            ones[0, li, bit] += votes_u8[k]
            ones[1, li, bit] += votes_float[k]
            counts[li, bit] += 1
            bit += 1
            if bit == n:
                bit = 0


def _tally(image: Image.Image, lengths: list[int], domains: tuple[str, ...] = DOMAINS,
           pixels: np.ndarray | None = None) -> tuple[dict[tuple[str, int], _Tally], int]:
    """Decode the U-channel votes strip by strip: tallies per (domain, length), and the block count.

    Gives exactly what :func:`_reference_tally` (numpy + PyWavelets) gives, several times faster:
    the compiled kernels read the 8-bit pixels once for both readings, compute only the Haar
    approximation band, never build a float64 copy of the image, and count the votes per bit
    themselves. ``pixels``: the image as an ``H x W x 3`` uint8 array when the caller has it
    (strips are then views of it, not copies).
    """
    lengths = list(dict.fromkeys(lengths))
    if (pixels is None or pixels.dtype != np.uint8 or pixels.shape != (image.height, image.width, 3)):
        pixels = None
        rgb_image = _as_rgb(image)
        width, height = rgb_image.size
    else:
        height, width = pixels.shape[:2]
    lens = np.asarray(lengths, dtype=np.int64)
    width_n = max(lengths) if lengths else 1
    ones = np.zeros((2, len(lengths), width_n), dtype=np.float64)
    counts = np.zeros((len(lengths), width_n), dtype=np.int64)
    usable_rows = height // 8 * 8
    done = 0
    if width >= 8 and usable_rows > 0:
        strip = max(8, (_STRIP_PIXELS // max(width, 1)) // 8 * 8)
        want_u8, want_float = "uint8" in domains, "float" in domains
        for top in range(0, usable_rows, strip):
            bottom = min(top + strip, usable_rows)
            if pixels is not None:
                rgb = pixels[top:bottom]
            elif top == 0 and bottom == usable_rows:  # one strip: no crop copy (the kernel ignores
                # the rows past the last whole block row, as the reference's crop does)
                rgb = np.asarray(rgb_image, dtype=np.uint8)
            else:
                rgb = np.asarray(rgb_image.crop((0, top, width, bottom)), dtype=np.uint8)
            n = (rgb.shape[0] // 8) * (width // 8)
            votes_u8 = np.zeros(n, dtype=np.uint8)
            votes_float = np.zeros(n, dtype=np.uint8)
            _votes_kernel(np.ascontiguousarray(rgb), _HAAR_LO, want_u8, want_float, votes_u8, votes_float)
            _tally_kernel(votes_u8, votes_float, done, lens, ones, counts)
            done += n
    tallies = {}
    for li, n in enumerate(lengths):
        for d in domains:
            tallies[(d, n)] = _Tally(n, ones[DOMAINS.index(d), li, :n].copy(), counts[li, :n].copy())
    return tallies, done


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    from consentry.media.image import to_rgb

    return to_rgb(image)


def decode_dwtdct(image: Image.Image, bit_length: int, domain: str = "uint8") -> np.ndarray:
    """The ``bit_length`` bits an ``imwatermark`` ``dwtDct`` decoder reads from ``image``.

    With ``domain="uint8"`` (default): the same result as
    ``WatermarkDecoder('bits', bit_length).decode(bgr, 'dwtDct')`` on the BGR pixels of ``image``,
    without OpenCV.  ``domain="float"`` reads the U plane as the SDXL/FLUX embedders wrote it
    (:func:`float_u_channel`).  Works on any size (the size checks are the caller's); bits that no
    block carries read as 0.  Returns a uint8 array of 0/1.
    """
    if bit_length <= 0:
        raise ValueError("bit_length must be positive")
    if domain not in _U_PLANES:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    tallies, _blocks = _tally(image, [bit_length], (domain,))
    return tallies[(domain, bit_length)].bits()


# ----------------------------------------------------------------------------- analysis

def analyze_watermarks(image: Image.Image, limits: MediaLimits | None = None,
                       rgb: np.ndarray | None = None) -> Findings:
    """Look for every known ``dwtDct`` payload in ``image`` (RGB, at its original size).
    ``rgb``: ``image`` as an ``H x W x 3`` uint8 array, when the caller has made one already.

    Evidence (``watermark:<key>``, ``ai_generated``, ``strong``) only for a payload whose
    bit-match count reaches its threshold; ``raw["watermark"]`` lists the count of every payload.
    """
    limits = limits or get_settings().limits
    found = Findings()
    width, height = image.size
    pixels = width * height
    report: dict[str, Any] = {
        "method": "invisible-watermark dwtDct (U channel, Haar DWT, 4x4 blocks, step 36)",
        "width": width,
        "height": height,
        "payloads": [],
    }
    found.raw["watermark"] = report
    if pixels < MIN_PIXELS:
        report["status"] = "not checked"
        found.notes.append(
            f"watermark: not checked: the image is {width}x{height} = {pixels} pixels, fewer than "
            f"the {MIN_PIXELS} (256x256) the dwtDct embedder needs")
        return found
    if width % 8:
        # The mark sits on 8x8 blocks numbered in raster order from the left edge of a picture
        # whose width is a multiple of 8 (every generator output is): a crop of any width from
        # either side renumbers the blocks and destroys it (measured, tests), so a width that is
        # not a multiple of 8 cannot carry a readable mark - bar a strip of 1-7 columns added on
        # the right edge alone, which this note names.
        report["status"] = "not checked"
        found.notes.append(
            f"watermark: not checked: the width ({width} pixels) is not a multiple of 8; the "
            "generators' invisible watermark is read on an 8-pixel grid from the left edge of "
            "their (multiple-of-8) output and does not survive a crop from either side (a strip "
            "of 1-7 columns added on the right edge alone is the exception)")
        return found
    if pixels > limits.max_pixels:
        report["status"] = "not checked"
        found.notes.append(
            f"watermark: not checked: the image has {pixels} pixels, over the limit of "
            f"{limits.max_pixels}; it is not downscaled, which would destroy the watermark")
        return found
    lengths = sorted({p.length for p in PAYLOADS})
    tallies, blocks = _tally(image, lengths, pixels=rgb)
    report["blocks"] = blocks
    report["status"] = "checked"
    candidates: list[tuple[float, int, Evidence, dict[str, Any]]] = []
    for i, p in enumerate(PAYLOADS):
        entry, evidence = _judge(p, {d: tallies[(d, p.length)] for d in DOMAINS}, blocks, found)
        report["payloads"].append(entry)
        if evidence is not None:
            candidates.append((chance_p_value(p.length, entry["bits_matched"]), i, evidence, entry))
    # One dwtDct mark overwrites another (same coefficients), so at most one payload is really
    # there; and payloads are not independent of each other: SD 2.x's 32-bit ASCII "SDV2" repeats
    # inside SD 1.x's 136-bit period (both multiples of 8), so an SD 2.x mark also reads as a
    # partial SD 1.x match (up to 94 of 136 bits measured).  Only the most significant is evidence.
    candidates.sort(key=lambda c: (c[0], c[1]))
    for rank, (_p, _i, evidence, entry) in enumerate(candidates):
        if rank == 0:
            found.evidence.append(evidence)
        else:
            winner = candidates[0][3]["payload"]
            entry["result"] = "not found"
            entry["reason"] = (f"at its threshold, but explained by the stronger {winner} match "
                               "(one dwtDct mark overwrites another)")
    return found


def _judge(p: Payload, tallies: dict[str, _Tally], blocks: int, found: Findings,
           ) -> tuple[dict[str, Any], Evidence | None]:
    entry: dict[str, Any] = {
        "payload": p.key,
        "generator": p.generator,
        "bits": p.length,
        "threshold": p.threshold,
        "threshold_p_value": _round_p(p.threshold_p_value),
    }
    if blocks < p.length:
        entry["result"] = "not checked"
        found.notes.append(
            f"watermark: {p.key}: not checked: the image has {blocks} 8x8 blocks, fewer than the "
            f"{p.length} bits of the payload")
        return entry, None
    expected = np.asarray(p.bits, dtype=np.uint8)
    decoded = {d: t.bits() for d, t in tallies.items()}
    counts = {d: int(np.sum(bits == expected)) for d, bits in decoded.items()}
    domain = max(DOMAINS, key=lambda d: counts[d])  # DOMAINS order breaks ties: uint8 first
    matched = counts[domain]
    entry.update({
        "bits_matched": matched,
        "reading": domain,
        "bits_matched_by_reading": counts,
        "p_value": _round_p(chance_p_value(p.length, matched)),
        "decoded": bits_to_hex(decoded[domain]),
        "blocks_per_bit": int(tallies[domain].counts.min()),
    })
    if matched < p.threshold:
        entry["result"] = "not found"
        return entry, None
    entry["result"] = "found"
    details = {
        "bits_matched": matched,
        "bits": p.length,
        "threshold": p.threshold,
        "payload": p.hex,
        "decoded": entry["decoded"],
        "p_value": entry["p_value"],
        "threshold_p_value": entry["threshold_p_value"],
        "reading": domain,
        "bits_matched_by_reading": counts,
        "method": "invisible-watermark dwtDct",
        "embedded_by": p.embedded_by,
        "blocks_per_bit": entry["blocks_per_bit"],
    }
    summary = (
        f"The invisible watermark of {p.generator} is present: {matched} of {p.length} bits match "
        f"its payload 0x{p.hex} (invisible-watermark dwtDct, as embedded by {p.embedded_by}). "
        f"Without this watermark, {p.threshold} or more matching bits happen by chance with "
        f"probability about {p.threshold_p_value:.1e}.")
    caveats = _CAVEATS
    if matched < p.length:
        caveats = caveats + (f"{p.length - matched} of {p.length} bits differ (re-encoding or "
                             "editing damages the mark).",)
    if p.key == "sd1":
        caveats = caveats + ("A Stable Diffusion 2.x mark (\"SDV2\") can also read as a partial "
                             "SD 1.x match; the sd2 count is in the raw report.",)
    evidence = Evidence(source=f"watermark:{p.key}", claim="ai_generated", strength="strong",
                        summary=summary, details=details, caveats=caveats)
    return entry, evidence


def _round_p(p: float) -> float:
    """Two significant digits: a p-value is an estimate, not a measurement."""
    if p <= 0.0:
        return 0.0
    return float(f"{p:.2g}")


__all__ = [
    "BLOCK", "DOMAINS", "MIN_PIXELS", "PAYLOADS", "Payload", "READINGS", "SCALE",
    "analyze_watermarks", "binomial_tail", "bits_to_hex", "chance_p_value", "decode_dwtdct",
    "float_u_channel", "opencv_u_channel",
]
