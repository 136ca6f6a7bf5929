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

First (and alone with --pdq-only), our PDQ (consentry.signals.pdq_kernels) vs pdqhash per core:
one thread each, timed alternately in CPU seconds of this process, (1) the kernels on the same
decoded RGB pixels (single hash and the 8 dihedral variants) and (2) end to end with the same
decoder (Content.image -> PDQ), with the number of files where hash and quality are bit-identical.

Usage: python bench/hash_bench.py [--testvectors DIR] [--scales 0.25,0.5,1,1.5] [--repeat 3] [--pdq-only]
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

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # the per-core figures: one thread

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pdqhash  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from consentry.config import MediaLimits  # noqa: E402
from consentry.hashing import hash_many, hash_path  # noqa: E402
from consentry.media.content import Content  # noqa: E402
from consentry.signals.pdq import PDQSignal, bits_to_hex, reference_pdq  # noqa: E402
from consentry.signals.pdq_kernels import pdq_hash, pdq_hash_dihedral, warm_up  # noqa: E402


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


def kernel_bench(files: list[Path], limits: MediaLimits, repeat: int) -> None:
    """Our PDQ vs pdqhash per core, same decoder. Both run on one thread (pdqhash is
    single-threaded, numba is held to one thread), are timed alternately (best of ``repeat`` each)
    and are measured in CPU seconds of this process, so machine load (other processes) does not
    skew the ratio; wall-clock images/s is printed alongside.

    1. kernels alone on the same decoded RGB pixels (decoded once, outside the timing);
    2. end to end with the same decoder: Content.from_path(...).image() then the PDQ;
    with the number of files where hash AND quality are bit-identical."""
    pixels = [np.asarray(Content.from_path(p, limits).image()) for p in files]
    mpix = sum(a.shape[0] * a.shape[1] for a in pixels) / 1e6
    warm_up()
    print(f"\nPDQ per core (one thread, NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}), "
          f"{len(pixels)} images, {mpix:.0f} Mpixel, best of {repeat}, alternating:")
    print(f"{'':50s} {'CPU s':>7s} {'img/CPU-s':>10s} {'ns/pixel':>9s} {'wall img/s':>11s} "
          f"{'ratio vs pdqhash (CPU)':>23s}")

    def decode_then(fn):
        return lambda p: fn(np.asarray(Content.from_path(p, limits).image()))

    cases = (
        ("kernel, single hash", pixels, lambda a: reference_pdq(a), pdq_hash),
        ("kernel, 8 dihedral variants", pixels, lambda a: reference_pdq(a, True), pdq_hash_dihedral),
        ("same decoder end to end, single hash", files, decode_then(reference_pdq), decode_then(pdq_hash)),
    )
    for label, inputs, ref_fn, our_fn in cases:
        best = {"pdqhash": (float("inf"), float("inf")), "ours": (float("inf"), float("inf"))}
        outs = {}
        for _ in range(repeat):
            for name, fn in (("pdqhash", ref_fn), ("ours", our_fn)):
                c0, w0 = time.process_time(), time.perf_counter()
                outs[name] = [fn(x) for x in inputs]
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
        ref_cpu = best["pdqhash"][0]
        for name, (cpu, wall) in best.items():
            print(f"{name + '  ' + label:50s} {cpu:7.2f} {len(inputs) / cpu:10.1f} "
                  f"{cpu * 1e3 / mpix:9.1f} {len(inputs) / wall:11.1f} {ref_cpu / cpu:22.2f}x")
        same = sum(1 for a, b in zip(outs["pdqhash"], outs["ours"]) if a == b)
        print(f"{'':50s} bit-identical (hash and quality): {same}/{len(inputs)}")


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
    ap.add_argument("--pdq-only", action="store_true",
                    help="only the per-core comparison of our PDQ with pdqhash (same decoder)")
    args = ap.parse_args()

    limits = MediaLimits()
    draft_limits = limits.with_(jpeg_draft_min_side=args.draft_min_side)
    with tempfile.TemporaryDirectory(prefix="consentry-bench-") as tmp:
        files = build_corpus(args.testvectors, Path(tmp), [float(s) for s in args.scales.split(",")])
        mpix = sum(Image.open(p).width * Image.open(p).height for p in files) / 1e6
        print(f"corpus: {len(files)} images, {mpix:.0f} Mpixel, "
              f"{sum(p.stat().st_size for p in files) / 1e6:.0f} MB (built from {args.testvectors})")

        if args.pdq_only:
            kernel_bench(files, limits, args.repeat)
            return
        kernel_bench(files, limits, args.repeat)
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
    draft = results[f"ours: hash_path + JPEG draft >= {args.draft_min_side}px"][1]
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
