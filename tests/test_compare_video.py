"""Video derivation proof (`consentry compare SOURCE.mp4 SUSPECT.mp4`, POST /v1/compare with two
videos): frames aligned by PDQ despite a time offset and re-encoding, a region that differs
consistently across frames, unrelated clips not derived, the report and the route.

Benign clips only, drawn here: a slowly panning landscape/texture; the "edit" pastes a patch of
another texture over a fixed region of every frame.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from consentry.config import MediaLimits
from consentry.evidence import derivation as dv
from imagegen import encode, scene, texture

W, H, FPS, SECONDS = 512, 288, 10, 5.0
PAN = 24  # pixels per second
SCALE = 0.75  # the suspect is re-encoded at 3/4 size
OFFSET = 0.3  # the suspect starts 0.3 s into the source
PATCH = (60, 45, 135, 105)  # x, y, width, height in the suspect's pixels
PATCH_IN_SOURCE = tuple(round(v / SCALE) for v in PATCH)


def _canvas(seed: int) -> Image.Image:
    w = W + int(PAN * (SECONDS + 1)) + 8
    return Image.blend(scene(w, H, seed=seed), texture(w, H, seed=seed), 0.5)


def _frame(canvas: Image.Image, t: float) -> Image.Image:
    x = int(round(PAN * t))
    return canvas.crop((x, 0, x + W, H))


def _write(path, frames, fps=FPS, bit_rate=2_000_000):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        h, w = np.asarray(frames[0]).shape[:2]
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.bit_rate = bit_rate
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _suspect(canvas: Image.Image, *, patch: bool, seconds: float = 4.0) -> list[Image.Image]:
    out = []
    x, y, pw, ph = PATCH
    sticker = texture(pw, ph, seed=999)
    for k in range(int(seconds * FPS)):
        f = _frame(canvas, OFFSET + k / FPS).resize((round(W * SCALE), round(H * SCALE)), Image.BICUBIC)
        if patch:
            f.paste(sticker, (x, y))
        out.append(f)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    canvas = _canvas(3)
    src = _write(d / "source.mp4", [_frame(canvas, k / FPS) for k in range(int(SECONDS * FPS))])
    edited = _write(d / "edited.mp4", _suspect(canvas, patch=True), bit_rate=700_000)
    plain = _write(d / "plain.mp4", _suspect(canvas, patch=False), bit_rate=700_000)
    other_canvas = _canvas(11)
    other = _write(d / "other.mp4", [_frame(other_canvas, k / FPS) for k in range(int(4 * FPS))], bit_rate=700_000)
    return {"source": src, "edited": edited, "plain": plain, "other": other}


@pytest.fixture(scope="module")
def edited_result(clips):
    return dv.compare_videos(clips["source"], clips["edited"], MediaLimits())


def _box_iou(boxes, box, size) -> float:
    w, h = size
    pred, true = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for g in boxes:
        pred[g["y"]:g["y"] + g["height"], g["x"]:g["x"] + g["width"]] = True
    x, y, bw, bh = box
    true[y:y + bh, x:x + bw] = True
    return float((pred & true).sum() / (pred | true).sum())


def test_recut_with_a_replaced_patch_is_derived_and_the_consistent_region_found(edited_result):
    v = edited_result
    assert v.ok, v.error
    body = v.to_dict()
    json.dumps(body)
    assert v.derived and v.share_aligned >= 0.75, body
    assert v.frames_sampled == 4 and v.frames_compared >= 3
    for p in v.pairs:
        if p.matched_by == "pdq":
            assert p.pdq_distance <= dv.FRAME_PDQ_THRESHOLD
            assert abs(p.source_t - p.suspect_t - OFFSET) <= 0.25, p.to_dict()  # the time offset followed
    assert abs(v.offset_seconds - OFFSET) <= 0.25
    assert len(v.stable_regions) >= 1
    assert _box_iou([r.to_dict() for r in v.stable_regions], PATCH_IN_SOURCE, (W, H)) >= 0.5, body["stable_regions"]
    assert v.stable_regions[0].fraction >= dv.STABLE_FRACTION
    assert "consistently across frames" in v.summary
    assert all(p.share_differing > 0.03 for p in v.pairs if p.share_differing is not None)
    assert body["kind"] == "video" and body["pairs"][0]["suspect_t"] == 0.0


def test_recut_without_the_patch_is_derived_with_no_consistent_region(clips):
    v = dv.compare_videos(clips["source"], clips["plain"], MediaLimits())
    assert v.derived and v.share_aligned >= 0.75, v.to_dict()
    assert not v.stable_regions, v.to_dict()["stable_regions"]
    assert "no region that differs consistently" in v.summary


def test_unrelated_clip_is_not_derived(clips):
    v = dv.compare_videos(clips["source"], clips["other"], MediaLimits())
    assert v.ok and not v.derived and v.frames_aligned == 0 and not v.stable_regions
    assert "could not be matched" in v.summary
    assert v.frames_compared == 0  # no vPDQ anchor: no per-frame picture work at all


def test_limits_and_unreadable_clips_are_errors_not_crashes(clips, tmp_path):
    v = dv.compare_videos(clips["source"], clips["edited"], MediaLimits(max_video_seconds=2.0))
    assert v.error and "over the limit" in v.error and not v.derived
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    v = dv.compare_paths(clips["source"], bad)
    assert v.error and not v.derived


def _run(*args):
    return subprocess.run([sys.executable, "-m", "consentry", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli_text_json_and_report_blur_the_suspect(clips, tmp_path):
    import base64
    import io

    out = tmp_path / "r.html"
    r = _run(clips["source"], clips["edited"], "--report", out)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["kind"] == "video" and body["derived"] and body["stable_regions"]
    html = out.read_text()
    assert "What this comparison does not show" in html and "consented" in html
    imgs = {}
    for fig, data in re.findall(r'<figure[^>]*id="(\w+)".*?src="data:image/jpeg;base64,([^"]+)"', html, re.S):
        imgs[fig] = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")).astype(int)
    assert set(imgs) == {"original", "thumbnail"}  # one source frame; the suspect only as a thumbnail
    a = imgs["original"]
    assert ((a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80)).sum() > 100  # outlined
    t = imgs["thumbnail"]
    assert max(t.shape[:2]) <= 160 and np.abs(t[..., 0] - t[..., 1]).max() <= 8
    assert np.abs(np.diff(t[..., 0], axis=1)).mean() < 3  # blurred
    r = _run(clips["source"], clips["other"], "--format", "text")
    assert r.returncode == 0 and "not shown to be derived" in r.stdout and "could not be matched" in r.stdout
    pic = tmp_path / "p.png"
    pic.write_bytes(encode(scene(200, 150), "PNG"))
    r = _run(clips["source"], pic)
    assert r.returncode == 1 and "a picture and a video cannot be compared" in json.loads(r.stdout)["error"]
    assert "Traceback" not in r.stderr


def test_pdf_report(edited_result, tmp_path):
    from consentry.evidence.compare_report import write_compare_report

    out = write_compare_report(edited_result, tmp_path / "r.pdf")
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 10_000


def test_compare_route_with_two_videos_and_a_mix(clips, tmp_path):
    from fastapi.testclient import TestClient

    from consentry.config import Settings
    from consentry.db import open_database
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    settings = Settings(home=tmp_path)
    db = open_database(settings)
    app = create_app(settings, db, background=False)
    key, _ = KeyStore(db).create("matcher", "t")
    auth = {"Authorization": f"Bearer {key}"}
    src, sus = clips["source"].read_bytes(), clips["edited"].read_bytes()
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/compare", files={"original": ("mine.mp4", src), "suspect": ("found.mp4", sus)}, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["kind"] == "video" and body["derived"] is True and body["original"]["name"] == "mine.mp4"
        assert _box_iou(body["stable_regions"], PATCH_IN_SOURCE, (W, H)) >= 0.5
        r = c.post("/v1/compare", files={"original": ("mine.mp4", src),
                                         "suspect": ("p.png", encode(scene(200, 150), "PNG"))}, headers=auth)
        assert r.status_code == 422 and "a picture and a video" in r.json()["detail"]
        assert r.headers["content-type"].startswith("application/problem+json")
    db.dispose()
