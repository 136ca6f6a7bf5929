"""Our PDQ kernels (consentry.signals.pdq_kernels) are bit-identical to ``pdqhash`` (Meta's C++).

Hash AND quality, single and all 8 dihedral variants, on: every PDQ test-vector image (decoded
as our pipeline decodes it), bench-corpus-like re-encodings (the resize + JPEG/PNG of
bench/hash_bench.py), the sizes where the C++ takes a special path (< 5 pixels: all zeros and
quality 0; exactly 64x64: the single hash skips the box filter), and a property test of random
images (tiny, odd, 1-pixel-wide, extreme aspect ratios, flat and grey). ``pdqhash`` is the oracle.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from consentry.media.content import Content
from consentry.signals import pdq_kernels
from consentry.signals.pdq import (
    PDQ_MIN_QUALITY,
    PDQSignal,
    pdq_dihedral_from_image,
    pdq_from_image,
    reference_pdq,
)
from consentry.signals.pdq_kernels import MIN_HASHABLE_DIM, pdq_float256, pdq_hash, pdq_hash_dihedral

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def assert_same_as_pdqhash(pixels: np.ndarray, label: str = "") -> None:
    """Single and dihedral: our (hex, quality) == pdqhash's, bit for bit."""
    assert pdq_hash(pixels) == reference_pdq(pixels), f"single {pixels.shape} {label}"
    assert pdq_hash_dihedral(pixels) == reference_pdq(pixels, dihedral=True), f"dihedral {pixels.shape} {label}"


def _vector_images(testvectors):
    return [p for p in sorted((testvectors / "pdq").rglob("*")) + sorted((testvectors / "pytx").rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES]


def test_every_pdq_test_vector_image(testvectors, limits):
    paths = _vector_images(testvectors)
    assert len(paths) >= 38  # bridge-mods, misc-images (+ modes), dih, labelme, pytx resources
    seen = set()
    for path in paths:
        data = path.read_bytes()
        if data in seen:  # dih/bridge-1-original.jpg is bridge-mods/aaa-orig.jpg
            continue
        seen.add(data)
        pixels = np.asarray(Content.from_path(path, limits).image())
        assert pixels.shape[:2] != (64, 64)
        # pdqhash's single and dihedral paths run the same code except at exactly 64x64 (see
        # pdq/cpp/hashing/pdqhashing.cpp), so one pdqhash call is the oracle for both of ours here.
        ref_variants, ref_quality = reference_pdq(pixels, dihedral=True)
        label = str(path.relative_to(testvectors))
        assert pdq_hash(pixels) == (ref_variants[0], ref_quality), label
        assert pdq_hash_dihedral(pixels) == (ref_variants, ref_quality), label
    assert reference_pdq(pixels) == (ref_variants[0], ref_quality)  # the claim above, on the last


def test_bench_corpus_like_reencodings(testvectors):
    """What bench/hash_bench.py builds: LANCZOS resizes re-encoded as JPEG (q 90) and PNG."""
    sources = {"pdq/bridge-mods/aaa-orig.jpg": (0.25, 0.5),
               "pdq/misc-images/small.jpg": (0.25, 0.5, 1.5),
               "pdq/reg-test-input/labelme-subset/q2821.jpg": (0.25, 0.5, 1.5),
               "pytx/hashing-resources/rgb.jpeg": (0.5, 1.5)}
    for name, scales in sources.items():
        src = testvectors / name
        img = Image.open(src).convert("RGB")
        for scale in scales:
            small = img.resize((max(16, int(img.width * scale)), max(16, int(img.height * scale))),
                               Image.Resampling.LANCZOS)
            for fmt in ("JPEG", "PNG"):
                buf = io.BytesIO()
                small.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
                pixels = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
                assert_same_as_pdqhash(pixels, f"{src.name} x{scale} {fmt}")


# ------------------------------------------------------------------ special paths and edge cases


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (4, 4), (4, 400), (400, 4),
                                   (1, 3000), (3000, 1), (2, 2)])
def test_below_the_minimum_size_hashes_to_zero_with_quality_zero(shape):
    pixels = _noise(*shape)
    assert min(shape) < MIN_HASHABLE_DIM
    assert_same_as_pdqhash(pixels)
    value, quality = pdq_hash(pixels)
    assert value == "0" * 64 and quality == 0


@pytest.mark.parametrize("shape", [(5, 5), (5, 6), (6, 5), (5, 2000), (2000, 5), (8, 8), (16, 16),
                                   (63, 64), (64, 63), (65, 65), (127, 129), (128, 128), (129, 127),
                                   (255, 257), (1, 1)])
def test_small_odd_and_window_boundary_sizes(shape):
    for seed in range(3):
        assert_same_as_pdqhash(_noise(*shape, seed), f"seed {seed}")


def assert_same_floats_as_pdqhash(pixels: np.ndarray) -> None:
    """The 16x16 float DCT before thresholding (pdqhash.compute_float) equal bit for bit."""
    import pdqhash

    ref, ref_q = pdqhash.compute_float(np.ascontiguousarray(pixels))
    ours, q = pdq_float256(pixels)
    assert q == ref_q
    assert np.array_equal(ours.reshape(256)[::-1].view(np.uint32), np.asarray(ref, np.float32).view(np.uint32))


def test_exactly_64x64_single_hash_skips_the_filter_like_the_cpp():
    """pdqhash's single hash of a 64x64 image uses the luma as is (no box filter), its dihedral
    path filters. Our floats match the single path bit for bit, and the filter is not a no-op at
    64x64 (so skipping it is a real special path)."""
    for seed in range(4):
        pixels = _noise(64, 64, seed)
        assert_same_as_pdqhash(pixels, f"seed {seed}")
        assert_same_floats_as_pdqhash(pixels)
        luma = np.empty((64, 64), np.float32)
        pdq_kernels._luma_rows(pixels, 0, 64, luma)
        assert not np.array_equal(luma, pdq_kernels._downsample64(pixels))


@pytest.mark.parametrize("shape", [(5, 5), (9, 700), (700, 9), (63, 64), (65, 65), (128, 128), (129, 300),
                                   (480, 640)])
def test_dct_floats_bit_identical(shape):
    assert_same_floats_as_pdqhash(_noise(*shape, 3))


def test_large_image_and_non_contiguous_input():
    big = _noise(1500, 2100, 7)
    big[:, :700] //= 3  # some structure so the DCT is not pure noise
    assert_same_as_pdqhash(big)
    view = big[::3, 1::2]  # strided view: must hash like its contiguous copy
    assert pdq_hash(view) == pdq_hash(np.ascontiguousarray(view)) == reference_pdq(np.ascontiguousarray(view))
    bgr_view = big[:400, :500, ::-1]
    assert pdq_hash(bgr_view) == reference_pdq(np.ascontiguousarray(bgr_view))


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 3), np.uint16)])
def test_rejects_what_is_not_8_bit_rgb(bad):
    with pytest.raises(ValueError):
        pdq_hash(bad)
    with pytest.raises(ValueError):
        pdq_hash_dihedral(bad)


def test_low_quality_behaviour_unchanged():
    """Flat and near-flat images: same (hash, quality) as pdqhash, quality < 50, not usable."""
    flat = Image.new("RGB", (300, 200), (120, 130, 140))
    near = np.full((240, 320, 3), 90, np.uint8)
    near[100:104, 150:160] = 95
    for img in (flat, Image.fromarray(near)):
        pixels = np.asarray(img)
        assert_same_as_pdqhash(pixels)
        value, quality = pdq_from_image(img)
        assert (value, quality) == reference_pdq(pixels) and quality < PDQ_MIN_QUALITY
        assert pdq_dihedral_from_image(img) == reference_pdq(pixels, dihedral=True)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        signal = PDQSignal.compute(Content.from_bytes(buf.getvalue(), _limits()))
        assert signal.value == value and signal.quality == quality
        assert signal.extra["usable"] is False


def _limits():
    from consentry.config import MediaLimits

    return MediaLimits()


# ------------------------------------------------------------------ property test


def _image(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    if kind == "grey":
        g = rng.integers(0, 256, (h, w), dtype=np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if kind == "gradient":
        y, x = np.broadcast_arrays(np.linspace(0, 255, h)[:, None], np.linspace(0, 255, w)[None, :])
        return np.stack([(y + x) / 2, y, 255 - x], axis=-1).astype(np.uint8)
    cells = rng.integers(0, 256, (h // 7 + 1, w // 7 + 1, 3), dtype=np.uint8)  # blocks
    return np.ascontiguousarray(cells.repeat(7, 0).repeat(7, 1)[:h, :w])


_side = st.one_of(st.integers(1, 12), st.integers(13, 300), st.sampled_from([63, 64, 65, 127, 128, 129, 256]),
                  st.integers(301, 1400))


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["noise", "flat", "grey", "gradient", "blocks"]), h=_side, w=_side,
       seed=st.integers(0, 2**32 - 1))
def test_property_random_images_bit_identical(kind, h, w, seed):
    pixels = _image(kind, h, w, seed)
    assert_same_as_pdqhash(pixels, kind)
    if min(h, w) >= MIN_HASHABLE_DIM and h * w <= 90_000:
        assert_same_floats_as_pdqhash(pixels)


# ------------------------------------------------------------------ compile cost: numba's cache


def test_kernels_are_cached_on_disk():
    """Every kernel is njit(cache=True) (a worker loads machine code instead of compiling)."""
    assert pdq_kernels.CACHED
    from numba.core.caching import NullCache

    assert not isinstance(pdq_kernels._pdq._cache, NullCache)
    assert not isinstance(pdq_kernels._downsample64._cache, NullCache)


def test_fresh_process_loads_the_kernels_from_the_cache_without_compiling():
    pdq_kernels.warm_up()  # populates the cache if this process compiled
    code = textwrap.dedent("""
        from consentry.signals import pdq_kernels as k
        k.warm_up()
        s = k._pdq.stats
        print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ}, check=True).stdout.split()
    hits, misses = int(out[0]), int(out[1])
    assert hits >= 1 and misses == 0


def test_no_writable_cache_falls_back_to_compiling_instead_of_failing():
    """numba raises at decoration when no cache dir is usable; _kernel then compiles uncached."""
    namespace: dict = {}
    exec(compile("def f(x):\n    return x + 1\n", "<no-such-file>", "exec"), namespace)
    saved = pdq_kernels.CACHED
    try:
        kernel = pdq_kernels._kernel(namespace["f"])
        assert kernel(41) == 42
        assert pdq_kernels.CACHED is False
    finally:
        pdq_kernels.CACHED = saved
