"""Generation sessions: images one generator run produced, and their timeline.

Images are grouped when they share generator, model, LoRAs and settings (steps, sampler, CFG
scale, size) **and**, taken in time order, each follows the previous one closely
(``max_gap_s``, default 30 minutes) with a sequential seed (A1111 batches count up from the
first seed) or a similar prompt (token overlap ≥ ``min_similarity``). Times come from the
generator's own records where one names the image (InvokeAI's database, ComfyUI history), else
the file's modification time; the sequence number in the file name (``00012-…``,
``ComfyUI_00012_``) orders images with equal times.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from consentry.scan.genai.artefacts import name_stem
from consentry.scan.genai.prompts import digest, similarity

MAX_GAP_S = 30 * 60
MIN_SIMILARITY = 0.5
MAX_SEED_STEP = 64
_SEQ = re.compile(r"(?:^|[_\-\s])(\d{3,7})(?=[_\-.\s]|$)")


@dataclass
class Shot:
    path: str
    gen: dict[str, Any]
    time: float | None
    time_source: str | None
    seq: int | None

    def to_dict(self) -> dict[str, Any]:
        d = {"path": self.path, "time": _iso(self.time), "time_source": self.time_source, "sequence": self.seq,
             "seed": self.gen.get("seed")}
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class Session:
    id: int
    key: dict[str, Any]
    shots: list[Shot] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        seeds = [s.gen["seed"] for s in self.shots if isinstance(s.gen.get("seed"), int)]
        times = [s.time for s in self.shots if s.time is not None]
        prompts = [s.gen.get("prompt") for s in self.shots if s.gen.get("prompt")]
        return {
            "id": self.id, **{k: v for k, v in self.key.items() if v not in (None, "", [])},
            "images": len(self.shots), "first": _iso(min(times)) if times else None,
            "last": _iso(max(times)) if times else None,
            "seeds": [min(seeds), max(seeds)] if seeds else None,
            "sequential_seeds": _sequential(seeds),
            "prompts": len(set(prompts)), "prompt_fingerprints": sorted({digest(p) for p in prompts})[:20],
            "timeline": [s.to_dict() for s in self.shots],
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(v: Any) -> float | None:
    if not isinstance(v, str) or not v:
        return None
    s = v.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(s if "T" in s or "+" in s else s.replace(" ", "T"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _sequential(seeds: list[int]) -> bool:
    return len(seeds) > 1 and all(0 < b - a <= MAX_SEED_STEP for a, b in zip(sorted(seeds), sorted(seeds)[1:]))


def sequence_number(path: str) -> int | None:
    name = os.path.splitext(os.path.basename(path.split("!/")[-1]))[0]
    m = _SEQ.search(name)
    return int(m.group(1)) if m else None


def session_key(gen: dict[str, Any]) -> dict[str, Any]:
    loras = sorted(name_stem(lo.get("name")) or str(lo.get("hash")) for lo in gen.get("loras") or [] if isinstance(lo, dict))
    return {"generator": gen.get("generator"), "model": gen.get("model") or gen.get("model_hash"),
            "steps": gen.get("steps"), "sampler": gen.get("sampler"), "cfg_scale": gen.get("cfg_scale"),
            "size": gen.get("size"), "loras": loras}


def _close(a: Shot, b: Shot, max_gap_s: float, min_similarity: float) -> bool:
    if a.time is not None and b.time is not None and abs(b.time - a.time) > max_gap_s:
        return False
    sa, sb = a.gen.get("seed"), b.gen.get("seed")
    if isinstance(sa, int) and isinstance(sb, int) and 0 <= sb - sa <= MAX_SEED_STEP:
        return True
    return similarity(a.gen.get("prompt"), b.gen.get("prompt")) >= min_similarity


def build_sessions(images: list[tuple[dict[str, Any], dict[str, Any]]], metadata_times: dict[str, str],
                   max_gap_s: float = MAX_GAP_S, min_similarity: float = MIN_SIMILARITY) -> list[Session]:
    """Sessions over ``(row, generation)`` pairs; ``metadata_times`` maps an image's base name to
    a time a generator recorded for it."""
    groups: dict[str, list[Shot]] = {}
    keys: dict[str, dict[str, Any]] = {}
    for row, gen in images:
        base = os.path.basename(row["path"].split("!/")[-1])
        t = _parse_time(metadata_times.get(base))
        src = "generator record" if t is not None else None
        if t is None and row.get("mtime_ns"):
            t, src = row["mtime_ns"] / 1e9, "file modification time"
        k = session_key(gen)
        ks = repr(sorted(k.items()))
        keys[ks] = k
        groups.setdefault(ks, []).append(Shot(row["path"], gen, t, src, sequence_number(row["path"])))
    sessions: list[Session] = []
    for ks in sorted(groups):
        shots = sorted(groups[ks], key=lambda s: (s.time if s.time is not None else float("inf"),
                                                  s.seq if s.seq is not None else -1, s.path))
        cur: Session | None = None
        for s in shots:
            if cur is None or not _close(cur.shots[-1], s, max_gap_s, min_similarity):
                cur = Session(0, keys[ks])
                sessions.append(cur)
            cur.shots.append(s)
    sessions.sort(key=lambda se: (min((s.time for s in se.shots if s.time is not None), default=float("inf")),
                                  se.shots[0].path))
    for i, se in enumerate(sessions, 1):
        se.id = i
    return sessions
