#!/usr/bin/env python3
"""Hashing throughput: Consentry's pipeline vs the python-threatexchange baseline, one process.

Builds a benign corpus from ../shared/testvectors (the originals plus resized JPEG/PNG
re-encodings), then times, over the same files and in the same process:

  baseline  pytx's pdq_from_bytes: np.asarray(Image.open(bytes)) -> pdqhash.compute
  ours      consentry.hashing.hash_path: sniff, md5+sha256, safe decode, EXIF, mode->RGB, PDQ
  ours-pdq  the same without the digests (PDQ only), to show what the digests cost
  ours-draft  ours with JPEG DCT-domain downscaling (CONSENTRY_JPEG_DRAFT_MIN_SIDE), plus the
              PDQ distance that costs against the exact hash (max and mean)
  ours-2proc  ours over a 2-process pool (``consentry hash --workers 2``), start-up included

Usage: python bench/hash_bench.py [--testvectors DIR] [--scales 0.25,0.5,1,1.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from consentry.config import MediaLimits  # noqa: E402
from consentry.hashing import hash_many, hash_path  # noqa: E402
from consentry.media.content import Content  # noqa: E402
from consentry.signals.pdq import PDQSignal, bits_to_hex  # noqa: E402


def build_corpus(testvectors: Path, out: Path, scales: list[float]) -> list[Path]:
    sources = [p for p in sorted(testvectors.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]
    files: list[Path] = []
    for i, src in enumerate(sources):
        dst = out / f"{i:03d}-orig{src.suffix.lower()}"
        dst.write_bytes(src.read_bytes())
        files.append(dst)
        img = Image.open(src)
        img = img.convert("RGB") if img.mode not in ("RGB", "L") else img
        for s in scales:
            w, h = max(16, int(img.width * s)), max(16, int(img.height * s))
            small = img.resize((w, h), Image.Resampling.LANCZOS)
            for fmt, ext in (("JPEG", ".jpg"), ("PNG", ".png")):
                p = out / f"{i:03d}-{s:g}{ext}"
                small.save(p, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
                files.append(p)
    return files


def baseline_pytx(path: Path) -> str:
    data = path.read_bytes()
    arr = np.asarray(Image.open(io.BytesIO(data)))
    if arr.ndim == 3 and arr.shape[2] == 2:  # LA: grey + alpha
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.dtype != np.uint8:  # 16-bit and 1-bit inputs: pdqhash only takes bytes
        arr = arr.astype(np.uint8)
    bits, _q = pdqhash.compute(np.ascontiguousarray(arr))
    return bits_to_hex(bits)


def timed(fn, files, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = [fn(p) for p in files]
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testvectors", type=Path,
                    default=Path(os.environ.get("CONSENTRY_TESTVECTORS", REPO.parent / "shared" / "testvectors")))
    ap.add_argument("--scales", default="0.25,0.5,1,1.5")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--draft-min-side", type=int, default=256)
    args = ap.parse_args()

    limits = MediaLimits()
    draft_limits = limits.with_(jpeg_draft_min_side=args.draft_min_side)
    with tempfile.TemporaryDirectory(prefix="consentry-bench-") as tmp:
        files = build_corpus(args.testvectors, Path(tmp), [float(s) for s in args.scales.split(",")])
        mpix = sum(Image.open(p).width * Image.open(p).height for p in files) / 1e6
        print(f"corpus: {len(files)} images, {mpix:.0f} Mpixel, "
              f"{sum(p.stat().st_size for p in files) / 1e6:.0f} MB (built from {args.testvectors})")

        runs = {
            "baseline (pytx pdq_from_bytes)": lambda p: baseline_pytx(p),
            "ours: hash_path (md5+sha256+PDQ)": lambda p: hash_path(p, limits).pdq,
            "ours: PDQ only": lambda p: PDQSignal.compute(Content.from_path(p, limits)).value,
            f"ours: hash_path + JPEG draft >= {args.draft_min_side}px": lambda p: hash_path(p, draft_limits).pdq,
        }
        results = {name: timed(fn, files, args.repeat) for name, fn in runs.items()}
        t0 = time.perf_counter()
        par = [r.pdq for r in hash_many(files, limits, workers=2)]
        results["ours: hash_many, 2 worker processes"] = (time.perf_counter() - t0, par)

    base_t, base_h = results["baseline (pytx pdq_from_bytes)"]
    print(f"\n{'pipeline':48s} {'images/s':>9s} {'ratio vs baseline':>18s}")
    for name, (t, _h) in results.items():
        print(f"{name:48s} {len(files) / t:9.1f} {base_t / t:17.2f}x")

    exact = results["ours: hash_path (md5+sha256+PDQ)"][1]
    draft = list(results.values())[3][1]
    jpeg_idx = [i for i, p in enumerate(files) if p.suffix == ".jpg"]
    dists = [(int(exact[i], 16) ^ int(draft[i], 16)).bit_count() for i in jpeg_idx]
    same_as_pytx = sum(1 for a, b in zip(base_h, exact) if a == b)
    print(f"\nours == baseline hash on {same_as_pytx}/{len(files)} files "
          f"(differences are the non-RGB modes the baseline gets wrong)")
    print(f"JPEG draft PDQ distance vs exact over {len(dists)} JPEGs: "
          f"max {max(dists)}, mean {statistics.mean(dists):.2f}, "
          f"changed {sum(1 for d in dists if d)}/{len(dists)}")


if __name__ == "__main__":
    main()
