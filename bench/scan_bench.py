#!/usr/bin/env python3
"""Scan throughput: ``consentry scan`` (local pool, 1 and 2 workers) vs a pytx-style baseline.

Builds a benign corpus of a few thousand files from ../shared/testvectors (Meta's PDQ test
photos, resized to several sizes and re-encoded as JPEG/PNG/WebP at several qualities), then
times over the same files:

  baseline     decode (Pillow) + md5 + pdqhash.compute, one process (what a pytx loop does)
  scan-1       run_scan, --workers 1: walk, sniff, md5/sha1/sha256, safe decode, 8 PDQ variants,
               thumbnail, evidence analysis (C2PA/metadata/watermark), per-file commit to scan.db
  scan-2       the same over a 2-process pool (start-up included)
  scan-1-noev  --workers 1 without the evidence analysis, to show what it costs

Reports are not written (they are a fixed cost per scan, not per file); triage is included.
Usage: python bench/scan_bench.py [--files 3000] [--testvectors DIR] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from consentry.scan.pipeline import ScanOptions, run_scan  # noqa: E402


def build_corpus(testvectors: Path, out: Path, n: int) -> list[Path]:
    sources = sorted(p for p in (testvectors / "pdq").rglob("*")
                     if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())
    if not sources:
        sys.exit(f"no test images under {testvectors / 'pdq'}")
    images = []
    for p in sources:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    sides = (256, 384, 512, 640, 800)
    encodings = (("JPEG", "jpg", {"quality": 90}), ("JPEG", "jpg", {"quality": 70}),
                 ("PNG", "png", {}), ("WEBP", "webp", {"quality": 80}))
    out.mkdir(parents=True, exist_ok=True)
    files = []
    k = 0
    while len(files) < n:
        for i, im in enumerate(images):
            if len(files) >= n:
                break
            side = sides[k % len(sides)]
            fmt, ext, kw = encodings[(k // len(sides)) % len(encodings)]
            scaled = im.copy()
            scaled.thumbnail((side, side))
            d = out / f"d{len(files) % 16:02d}"
            d.mkdir(exist_ok=True)
            p = d / f"img{len(files):05d}_{i}.{ext}"
            buf = io.BytesIO()
            scaled.save(buf, format=fmt, **kw)
            p.write_bytes(buf.getvalue())
            files.append(p)
        k += 1
    return files


def baseline(files: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in files:
        data = p.read_bytes()
        hashlib.md5(data).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
        pdqhash.compute(arr)
    return len(files) / (time.perf_counter() - t0)


def scan(corpus: Path, out: Path, workers: int, evidence: bool = True) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = run_scan(ScanOptions([str(corpus)], out, workers=workers, match=False, reports=False, evidence=evidence))
    elapsed = time.perf_counter() - t0
    if s.counts["errors"]:
        print(f"  warning: {s.counts['errors']} errors", file=sys.stderr)
    return s.scanned / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--testvectors", type=Path, default=REPO.parent / "shared" / "testvectors")
    ap.add_argument("--corpus", type=Path, default=None, help="build/reuse the corpus here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="consentry-scan-bench-"))
    try:
        corpus = args.corpus or tmp / "corpus"
        files = sorted(p for p in corpus.rglob("*") if p.is_file()) if corpus.exists() else []
        if len(files) < args.files:
            shutil.rmtree(corpus, ignore_errors=True)
            files = build_corpus(args.testvectors, corpus, args.files)
        files = files[: args.files]
        mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"corpus: {len(files)} benign files, {mb:.1f} MB, {os.cpu_count()} CPUs")
        base = baseline(files)
        print(f"baseline (decode + md5 + pdqhash)  {base:8.1f} files/s")
        results = {}
        for name, workers, ev in (("scan-1", 1, True), ("scan-2", 2, True), ("scan-1-noev", 1, False)):
            results[name] = scan(corpus, tmp / name, workers, ev)
            print(f"{name:<34} {results[name]:8.1f} files/s   ratio to baseline {results[name] / base:5.2f}")
        print(f"scan-2 / scan-1 speed-up: {results['scan-2'] / results['scan-1']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
