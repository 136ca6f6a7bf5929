"""Decoding limits: decoded-bytes bound, huge flat/16-bit/float images within ~1 GB, video frame
size, decode and request deadlines, decode slots. Every image here is a flat grey/colour field."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from consentry.config import MediaLimits
from consentry.errors import MediaTooLarge
from consentry.media import guard
from consentry.media.image import load_image, to_rgb


# --------------------------------------------------------------------------- small builders
def _chunk(t: bytes, d: bytes) -> bytes:
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def flat_png(w: int, h: int, depth: int = 8, channels: int = 1) -> bytes:
    """A flat PNG built row by row (never held decoded): huge dimensions, a few hundred KB."""
    colour = {1: 0, 3: 2, 4: 6}[channels]
    sample = (struct.pack(">H", 0x6A3C) if depth == 16 else b"\x5a") * channels
    row = b"\x00" + sample * w
    comp = zlib.compressobj(9)
    idat = b"".join([comp.compress(row) for _ in range(h)] + [comp.flush()])
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def flat_float_tiff(w: int, h: int, value: float = 0.4, rows: int = 64) -> bytes:
    """A deflate-compressed 32-bit float grey TIFF of one value."""
    row = np.full(w, value, dtype="<f4").tobytes()
    strips = [zlib.compress(row * min(rows, h - y), 9) for y in range(0, h, rows)]
    n = len(strips)
    offsets, off = [], 8
    for s in strips:
        offsets.append(off)
        off += len(s)
    offs_at, cnts_at, ifd_at = off, off + 4 * n, off + 8 * n
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 32), (259, 3, 1, 8), (262, 3, 1, 1),
            (273, 4, n, offs_at), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, n, cnts_at),
            (284, 3, 1, 1), (339, 3, 1, 3)]
    ifd = struct.pack("<H", len(tags))
    for tag, typ, cnt, val in tags:
        ifd += (struct.pack("<HHIHH", tag, typ, cnt, val, 0) if typ == 3 and cnt == 1
                else struct.pack("<HHII", tag, typ, cnt, val))
    return (b"II*\x00" + struct.pack("<I", ifd_at) + b"".join(strips) + struct.pack(f"<{n}I", *offsets)
            + struct.pack(f"<{n}I", *[len(s) for s in strips]) + ifd + struct.pack("<I", 0))


# --------------------------------------------------------------------------- memory
_PEAK_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import test_decode_limits as t
    from consentry.config import MediaLimits
    from consentry.hashing import hash_bytes
    data = {build}
    def kb(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])
    base = kb("VmRSS")
    r = hash_bytes(data, MediaLimits())
    print((kb("VmHWM") - base) // 1024, r.pdq, r.error)
""")


@pytest.mark.parametrize("build", [
    "t.flat_png(9000, 9000, depth=16)",  # 16-bit grey: was 2.4 GB
    "t.flat_float_tiff(9000, 9000)",  # float: was 2.9 GB
    "t.flat_png(9000, 9000, channels=3)",  # 8-bit RGB, 250 KB: was 2.4 GB
])
def test_small_file_with_huge_dimensions_stays_under_a_gigabyte(build):
    from pathlib import Path

    code = _PEAK_SCRIPT.format(tests=str(Path(__file__).parent), build=build)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_mb, pdq, error = out.stdout.split()
    assert error == "None" and len(pdq) == 64  # a correct hash, not an error
    assert int(peak_mb) < 1000, f"peak {peak_mb} MB above baseline for {build}"


def test_decoded_bytes_are_bounded_from_the_header():
    data = flat_png(400, 300, depth=16)  # 240,000 bytes decoded as I;16
    with pytest.raises(MediaTooLarge, match="CONSENTRY_MAX_DECODED_BYTES"):
        load_image(data, MediaLimits(max_decoded_bytes=200_000))
    assert load_image(data, MediaLimits(max_decoded_bytes=240_000)).mode == "RGB"
    # RGB is held 4 bytes a pixel by Pillow: 400*300*4
    with pytest.raises(MediaTooLarge, match="decoded"):
        load_image(flat_png(400, 300, channels=3), MediaLimits(max_decoded_bytes=479_999))


def test_high_bit_conversion_in_strips_is_exact(monkeypatch):
    import consentry.media.image as mi

    monkeypatch.setattr(mi, "_STRIP_PIXELS", 1000)  # many strips
    rng = np.random.default_rng(1)
    a16 = rng.integers(0, 65536, size=(97, 61), dtype=np.uint16)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(a16)))[:, :, 0],
                          np.clip(np.rint(a16 * (255 / 65535)), 0, 255).astype(np.uint8))
    f = rng.normal(10, 50, size=(97, 61)).astype(np.float32)
    f[3, 4] = np.nan
    ref = np.nan_to_num(f.astype(np.float64))
    ref = np.clip(np.rint((ref - ref.min()) * (255 / (ref.max() - ref.min()))), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(f)))[:, :, 0], ref)
    i32 = rng.integers(-70000, 70000, size=(97, 61)).astype(np.int32)
    ref = np.clip(np.rint((i32 - i32.min()) * (255 / (i32.max() - i32.min()))), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(i32)))[:, :, 0], ref)


def test_huge_images_are_reduced_before_hashing():
    img = load_image(flat_png(3000, 2000, channels=3), MediaLimits(max_hash_pixels=1_000_000))
    assert img.size == (1000, 667) and img.getpixel((10, 10)) == (90, 90, 90)
    assert load_image(flat_png(3000, 2000, channels=3), MediaLimits(max_hash_pixels=0)).size == (3000, 2000)


# --------------------------------------------------------------------------- video
def _video(path, w=64, h=64, frames=60, fps=30):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            arr = np.full((h, w, 3), (i * 4) % 256, dtype=np.uint8)
            for p in s.encode(__import__("av").VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_video_frame_size_is_capped_from_the_header(tmp_path):
    from consentry.media.video import iter_frames, probe_video

    p = tmp_path / "v.mp4"
    _video(p, 160, 128, frames=3)
    with pytest.raises(MediaTooLarge, match="CONSENTRY_MAX_VIDEO_PIXELS"):
        probe_video(p, MediaLimits(max_video_pixels=160 * 128 - 1))
    with pytest.raises(MediaTooLarge, match="CONSENTRY_MAX_VIDEO_PIXELS"):
        next(iter_frames(p, MediaLimits(max_video_pixels=100 * 100)))
    assert probe_video(p, MediaLimits(max_video_pixels=160 * 128)).width == 160
    assert MediaLimits().max_video_pixels == 4096 * 4096


def test_request_deadline_stops_video_decoding_mid_stream(tmp_path):
    from consentry.media.video import iter_frames

    p = tmp_path / "v.mp4"
    _video(p, frames=90)
    seen = 0
    token = guard.set_request_deadline(0.3)
    try:
        with pytest.raises(guard.DecodeTimeout, match="request timed out"):
            for _f in iter_frames(p, MediaLimits(), seconds_per_frame=0):
                seen += 1
                time.sleep(0.05)
    finally:
        guard.reset_request_deadline(token)
    assert 2 <= seen < 90


def test_decode_deadline_from_limits(tmp_path):
    from consentry.media.video import iter_frames

    p = tmp_path / "v.mp4"
    _video(p, frames=90)
    with pytest.raises(guard.DecodeTimeout, match="CONSENTRY_MAX_DECODE_SECONDS"):
        for _f in iter_frames(p, MediaLimits(max_decode_seconds=0.2), seconds_per_frame=0):
            time.sleep(0.05)


# --------------------------------------------------------------------------- slots, 504
def test_decodes_wait_for_a_slot_within_the_deadline():
    limits = MediaLimits(max_concurrent_decodes=1)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with guard.decoding(limits):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(10)
        token = guard.set_request_deadline(0.3)
        try:
            t0 = time.monotonic()
            with pytest.raises(guard.DecodeTimeout, match="free decoder"):
                load_image(flat_png(32, 32), limits)
            assert time.monotonic() - t0 < 5
        finally:
            guard.reset_request_deadline(token)
    finally:
        release.set()
        t.join()
    assert load_image(flat_png(32, 32), limits).size == (32, 32)  # the slot is free again


def test_timeout_middleware_stops_the_work_behind_a_504():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient
    from starlette.concurrency import run_in_threadpool

    from consentry.web.limits import TimeoutMiddleware

    stopped = threading.Event()

    def work():  # what a sync route's decode loop does
        try:
            for _ in range(200):
                guard.check()
                time.sleep(0.02)
        except guard.DecodeTimeout:
            stopped.set()
            raise

    async def route(request):
        await run_in_threadpool(work)
        return JSONResponse({})

    app = TimeoutMiddleware(Starlette(routes=[Route("/", route)]), seconds=0.3)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 504
        assert stopped.wait(3), "the decode went on after the 504"


def test_vpdq_hashing_is_killed_when_the_request_deadline_passes(testvectors):
    """vpdq decodes in C++ and cannot be interrupted from Python: under a request deadline it runs
    in a child process that is killed at the deadline (no work goes on after a 504)."""
    import subprocess as sp

    from consentry.signals.vpdq import vpdq_frames_from_path

    video = testvectors / "videos" / "doorknob-hd-no-bar.mp4"
    direct = vpdq_frames_from_path(video, 0.0)  # every frame, in process: the reference
    token = guard.set_request_deadline(120)
    try:
        assert vpdq_frames_from_path(video, 0.0) == direct  # the child gives the same frames
    finally:
        guard.reset_request_deadline(token)
    started = []
    real_run = sp.run

    def spy(*a, **kw):
        started.append(kw.get("timeout"))
        return real_run(*a, **kw)

    token = guard.set_request_deadline(0.05)
    t0 = time.monotonic()
    try:
        sp.run = spy
        with pytest.raises(guard.DecodeTimeout):
            vpdq_frames_from_path(video, 0.0)
    finally:
        sp.run = real_run
        guard.reset_request_deadline(token)
    assert time.monotonic() - t0 < 5 and started and started[0] <= 0.05
