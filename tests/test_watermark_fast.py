"""The compiled dwtDct decoder gives exactly what the numpy + PyWavelets reference gives.

``watermark._tally`` (numba kernel: per 8x8 block, U of both readings from the 8-bit pixels, Haar
approximation band only) against ``watermark._reference_tally`` (float64 U planes,
``pywt.dwt`` twice, ``_block_votes``): the same vote sums and block counts for every payload
length and reading, hence the same bits, counts and decisions, on random images of many sizes,
low-entropy images (ties between coefficients), images marked by the test embedder at several
JPEG qualities, and benign photographs.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from numba import njit
from PIL import Image, ImageDraw

from consentry.config import MediaLimits
from consentry.evidence import watermark as wm
from consentry.evidence.watermark import PAYLOADS, analyze_watermarks, decode_dwtdct
from consentry.media.image import load_image
from imagegen import scene, texture
from wm_embed import bits_from_bytes, bits_from_message, embed_dwtdct

LENGTHS = sorted({p.length for p in PAYLOADS})
LIMITS = MediaLimits()
BITS = {
    "sd1": bits_from_bytes(b"StableDiffusionV1"),
    "sd2": bits_from_bytes(b"SDV2"),
    "sdxl": bits_from_message(0xB3EC907BB19E),
    "flux": bits_from_message(0x2AFE879CF52E),
}


def assert_same_tally(img: Image.Image, domains=wm.DOMAINS, lengths=LENGTHS) -> int:
    """New and reference tallies are identical (exact float sums of 0/1 votes); returns blocks."""
    new, n_new = wm._tally(img, lengths, domains)
    ref, n_ref = wm._reference_tally(img, lengths, domains)
    assert n_new == n_ref
    assert new.keys() == ref.keys()
    # the scan hands over the pixel array it already has: the same tallies from it
    shared, n_shared = wm._tally(img, lengths, domains, pixels=np.asarray(img.convert("RGB")))
    assert n_shared == n_ref
    for key in ref:
        assert np.array_equal(new[key].counts, ref[key].counts), key
        assert np.array_equal(new[key].ones, ref[key].ones), (img.size, key)
        assert np.array_equal(new[key].bits(), ref[key].bits()), key
        assert np.array_equal(shared[key].ones, ref[key].ones), (img.size, key, "pixels")
        assert np.array_equal(shared[key].counts, ref[key].counts), (key, "pixels")
    return n_new


def reference_findings(img: Image.Image, monkeypatch) -> dict:
    with monkeypatch.context() as m:
        m.setattr(wm, "_tally", wm._reference_tally)
        found = analyze_watermarks(img)
    return _as_json(found)


def _as_json(found) -> dict:
    return json.loads(json.dumps({"evidence": [e.to_dict() for e in found.evidence],
                                  "raw": found.raw, "notes": found.notes}))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return load_image(buf.getvalue(), LIMITS)


def png(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return load_image(buf.getvalue(), LIMITS)


# ----------------------------------------------------------------------------- random images

SIZES = [(1, 1), (7, 7), (8, 8), (9, 15), (15, 9), (8, 300), (300, 8), (33, 17), (64, 64),
         (257, 263), (256, 256), (511, 385), (1001, 97), (97, 1001), (1280, 720)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_random_images_of_many_sizes(size):
    rng = np.random.default_rng(size[0] * 10007 + size[1])
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    blocks = assert_same_tally(img)
    assert blocks == (size[0] // 8) * (size[1] // 8)


def test_each_reading_alone_and_decode_dwtdct():
    rng = np.random.default_rng(5)
    img = Image.fromarray(rng.integers(0, 256, (300, 410, 3), dtype=np.uint8), "RGB")
    for domain in wm.DOMAINS:
        assert_same_tally(img, (domain,))
        for n in (1, 7, 48, 136, 2000):  # 2000 > blocks: bits no block carries read 0 in both
            ref = wm._reference_tally(img, [n], (domain,))[0][(domain, n)].bits()
            assert np.array_equal(decode_dwtdct(img, n, domain), ref)


def test_low_entropy_images_with_ties():
    """Few distinct values: many equal coefficient magnitudes, so argmax ties (first wins) and
    exact multiples of the Haar scale; flat, two-colour, striped and stepped pictures."""
    rng = np.random.default_rng(11)
    palettes = [np.array([[0, 0, 0], [255, 255, 255]]), np.array([[10, 200, 30], [10, 201, 30]]),
                rng.integers(0, 256, (3, 3))]
    for k, pal in enumerate(palettes):
        idx = rng.integers(0, len(pal), (136, 264))
        assert_same_tally(Image.fromarray(pal[idx].astype(np.uint8), "RGB"))
    for color in ((0, 0, 0), (255, 255, 255), (0, 0, 255), (255, 255, 0), (37, 140, 201)):
        assert_same_tally(Image.new("RGB", (264, 136), color))
    stripes = np.zeros((128, 256, 3), dtype=np.uint8)
    stripes[:, ::2] = (250, 20, 240)
    assert_same_tally(Image.fromarray(stripes, "RGB"))
    steps = (np.arange(256, dtype=np.uint8)[None, :, None] * np.ones((96, 1, 3), np.uint8))
    assert_same_tally(Image.fromarray(np.ascontiguousarray(steps), "RGB"))


def test_strips_and_other_pixel_modes(monkeypatch):
    rng = np.random.default_rng(17)
    img = Image.fromarray(rng.integers(0, 256, (1003, 330, 3), dtype=np.uint8), "RGB")
    whole = wm._tally(img, LENGTHS)
    monkeypatch.setattr(wm, "_STRIP_PIXELS", 330 * 24)  # three block rows per strip, last short
    assert_same_tally(img)
    strips = wm._tally(img, LENGTHS)
    assert strips[1] == whole[1]
    for key in whole[0]:
        assert np.array_equal(strips[0][key].ones, whole[0][key].ones)
    monkeypatch.undo()
    for mode in ("L", "RGBA", "P", "CMYK", "LA", "I;16"):
        assert_same_tally(img.convert(mode) if mode != "I;16" else img.convert("L").convert("I;16"))


# ----------------------------------------------------------------------------- marked images

@pytest.mark.parametrize("key", sorted(BITS))
def test_marked_images_all_strengths(key, monkeypatch):
    """Marks of the test embedder (both embedding paths) kept losslessly and at JPEG 95/80/60/40:
    identical tallies and identical findings (found/not found, counts, reading, p-values)."""
    pic = texture(512, 384, 3) if key in ("sd1", "sdxl") else scene(520, 392, 4)
    results = []
    for mode in ("uint8", "float"):
        marked = embed_dwtdct(pic, BITS[key], mode=mode)
        copies = [("png", png(marked))] + [(f"q{q}", jpeg(marked, q)) for q in (95, 80, 60, 40)]
        for name, img in copies:
            assert_same_tally(img)
            new = _as_json(analyze_watermarks(img))
            assert new == reference_findings(img, monkeypatch)
            results.append((mode, name, [e["source"] for e in new["evidence"]]))
    # the inputs do exercise both decisions: the lossless copies are found, strong JPEG is not
    assert ("uint8", "png", [f"watermark:{key}"]) in results
    assert any(not found for _m, _n, found in results)


# ----------------------------------------------------------------------------- benign pictures

def test_benign_pictures_and_photographs(testvectors, monkeypatch):
    pictures = [texture(640, 480, 1), scene(800, 600, 2), scene(333, 257, 9)]
    drawn = Image.new("RGB", (500, 400), (120, 170, 220))
    d = ImageDraw.Draw(drawn)
    d.ellipse([40, 30, 300, 260], fill=(240, 200, 40))
    d.rectangle([250, 200, 480, 390], fill=(60, 120, 60))
    pictures.append(drawn)
    photos = sorted(p for p in (testvectors / "pdq").rglob("*")
                    if p.suffix.lower() in (".jpg", ".png") and p.is_file())
    assert photos
    for p in photos[::4]:
        pictures.append(load_image(p.read_bytes(), LIMITS))
    for img in pictures:
        assert_same_tally(img)
        if img.width * img.height >= wm.MIN_PIXELS:
            new = _as_json(analyze_watermarks(img))
            assert new == reference_findings(img, monkeypatch)
            assert new["evidence"] == []


# ----------------------------------------------------------------------------- float operations

def test_kernel_does_not_fuse_multiply_add():
    """Bit-exactness relies on ``c*a + c*b`` being two roundings, as in PyWavelets' C loop: numba
    must not contract it into a fused multiply-add (it does not without ``fastmath``).  Compiled
    afresh (cached code cannot be inspected)."""
    vote = njit(wm._block_vote.py_func)
    plane = np.arange(64, dtype=np.float64).reshape(8, 8) * 3.7
    assert vote(plane, wm._HAAR_LO) == wm._block_vote(plane, wm._HAAR_LO)
    kernel = njit(wm._votes_kernel.py_func)  # also the float U plane's products and sums
    rgb = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    out = [np.zeros(6, np.uint8) for _ in range(4)]
    kernel(rgb, wm._HAAR_LO, True, True, out[0], out[1])
    wm._votes_kernel(rgb, wm._HAAR_LO, True, True, out[2], out[3])
    assert np.array_equal(out[0], out[2]) and np.array_equal(out[1], out[3])
    for fn in (vote, kernel):
        for asm in fn.inspect_asm().values():
            assert "fmadd" not in asm.lower() and "fmsub" not in asm.lower()
