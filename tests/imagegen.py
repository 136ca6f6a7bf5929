"""Benign synthetic test pictures (gradients and shapes), drawn with Pillow/numpy."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def scene(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A landscape-like RGB picture: sky gradient, a sun, hills and a few boxes."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None]
    x = np.linspace(0, 1, width)[None, :]
    r = (80 + 120 * y + 30 * x) * np.ones_like(x)
    g = (140 + 80 * y) * np.ones_like(x)
    b = (230 - 120 * y) * np.ones_like(x)
    arr = np.stack([r, g, b], axis=2).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse([width * 0.65, height * 0.1, width * 0.85, height * 0.35], fill=(250, 220, 90))
    d.polygon([(0, height), (width * 0.4, height * 0.55), (width * 0.8, height)], fill=(60, 120, 60))
    for _ in range(6):
        bw, bh = max(width // 10, 2), max(height // 12, 2)
        x0 = int(rng.integers(0, width - bw))
        y0 = int(rng.integers(height // 2, height - bh))
        d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def texture(width: int, height: int, seed: int) -> Image.Image:
    """Coloured multi-octave value noise with a little grain: stands in for natural texture."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((height, width, 3))
    for octave, weight in ((4, 1.0), (16, 0.5), (64, 0.25), (256, 0.12)):
        small = rng.random((max(2, height * octave // 512), max(2, width * octave // 512), 3))
        layer = Image.fromarray((small * 255).astype(np.uint8), "RGB").resize((width, height), Image.BICUBIC)
        acc += weight * np.asarray(layer, dtype=np.float64)
    acc = acc / 1.87 + rng.normal(0, 4, acc.shape)
    return Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8), "RGB")
