"""Canonical PDQ variants (issue 21): borders trimmed, sub-crops, screenshot regions, rotations.

Benign drawn pictures only (landscape-like scenes over a natural-looking texture).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from consentry.signals import canonical as C
from consentry.signals.pdq import PDQ_THRESHOLD, pdq_from_image
from imagegen import scene, texture


def hd(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def photo(seed: int = 0, size: tuple[int, int] = (480, 320)) -> Image.Image:
    """A photo-like benign picture: a drawn landscape blended with texture (detail everywhere)."""
    w, h = size
    a = np.asarray(scene(w, h, seed), dtype=np.float32)
    t = np.asarray(texture(w, h, seed + 7), dtype=np.float32)
    return Image.fromarray(np.clip(0.6 * a + 0.4 * t, 0, 255).astype(np.uint8), "RGB")


def jpeg(img: Image.Image, q: int = 85) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def boxed(img: Image.Image, canvas: tuple[int, int], fill) -> tuple[Image.Image, tuple[int, int, int, int]]:
    cw, ch = canvas
    k = min(cw / img.width, ch / img.height)
    fg = img.resize((round(img.width * k), round(img.height * k)), Image.BICUBIC)
    if fill == "blur":
        k2 = max(cw / img.width, ch / img.height)
        bg = img.resize((round(img.width * k2) + 1, round(img.height * k2) + 1), Image.BICUBIC)
        x0, y0 = (bg.width - cw) // 2, (bg.height - ch) // 2
        bg = bg.crop((x0, y0, x0 + cw, y0 + ch)).filter(ImageFilter.GaussianBlur(cw * 0.04))
    else:
        bg = Image.new("RGB", (cw, ch), fill)
    pos = ((cw - fg.width) // 2, (ch - fg.height) // 2)
    bg.paste(fg, pos)
    return jpeg(bg), (pos[0], pos[1], pos[0] + fg.width, pos[1] + fg.height)


def close(box, want, tol):
    return all(abs(a - b) <= tol for a, b in zip(box, want))


@pytest.mark.parametrize(
    "canvas,fill",
    [((480, 860), (0, 0, 0)), ((480, 860), "blur"), ((900, 320), (255, 255, 255)), ((900, 320), "blur")],
)
def test_letterbox_and_pillarbox_are_trimmed_back_to_the_photo(canvas, fill):
    src = photo(1)
    img, where = boxed(src, canvas, fill)
    box = C.trim_box(img)
    assert box is not None and close(box, where, 6), (box, where)
    trimmed = C.trim_borders(img)
    assert hd(pdq_from_image(trimmed)[0], pdq_from_image(src)[0]) <= 10
    # and the border itself is what stops plain PDQ
    assert hd(pdq_from_image(img)[0], pdq_from_image(src)[0]) > PDQ_THRESHOLD


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_trimming_without_borders(seed):
    for size in ((480, 320), (320, 480)):
        assert C.trim_box(photo(seed, size)) is None
        assert C.trim_borders(photo(seed, size)) is None


def test_one_sided_low_detail_band_is_not_a_border():
    # a smooth sky band at the top only (no matching band below) must not be trimmed
    img = photo(2)
    arr = np.asarray(img).copy()
    sky = np.linspace(120, 200, 80)[:, None, None] * np.ones((1, img.width, 3))
    arr[:80] = sky.astype(np.uint8)
    assert C.trim_box(Image.fromarray(arr)) is None


def test_subcrop_windows_geometry():
    boxes = C.subcrop_boxes(200, 100)
    assert len(boxes) == 15
    assert boxes["crop95@0.5,0.5"] == (5, 2, 195, 97)  # Python's round: 2.5 -> 2
    assert boxes["crop80@0.5,0.5"] == (20, 10, 180, 90)
    assert boxes["crop80@0,0"] == (0, 0, 160, 80)
    assert boxes["crop90@1,1"] == (20, 10, 200, 100)
    grid = C.subcrop_boxes(200, 100, C.SUBCROPS_GRID)
    assert len(grid) == 27 and grid["crop70@0.5,0"] == (30, 0, 170, 70)


@pytest.mark.parametrize("p,anchor", [(0.2, (0.5, 0.5)), (0.2, (0.0, 1.0)), (0.1, (1.0, 0.0)), (0.1, (0.5, 0.5)),
                                     (0.05, (0.5, 0.5)), (0.05, (0.0, 0.0))])
def test_cropped_query_meets_a_stored_subcrop(p, anchor):
    src = photo(3)
    cw, ch = round(src.width * (1 - p)), round(src.height * (1 - p))
    x0, y0 = round((src.width - cw) * anchor[0]), round((src.height - ch) * anchor[1])
    query = pdq_from_image(jpeg(src.crop((x0, y0, x0 + cw, y0 + ch))))[0]
    stored = C.stored_extra_hashes(src, trim=False, rotations=())
    assert len(stored) == 15 and all(h.kind.startswith("crop") for h in stored)
    best = min(hd(query, h.value) for h in stored)
    assert best <= PDQ_THRESHOLD
    assert best < hd(query, pdq_from_image(src)[0])


def screenshot(img: Image.Image, margin: int = 0) -> tuple[Image.Image, tuple[int, int, int, int]]:
    W, H = 720, 1560
    shot = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(shot)
    d.text((24, 14), "9:41", fill=(20, 20, 20))
    d.rectangle([W - 90, 16, W - 40, 30], fill=(20, 20, 20))
    d.ellipse([20, 70, 90, 140], fill=(200, 120, 40))
    d.text((110, 95), "lighthouse_teapot", fill=(20, 20, 20))
    pw = W - 2 * margin
    ph = round(img.height * pw / img.width)
    shot.paste(img.resize((pw, ph), Image.BICUBIC), (margin, 170))
    for i, line in enumerate(["a lighthouse at dusk", "teapot and morning walk", "by the river"]):
        d.text((24, 170 + ph + 60 + 18 * i), line, fill=(20, 20, 20))
    d.rectangle([0, H - 110, W, H], fill=(245, 245, 245))
    return jpeg(shot), (margin, 170, margin + pw, 170 + ph)


@pytest.mark.parametrize("margin", [0, 32])
def test_screenshot_region_is_found_and_matches(margin):
    src = photo(4)
    shot, where = screenshot(src, margin)
    box = C.screenshot_box(shot)
    assert box is not None and close(box, where, 8), (box, where)
    extra = C.query_extra_hashes(shot, trim=False)
    assert [h.kind for h in extra] == ["screenshot"]
    assert hd(extra[0].value, pdq_from_image(src)[0]) <= PDQ_THRESHOLD
    assert hd(pdq_from_image(shot)[0], pdq_from_image(src)[0]) > PDQ_THRESHOLD


def test_plain_photo_has_no_screenshot_region():
    for seed in (0, 1, 2):
        assert C.screenshot_box(photo(seed)) is None


def test_rotated_query_meets_a_stored_rotation():
    src = photo(5)
    stored = C.stored_extra_hashes(src, trim=False, subcrops=False)
    assert [h.kind for h in stored] == [f"rot{d:+g}" for d in C.STORED_ROTATIONS]
    for deg in (-4.6, 2.3):
        q = pdq_from_image(jpeg(C.rotated_variant(src, deg)))[0]
        assert min(hd(q, h.value) for h in stored) <= PDQ_THRESHOLD


def test_rotated_variant_keeps_aspect_and_no_corners():
    src = photo(6)
    out = C.rotated_variant(src, 6)
    assert abs(out.width / out.height - src.width / src.height) < 0.02
    assert out.width < src.width and out.height < src.height
    corners = np.asarray(out)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max(axis=1).min() > 0  # no black fill came in at the corners
    assert C.inscribed_scale(400, 300, 0) == 1.0


def test_query_hashes_carry_dihedral_variants_and_trim_on_both_sides():
    src = photo(7)
    img, _ = boxed(src, (480, 860), (0, 0, 0))
    q = C.query_extra_hashes(img, screenshot=False)
    assert [h.kind for h in q] == ["trimmed"] and len(q[0].variants) == 8 and q[0].variants[0] == q[0].value
    s = C.stored_extra_hashes(img, subcrops=False, rotations=())
    assert [h.kind for h in s] == ["trimmed"] and hd(s[0].value, q[0].value) == 0
    assert q[0].usable


def test_derotate_expanded_recovers_the_photo():
    src = photo(8)
    turned = jpeg(src.rotate(4.0, resample=Image.BICUBIC, expand=True))
    back = C.derotate_expanded(turned, 4.0)
    assert abs(back.width - src.width) <= 3 and abs(back.height - src.height) <= 3
    assert hd(pdq_from_image(back)[0], pdq_from_image(src)[0]) <= PDQ_THRESHOLD
