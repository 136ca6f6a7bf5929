"""``vpdq``: Meta's video PDQ — one PDQ hash per sampled frame, with quality and timestamp.

Serialised as python-threatexchange's vPDQ signal: a JSON list of ``"pdq_hex,quality,seconds"``
strings. (pytx writes the seconds with ``:.3`` — three significant digits, which turns 1234.5 s
into ``1.23e+03``; we write them rounded to the millisecond and read both forms.)

Frames are hashed by the ``vpdq`` library (Meta's reference) after PyAV has probed the file and
checked the duration, frame-count and pixel limits. A video matches a stored one when at least
80% of the query's unique usable frames are found in it **or** at least 80% of the stored video's
frames are found in the query (so a known clip inside a longer upload matches, and so does a
trimmed copy of a known video).

**Dense stored frames** (issue 21). Queries sample about one frame a second, as vPDQ does
everywhere; a copy re-cut at another offset then meets the stored frames up to half a second
away, which in a moving shot is past the threshold. Videos stored with their media at hand keep
every decoded frame instead, less consecutive near-identical ones (:func:`dense_frames`), so each
query frame finds a stored frame within a frame's time. A dense list is matched by *alignment*
(:func:`align`): the query frames must meet stored frames in order, along one line
``stored_time = speed x query_time + offset`` (speed 0.85-1.15, for re-timed copies); the
percentages count the aligned frames only, and the offset is reported. What leaves Consentry
(list exports, exchanges) stays standard one-per-second vPDQ (:func:`standard_frames`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np

from consentry.errors import CorruptMedia, SignalValueError
from consentry.signals._hex import parse_hex
from consentry.signals.base import Comparison, Signal, register

if TYPE_CHECKING:
    from consentry.media.content import Content

VPDQ_DISTANCE_THRESHOLD = 31
VPDQ_QUALITY_THRESHOLD = 50
VPDQ_MATCH_PERCENT = 80.0
#: a stored frame is kept when it moved more than this (PDQ bits) from the last frame kept
DENSE_DEDUPE_DISTANCE = 8
#: frame lists whose median step is at most this (seconds) are dense: matched by alignment
DENSE_MAX_STEP = 0.5
#: the speeds tried when aligning (a re-timed copy plays 10 % faster or slower): a coarse pass,
#: then steps of 0.01 around the best coarse speed
ALIGN_SPEEDS = tuple(round(0.85 + 0.03 * k, 2) for k in range(11))
ALIGN_FINE = (-0.02, -0.01, 0.01, 0.02)
#: how far (seconds) an aligned query frame may fall outside its stored frame's time span
ALIGN_TOLERANCE = 0.5


@dataclass(frozen=True)
class VpdqFrame:
    pdq_hex: str
    quality: int
    timestamp: float

    def __str__(self) -> str:
        return f"{self.pdq_hex},{self.quality},{round(float(self.timestamp), 3)!r}"

    @classmethod
    def parse(cls, text: str) -> "VpdqFrame":
        parts = str(text).split(",")
        if len(parts) != 3:
            raise SignalValueError(f"vPDQ frame must be 'hex,quality,seconds': {text!r:.80}")
        pdq_hex = parse_hex(parts[0], 64, "PDQ hash")
        try:
            quality = int(parts[1])
            timestamp = float(parts[2])
        except ValueError:
            raise SignalValueError(f"bad vPDQ quality or timestamp: {text!r:.80}") from None
        if not 0 <= quality <= 100:
            raise SignalValueError(f"vPDQ quality out of range 0-100: {quality}")
        if not (timestamp >= 0 and np.isfinite(timestamp)):
            raise SignalValueError(f"vPDQ timestamp must be >= 0: {parts[2]!r}")
        return cls(pdq_hex, quality, round(timestamp, 3))


@dataclass(frozen=True)
class VpdqMatch:
    query_match_percent: float
    compared_match_percent: float
    query_matched_seconds: list[float]
    compared_matched_seconds: list[float]
    #: for a dense stored list: stored time = speed x query time + offset_seconds
    offset_seconds: float | None = None
    speed: float | None = None

    @property
    def matched(self) -> bool:
        return (
            self.query_match_percent >= VPDQ_MATCH_PERCENT
            or self.compared_match_percent >= VPDQ_MATCH_PERCENT
        )


def parse_frames(value: str | Sequence[str]) -> list[VpdqFrame]:
    """A JSON list (or an already-decoded list) of frame strings -> frames."""
    if isinstance(value, str):
        try:
            items = json.loads(value or "[]")
        except json.JSONDecodeError:
            raise SignalValueError("vPDQ value must be a JSON list of 'hex,quality,seconds'") from None
    else:
        items = list(value)
    if not isinstance(items, list):
        raise SignalValueError("vPDQ value must be a JSON list")
    return [VpdqFrame.parse(s) for s in items]


def frames_to_json(frames: Sequence[VpdqFrame]) -> str:
    return json.dumps([str(f) for f in frames])


def usable_unique_frames(frames: Sequence[VpdqFrame]) -> list[VpdqFrame]:
    """Frames with quality >= 50, first occurrence of each hash (pytx's dedupe + filter)."""
    seen: set[str] = set()
    out = []
    for f in frames:
        if f.quality >= VPDQ_QUALITY_THRESHOLD and f.pdq_hex not in seen:
            seen.add(f.pdq_hex)
            out.append(f)
    return out


def dense_frames(frames: Sequence[VpdqFrame], dedupe: int = DENSE_DEDUPE_DISTANCE) -> list[VpdqFrame]:
    """Every frame of a video (hashed with ``seconds_per_hash=0``) less those within ``dedupe``
    bits of the last frame kept: a still shot keeps one frame, a moving one nearly all."""
    out: list[VpdqFrame] = []
    last: np.ndarray | None = None
    words = _words(frames)
    for f, w in zip(frames, words):
        if last is not None and int(np.bitwise_count(w ^ last).sum()) <= dedupe:
            continue
        out.append(f)
        last = w
    return out


def is_dense(frames: Sequence[VpdqFrame]) -> bool:
    """Whether a frame list samples more densely than :data:`DENSE_MAX_STEP` (median step)."""
    if len(frames) < 3:
        return False
    steps = np.diff(np.array([f.timestamp for f in frames], dtype=float))
    steps = steps[steps > 0]
    return bool(len(steps)) and float(np.median(steps)) <= DENSE_MAX_STEP


def standard_frames(frames: Sequence[VpdqFrame], step: float = 1.0) -> list[VpdqFrame]:
    """A dense list brought back to one frame per ``step`` seconds, as vPDQ hashes are
    exchanged: at each k x step the frame showing then (the last one kept at or before it, since
    dropped frames were within a few bits of it), stamped k x step. Sparse lists are unchanged."""
    if not is_dense(frames):
        return list(frames)
    ordered = sorted(frames, key=lambda f: f.timestamp)
    times = np.array([f.timestamp for f in ordered], dtype=float)
    out = []
    k = 0
    while k * step <= times[-1] + 1e-9:
        i = int(np.searchsorted(times, k * step + 1e-6, side="right")) - 1
        f = ordered[max(i, 0)]
        out.append(VpdqFrame(f.pdq_hex, f.quality, round(k * step, 3)))
        k += 1
    return out


def spans(frames: Sequence[VpdqFrame]) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) seconds each frame of a time-ordered list stands for: until the next frame;
    the last one for the median step."""
    t = np.array([f.timestamp for f in frames], dtype=float)
    if not len(t):
        return t, t
    steps = np.diff(t)
    last = float(np.median(steps)) if len(steps) else 1.0
    return t, np.append(t[1:], t[-1] + max(last, 1e-3))


def align(q_times: np.ndarray, pair_q: np.ndarray, pair_start: np.ndarray,
          pair_end: np.ndarray) -> tuple[int, float, float, np.ndarray]:
    """The best time-consistent alignment of matching frame pairs.

    Pair k says query frame ``pair_q[k]`` (at ``q_times[pair_q[k]]``) looks like the stored
    frame standing for ``[pair_start[k], pair_end[k])``. For each speed in :data:`ALIGN_SPEEDS`
    (then :data:`ALIGN_FINE` around the best of them) the offsets at which a pair holds form an interval (widened by :data:`ALIGN_TOLERANCE`); the
    intervals of each query frame are merged, then a sweep over their ends finds the offset
    covered by the most distinct query frames (the middle of the best plateau).
    Returns (aligned query frames, speed, offset, mask of the aligned pairs)."""
    best = (0, 1.0, 0.0, np.zeros(len(pair_q), dtype=bool))
    if not len(pair_q):
        return best
    pair_q = np.asarray(pair_q, dtype=np.int64)
    tq = q_times[pair_q]
    order_q = np.argsort(pair_q, kind="stable")

    def at_speed(a: float, best):
        lo = pair_start - a * tq - ALIGN_TOLERANCE
        hi = pair_end - a * tq + ALIGN_TOLERANCE
        at, top = _sweep(pair_q[order_q], lo[order_q], hi[order_q])
        if top > best[0] or (top == best[0] and abs(a - 1.0) < abs(best[1] - 1.0)):
            return (top, a, at, (lo <= at) & (hi >= at))
        return best

    for a in ALIGN_SPEEDS:
        best = at_speed(a, best)
    coarse = best[1]
    for d in ALIGN_FINE:
        best = at_speed(round(coarse + d, 2), best)
    return best


def _sweep(who: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, int]:
    """(offset, count): where the most distinct ``who`` have an interval [lo, hi] covering the
    offset. ``who`` sorted. Each one's intervals are merged first (so overlapping intervals of
    one query frame count once), then +1/-1 events are summed in order."""
    span = float(max(hi.max() - lo.min(), 1.0)) * 4.0
    shift = who.astype(float) * span  # keeps the groups apart on one line
    lo_s, hi_s = lo + shift, hi + shift
    order = np.argsort(lo_s, kind="stable")
    lo_s, hi_s = lo_s[order], hi_s[order]
    reach = np.maximum.accumulate(hi_s)
    new = np.empty(len(lo_s), dtype=bool)
    new[0] = True
    new[1:] = lo_s[1:] > reach[:-1]
    starts = np.flatnonzero(new)
    m_lo = lo_s[starts] - shift[order][starts]
    m_hi = np.maximum.reduceat(hi_s, starts) - shift[order][starts]
    pos = np.concatenate([m_lo, m_hi])
    step = np.concatenate([np.ones(len(m_lo), np.int64), -np.ones(len(m_hi), np.int64)])
    ev = np.lexsort((-step, pos))  # at the same offset, starts before ends
    count = np.cumsum(step[ev])
    k = int(np.argmax(count))
    top = int(count[k])
    # the plateau runs from this start to the next event (an end, or a start that adds more)
    nxt = float(pos[ev[k + 1]]) if k + 1 < len(ev) else float(pos[ev[k]])
    return (float(pos[ev[k]]) + nxt) / 2, top


def _fit_line(tq: np.ndarray, start: np.ndarray, end: np.ndarray, dist: np.ndarray, speed: float,
              offset: float) -> tuple[float, float, list[float]]:
    """Speed and offset refined by least squares over the aligned pairs: per query frame its
    nearest stored frame (smallest distance, then nearest the sweep's line), at the middle of
    that frame's span. Also returns those stored frames' times."""
    mid = (start + end) / 2
    resid = np.abs(mid - (speed * tq + offset))
    best: dict[float, tuple[float, int, float, float]] = {}
    for t, m, d, r, s0 in zip(tq.tolist(), mid.tolist(), dist.tolist(), resid.tolist(), start.tolist()):
        if t not in best or (d, r) < best[t][1:3]:
            best[t] = (m, d, r, s0)
    times = sorted(v[3] for v in best.values())
    if len(best) < 2:
        t, (m, _d, _r, _s) = next(iter(best.items()))
        return speed, round(float(m - speed * t), 3), times
    x = np.array(list(best), dtype=float)
    y = np.array([v[0] for v in best.values()], dtype=float)
    a, b = np.polyfit(x, y, 1)
    if not (ALIGN_SPEEDS[0] - 0.02 <= a <= ALIGN_SPEEDS[-1] + 0.02):
        return speed, offset, times
    return round(float(a), 3), round(float(b), 3), times


def aligned_match(q: Sequence[VpdqFrame], q_hit_pairs: np.ndarray, s_hit_pairs: np.ndarray,
                  pair_dist: np.ndarray, s_start: np.ndarray, s_end: np.ndarray) -> VpdqMatch:
    """The match figures of a dense stored list from the pairs of frames within the threshold
    (query frame, stored frame, distance) and the stored frames' spans (:func:`spans`)."""
    q_times = np.array([f.timestamp for f in q], dtype=float)
    steps = np.diff(np.sort(q_times))
    q_step = float(np.median(steps)) if len(steps) else 1.0
    stored_span = float(s_end[-1] - s_start[0]) if len(s_start) else 0.0
    n, speed, offset, mask = align(q_times, q_hit_pairs, s_start[s_hit_pairs], s_end[s_hit_pairs])
    if not n:
        return VpdqMatch(0.0, 0.0, [], [])
    speed, offset, ss = _fit_line(q_times[q_hit_pairs[mask]], s_start[s_hit_pairs[mask]],
                                  s_end[s_hit_pairs[mask]], pair_dist[mask], speed, offset)
    qs = sorted({float(q_times[i]) for i in q_hit_pairs[mask]})
    covered = min(stored_span, n * q_step * speed) if stored_span > 0 else 0.0
    return VpdqMatch(
        round(100.0 * n / len(q), 2),
        round(100.0 * covered / stored_span, 2) if stored_span > 0 else 0.0,
        qs, ss, round(offset, 3), speed)


def _words(frames: Sequence[VpdqFrame]) -> np.ndarray:
    if not frames:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = bytes.fromhex("".join(f.pdq_hex for f in frames))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 4)


def _distances(q: Sequence[VpdqFrame], s: Sequence[VpdqFrame]) -> np.ndarray:
    qw, sw = _words(q), _words(s)
    dist = np.zeros((len(q), len(s)), dtype=np.int32)
    for k in range(4):
        dist += np.bitwise_count(qw[:, k][:, None] ^ sw[:, k][None, :]).astype(np.int32)
    return dist


def compare_frames(
    query: Sequence[VpdqFrame], stored: Sequence[VpdqFrame], threshold: int = VPDQ_DISTANCE_THRESHOLD
) -> VpdqMatch:
    """Brute-force vPDQ comparison, both directions (pytx semantics, plus the reverse rule);
    a dense stored list (:func:`is_dense`) by alignment."""
    q = usable_unique_frames(query)
    if is_dense(stored):
        ordered = sorted(stored, key=lambda f: f.timestamp)
        start, end = spans(ordered)
        keep = np.array([f.quality >= VPDQ_QUALITY_THRESHOLD for f in ordered], dtype=bool)
        s = [f for f, k in zip(ordered, keep) if k]
        if not q or not s:
            return VpdqMatch(0.0, 0.0, [], [])
        dist = _distances(q, s)
        qi, sj = np.nonzero(dist <= threshold)
        return aligned_match(q, qi, sj, dist[qi, sj], start[keep], end[keep])
    s = usable_unique_frames(stored)
    if not q or not s:
        return VpdqMatch(0.0, 0.0, [], [])
    hit = _distances(q, s) <= threshold
    q_hit, s_hit = hit.any(axis=1), hit.any(axis=0)
    return VpdqMatch(
        round(100.0 * q_hit.sum() / len(q), 2),
        round(100.0 * s_hit.sum() / len(s), 2),
        [q[i].timestamp for i in np.flatnonzero(q_hit)],
        [s[i].timestamp for i in np.flatnonzero(s_hit)],
    )


#: Run in a child process when a deadline applies: vpdq decodes in C++ and cannot be stopped
#: from Python, so the child is killed when the deadline passes (a request's 504 ends the work).
_CHILD = """
import json, sys
import vpdq
try:
    features = vpdq.computeHash(sys.argv[1], seconds_per_hash=float(sys.argv[2]), thread_count=1)
except Exception as exc:
    print(json.dumps({"error": str(exc)[:120] or type(exc).__name__}))
    sys.exit(0)
print(json.dumps({"frames": [[f.hex, int(f.quality), float(f.timestamp)] for f in features]}))
"""


def _frames_in_child(path, seconds_per_hash: float, timeout: float) -> list[tuple[str, int, float]]:
    import json
    import subprocess
    import sys

    from consentry.media.guard import DecodeTimeout

    if timeout <= 0:
        raise DecodeTimeout("the deadline passed before the video could be hashed")
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path), repr(float(seconds_per_hash))],
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise DecodeTimeout("video hashing took longer than allowed: stopped") from None
    try:
        out = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise CorruptMedia(f"cannot hash video frames (the decoder exited with status {done.returncode})") from None
    if "error" in out:
        raise CorruptMedia(f"cannot hash video frames: {out['error']}")
    return [(h, q, t) for h, q, t in out["frames"]]


def vpdq_frames_from_path(path, seconds_per_hash: float) -> list[VpdqFrame]:
    from consentry.media import guard

    left = guard.remaining()
    if left is not None and left != float("inf"):
        raw = _frames_in_child(path, seconds_per_hash, left)
    else:
        import vpdq

        try:
            features = vpdq.computeHash(str(path), seconds_per_hash=seconds_per_hash, thread_count=1)
        except Exception as exc:  # noqa: BLE001 - the C++ library raises bare runtime errors
            raise CorruptMedia(f"cannot hash video frames: {str(exc)[:120] or type(exc).__name__}") from exc
        raw = [(f.hex, int(f.quality), float(f.timestamp)) for f in features]
    if not raw:
        raise CorruptMedia("video has no decodable frames")
    return [VpdqFrame(h, int(q), round(float(t), 3)) for h, q, t in raw]


#: frames looked at to decide whether a video has letterbox / pillarbox bars
TRIM_PROBE_FRAMES = 5
#: boxes found in that many of them, agreeing to this share of each side, are the video's bars
TRIM_AGREE = 3
TRIM_TOLERANCE = 0.02


def trimmed_frames(content: "Content", seconds_per_hash: float | None = None) -> list[VpdqFrame] | None:
    """Query frames of a video shown inside letterbox / pillarbox bars (a landscape clip posted
    on a 9:16 canvas), hashed without the bars (issue 21); None when it has none.

    The first :data:`TRIM_PROBE_FRAMES` sampled frames decide: at least :data:`TRIM_AGREE` of
    them must show the same picture box (:func:`consentry.signals.canonical.trim_box`), so a dark
    scene is not taken for bars; a video without bars costs those few frames' decoding. Local
    signal: matched like the vPDQ frames, never stored or exchanged."""
    from consentry.media.video import iter_frames
    from consentry.signals.canonical import trim_box
    from consentry.signals.pdq import pdq_from_image

    step = content.limits.video_seconds_per_hash if seconds_per_hash is None else seconds_per_hash
    out: list[VpdqFrame] = []
    with content.video_path() as path:
        frames = iter_frames(path, content.limits, step)
        try:
            probe = list(itertools.islice(frames, TRIM_PROBE_FRAMES))
            box = _agreed_box([trim_box(vf.image) for vf in probe], probe[0].image.size if probe else (0, 0))
            if box is None:
                return None
            for vf in itertools.chain(probe, frames):
                h, q = pdq_from_image(vf.image.crop(box))
                out.append(VpdqFrame(h, int(q), vf.timestamp))
        finally:
            frames.close()
    return out


def _agreed_box(boxes: list, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    found = [b for b in boxes if b is not None]
    tol = np.array([size[0], size[1], size[0], size[1]], dtype=float) * TRIM_TOLERANCE
    for b in found:
        close = [c for c in found if np.all(np.abs(np.subtract(c, b)) <= tol)]
        if len(close) >= min(TRIM_AGREE, len(boxes)) and len(boxes) >= 2:
            return tuple(int(v) for v in np.median(np.array(close), axis=0))
    return None


@register
class VPDQSignal:
    name: ClassVar[str] = "vpdq"
    content_types: ClassVar[tuple[str, ...]] = ("video",)
    default_threshold: ClassVar[int] = VPDQ_DISTANCE_THRESHOLD
    match_percent: ClassVar[float] = VPDQ_MATCH_PERCENT

    @classmethod
    def compute_frames(cls, content: "Content", seconds_per_hash: float | None = None, *,
                       dense: bool = False) -> list[VpdqFrame]:
        """The frames to match (one per ``seconds_per_hash``, the instance's setting by default)
        or, ``dense``, the frames to store: every frame less near-repeats (:func:`dense_frames`)."""
        from consentry.media.video import probe_video

        step = content.limits.video_seconds_per_hash if seconds_per_hash is None else seconds_per_hash
        with content.video_path() as path:
            probe_video(path, content.limits)  # limits first: vpdq decodes everything it is given
            if dense:
                return dense_frames(vpdq_frames_from_path(path, 0.0))
            return vpdq_frames_from_path(path, step)

    @classmethod
    def compute(cls, content: "Content") -> Signal:
        frames = cls.compute_frames(content)
        return Signal(cls.name, frames_to_json(frames), None, {"frames": frames})

    @classmethod
    def parse(cls, text: str | Sequence[str]) -> str:
        return frames_to_json(parse_frames(text))

    @classmethod
    def serialize(cls, value: str) -> str:
        return cls.parse(value)

    @classmethod
    def distance(cls, a: str, b: str) -> float:
        """100 minus the better of the two match percentages (0 = every frame found)."""
        m = compare_frames(parse_frames(a), parse_frames(b))
        return round(100.0 - max(m.query_match_percent, m.compared_match_percent), 2)

    @classmethod
    def brute_force_compare(
        cls, query: str, candidates: Sequence[str], threshold: int | None = None
    ) -> list[Comparison]:
        t = cls.default_threshold if threshold is None else threshold
        q = parse_frames(query)
        out = []
        for i, c in enumerate(candidates):
            m = compare_frames(q, parse_frames(c), t)
            if m.matched:
                out.append(
                    Comparison(
                        i,
                        round(100.0 - max(m.query_match_percent, m.compared_match_percent), 2),
                        {
                            "query_match_percent": m.query_match_percent,
                            "compared_match_percent": m.compared_match_percent,
                        },
                    )
                )
        return out

    @classmethod
    def examples(cls) -> list[str]:
        # The first seconds of Meta's benign door-knob test clip (vpdq sample hashes).
        return [
            frames_to_json(
                [
                    VpdqFrame("dadb999c25266273529cadac8dcb52c22324ad3bce99726c38668d93c799f06c", 100, 0.0),
                    VpdqFrame("c8feb0fc73910f830fc6307cf039e7030fc61b9cf8717cf00fce00070003fffe", 68, 1.0),
                ]
            )
        ]
