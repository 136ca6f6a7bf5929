#!/usr/bin/env python3
"""Invisible-watermark (dwtDct) decoder: compiled kernel vs the numpy + PyWavelets reference.

Times ``watermark._tally`` (what ``analyze_watermarks`` and ``consentry scan`` run: both readings,
every payload length) against ``watermark._reference_tally`` (float64 U planes, ``pywt.dwt``) on the
same benign pictures at several sizes, checks the results are identical, and prints the speed-up.
The kernel is compiled (or loaded from numba's cache) before timing.

Usage: python bench/watermark_bench.py [--repeat 5] [--sizes 512x512,1024x768,2048x1536]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from consentry.evidence import watermark as wm  # noqa: E402

LENGTHS = sorted({p.length for p in wm.PAYLOADS})


def picture(width: int, height: int, seed: int) -> Image.Image:
    """A benign textured gradient (noise blurred over a colour ramp)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    base = rng.random(3) * 160 * (1 - y) + rng.random(3) * 90 * x + 20
    noise = rng.normal(0, 25, (height, width, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    return img.filter(ImageFilter.GaussianBlur(0.8))


def best_of(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="512x512,1024x768,2048x1536")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    t = time.perf_counter()
    wm._tally(picture(64, 64, 0), LENGTHS)
    print(f"kernel ready in {time.perf_counter() - t:.2f} s (cached on disk: {wm.KERNEL_CACHED})")
    print(f"{'size':>11s} {'reference ms':>13s} {'compiled ms':>12s} {'speed-up':>9s}  identical")
    ratios = []
    for i, (w, h) in enumerate(sizes):
        img = picture(w, h, i + 1)
        new, n_new = wm._tally(img, LENGTHS)
        ref, n_ref = wm._reference_tally(img, LENGTHS)
        same = n_new == n_ref and all(np.array_equal(new[k].ones, ref[k].ones)
                                      and np.array_equal(new[k].counts, ref[k].counts) for k in ref)
        ref_best, _ = best_of(lambda: wm._reference_tally(img, LENGTHS), args.repeat)
        new_best, _ = best_of(lambda: wm._tally(img, LENGTHS), args.repeat)
        ratios.append(ref_best / new_best)
        print(f"{w:>5d}x{h:<5d} {ref_best * 1e3:13.1f} {new_best * 1e3:12.1f} "
              f"{ratios[-1]:8.1f}x  {same}")
        if not same:
            sys.exit("MISMATCH between the compiled decoder and the reference")
    print(f"speed-up (compiled vs reference, best of {args.repeat}, geometric mean): "
          f"{float(np.exp(np.mean(np.log(ratios)))):.1f}x")


if __name__ == "__main__":
    main()
