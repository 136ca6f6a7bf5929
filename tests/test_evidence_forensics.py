"""Forensic views (issue 16 part 3): real properties of ELA, noise residual, spectrum, JPEG tables and
the double-compression estimate, and the report's blur policy for views that show the picture."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from consentry.evidence import forensics as F
from consentry.evidence.assess import assess_bytes
from consentry.evidence.report import render_html


def texture(seed: int, w: int = 512, h: int = 512) -> Image.Image:
    """A benign drawn texture (smooth noise, fine grain, waves) with photo-like DCT statistics."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(np.clip(128 + 40 * rng.normal(0, 1, (h // 4, w // 4)), 0, 255).astype(np.uint8))
    yy, xx = np.mgrid[0:h, 0:w]
    a = (np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=float) + rng.normal(0, 6, (h, w))
         + 30 * np.sin(xx / 37.0) + 20 * np.cos(yy / 23.0))
    return Image.fromarray(np.clip(np.stack([a, a * 0.8 + 20, a * 0.6 + 40], axis=2), 0, 255).astype(np.uint8))


def jpeg(im: Image.Image, q: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def test_ela_highlights_a_region_compressed_differently():
    base = reopen(jpeg(texture(1), 60))  # the whole picture went through q=60 …
    base.paste(texture(101).crop((0, 0, 160, 160)), (200, 160))  # … except a pasted, never-compressed patch
    e = F.ela(reopen(jpeg(base, 95)))
    inside = e[160:320, 200:360].mean()
    mask = np.ones_like(e, dtype=bool)
    mask[160:320, 200:360] = False
    assert inside > 2.5 * e[mask].mean()


def test_noise_residual_is_flat_on_smooth_areas_and_strong_on_grain():
    a = np.tile(np.linspace(40, 200, 256), (256, 1))
    a[:, 128:] += np.random.default_rng(3).normal(0, 12, (256, 128))
    r = np.abs(F.noise_residual(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB")))
    assert r[:, 4:120].mean() < 1.0 and r[:, 136:252].mean() > 5.0


def test_spectrum_of_a_periodic_pattern_peaks_at_its_frequency():
    n, period = 256, 16
    xx = np.arange(n)
    a = 128 + 100 * np.sin(2 * np.pi * xx / period)[None, :].repeat(n, axis=0)
    s = F.spectrum(Image.fromarray(a.astype(np.uint8)).convert("RGB"))
    cy, cx = n // 2, n // 2
    row = s[cy].copy()
    row[cx - 2:cx + 3] = 0  # ignore what is left of the zero frequency
    peaks = sorted(np.argsort(row)[-2:])
    assert peaks == [cx - n // period, cx + n // period]
    assert s[cy, cx + n // period] > s[cy + 40, cx + 40] + 5  # far above the background


@pytest.mark.parametrize("q", [30, 50, 75, 90, 95])
def test_quantisation_tables_read_back_as_written(q):
    t = F.quantization_tables(jpeg(texture(2, 128, 128), q))
    assert t["ijg_quality"] == {"0": q, "1": q}
    assert t["tables"]["0"] == F._ijg_table(F._IJG_BASE[0], q)
    assert F.quantization_tables(b"\x89PNG\r\n\x1a\n") is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_double_compression_is_estimated(seed):
    t = texture(seed)
    single = F.double_compression(jpeg(t, 70))
    double = F.double_compression(jpeg(reopen(jpeg(t, 90)), 70))
    assert single["likely"] is False and double["likely"] is True
    assert double["score"] > 2 * single["score"]
    assert "estimate" in double["estimate"]
    coarse_first = F.double_compression(jpeg(reopen(jpeg(t, 60)), 80))
    assert coarse_first["likely"] is True


def test_large_pictures_are_worked_on_a_bounded_copy():
    big = Image.new("RGB", (4000, 1000), (90, 120, 150))
    assert max(F.working_copy(big).size) <= F.MAX_SIDE
    assert F.ela(big).shape == (256, 1024)


def _images(html: str) -> dict[str, Image.Image]:
    out = {}
    for key, uri in re.findall(r'id="forensic-(\w+)".*?src="data:image/jpeg;base64,([^"]+)"', html, re.S):
        out[key] = Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB")
    return out


def test_report_shows_views_blurred_unless_show_image():
    img = texture(4, 400, 300)
    data = jpeg(img, 85)
    a = assess_bytes(data)
    verdict = a.verdict
    blurred = render_html(a, image=reopen(data), data=data)
    clear = render_html(a, image=reopen(data), data=data, show_image=True)
    assert a.verdict == verdict  # the views never change the verdict
    for html in (blurred, clear):
        assert "Forensic views (weak signals, not verdicts)" in html
        assert html.count("What this can and cannot show") == 5
        assert "matches IJG quality 85" in html and "estimate" in html
    b, c = _images(blurred), _images(clear)
    assert set(b) == set(c) == {"ela", "noise", "spectrum"}
    for key in ("ela", "noise"):  # views of the picture: as small as the thumbnail and blurred …
        assert max(b[key].size) <= 160 and max(c[key].size) > 160

        def sharpness(im):
            g = np.asarray(im.convert("L").resize((160, 120)), dtype=float)
            return np.abs(np.diff(g, axis=1)).mean()

        assert sharpness(b[key]) < 0.5 * sharpness(c[key])
    assert "(blurred, greyscale)" in blurred and "(blurred, greyscale)" not in clear
