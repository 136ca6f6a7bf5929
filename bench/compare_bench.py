"""Evaluation of ``consentry compare`` (derivation proof) on benign pictures built here.

Originals: drawn landscapes (sky, textured hills, houses, trees, a sun; Pillow/numpy) and the
benign test-vector photos (a bridge, a pen and coaster, LabelMe street/sea scenes). Edits replace a
box with a patch of another landscape or a drawn object. Suspects are then resized, cropped
5-30 %, rotated up to ±10°, sometimes mirrored, re-encoded as JPEG q60-95 and sometimes
"screenshotted" (scaled into a frame with interface bars, saved as PNG).

Printed:
* alignment success rate over edited and unedited suspects (target >= 95 %);
* differing-region IoU: the detected boxes against the true edited box (target mean >= 0.7);
* share of the overlap marked differing on unedited suspects (target <= 2 %);
* false derivation over unrelated pairs (target <= 0.1 % over >= 2,000 pairs).

    python bench/compare_bench.py                 # 200 suspects, 2,016 unrelated pairs
    python bench/compare_bench.py --cases 40 --pairs 300
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from consentry.evidence import derivation as dv

TESTVECTORS = Path(os.environ.get("CONSENTRY_TESTVECTORS", Path(__file__).resolve().parents[2] / "shared" / "testvectors"))
# letterboxed_sample-b.jpg is the bridge with bars (derived from it): not in the unrelated set
PHOTOS = ["pdq/bridge-mods/aaa-orig.jpg", "pdq/misc-images/c.png",
          "pdq/reg-test-input/labelme-subset/q0003.jpg", "pdq/reg-test-input/labelme-subset/q0004.jpg",
          "pdq/reg-test-input/labelme-subset/q0122.jpg", "pdq/reg-test-input/labelme-subset/q0291.jpg",
          "pdq/reg-test-input/labelme-subset/q0746.jpg", "pdq/reg-test-input/labelme-subset/q1050.jpg",
          "pdq/reg-test-input/labelme-subset/q2821.jpg", "pytx/hashing-resources/rgb.jpeg"]


# ------------------------------------------------------------------ benign pictures
def _noise(rng, h: int, w: int, octaves=((4, 1.0), (16, 0.5), (64, 0.25), (200, 0.12))) -> np.ndarray:
    acc = np.zeros((h, w))
    for o, wt in octaves:
        small = rng.random((max(2, h * o // 512), max(2, w * o // 512)))
        acc += wt * np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), float)
    return acc / sum(wt for _, wt in octaves) / 255.0


def landscape(seed: int, w: int = 800, h: int = 600) -> Image.Image:
    """Sky, textured hills, a lake, houses, trees and a sun: a benign, feature-rich picture."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(150, 255, 3)
    arr = (top * (1 - y) + bottom * y) * np.ones((1, w, 1))
    arr += (_noise(rng, h, w)[..., None] - 0.5) * 40  # clouds
    horizon = h * rng.uniform(0.35, 0.6)
    xs = np.arange(w)
    for layer in range(3):
        ridge = horizon + layer * h * 0.12 + (_noise(rng, 1, w, ((3, 1.0), (12, 0.4)))[0] - 0.5) * h * 0.35
        ground = np.arange(h)[:, None] > ridge[None, :]
        colour = rng.uniform(30, 200, 3)
        tex = _noise(rng, h, w)[..., None] * rng.uniform(60, 140) + rng.normal(0, 6, (h, w, 1))
        arr = np.where(ground[..., None], colour * 0.6 + tex, arr)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    r = rng.uniform(0.04, 0.08) * w
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.05, 0.25) * h
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in rng.integers(200, 256, 3)))
    for _ in range(int(rng.integers(4, 10))):  # houses with windows
        bw, bh = int(rng.uniform(0.05, 0.12) * w), int(rng.uniform(0.05, 0.12) * h)
        x0, y0 = int(rng.uniform(0, w - bw)), int(rng.uniform(horizon, h - bh))
        d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=tuple(int(v) for v in rng.integers(40, 230, 3)), outline=(20, 20, 20))
        d.polygon([(x0 - 4, y0), (x0 + bw // 2, y0 - bh // 2), (x0 + bw + 4, y0)],
                  fill=tuple(int(v) for v in rng.integers(60, 200, 3)))
        for _ in range(int(rng.integers(1, 4))):
            wx, wy = x0 + int(rng.uniform(0.1, 0.7) * bw), y0 + int(rng.uniform(0.1, 0.6) * bh)
            d.rectangle([wx, wy, wx + bw // 6, wy + bh // 5], fill=tuple(int(v) for v in rng.integers(150, 256, 3)))
    for _ in range(int(rng.integers(6, 16))):  # trees
        tx, ty = rng.uniform(0, w), rng.uniform(horizon, h)
        s = rng.uniform(0.02, 0.05) * w
        d.polygon([(tx, ty - 2.5 * s), (tx - s, ty), (tx + s, ty)], fill=tuple(int(v) for v in (20, rng.integers(80, 160), 30)))
        d.rectangle([tx - s / 6, ty, tx + s / 6, ty + s / 2], fill=(90, 60, 30))
    return img


def load_photos() -> list[Image.Image]:
    out = []
    for rel in PHOTOS:
        p = TESTVECTORS / rel
        if p.is_file():
            img = Image.open(p)
            if img.mode == "RGBA":
                bg = Image.new("RGB", img.size, (255, 255, 255))
                bg.paste(img, mask=img.getchannel("A"))
                img = bg
            out.append(img.convert("RGB"))
    return out


def edit(img: Image.Image, rng, donor: Image.Image) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A box (12-30 % of each side, inside the middle) replaced by a donor patch or a drawn object."""
    w, h = img.size
    bw, bh = int(rng.uniform(0.15, 0.3) * w), int(rng.uniform(0.15, 0.3) * h)
    x0, y0 = int(rng.uniform(0.3 * w, 0.7 * w - bw)), int(rng.uniform(0.3 * h, 0.7 * h - bh))
    out = img.copy()
    if rng.random() < 0.6:
        dw, dh = donor.size
        sx, sy = int(rng.uniform(0, max(1, dw - bw))), int(rng.uniform(0, max(1, dh - bh)))
        patch = donor.crop((sx, sy, sx + bw, sy + bh)).resize((bw, bh))
        out.paste(patch, (x0, y0))
    else:  # a drawn object: a filled box with an ellipse and stripes
        d = ImageDraw.Draw(out)
        d.rectangle([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        d.ellipse([x0 + bw // 6, y0 + bh // 6, x0 + bw * 5 // 6, y0 + bh * 5 // 6],
                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        for k in range(0, bw, max(4, bw // 6)):
            d.line([x0 + k, y0, x0 + k, y0 + bh - 1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=2)
    return out, (x0, y0, bw, bh)


def _jpeg(img: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def distort(img: Image.Image, rng, box=None) -> tuple[Image.Image, dict]:
    """Resize, crop 5-30 % (keeping ``box``), rotate <= 10°, maybe mirror, JPEG, maybe screenshot."""
    w, h = img.size
    info = {}
    cut = rng.uniform(0.05, 0.30)  # share of the area removed
    keep = np.sqrt(1 - cut)
    cw, ch = int(w * keep), int(h * keep)
    lo_x, hi_x = 0, w - cw
    lo_y, hi_y = 0, h - ch
    if box is not None:
        x0, y0, bw, bh = box
        lo_x, hi_x = max(0, x0 + bw - cw), min(w - cw, x0)
        lo_y, hi_y = max(0, y0 + bh - ch), min(h - ch, y0)
    cx = int(rng.uniform(lo_x, max(lo_x, hi_x) + 1))
    cy = int(rng.uniform(lo_y, max(lo_y, hi_y) + 1))
    out = img.crop((cx, cy, cx + cw, cy + ch))
    s = rng.uniform(0.5, 1.4)
    out = out.resize((max(64, int(cw * s)), max(64, int(ch * s))), Image.BICUBIC)
    angle = rng.uniform(-10, 10)
    out = out.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    mirrored = rng.random() < 0.3
    if mirrored:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    q = int(rng.integers(60, 96))
    out = _jpeg(out, q)
    screenshot = rng.random() < 0.3
    if screenshot:  # scaled into a phone-like frame with bars, saved lossless
        fw = int(rng.integers(360, 1100))
        f = fw / out.width
        inner = out.resize((fw, max(32, int(out.height * f))), Image.BILINEAR)
        frame = Image.new("RGB", (fw, inner.height + 140), (245, 245, 245))
        d = ImageDraw.Draw(frame)
        d.rectangle([0, 0, fw, 60], fill=(30, 30, 30))
        d.text((10, 20), "12:34  consentry bench", fill=(255, 255, 255))
        frame.paste(inner, (0, 60))
        out = frame
    info.update(cut=round(cut, 3), scale=round(s, 3), angle=round(angle, 2), mirrored=mirrored, quality=q,
                screenshot=screenshot)
    return out, info


def box_iou(regions, box, size) -> float:
    w, h = size
    pred = np.zeros((h, w), bool)
    for r in regions:
        pred[r.y:r.y + r.height, r.x:r.x + r.width] = True
    true = np.zeros((h, w), bool)
    x0, y0, bw, bh = box
    true[y0:y0 + bh, x0:x0 + bw] = True
    union = (pred | true).sum()
    return float((pred & true).sum() / union) if union else 0.0


# ------------------------------------------------------------------ the runs
def run_cases(n: int, seed: int, verbose: bool) -> dict:
    rng = np.random.default_rng(seed)
    photos = load_photos()
    big_photos = [p for p in photos if min(p.size) >= 400]
    aligned = total = 0
    ious, clean_share, edited_share, times = [], [], [], []
    failures = []
    for i in range(n):
        if big_photos and i % 4 == 3:
            orig = big_photos[i // 4 % len(big_photos)]
            if max(orig.size) > 1200:
                orig = orig.resize((orig.width * 1000 // max(orig.size), orig.height * 1000 // max(orig.size)))
        else:
            orig = landscape(10_000 + i, int(rng.integers(600, 1000)), int(rng.integers(450, 750)))
        edited_case = i % 2 == 0
        box = None
        src = orig
        if edited_case:
            donor = landscape(50_000 + i) if rng.random() < 0.5 or not photos else photos[int(rng.integers(len(photos)))]
            src, box = edit(orig, rng, donor)
        suspect, info = distort(src, rng, box)
        t = time.perf_counter()
        d = dv.compare_images(orig, suspect)
        times.append(time.perf_counter() - t)
        total += 1
        ok = d.derived
        aligned += ok
        if not ok:
            failures.append((i, info, d.alignment.reason if d.alignment else d.error))
        if ok and edited_case:
            iou = box_iou(d.regions, box, orig.size)
            ious.append(iou)
            edited_share.append(d.share_derived)
            if verbose and iou < 0.5:
                print(f"  case {i}: IoU {iou:.2f} regions {[r.to_dict() for r in d.regions][:3]} box {box} {info}")
        elif ok:
            clean_share.append(d.share_differing)
            if verbose and d.share_differing > 0.02:
                print(f"  case {i}: unedited but {100 * d.share_differing:.1f} % differing {info}")
    if verbose:
        for f in failures:
            print("  not aligned:", f)
    return {"aligned": aligned, "total": total, "ious": ious, "clean": clean_share, "times": times,
            "failures": failures}


def run_reencodes(n: int, seed: int) -> list[float]:
    """Plain re-encodings (JPEG q60-95, sometimes resized): share marked differing."""
    rng = np.random.default_rng(seed)
    shares = []
    for i in range(n):
        orig = landscape(70_000 + i, 800, 600)
        s = orig
        if rng.random() < 0.5:
            f = rng.uniform(0.5, 1.0)
            s = s.resize((int(800 * f), int(600 * f)), Image.BILINEAR)
        s = _jpeg(s, int(rng.integers(60, 96)))
        d = dv.compare_images(orig, s)
        shares.append(d.share_differing if d.derived else 1.0)
    return shares


def run_unrelated(pairs: int, seed: int) -> dict:
    """All pairs among distinct pictures (features computed once each); a pair that aligns is
    compared in full and counts as a false derivation if called derived."""
    pics = load_photos()
    # the bridge-mods are edits of one bridge: only its original is in PHOTOS
    need = int(np.ceil((1 + np.sqrt(1 + 8 * pairs)) / 2))
    rng = np.random.default_rng(seed)
    i = 0
    while len(pics) < need:
        pics.append(landscape(100_000 + i, int(rng.integers(500, 900)), int(rng.integers(400, 700))))
        i += 1
    feats = []
    for p in pics:
        rgb, f = dv.working_copy(p)
        feats.append((rgb, f, dv.features(rgb, f), dv.features(rgb, f, mirrored=True)))
    done = false = aligned = 0
    worst = 0
    for a, b in itertools.combinations(range(len(pics)), 2):
        if done >= pairs:
            break
        al = dv.align(feats[a][2], feats[b][2], feats[b][3], pics[b].size)
        worst = max(worst, al.inliers or al.matches)
        done += 1
        if al.ok:
            aligned += 1
            d = dv.compare_images(pics[a], pics[b], orig_features=feats[a][:3])
            false += d.derived
    return {"pairs": done, "aligned": aligned, "false": false, "max_inliers": worst, "pictures": len(pics)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200, help="edited/unedited suspects (half each)")
    ap.add_argument("--reencodes", type=int, default=40, help="plain re-encodings")
    ap.add_argument("--pairs", type=int, default=2016, help="unrelated pairs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    c = run_cases(args.cases, args.seed, args.verbose)
    rate = c["aligned"] / max(1, c["total"])
    print(f"alignment (derived) success: {c['aligned']}/{c['total']} = {100 * rate:.1f} %   (target >= 95 %)")
    if c["ious"]:
        print(f"differing-region IoU on edited suspects: mean {statistics.mean(c['ious']):.3f}, "
              f"median {statistics.median(c['ious']):.3f}, >= 0.5 in "
              f"{100 * np.mean(np.array(c['ious']) >= 0.5):.0f} %   (target mean >= 0.7)")
    if c["clean"]:
        print(f"differing share on unedited transformed suspects: mean {100 * statistics.mean(c['clean']):.2f} %, "
              f"max {100 * max(c['clean']):.2f} %   (target <= 2 %)")
    if args.reencodes:
        r = run_reencodes(args.reencodes, args.seed + 1)
        print(f"differing share on plain re-encodings (JPEG q60-95): mean {100 * statistics.mean(r):.2f} %, "
              f"max {100 * max(r):.2f} %   (target <= 2 %)")
    print(f"time per comparison: median {statistics.median(c['times']):.2f} s")
    if args.pairs:
        u = run_unrelated(args.pairs, args.seed + 2)
        print(f"false derivation on unrelated pairs: {u['false']}/{u['pairs']} = "
              f"{100 * u['false'] / max(1, u['pairs']):.3f} %  (aligned {u['aligned']}, most matches or "
              f"inliers {u['max_inliers']}, {u['pictures']} pictures)   (target <= 0.1 %)")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
