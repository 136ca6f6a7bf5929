"""vPDQ: agreement with Meta's sample hashes, pytx string format, two-way clip matching."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from consentry.config import MediaLimits
from consentry.errors import MediaTooLarge, SignalValueError
from consentry.media.content import Content
from consentry.media.video import iter_frames, probe_video
from consentry.signals import get_signal_type
from consentry.signals.vpdq import VPDQSignal, VpdqFrame, compare_frames, parse_frames

VIDEOS = ["doorknob-hd-no-bar", "pattern-sd-grey-bar", "pattern-sd-with-large-logo-bar",
          "pattern-sd-with-small-logo-bar", "test-padded-dimensions"]
PDQ = get_signal_type("pdq")


def _frames(testvectors, name, seconds_per_hash):
    content = Content.from_path(testvectors / "videos" / f"{name}.mp4", MediaLimits())
    return VPDQSignal.compute_frames(content, seconds_per_hash=seconds_per_hash)


@pytest.mark.parametrize("name", VIDEOS)
def test_every_frame_agrees_with_meta_sample_hashes(testvectors, name):
    """Upstream's rule (vpdq/python/tests): same frames; distance < 31 where both q >= 50."""
    expected = []
    for line in (testvectors / "vpdq" / "sample-hashes" / f"{name}.txt").read_text().splitlines():
        frame_no, quality, hexhash, ts = line.split(",")
        expected.append((int(frame_no), int(quality), hexhash, float(ts)))
    ours = _frames(testvectors, name, 0)
    assert len(ours) == len(expected)
    compared = 0
    for i, (frame, (frame_no, quality, hexhash, ts)) in enumerate(zip(ours, expected)):
        assert frame_no == i
        assert frame.timestamp == pytest.approx(ts, abs=0.002)
        if frame.quality >= 50 and quality >= 50:
            compared += 1
            assert PDQ.distance(frame.pdq_hex, hexhash) < 31, (name, i)
    assert compared > 0


@pytest.mark.parametrize("name", VIDEOS)
def test_one_second_sampling_matches_pytx_signal(testvectors, name):
    derived = json.loads(
        (testvectors / "vpdq" / "DERIVED-pytx-vpdq-signal" / f"{name}.json").read_text()
    )
    theirs = parse_frames(derived)
    ours = _frames(testvectors, name, 1.0)
    assert [f.timestamp for f in ours] == [f.timestamp for f in theirs]
    for a, b in zip(ours, theirs):
        if a.quality >= 50 and b.quality >= 50:
            assert PDQ.distance(a.pdq_hex, b.pdq_hex) < 31
    # our serialisation is readable by the pytx parser rules and round-trips exactly
    value = VPDQSignal.parse(derived)
    assert VPDQSignal.parse(value) == value
    assert [str(f) for f in parse_frames(value)] == derived


def test_known_pair_and_known_non_match(testvectors):
    grey = _frames(testvectors, "pattern-sd-grey-bar", 1.0)
    small = _frames(testvectors, "pattern-sd-with-small-logo-bar", 1.0)
    large = _frames(testvectors, "pattern-sd-with-large-logo-bar", 1.0)
    m = compare_frames(grey, small)
    assert m.matched and m.query_match_percent == 100.0 and m.compared_match_percent == 100.0
    assert not compare_frames(large, grey).matched
    assert not compare_frames(large, small).matched


def _write_video(path, frames_rgb, fps=30):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        h, w = frames_rgb[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for arr in frames_rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_clip_inside_longer_upload_matches_both_ways(testvectors, tmp_path):
    """A known clip inside a longer upload matches, and so does a clip of a known video."""
    src = testvectors / "videos" / "doorknob-hd-no-bar.mp4"
    known = [np.asarray(f.image.resize((320, 180))) for f in iter_frames(src, MediaLimits(), 0)]
    rng = np.random.default_rng(7)
    # 4 s of the known clip between 8 s of unrelated benign noise-and-gradient frames
    other = []
    for k in range(240):
        base = np.linspace(0, 255, 320, dtype=np.float64)[None, :, None] * np.ones((180, 1, 3))
        other.append(((base + rng.integers(0, 60, (180, 320, 3)) + k) % 256).astype(np.uint8))
    longer = tmp_path / "longer.mp4"
    _write_video(longer, other[:120] + known + other[120:])
    stored_clip = tmp_path / "clip.mp4"
    _write_video(stored_clip, known)

    lim = MediaLimits()
    upload = VPDQSignal.compute_frames(Content.from_path(longer, lim), 1.0)
    clip = VPDQSignal.compute_frames(Content.from_path(stored_clip, lim), 1.0)
    m = compare_frames(upload, clip)  # query = longer upload, stored = the known clip
    assert m.compared_match_percent >= 80 and m.query_match_percent < 80 and m.matched
    assert all(4.0 <= t <= 8.0 for t in m.query_matched_seconds)
    m2 = compare_frames(clip, upload)  # query = the clip, stored = the longer video
    assert m2.query_match_percent >= 80 and m2.matched
    # brute-force compare through the registry protocol gives the same answer
    hits = VPDQSignal.brute_force_compare(
        VPDQSignal.parse([str(f) for f in upload]), [VPDQSignal.parse([str(f) for f in clip])]
    )
    assert len(hits) == 1 and hits[0].detail["compared_match_percent"] >= 80


def test_frame_sampling_rate_and_limits(testvectors):
    path = testvectors / "videos" / "doorknob-hd-no-bar.mp4"
    info = probe_video(path, MediaLimits())
    assert (info.width, info.height, info.frames) == (1280, 720, 120)
    assert [f.timestamp for f in iter_frames(path, MediaLimits(), 1.0)] == [0.0, 1.0, 2.0, 3.0]
    assert len(list(iter_frames(path, MediaLimits(), 0.5))) == 8
    assert len(list(iter_frames(path, MediaLimits(), 0))) == 120
    with pytest.raises(MediaTooLarge, match="lasts"):
        probe_video(path, MediaLimits(max_video_seconds=2))
    with pytest.raises(MediaTooLarge, match="frames"):
        list(iter_frames(path, MediaLimits(max_video_frames=50), 0))
    with pytest.raises(MediaTooLarge, match="pixel"):
        probe_video(path, MediaLimits(max_pixels=640 * 480))
    with pytest.raises(MediaTooLarge):
        VPDQSignal.compute_frames(Content.from_path(path, MediaLimits(max_video_bytes=1000)))


def test_frame_string_validation():
    f = VpdqFrame.parse("dadb999c25266273529cadac8dcb52c22324ad3bce99726c38668d93c799f06c,100,1.0")
    assert f.quality == 100 and f.timestamp == 1.0
    assert VpdqFrame.parse(str(f)) == f
    assert VpdqFrame.parse(f"{f.pdq_hex},90,1.23e+03").timestamp == 1230.0  # pytx's ':.3' form
    for bad in ["", "abc,1,1", f"{f.pdq_hex},101,0", f"{f.pdq_hex},50,-1", f"{f.pdq_hex},50"]:
        with pytest.raises(SignalValueError):
            VpdqFrame.parse(bad)
    with pytest.raises(SignalValueError):
        VPDQSignal.parse("{not json")
