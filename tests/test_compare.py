"""Derivation proof (`consentry compare`, POST /v1/compare): alignment despite crop, rotation,
mirror and re-encoding; the differing region found; unrelated pictures not derived; the report.

Benign pictures only: drawn scenes blended with value-noise texture; an "edit" replaces a box
with a patch of another texture.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from consentry.evidence import derivation as dv
from imagegen import encode, scene, texture

EDIT_BOX = (260, 170, 150, 110)  # x, y, width, height in the original


def picture(seed: int, w: int = 640, h: int = 480) -> Image.Image:
    return Image.blend(scene(w, h, seed=seed), texture(w, h, seed=seed), 0.5)


def edited(orig: Image.Image, box=EDIT_BOX) -> Image.Image:
    x, y, bw, bh = box
    out = orig.copy()
    out.paste(texture(bw, bh, seed=999).resize((bw, bh)), (x, y))
    return out


def jpeg(img: Image.Image, q: int) -> Image.Image:
    return Image.open(io.BytesIO(encode(img, "JPEG", quality=q))).convert("RGB")


def crop_rotate(img: Image.Image, angle: float = 7.0, mirror: bool = False, q: int = 75) -> Image.Image:
    w, h = img.size
    out = img.crop((int(0.12 * w), int(0.06 * h), int(0.95 * w), int(0.97 * h)))  # ~ 25 % cut
    out = out.resize((int(out.width * 0.8), int(out.height * 0.8)), Image.BICUBIC)
    out = out.rotate(angle, resample=Image.BICUBIC, expand=True)
    if mirror:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return jpeg(out, q)


def region_iou(regions, box, size) -> float:
    w, h = size
    pred, true = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for r in regions:
        pred[r.y:r.y + r.height, r.x:r.x + r.width] = True
    x, y, bw, bh = box
    true[y:y + bh, x:x + bw] = True
    return float((pred & true).sum() / (pred | true).sum())


@pytest.fixture(scope="module")
def orig():
    return picture(3)


@pytest.fixture(scope="module")
def case(orig):
    suspect = crop_rotate(edited(orig))
    return suspect, dv.compare_images(orig, suspect)


def test_edited_cropped_rotated_jpeg_is_derived_and_the_region_found(orig, case):
    _, d = case
    assert d.alignment.ok and d.derived, d.alignment.reason
    assert not d.alignment.mirrored
    assert abs(d.alignment.rotation - 7.0) < 1.0  # counter-clockwise, as PIL rotated it
    assert abs(d.alignment.scale - 0.8) < 0.05
    assert d.alignment.inliers >= dv.MIN_INLIERS
    assert region_iou(d.regions, EDIT_BOX, orig.size) >= 0.6, [r.to_dict() for r in d.regions]
    # the edit is ~ 8 % of the suspect's picture area: the rest is explained by the original
    assert 0.75 <= d.share_derived <= 0.97
    assert d.overlap_of_original < 0.85  # it was cropped
    assert "derived from your photo" in d.summary and "outlined region" in d.summary
    body = d.to_dict()
    assert body["derived"] is True and body["transform"]["mirrored"] is False
    assert body["regions"][0]["x"] >= 0 and body["aligned_pdq"]["distance"] >= 0
    json.dumps(body)  # serialisable


def test_mirrored_suspect_is_aligned_and_reported_as_mirrored(orig):
    d = dv.compare_images(orig, crop_rotate(edited(orig), angle=-5.0, mirror=True, q=85))
    assert d.derived and d.alignment.mirrored
    assert region_iou(d.regions, EDIT_BOX, orig.size) >= 0.6
    assert "mirrored" in d.summary


def test_unedited_reencode_and_rescale_differ_by_at_most_two_percent(orig):
    for suspect in (jpeg(orig, 60), jpeg(orig.resize((400, 300), Image.BILINEAR), 70), crop_rotate(orig, 4.0)):
        d = dv.compare_images(orig, suspect)
        assert d.derived, d.alignment.reason
        assert d.share_differing <= 0.02 and not d.regions, [r.to_dict() for r in d.regions]
        assert d.share_derived >= 0.95
        assert d.pdq_distance is not None and d.pdq_distance <= 31
        assert "no region that differs" in d.summary


def test_unrelated_pictures_are_not_derived(orig, testvectors):
    bridge = Image.open(testvectors / "pdq/bridge-mods/aaa-orig.jpg").convert("RGB")
    for other in (picture(11), bridge):
        d = dv.compare_images(orig, other)
        assert not d.derived and not d.alignment.ok and not d.regions
        assert "could not be matched" in d.summary
        assert d.to_dict()["transform"] is None


def test_implausible_transforms_are_refused():
    ok = np.array([[1.2, 0.1, 5.0], [-0.1, 1.2, 3.0], [0.0, 0.0, 1.0]])
    assert dv._check_transform(ok, (400, 300))[0] == ""
    sheared = np.array([[1.0, 1.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert "stretch" in dv._check_transform(sheared, (400, 300))[0]
    flipped = np.array([[-1.0, 0.0, 400.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert "mirror" in dv._check_transform(flipped, (400, 300))[0]
    tiny = np.diag([40.0, 40.0, 1.0])
    assert "scale" in dv._check_transform(tiny, (400, 300))[0]
    perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.004, 0.0, 1.0]])
    assert dv._check_transform(perspective, (400, 300))[0]


def test_padding_is_found_and_left_out():
    img = np.zeros((300, 400, 3), np.uint8)
    img[:, :] = (12, 12, 12)
    img[40:260, 50:350] = np.asarray(picture(5, 300, 220))
    pad = dv.padding_mask(img)
    assert pad[:30].all() and pad[:, :40].all() and not pad[60:240, 70:330].any()


def _images(html: str) -> dict[str, Image.Image]:
    out = {}
    for fig, data in re.findall(r'<figure[^>]*id="(\w+)".*?src="data:image/jpeg;base64,([^"]+)"', html, re.S):
        out[fig] = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    return out


def _run(*args):
    return subprocess.run([sys.executable, "-m", "consentry", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_and_report_outline_the_original_and_blur_the_suspect(tmp_path, orig, case):
    o, s = tmp_path / "mine.png", tmp_path / "found.jpg"
    o.write_bytes(encode(orig, "PNG"))
    s.write_bytes(encode(case[0], "JPEG", quality=90))
    out = tmp_path / "r.html"
    r = _run(o, s, "--report", out)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["derived"] and body["regions"] and body["transform"]["rotation_degrees"] > 5
    html = out.read_text()
    assert "Derivation report" in html and "What this comparison does not show" in html
    assert "who made" in html and "consented" in html and str(round(100 * body["share_derived"])) + " %" in html
    imgs = _images(html)
    assert set(imgs) == {"original", "thumbnail"}  # no other picture of the suspect
    a = np.asarray(imgs["original"]).astype(int)
    red = (a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80)
    assert red.sum() > 100  # the outline is drawn in the pixels
    thumb = np.asarray(imgs["thumbnail"]).astype(int)
    assert max(thumb.shape[:2]) <= 160
    assert np.abs(thumb[..., 0] - thumb[..., 1]).max() <= 8  # greyscale
    assert np.abs(np.diff(thumb[..., 0], axis=1)).mean() < 3  # blurred
    r = _run(o, s, "--report", tmp_path / "clear.html", "--show-image", "--format", "text")
    assert r.returncode == 0 and "derived from the original" in r.stdout
    clear = np.asarray(_images((tmp_path / "clear.html").read_text())["thumbnail"]).astype(int)
    assert np.abs(clear[..., 0] - clear[..., 1]).max() > 20  # colour when asked
    r = _run(o, tmp_path / "missing.jpg")
    assert r.returncode == 1 and json.loads(r.stdout)["error"].startswith("the suspect could not be read")
    assert "Traceback" not in r.stderr
    assert _run(o, s, "--report", tmp_path / "r.txt").returncode == 2


def test_pdf_report(tmp_path, orig, case):
    from consentry.evidence.compare_report import write_compare_report

    o, s = tmp_path / "mine.png", tmp_path / "found.jpg"
    o.write_bytes(encode(orig, "PNG"))
    s.write_bytes(encode(case[0], "JPEG", quality=90))
    out = write_compare_report(case[1], tmp_path / "r.pdf", original=o, suspect=s)
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 10_000


def test_compare_route(tmp_path, orig, case):
    from fastapi.testclient import TestClient

    from consentry.config import Settings
    from consentry.db import open_database
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    settings = Settings(home=tmp_path)
    db = open_database(settings)
    app = create_app(settings, db, background=False)
    key, _ = KeyStore(db).create("matcher", "t")
    partner, _ = KeyStore(db).create("partner", "p")
    auth = {"Authorization": f"Bearer {key}"}
    o, s = encode(orig, "PNG"), encode(case[0], "JPEG", quality=90)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/compare", files={"original": ("mine.png", o), "suspect": ("found.jpg", s)}, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["derived"] is True and body["inliers"] >= dv.MIN_INLIERS
        assert body["original"]["name"] == "mine.png" and len(body["original"]["sha256"]) == 64
        assert region_iou([dv.Region(**{k: g[k] for k in ("x", "y", "width", "height")}, share=0)
                           for g in body["regions"]], EDIT_BOX, orig.size) >= 0.6
        assert {"scale", "rotation_degrees", "mirrored"} <= set(body["transform"])
        assert body["summary"] and body["limitations"] and body["aligned_pdq"]["distance"] is not None
        r = c.post("/v1/compare", files={"original": ("mine.png", o),
                                         "suspect": ("x.png", encode(picture(21), "PNG"))}, headers=auth)
        assert r.status_code == 200 and r.json()["derived"] is False
        r = c.post("/v1/compare", files={"original": ("mine.png", o), "suspect": ("x.bin", b"not a picture")},
                   headers=auth)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        r = c.post("/v1/compare", files={"original": ("mine.png", o), "suspect": ("s.png", encode(scene(20, 20), "PNG"))},
                   headers=auth)
        assert r.status_code == 422 and "too small" in r.json()["detail"]
        r = c.post("/v1/compare", files={"original": ("mine.png", o), "suspect": ("found.jpg", s)},
                   headers={"Authorization": f"Bearer {partner}"})
        assert r.status_code == 403
        assert c.post("/v1/compare", files={"original": ("mine.png", o)}, headers=auth).status_code == 422
    db.dispose()
