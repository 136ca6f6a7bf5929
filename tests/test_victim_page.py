"""The victim page in a real browser (Playwright + Debian's chromium) against a real uvicorn:
the page hashes Meta's test vectors on the device (JS PDQ within 4 of pdqhash for PNGs and 10 for
JPEGs, bit-identical on the same pixels; MD5 exact), computes the server's canonical PDQ variants
of each photo (issue 21, identical on the same pixels) so a cropped copy is found, sends nothing
but the JSON of hashes (every request recorded), refuses to submit for under-18s, and the case
page shows status and withdraws.

The measured distance table is written to docs/victims.md (between the distance markers).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import CHROMIUM, CHROMIUM_ARGS, REPO, _free_port, make_key, needs_chromium
from imagegen import encode, scene

PIN = "quiet-harbour-19"
DOC = REPO / "docs" / "victims.md"
START, END = "<!-- distances:start -->", "<!-- distances:end -->"
_KEYS: dict[str, str] = {}
#: How the page computes a picture's canonical variants: with the windows and turns the server
#: gives it (data-canonical), as canonical.js's storedVariants takes them.
_JS_CONFIG = "JSON.parse(document.getElementById('files').dataset.canonical)"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("hub")
    key = make_key(home, "admin")
    _KEYS["matcher"] = make_key(home, "matcher")
    port = _free_port()
    env = dict(os.environ, CONSENTRY_HOME=str(home), CONSENTRY_EXCHANGE_PULL_SECONDS="0")
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "consentry.web.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.terminate()
        raise AssertionError("server did not start")
    yield base, {"Authorization": f"Bearer {key}"}
    proc.terminate()
    proc.wait(20)


@pytest.fixture
def matcher_headers(server):
    """A partner platform's key (role matcher), made with the server's database."""
    return {"Authorization": f"Bearer {_KEYS['matcher']}"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def files(testvectors, tmp_path_factory):
    """Meta's PNG and JPEG vectors plus benign drawn pictures (alpha PNG, EXIF-rotated JPEG)."""
    pdq = testvectors / "pdq"
    out = sorted((pdq / "misc-images").rglob("*.png"))
    out += sorted((pdq / "misc-images").rglob("*.jpg")) + sorted((pdq / "bridge-mods").glob("*.jpg"))
    out += sorted((pdq / "reg-test-input" / "dih").glob("*.jpg"))
    out += sorted((pdq / "reg-test-input" / "labelme-subset").glob("*.jpg"))
    d = tmp_path_factory.mktemp("drawn")
    rgba = scene(401, 299, seed=3).convert("RGBA")
    alpha = np.full((299, 401), 255, np.uint8)
    alpha[:, :120] = 90
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(d / "drawn-alpha.png")
    scene(333, 517, seed=4).save(d / "drawn-rgb.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    scene(640, 360, seed=5).save(d / "drawn-exif-rotated.jpg", quality=92, exif=exif)
    return out + [d / "drawn-alpha.png", d / "drawn-rgb.png", d / "drawn-exif-rotated.jpg"]


def _reference(path: Path):
    from consentry.config import MediaLimits
    from consentry.hashing import hash_path

    return hash_path(path, MediaLimits())


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _hash_in_page(page, base, files):
    page.goto(base + "/submit")
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_selector("body[data-hashing=done]", state="attached", timeout=240_000)
    return page.eval_on_selector_all(
        "#items li[data-index]",
        "rs => rs.map(r => ({i: +r.dataset.index, pdq: r.dataset.pdq, quality: r.dataset.quality,"
        " md5: r.dataset.md5, variants: r.dataset.variants, error: r.dataset.error || null}))")


def _write_table(rows: list[tuple[str, str, int, int, int, int]]) -> None:
    lines = ["| file | format | size | JS PDQ vs pdqhash (distance) | JS quality | pdqhash quality |",
             "|---|---|---|---:|---:|---:|"]
    for name, fmt, size, dist, jq, pq in rows:
        lines.append(f"| `{name}` | {fmt} | {size} | {dist} | {jq} | {pq} |")
    for fmt in ("PNG", "JPEG"):
        ds = [r[3] for r in rows if r[1] == fmt]
        lines.append(f"| **all {len(ds)} {fmt}** | | | max {max(ds)}, mean {sum(ds) / len(ds):.2f} | | |")
    table = "\n".join(lines)
    text = DOC.read_text() if DOC.exists() else f"# Victims\n\n{START}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        new = f"{head}{START}\n{table}\n{END}{tail}"
        if new != text:
            DOC.write_text(new)


def test_page_hashes_vectors_like_pdqhash_and_sends_only_hashes(server, browser, files):
    from consentry.victims.cases import variant_kinds

    base, admin = server
    page = browser.new_page()
    requests = []
    page.on("request", lambda req: requests.append(req))
    rows = _hash_in_page(page, base, files)
    assert len(rows) == len(files)
    table = []
    for row in sorted(rows, key=lambda r: r["i"]):
        path = files[row["i"]]
        ref = _reference(path)
        assert row["error"] is None, (path.name, row["error"])
        assert row["md5"] == ref.md5, path.name  # MD5 of the file bytes: exact
        dist = _distance(row["pdq"], ref.pdq)
        fmt = "PNG" if path.suffix == ".png" else "JPEG"
        assert dist <= (4 if fmt == "PNG" else 10), (path.name, dist)
        size = "x".join(map(str, Image.open(path).size))
        table.append((path.name, fmt, size, dist, int(row["quality"]), ref.pdq_quality))
        assert abs(int(row["quality"]) - ref.pdq_quality) <= 10, path.name
    _write_table(table)

    # nothing has left the page yet: only the page itself and its own static files were fetched
    # (blob: URLs are the local thumbnails, read from memory inside the browser)
    def local(url: str) -> bool:
        return url.startswith(base + "/") or url.startswith("blob:" + base + "/")

    assert all(r.method == "GET" and local(r.url) for r in requests), [r.url for r in requests]
    assert {r.url for r in requests if not r.url.startswith("blob:")} == {
        base + p for p in ("/submit", "/static/victim/victim.css", "/static/victim/i18n.js", "/static/victim/md5.js",
                           "/static/victim/pdq.js", "/static/victim/canonical.js", "/static/victim/submit.js",
                           "/static/victim/hash.svg")}
    # the send button stays off until the age question is answered
    assert page.is_disabled("#send")
    _send_as_adult(page)
    case = page.text_content("#case-number").strip()
    assert re.fullmatch(r"([0-9A-Z]{4}-){4}[0-9A-Z]{4}", case)

    # every request the page made: same origin; one POST, carrying only the JSON of hashes
    assert all(local(r.url) for r in requests), [r.url for r in requests]
    posts = [r for r in requests if r.method != "GET"]
    assert [r.url for r in posts] == [base + "/v1/victim/cases"]
    body = posts[0].post_data_buffer
    assert posts[0].headers["content-type"] == "application/json"
    sent = json.loads(body)
    assert set(sent) == {"version", "items", "pin", "depicted_adult"} and sent["depicted_adult"] is True
    assert all(set(item) <= {"kind", "md5", "pdq", "pdq_quality", "pdq_variants"} for item in sent["items"])
    assert sorted(i["md5"] for i in sent["items"]) == sorted(r["md5"] for r in rows)
    # a photo with a usable PDQ also carries the PDQ of its canonical variants: hashes only too
    variants = [v for i in sent["items"] for v in i.get("pdq_variants", [])]
    assert any("pdq_variants" in i for i in sent["items"])
    kinds = variant_kinds()
    assert all(int(i["pdq_quality"]) >= 50 and "pdq" in i and len(i["pdq_variants"]) <= len(kinds)
               for i in sent["items"] if "pdq_variants" in i)
    assert all(set(v) == {"kind", "pdq", "quality"} and v["kind"] in kinds
               and re.fullmatch(r"[0-9a-f]{64}", v["pdq"]) and v["quality"] >= 50 for v in variants)
    assert len(body) < 300 * len(files) + 110 * len(variants)  # a few hundred bytes per hash
    for path in files:
        data = path.read_bytes()
        for off in (len(data) // 3, len(data) // 2, (2 * len(data)) // 3):
            chunk = data[off : off + 24]
            assert chunk not in body and base64.b64encode(chunk)[:24] not in body, path.name
        assert path.name.encode() not in body  # no file names either

    # the hub bank holds the hashes (md5 + pdq per file, fewer where files share a hash; a plain
    # picture, PDQ quality 0, is sent by its MD5 only)
    bank = httpx.get(base + "/v1/banks/victim-hub", headers=admin).json()
    assert bank["counts"]["active"] == len({r["md5"] for r in rows}) + len({r["pdq"] for r in rows
                                                                           if int(r["quality"]) > 0})

    # the case page: status, then withdrawal
    page.goto(base + "/case")
    page.fill("#case", case.lower().replace("-", " "))
    page.fill("#case-pin", PIN)
    page.click("#check")
    page.wait_for_selector("#case-status:not([hidden])")
    assert page.text_content("#st-received") == str(bank["counts"]["active"])
    assert page.get_attribute("#case-status", "data-status") == "active"
    page.click("#withdraw")
    assert "Tick the box" in page.text_content("#withdraw-error")
    page.check("#confirm-withdraw")
    page.click("#withdraw")
    page.wait_for_selector("#case-status[data-status=withdrawn]")
    assert page.text_content("#st-active") == "0"
    assert httpx.get(base + "/v1/banks/victim-hub", headers=admin).json()["counts"]["active"] == 0
    page.close()


def test_js_pdq_is_bit_identical_on_the_same_pixels(server, browser, testvectors):
    """Decoders aside, the JS algorithm is the reference's: same pixels, same 256 bits and quality."""
    from consentry.signals.pdq import pdq_from_image

    base, _ = server
    page = browser.new_page()
    page.goto(base + "/submit")
    images = [scene(64, 64, 1), scene(7, 5, 2), scene(300, 130, 3), scene(1031, 771, 6),
              Image.open(testvectors / "pdq" / "misc-images" / "c.png").convert("RGB")]
    for img in images:
        rgba = np.asarray(img.convert("RGBA"))
        got = page.evaluate(
            "([b64, w, h]) => { const s = atob(b64); const a = new Uint8Array(s.length);"
            " for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);"
            " return ConsentryPDQ.fromRGBA(a, w, h); }",
            [base64.b64encode(rgba.tobytes()).decode(), img.width, img.height])
        want, quality = pdq_from_image(img)
        assert (got["hash"], got["quality"]) == (want, quality), img.size
    page.close()


def _rgba_arg(img: Image.Image) -> list:
    rgba = np.asarray(img.convert("RGBA"))
    return [base64.b64encode(rgba.tobytes()).decode(), img.width, img.height]


_JS_PIXELS = "const s = atob(b64); const a = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);"


def _send_as_adult(page) -> None:
    """Answer the age question (adult), set the PIN, send, and wait for the case number."""
    page.check("#age-adult")
    page.fill("#pin", PIN)
    page.fill("#pin2", PIN)
    with page.expect_response(lambda r: r.url.endswith("/v1/victim/cases")) as resp:
        page.click("#send")
    assert resp.value.status == 201
    page.wait_for_selector("#result:not([hidden])")


def _letterboxed(img: Image.Image, height: int) -> Image.Image:
    """``img`` pasted in the middle of a taller black canvas (as a phone shows a landscape photo)."""
    canvas = Image.new("RGB", (img.width, height), (0, 0, 0))
    canvas.paste(img, (0, (height - img.height) // 2))
    return canvas


def test_js_canonical_variants_equal_the_servers_on_the_same_pixels(server, browser):
    """canonical.js against ``stored_extra_hashes`` on the same RGBA pixels, for a plain picture, two
    letterboxed ones (one above the 512-pixel working size, so the BOX-resized grey copy is
    exercised, and above the 1024-pixel stored size, as is a large picture: the RGB copy the
    variants are computed on), a pillarboxed one and pictures of odd sizes: the same kinds in the same order, the
    same trimmed box, and every hash and quality bit-identical.

    Measured with Debian's Chromium: distance 0 for every variant, the 12 rotations included (the
    port follows Pillow's affine matrix and bicubic kernel in double precision, and numpy's float32
    sums for the border search), so the test asks for equality, not a distance."""
    from consentry.signals.canonical import stored_extra_hashes, subcrop_boxes, trim_box

    base, _ = server
    page = browser.new_page()
    page.goto(base + "/submit")
    pillar = Image.new("RGB", (700, 300), (255, 255, 255))
    pillar.paste(scene(400, 300, seed=24), (150, 0))
    cases = {
        "plain": scene(320, 240, seed=21),
        "letterboxed": _letterboxed(scene(400, 300, seed=22), 560),
        "letterboxed-large": _letterboxed(scene(720, 540, seed=23), 1280),
        "pillarboxed": pillar,
        "odd-sizes": scene(333, 517, seed=4),
        "odd-small": scene(61, 47, seed=25),
        "large": scene(1601, 1203, seed=26),  # over STORED_MAX_SIDE: both sides work on a BOX-resized copy
    }
    measured = {}
    for name, img in cases.items():
        got = page.evaluate(
            "([b64, w, h]) => { " + _JS_PIXELS + " const c = " + _JS_CONFIG + ";"
            " return {box: ConsentryCanonical.trimBox(a, w, h),"
            " variants: ConsentryCanonical.storedVariants(a, w, h, c),"
            " crops: ConsentryCanonical.subcropBoxes(w, h, c.windows)}; }", _rgba_arg(img))
        want = stored_extra_hashes(img)
        box = trim_box(img)
        assert (got["box"] is None) == (box is None) and (box is None or tuple(got["box"]) == box), name
        if name.startswith(("letterboxed", "pillarboxed")):
            assert box is not None and want[0].kind == "trimmed", name  # the borders were found
        assert {k: tuple(b) for k, b in got["crops"]} == subcrop_boxes(img.width, img.height), name
        assert [v["kind"] for v in got["variants"]] == [h.kind for h in want], name
        dists = {v["kind"]: _distance(v["hash"], h.value) for v, h in zip(got["variants"], want)}
        measured[name] = max(dists.values())
        assert all(d == 0 for d in dists.values()), (name, {k: d for k, d in dists.items() if d})
        assert [v["quality"] for v in got["variants"]] == [h.quality for h in want], name
    assert measured == {name: 0 for name in cases}
    page.close()


def _centre_crop(img: Image.Image, keep: float) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
    return img.crop((dx, dy, w - dx, h - dy))


def test_a_cropped_copy_is_found_through_the_variants_the_page_sent(server, browser, matcher_headers, tmp_path):
    """End to end: the page sends a picture's PDQ with its canonical variants (the server's own,
    exactly: a PNG decodes to the same pixels); a copy with 20 % cropped off around the centre,
    re-encoded as JPEG, then matches the hub bank through a stored variant, where its plain PDQ is
    far beyond the match threshold (so without the variants it would be missed)."""
    from consentry.signals.canonical import stored_extra_hashes
    from consentry.signals.pdq import PDQ_THRESHOLD, pdq_from_image

    base, admin = server
    pic = scene(640, 480, seed=71)
    path = tmp_path / "picture.png"
    pic.save(path)
    page = browser.new_page()
    requests = []
    page.on("request", lambda req: requests.append(req))
    (row,) = _hash_in_page(page, base, [path])
    assert row["error"] is None and int(row["variants"]) >= 20
    _send_as_adult(page)
    sent = json.loads(next(r for r in requests if r.method == "POST").post_data_buffer)
    (item,) = sent["items"]
    assert item["pdq"] == pdq_from_image(pic)[0]
    want = [h for h in stored_extra_hashes(pic) if h.quality >= 50 and h.value != item["pdq"]]
    assert [(v["kind"], v["pdq"], v["quality"]) for v in item["pdq_variants"]] == [
        (h.kind, h.value, h.quality) for h in want]
    page.close()

    copy = _centre_crop(pic, 0.8)
    jpeg = encode(copy, "JPEG", quality=90)
    plain = _distance(pdq_from_image(Image.open(io.BytesIO(jpeg)).convert("RGB"))[0], item["pdq"])
    assert plain > PDQ_THRESHOLD  # the picture's own PDQ alone would not find the copy
    r = httpx.post(base + "/v1/match", files={"file": ("copy.jpg", jpeg, "image/jpeg")}, headers=matcher_headers)
    assert r.status_code == 200, r.text
    hits = [m for m in r.json()["matches"] if m["bank"] == "victim-hub"]
    assert hits, r.json()
    hit = hits[0]
    assert hit["stored_variant"].startswith("crop80") and hit["distance"] <= PDQ_THRESHOLD, hit
    entries = httpx.get(base + "/v1/banks/victim-hub/entries", params={"signal_type": "pdq", "limit": 1000},
                        headers=admin).json()["entries"]
    assert [e["id"] for e in entries if e["value"] == item["pdq"]] == [hit["entry_id"]]


def test_under_18_shows_where_to_go_and_sends_nothing(server, browser, files):
    base, admin = server
    before = httpx.get(base + "/v1/banks", headers=admin).json()
    page = browser.new_page()
    requests = []
    page.on("request", lambda req: requests.append(req))
    _hash_in_page(page, base, files[:2])
    page.check("#age-minor")
    assert page.is_visible("#minor-help")
    assert page.get_attribute("#minor-help a", "href") == "https://takeitdown.ncmec.org/"
    assert page.is_hidden("#pin-section") and page.is_disabled("#send")
    # even forcing the form's submit event sends nothing
    page.evaluate("document.getElementById('submit-form').requestSubmit()")
    assert "age question" in page.text_content("#form-error")
    page.check("#age-unsure")
    assert page.is_visible("#minor-help")
    assert page.text_content("#form-error") == ""  # a stale error goes when the answer changes
    time.sleep(0.5)
    assert [r.method for r in requests if r.method != "GET"] == []
    after = httpx.get(base + "/v1/banks", headers=admin).json()
    assert after == before
    page.close()


def test_video_is_hashed_in_the_page_one_frame_per_second_and_matches(server, browser, testvectors):
    """A video never leaves the device either: the page sends one PDQ per second (vPDQ), and the
    hub's bank then matches the server-side vPDQ of the same file."""
    from consentry.config import MediaLimits
    from consentry.media.content import Content
    from consentry.signals.vpdq import VPDQSignal

    base, admin = server
    video = testvectors / "videos" / "pattern-sd-grey-bar.mp4"
    page = browser.new_page()
    requests = []
    page.on("request", lambda req: requests.append(req))
    page.goto(base + "/submit")
    page.set_input_files("#files", [str(video)])
    page.wait_for_selector("body[data-hashing=done]", state="attached", timeout=240_000)
    row = page.eval_on_selector("#items li[data-index]", "r => ({frames: r.dataset.frames, error: r.dataset.error || null})")
    if row["error"] and "cannot play" in row["error"]:
        pytest.skip("this Chromium build cannot decode H.264 (no proprietary codecs)")
    assert row["error"] is None and int(row["frames"]) > 0
    _send_as_adult(page)
    posts = [r for r in requests if r.method != "GET"]
    sent = json.loads(posts[0].post_data_buffer)
    (item,) = sent["items"]
    assert item["kind"] == "video" and set(item) <= {"kind", "md5", "vpdq"}
    js_frames = [f.split(",") for f in item["vpdq"]]
    ours = VPDQSignal.compute_frames(Content.from_path(video, MediaLimits()))
    assert abs(len(js_frames) - len(ours)) <= 1
    # frame by frame, where both are usable: the browser's and FFmpeg's decoders agree closely
    by_second = {round(f.timestamp): f for f in ours}
    dists = [_distance(h, by_second[round(float(t))].pdq_hex) for h, q, t in js_frames
             if round(float(t)) in by_second and int(q) >= 50 and by_second[round(float(t))].quality >= 50]
    assert dists and max(dists) <= 31, dists
    data = video.read_bytes()
    assert data[len(data) // 2 : len(data) // 2 + 24] not in posts[0].post_data_buffer
    # the bank built from the page's hashes matches the server's own vPDQ of the file
    r = httpx.get(base + "/v1/match", params={"signal_type": "vpdq", "value": json.dumps([str(f) for f in ours]),
                                             "bank": "victim-hub"}, headers=admin)
    assert r.status_code == 200, r.text
    hits = [m for m in r.json()["matches"] if m["signal_type"] == "vpdq"]
    assert hits and hits[0]["query_match_percent"] >= 80
    page.close()


def test_plain_picture_gets_a_calm_note_and_only_its_exact_hash_is_sent(server, browser, tmp_path):
    """A picture with almost no detail (a flat colour: PDQ quality 0) cannot be recognised by its
    look: a note under it says so and what to do, the status line counts it, and only its MD5 is
    sent (its PDQ would match every plain picture); a detailed picture gets no note. On a phone."""
    flat = tmp_path / "flat-blue.png"
    Image.new("RGB", (300, 200), (120, 170, 210)).save(flat)
    detailed = tmp_path / "drawn.png"
    scene(320, 240, seed=7).save(detailed)
    base, _ = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    requests = []
    page.on("request", lambda req: requests.append(req))
    rows = _hash_in_page(page, base, [detailed, flat])
    by_index = {r["i"]: r for r in rows}
    assert int(by_index[1]["quality"]) == 0 and int(by_index[0]["quality"]) >= 50
    notes = page.query_selector_all("#items .plain")
    assert len(notes) == 1 and not page.query_selector_all("#items .weak")
    note = notes[0]
    text = note.text_content()
    assert "too plain" in text and "only exact copies" in text and "choose the original" in text
    assert note.is_visible()
    # the note sits in the flat picture's entry
    assert page.get_attribute("#items li[data-index='1']", "data-plain") == "1"
    assert page.eval_on_selector("#items li[data-index='1']", "r => r.querySelector('.plain') !== null")
    assert page.get_attribute("#items li[data-index='0']", "data-plain") is None
    # screen readers hear it in the status line too
    progress = page.text_content("#hash-progress")
    assert "2 pictures or videos are ready" in progress and "1 picture is too plain" in progress
    # readable on a 390px phone without sideways scrolling
    box = note.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(os.environ.get("CONSENTRY_SCREENSHOT_DIR", tmp_path)) + "/victim-plain-390.png",
                    full_page=True)
    # keyboard only: answer the age question and send; both pictures go, the plain one by MD5 only
    page.focus("#age-adult")
    page.keyboard.press("Space")
    page.focus("#pin")
    page.keyboard.type(PIN)
    page.keyboard.press("Tab")
    page.keyboard.type(PIN)
    assert page.evaluate("document.activeElement.id") == "pin2"
    with page.expect_response(lambda r: r.url.endswith("/v1/victim/cases")) as resp:
        page.focus("#send")
        page.keyboard.press("Enter")
    assert resp.value.status == 201
    page.wait_for_selector("#result:not([hidden])")
    sent = json.loads([r for r in requests if r.method == "POST"][0].post_data_buffer)
    by_md5 = {i["md5"]: i for i in sent["items"]}
    assert set(by_md5) == {by_index[0]["md5"], by_index[1]["md5"]}
    assert "pdq" not in by_md5[by_index[1]["md5"]] and by_md5[by_index[0]["md5"]]["pdq"] == by_index[0]["pdq"]
    page.close()
