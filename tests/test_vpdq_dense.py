"""Dense stored vPDQ frames and time-consistent alignment (issue 21, videos).

A clip re-cut at another offset from the one-second grid misses a video stored one frame a second
(its frames fall half a second from the stored ones, past the threshold in a moving shot); stored
densely (every frame less near-repeats) it is found, with its offset, and only when its frames
meet the stored ones in order. Exports and exchanges stay one frame a second."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService
from consentry.config import MediaLimits, Settings
from consentry.db import Database
from consentry.keys import KeyStore
from consentry.media.content import Content
from consentry.signals.vpdq import (
    VpdqFrame,
    compare_frames,
    dense_frames,
    frames_to_json,
    is_dense,
    parse_frames,
    standard_frames,
)
from consentry.web.app import create_app
from imagegen import scene

FPS = 30


def _hex(words: np.ndarray) -> str:
    return words.astype(">u8").tobytes().hex()


def _flip(words: np.ndarray, rng, bits: int) -> np.ndarray:
    out = words.copy()
    for b in rng.choice(256, size=bits, replace=False):
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def walk(seconds: float, seed: int = 0, bits_per_frame: int = 4) -> list[VpdqFrame]:
    """Every frame of a 'moving shot': each frame's hash a few bits from the last one."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2**63, size=4, dtype=np.uint64)
    out = []
    for i in range(int(seconds * FPS)):
        out.append(VpdqFrame(_hex(w), 90, round(i / FPS, 3)))
        w = _flip(w, rng, bits_per_frame)
    return out


def clip(every: list[VpdqFrame], start: float, seconds: float, speed: float = 1.0, noise: int = 6,
         seed: int = 1) -> list[VpdqFrame]:
    """What a 1 frame/s query of a copy re-cut at ``start`` sees: the frame showing at each
    ``start + speed x k`` seconds, with a few bits of re-encoding noise."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(seconds)):
        f = every[int(round((start + speed * k) * FPS))]
        w = np.frombuffer(bytes.fromhex(f.pdq_hex), dtype=">u8").astype(np.uint64)
        out.append(VpdqFrame(_hex(_flip(w, rng, noise)), 90, float(k)))
    return out


def test_near_repeats_are_dropped_and_a_still_shot_keeps_one_frame():
    moving = walk(4, bits_per_frame=10)
    assert len(dense_frames(moving)) == len(moving)  # every frame moved more than 8 bits
    still = [VpdqFrame(moving[0].pdq_hex, 90, round(i / FPS, 3)) for i in range(60)]
    kept = dense_frames(still + moving[1:])
    assert [f.timestamp for f in kept[:2]] == [0.0, moving[1].timestamp]
    slow = walk(4, bits_per_frame=2)
    assert len(slow) // 8 < len(dense_frames(slow)) < len(slow) // 2  # 2 bits a frame: about every 4th-5th kept
    assert is_dense(dense_frames(slow)) and not is_dense(standard_frames(dense_frames(slow)))


def test_standard_frames_are_one_a_second_with_the_frame_showing_then():
    every = walk(5.5, bits_per_frame=6)
    std = standard_frames(every)
    assert [f.timestamp for f in std] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [f.pdq_hex for f in std] == [every[k * FPS].pdq_hex for k in range(6)]
    # a still stretch from 1.0 s to 3.5 s: the one frame kept for it stands for those seconds
    still = VpdqFrame(every[40].pdq_hex, 90, 1.0)
    dense = every[:30] + [still] + [f for f in every if f.timestamp >= 3.5]
    std = standard_frames(dense)
    assert [f.pdq_hex for f in std[1:4]] == [still.pdq_hex] * 3
    assert std[4].pdq_hex == every[4 * FPS].pdq_hex
    assert standard_frames(std) == std  # sparse lists are left as they are


@pytest.mark.parametrize("start", [2.5, 3.3, 7.71])
def test_a_clip_off_the_grid_misses_the_sparse_list_and_meets_the_dense_one(start):
    every = walk(20)
    query = clip(every, start, 8)
    sparse = standard_frames(every)
    assert not compare_frames(query, sparse).matched  # frames 0.3-0.5 s apart: 27-45 bits
    m = compare_frames(query, dense_frames(every))
    assert m.matched and m.query_match_percent == 100.0
    assert m.offset_seconds == pytest.approx(start, abs=0.1)
    assert m.speed == pytest.approx(1.0, abs=0.02)


def test_a_faster_copy_is_aligned_with_its_speed():
    every = walk(30)
    m = compare_frames(clip(every, 4.4, 10, speed=1.1), dense_frames(every))
    assert m.matched and m.speed == pytest.approx(1.1, abs=0.02)
    assert m.offset_seconds == pytest.approx(4.4, abs=0.15)


def test_frames_out_of_order_do_not_align():
    """Frame-set overlap alone would call this a match: every query frame is near some stored
    frame, but at times that no single offset and speed explains."""
    every = walk(30)
    rng = np.random.default_rng(3)
    starts = rng.permutation(np.arange(0, 27, 3.1))[:8]
    query = [VpdqFrame(clip(every, float(s), 1, seed=k)[0].pdq_hex, 90, float(k)) for k, s in enumerate(starts)]
    dense = dense_frames(every)
    m = compare_frames(query, dense)
    assert not m.matched and m.query_match_percent <= 50.0
    loose = compare_frames(query, [VpdqFrame(f.pdq_hex, f.quality, 0.0) for f in dense])  # no time: sparse rule
    assert loose.query_match_percent == 100.0


def test_a_stored_clip_inside_a_longer_query_is_found():
    every = walk(12)
    longer = walk(40, seed=9)
    parts = standard_frames(longer)[:15] + clip(every, 0.4, 11) + standard_frames(longer)[20:34]
    query = [VpdqFrame(f.pdq_hex, 90, float(k)) for k, f in enumerate(parts)]
    m = compare_frames(query, dense_frames(every))
    assert m.query_match_percent < 80 and m.compared_match_percent >= 80 and m.matched
    assert m.offset_seconds == pytest.approx(0.4 - 15.0, abs=0.15)


# ------------------------------------------------------------------------ through the product
def _video(path, seconds: float, start: float = 0.0, size=(160, 120), boxed: bool = False, seed: int = 4) -> bytes:
    """A benign drawn pan, ``seconds`` long from ``start`` seconds into the pan; ``boxed``: on a
    9:16 black canvas (letterbox bars above and below), as phone apps post landscape clips."""
    wide = scene(1400, 300, seed=seed)
    canvas = (size[0], size[0] * 16 // 9 // 2 * 2) if boxed else size
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height = canvas
        st.pix_fmt = "yuv420p"
        for i in range(int(seconds * FPS)):
            x = int(round((start + i / FPS) * 60))
            frame = wide.crop((x, 0, x + 400, 300)).resize(size, Image.BILINEAR)
            if boxed:
                board = Image.new("RGB", canvas, (0, 0, 0))
                board.paste(frame, (0, (canvas[1] - size[1]) // 2))
                frame = board
            for p in st.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path.read_bytes()


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'consentry.db'}")
    database.upgrade()
    yield database
    database.dispose()


def test_a_video_added_from_its_file_is_stored_densely_matched_by_a_recut_and_exported_standard(db, tmp_path):
    source = _video(tmp_path / "source.mp4", 12)
    recut = _video(tmp_path / "recut.mp4", 6, start=3.4)
    cur = KeyStore(db).create("curator", "test")[0]
    mat = KeyStore(db).create("matcher", "test")[0]
    app = create_app(Settings(home=tmp_path), db, background=False)
    try:
        client = TestClient(app)
        h = {"Authorization": f"Bearer {cur}"}
        assert client.post("/v1/banks", json={"name": "v", "kind": "ncii"}, headers=h).status_code == 201
        r = client.post("/v1/banks/v/entries/file", files={"file": ("s.mp4", source, "video/mp4")}, headers=h)
        assert r.status_code == 201, r.text
        (entry,) = [e for e in r.json()["entries"] if e["signal_type"] == "vpdq"]
        stored = parse_frames(entry["value"])
        assert is_dense(stored) and len(stored) > 3 * 12  # far more than one a second
        r = client.post("/v1/match", files={"file": ("r.mp4", recut, "video/mp4")},
                        headers={"Authorization": f"Bearer {mat}"})
        assert r.status_code == 200, r.text
        (hit,) = [m for m in r.json()["matches"] if m["signal_type"] == "vpdq"]
        assert hit["offset_seconds"] == pytest.approx(3.4, abs=0.3) and hit["query_match_percent"] >= 80
        # what other programs get: one frame a second; Consentry's own format keeps the frames
        te = client.get("/v1/banks/v/export", params={"format": "te"}, headers=h).text
        (line,) = [ln for ln in te.splitlines() if "vpdq" in ln.lower()]
        own = client.get("/v1/banks/v/export", params={"format": "consentry"}, headers=h).text
        assert len(own) > 3 * len(line)
    finally:
        app.state.consentry.match_log.close()
    # the same recut against the same video stored one frame a second (as exchanged): a miss
    svc = BankService(db)
    svc.create_bank("sparse", "ncii")
    svc.add_entry("sparse", "vpdq", frames_to_json(standard_frames(stored)))
    q = QuerySignals(vpdq=parse_frames(json.dumps(_hash_1fps(recut))))
    found = {m.bank for m in Matcher(db).load().match(q).matches}
    assert found == {"v"}


def _hash_1fps(data: bytes) -> list[str]:
    from consentry.signals.vpdq import VPDQSignal

    return [str(f) for f in VPDQSignal.compute_frames(Content.from_bytes(data, MediaLimits()), 1.0)]


def test_consentry_export_round_trips_the_dense_frames(db, tmp_path):
    from consentry.banks.formats import get_format

    svc = BankService(db)
    svc.create_bank("v", "ncii")
    every = dense_frames(walk(6, bits_per_frame=6))
    svc.add_entry("v", "vpdq", frames_to_json(every))
    for fmt, expect in (("consentry", len(every)), ("te", 6)):
        buf = io.BytesIO()
        get_format(fmt).write(svc.iter_records("v", as_exchanged=fmt != "consentry"), buf)
        buf.seek(0)
        (rec,) = [r for r in get_format(fmt).read(buf) if getattr(r, "signal_type", None) == "vpdq"]
        assert len(parse_frames(rec.value)) == expect


def test_a_letterboxed_recut_is_matched_through_its_frames_without_the_bars(db, tmp_path):
    from consentry.banks.matcher import query_from_content
    from consentry.signals.vpdq import VPDQSignal

    source = Content.from_bytes(_video(tmp_path / "s.mp4", 12), MediaLimits())
    svc = BankService(db)
    svc.create_bank("v", "ncii")
    svc.add_entry("v", "vpdq", frames_to_json(VPDQSignal.compute_frames(source, dense=True)))
    m = Matcher(db).load()
    boxed = Content.from_bytes(_video(tmp_path / "b.mp4", 6, start=2.6, boxed=True), MediaLimits())
    assert m.match(query_from_content(boxed, canonical=False)).matches == []  # the bars defeat the frames
    q = query_from_content(boxed)
    assert [k for k, _f in q.vpdq_extra] == ["trimmed"]
    (hit,) = m.match(q).matches
    assert hit.detail["query_variant"] == "trimmed" and hit.detail["offset_seconds"] == pytest.approx(2.6, abs=0.3)
    # a clip without bars costs no second pass, and an unrelated boxed clip finds nothing
    plain = query_from_content(Content.from_bytes(_video(tmp_path / "p.mp4", 6, start=1.3), MediaLimits()))
    assert plain.vpdq_extra == [] and m.match(plain).matches
    other = Content.from_bytes(_video(tmp_path / "o.mp4", 6, start=2.6, boxed=True, seed=8), MediaLimits())
    q = query_from_content(other)
    assert q.vpdq_extra and m.match(q).matches == []
