"""``vpdq``: Meta's video PDQ — one PDQ hash per sampled frame, with quality and timestamp.

Serialised as python-threatexchange's vPDQ signal: a JSON list of ``"pdq_hex,quality,seconds"``
strings. (pytx writes the seconds with ``:.3`` — three significant digits, which turns 1234.5 s
into ``1.23e+03``; we write them rounded to the millisecond and read both forms.)

Frames are hashed by the ``vpdq`` library (Meta's reference) after PyAV has probed the file and
checked the duration, frame-count and pixel limits. A video matches a stored one when at least
80% of the query's unique usable frames are found in it **or** at least 80% of the stored video's
frames are found in the query (so a known clip inside a longer upload matches, and so does a
trimmed copy of a known video).
"""

from __future__ import annotations

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


def _words(frames: Sequence[VpdqFrame]) -> np.ndarray:
    if not frames:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = bytes.fromhex("".join(f.pdq_hex for f in frames))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 4)


def compare_frames(
    query: Sequence[VpdqFrame], stored: Sequence[VpdqFrame], threshold: int = VPDQ_DISTANCE_THRESHOLD
) -> VpdqMatch:
    """Brute-force vPDQ comparison, both directions (pytx semantics, plus the reverse rule)."""
    q, s = usable_unique_frames(query), usable_unique_frames(stored)
    if not q or not s:
        return VpdqMatch(0.0, 0.0, [], [])
    qw, sw = _words(q), _words(s)
    dist = np.zeros((len(q), len(s)), dtype=np.int32)
    for k in range(4):
        dist += np.bitwise_count(qw[:, k][:, None] ^ sw[:, k][None, :]).astype(np.int32)
    hit = dist <= threshold
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


@register
class VPDQSignal:
    name: ClassVar[str] = "vpdq"
    content_types: ClassVar[tuple[str, ...]] = ("video",)
    default_threshold: ClassVar[int] = VPDQ_DISTANCE_THRESHOLD
    match_percent: ClassVar[float] = VPDQ_MATCH_PERCENT

    @classmethod
    def compute_frames(cls, content: "Content", seconds_per_hash: float | None = None) -> list[VpdqFrame]:
        from consentry.media.video import probe_video

        step = content.limits.video_seconds_per_hash if seconds_per_hash is None else seconds_per_hash
        with content.video_path() as path:
            probe_video(path, content.limits)  # limits first: vpdq decodes everything it is given
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
