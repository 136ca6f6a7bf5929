#!/usr/bin/env python3
"""Robustness of vPDQ matching to re-cut and re-encoded video clips (issue 21, videos).

Benign sources only: videos this script draws (pans over drawn landscapes / city blocks /
textures, slow zooms, sequences of shots with cuts, hand-held jitter), 30 s at 30 fps, 320x240,
H.264. Every source is "stored"; clips of 5-12 s are then cut from it at random offsets (never on
the one-second grid), varied and queried the way vPDQ queries everywhere: one frame a second.

Side by side in one run, for the same queries:

  plain     stored one frame a second (vPDQ as exchanged), matched by frame-set overlap (>= 80 %
            of the query's frames or of the stored frames found): today's rule, and HMA's
  dense     stored every frame less near-repeats (consentry.signals.vpdq.dense_frames), matched
            by time-consistent alignment (consentry.signals.vpdq.align), offset reported
  dense-d0  the same without removing near-repeats (every decoded frame)
  +trim     the query also tries its frames without letterbox / pillarbox bars, when the first
            frames show bars (consentry.signals.vpdq.trimmed_frames)

Prints recall per transform, false matches over every unrelated (query, stored video) pair and
over unrelated frame pairs, stored frames per second of video, and the matcher's lookup time
(consentry.banks.matcher's frame index over all stored videos, per query clip).

Usage: python bench/video_robustness_bench.py [--sources 12] [--distractors 24] [--clips 2]
                                              [--workers 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from robustness_bench import draw_source  # noqa: E402

from consentry.config import MediaLimits  # noqa: E402
from consentry.media.content import Content  # noqa: E402
from consentry.signals.vpdq import (  # noqa: E402
    VPDQ_DISTANCE_THRESHOLD,
    VPDQ_QUALITY_THRESHOLD,
    compare_frames,
    dense_frames,
    trimmed_frames,
    vpdq_frames_from_path,
)

FPS = 30
SECONDS = 30
SIZE = (320, 240)
MOTIONS = ("pan", "zoom", "shots", "handheld")
TRANSFORMS = ("recut", "recut-small-crf32", "speed+10%", "speed-10%", "fps25", "letterbox-9:16",
              "crop10", "pip")


# ------------------------------------------------------------------------------- drawing videos
def _big(seed: int, w: int, h: int) -> Image.Image:
    return draw_source(seed).resize((w, h), Image.BICUBIC)


class Source:
    """A drawn video: frame(t) for any time t in seconds (a continuous function of time)."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(5000 + seed)
        self.seed = seed
        self.motion = MOTIONS[seed % len(MOTIONS)]
        if self.motion == "pan":
            self.img = _big(seed * 7 + 1, 1800, 400)
            self.speed = rng.uniform(10, 40) * rng.choice([-1, 1])
            self.x0 = 650 + rng.uniform(-50, 50)
        elif self.motion == "zoom":
            self.img = _big(seed * 7 + 2, 960, 720)
            self.rate = rng.uniform(0.01, 0.03)
        elif self.motion == "shots":
            self.shots = []
            t = 0.0
            k = 0
            while t < SECONDS + 20:
                d = rng.uniform(3, 6)
                self.shots.append((t, t + d, _big(seed * 7 + 3 + 100 * k, 560, 420), rng.uniform(-6, 6)))
                t += d
                k += 1
        else:
            self.img = _big(seed * 7 + 4, 800, 600)
            self.phase = rng.uniform(0, 2 * np.pi, 4)

    def frame(self, t: float) -> Image.Image:
        if self.motion == "pan":
            x = self.x0 + self.speed * t
            return self.img.crop((int(round(x)), 20, int(round(x)) + 480, 380)).resize(SIZE, Image.BILINEAR)
        if self.motion == "zoom":
            s = 1.0 + self.rate * t
            w, h = 960 / s, 720 / s
            box = (480 - w / 2, 360 - h / 2, 480 + w / 2, 360 - h / 2 + h)
            return self.img.resize(SIZE, Image.BILINEAR, box=box)
        if self.motion == "shots":
            for start, end, img, drift in self.shots:
                if start <= t < end:
                    x = 40 + drift * (t - start)
                    return img.resize(SIZE, Image.BILINEAR, box=(x, 30, x + 480, 390))
            return self.shots[-1][2].resize(SIZE, Image.BILINEAR)
        p = self.phase
        dx = 30 * np.sin(0.9 * t + p[0]) + 12 * np.sin(2.3 * t + p[1])
        dy = 20 * np.sin(0.7 * t + p[2]) + 8 * np.sin(1.9 * t + p[3])
        return self.img.resize(SIZE, Image.BILINEAR, box=(80 + dx, 60 + dy, 720 + dx, 540 + dy))


def write_video(path: str, frames, fps: float, size: tuple[int, int], crf: int = 23) -> None:
    import av

    with av.open(path, "w") as out:
        st = out.add_stream("libx264", rate=int(round(fps)))
        st.width, st.height = size
        st.pix_fmt = "yuv420p"
        st.options = {"crf": str(crf), "preset": "veryfast"}
        for img in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(np.asarray(img.convert("RGB")), format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def _letterbox(img: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (360, 640), (0, 0, 0))
    fit = img.resize((360, 270), Image.BILINEAR)
    canvas.paste(fit, (0, (640 - 270) // 2))
    return canvas


def _crop10(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9))).resize(SIZE, Image.BILINEAR)


def clip_frames(src: Source, name: str, start: float, dur: float, other: Source):
    """(frames, fps, size, crf) of a clip of ``src`` from ``start`` for ``dur`` s, varied."""
    fps, speed, size, crf, post = FPS, 1.0, SIZE, 23, None
    if name == "recut-small-crf32":
        size, crf = (160, 120), 32
    elif name == "speed+10%":
        speed = 1.1
    elif name == "speed-10%":
        speed = 0.9
    elif name == "fps25":
        fps = 25
    elif name == "letterbox-9:16":
        size, post = (360, 640), _letterbox
    elif name == "crop10":
        post = _crop10
    n = int(round(dur * fps))
    frames = []
    for i in range(n):
        t = start + speed * i / fps
        img = src.frame(t)
        if name == "pip":
            bg = other.frame(i / fps).copy()
            bg.paste(img.resize((192, 144), Image.BILINEAR), (112, 80))
            img = bg
        elif post is not None:
            img = post(img)
        if img.size != size:
            img = img.resize(size, Image.BILINEAR)
        frames.append(img)
    return frames, fps, size, crf


# ---------------------------------------------------------------------------------- the work
def stored_work(seed: int) -> tuple[int, list, list, float]:
    src = Source(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.mp4")
        write_video(path, (src.frame(i / FPS) for i in range(SECONDS * FPS)), FPS, SIZE)
        t0 = time.perf_counter()
        every = vpdq_frames_from_path(path, 0.0)
        t_dense = time.perf_counter() - t0
        plain = vpdq_frames_from_path(path, 1.0)
    return seed, plain, every, t_dense


def query_work(args) -> tuple[int, str, float, float, list]:
    seed, name, k, n_sources = args
    rng = np.random.default_rng(seed * 1000 + k * 97 + TRANSFORMS.index(name))
    src = Source(seed)
    other = Source((seed + 1) % n_sources + 1000)
    dur = float(rng.uniform(5, 12))
    start = float(rng.uniform(0.5, SECONDS - dur * 1.1 - 0.5))
    if abs(start - round(start)) < 0.15:  # never on the one-second grid
        start += 0.37
    frames, fps, size, crf = clip_frames(src, name, start, dur, other)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "q.mp4")
        write_video(path, frames, fps, size, crf)
        q = vpdq_frames_from_path(path, 1.0)
        t0 = time.perf_counter()
        trimmed = trimmed_frames(Content.from_path(path, MediaLimits()), 1.0)
        t_trim = time.perf_counter() - t0
    return seed, name, start, dur, (q, trimmed, t_trim)


def _usable_words(frames) -> np.ndarray:
    fs = [f for f in frames if f.quality >= VPDQ_QUALITY_THRESHOLD]
    if not fs:
        return np.zeros((0, 4), np.uint64)
    return np.frombuffer(bytes.fromhex("".join(f.pdq_hex for f in fs)), dtype=">u8").astype(np.uint64).reshape(-1, 4)


def frame_pair_hits(qw: np.ndarray, sw: np.ndarray) -> int:
    if not len(qw) or not len(sw):
        return 0
    d = np.zeros((len(qw), len(sw)), np.int32)
    for k in range(4):
        d += np.bitwise_count(qw[:, k][:, None] ^ sw[:, k][None, :]).astype(np.int32)
    return int((d <= VPDQ_DISTANCE_THRESHOLD).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=12, help="drawn, stored and queried videos")
    ap.add_argument("--distractors", type=int, default=24, help="drawn videos stored but never queried")
    ap.add_argument("--clips", type=int, default=2, help="clips per source and transform")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default=None, help="comma-separated transform names")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    names = [n for n in TRANSFORMS if not args.only or n in args.only.split(",")]

    t0 = time.perf_counter()
    seeds = list(range(args.sources)) + list(range(2000, 2000 + args.distractors))
    with Pool(args.workers) as pool:
        stored_r = pool.map(stored_work, seeds, chunksize=1)
        # a video most of whose frames have PDQ quality < 50 (flat drawings) cannot be matched
        # by any method: dropped, as the picture bench drops flat pictures
        stored_r = [r for r in stored_r
                    if np.mean([f.quality >= VPDQ_QUALITY_THRESHOLD for f in r[2]]) >= 0.8]
        queried = [r[0] for r in stored_r if r[0] < args.sources]
        qjobs = [(s, n, k, args.sources) for s in queried for n in names for k in range(args.clips)]
        queries = pool.map(query_work, qjobs, chunksize=2)
    t_make = time.perf_counter() - t0
    dropped = len(seeds) - len(stored_r)
    t_dense_hash = sum(r[3] for r in stored_r)

    kinds = {
        "plain": {r[0]: r[1] for r in stored_r},
        "dense": {r[0]: dense_frames(r[2]) for r in stored_r},
        "dense-d0": {r[0]: r[2] for r in stored_r},
    }
    # config -> (stored frames, whether the query also tries its frames without bars)
    configs = {"plain": (kinds["plain"], False), "plain+trim": (kinds["plain"], True),
               "dense": (kinds["dense"], False), "dense+trim": (kinds["dense"], True),
               "dense-d0": (kinds["dense-d0"], False)}
    t_trim = sum(q[4][2] for q in queries) / max(1, len(queries))
    n_trimmed = {n: sum(1 for q in queries if q[1] == n and q[4][1]) for n in names}
    res: dict = {}
    for cname, (stored, use_trim) in configs.items():
        hits = {n: [] for n in names}
        offsets_err = []
        false = pairs = 0
        t1 = time.perf_counter()
        for seed, name, start, dur, (q, trimmed, _t) in queries:
            for sid, frames in stored.items():
                m = compare_frames(q, frames)
                if use_trim and trimmed and not m.matched:
                    m = compare_frames(trimmed, frames)
                if sid == seed:
                    hits[name].append(m.matched)
                    if m.matched and m.offset_seconds is not None and name in ("recut", "recut-small-crf32",
                                                                              "fps25", "crop10"):
                        offsets_err.append(abs(m.offset_seconds - start))
                else:
                    pairs += 1
                    false += int(m.matched)
        t_cmp = time.perf_counter() - t1
        per_sec = np.mean([len(f) for f in stored.values()]) / SECONDS
        res[cname] = dict(recall={n: float(np.mean(v)) for n, v in hits.items()},
                          mean_recall=float(np.mean([x for v in hits.values() for x in v])),
                          false_matches=false, pairs=pairs, frames_per_second=float(per_sec),
                          compare_seconds=t_cmp,
                          offset_error_median=float(np.median(offsets_err)) if offsets_err else None)

    # unrelated frame pairs (query frames vs frames of other stored videos), for each stored kind
    for cname, (stored, use_trim) in configs.items():
        sw = {sid: _usable_words(f) for sid, f in stored.items()}
        hit = tot = 0
        for seed, _name, _s, _d, (q, trimmed, _t) in queries:
            qw = _usable_words(q + (trimmed or [] if use_trim else []))
            for sid, w in sw.items():
                if sid != seed:
                    hit += frame_pair_hits(qw, w)
                    tot += len(qw) * len(w)
        res[cname]["frame_pairs"] = tot
        res[cname]["frame_pair_hits"] = hit

    # the matcher's frame index over all stored videos: time per query clip
    from consentry.banks.matcher import _VpdqStore
    from consentry.signals.vpdq import frames_to_json

    for cname, (stored, use_trim) in configs.items():
        store = _VpdqStore()
        for sid, frames in stored.items():
            store.add(sid + 1, frames_to_json(frames))
        store.query(queries[0][4][0], VPDQ_DISTANCE_THRESHOLD)  # warm-up (kernels, caches)
        times = []
        for _seed, _name, _s, _d, (q, trimmed, _t) in queries:
            t1 = time.perf_counter()
            store.query(q, VPDQ_DISTANCE_THRESHOLD)
            if use_trim and trimmed:
                store.query(trimmed, VPDQ_DISTANCE_THRESHOLD)
            times.append(time.perf_counter() - t1)
        res[cname]["lookup_ms_p50"] = float(np.percentile(times, 50) * 1000)
        res[cname]["lookup_ms_p99"] = float(np.percentile(times, 99) * 1000)
        res[cname]["index_frames"] = len(store.frame_owner)

    cols = list(configs)
    w = max(len(n) for n in names) + 2
    print(f"video_robustness_bench: {len(queried)} queried + {len(stored_r) - len(queried)} stored-only drawn "
          f"videos ({dropped} dropped: mostly PDQ quality < {VPDQ_QUALITY_THRESHOLD}; {SECONDS} s, {FPS} fps, "
          f"{SIZE[0]}x{SIZE[1]}; motions {', '.join(MOTIONS)}); {len(queries)} "
          f"clips of 5-12 s at random offsets, queried at one frame a second; threshold "
          f"{VPDQ_DISTANCE_THRESHOLD}")
    print(f"drawing, encoding and hashing {t_make:.1f}s on {args.workers} workers "
          f"(every-frame hashing of the stored videos {t_dense_hash:.1f}s of it)")
    print()
    print("recall".ljust(w) + "".join(c.rjust(12) for c in cols))
    for n in names:
        print(n.ljust(w) + "".join(f"{res[c]['recall'][n] * 100:11.1f}%" for c in cols))
    print("mean".ljust(w) + "".join(f"{res[c]['mean_recall'] * 100:11.1f}%" for c in cols))
    print()
    print("unrelated video pairs".ljust(w) + "".join(f"{res[c]['pairs']:12d}" for c in cols))
    print("false matches".ljust(w) + "".join(f"{res[c]['false_matches']:12d}" for c in cols))
    print("unrelated frame pairs".ljust(w) + "".join(f"{res[c]['frame_pairs']:12d}" for c in cols))
    print("  within threshold".ljust(w) + "".join(f"{res[c]['frame_pair_hits']:12d}" for c in cols))
    print("stored frames/second".ljust(w) + "".join(f"{res[c]['frames_per_second']:12.2f}" for c in cols))
    print("  x plain".ljust(w) + "".join(
        f"{res[c]['frames_per_second'] / res['plain']['frames_per_second']:11.2f}x" for c in cols))
    print("index frames".ljust(w) + "".join(f"{res[c]['index_frames']:12d}" for c in cols))
    print("lookup ms p50".ljust(w) + "".join(f"{res[c]['lookup_ms_p50']:12.2f}" for c in cols))
    print("lookup ms p99".ljust(w) + "".join(f"{res[c]['lookup_ms_p99']:12.2f}" for c in cols))
    print("  x plain (p99)".ljust(w) + "".join(
        f"{res[c]['lookup_ms_p99'] / res['plain']['lookup_ms_p99']:11.2f}x" for c in cols))
    print("clips with bars found: " + ", ".join(f"{n} {n_trimmed[n]}" for n in names)
          + f"; trimmed-frame hashing {t_trim * 1000:.0f} ms per clip (bars or not)")
    print("offset error s (median)".ljust(w) + "".join(
        ("         n/a" if res[c]["offset_error_median"] is None else f"{res[c]['offset_error_median']:12.3f}")
        for c in cols))
    if args.json:
        args.json.write_text(json.dumps(dict(sources=args.sources, distractors=args.distractors,
                                             transforms=names, configs=res), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
