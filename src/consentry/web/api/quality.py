"""``warnings`` in API responses: weak hashes are never silent.

Every warning is an object ``{"code": ..., "message": ...}`` (the same shape on every route):
``code`` is stable for programs, ``message`` is a sentence for people. A PDQ hash of quality
below 50 (a flat, tiny or nearly uniform picture) is stored but never used to match, and a query
with one is matched by exact hashes only; a video none of whose frames reaches quality 50 is
likewise not matched by vPDQ.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

from consentry.signals import PDQ_MIN_QUALITY

LOW_PDQ = "low-quality-pdq"
NO_VPDQ = "no-usable-vpdq-frames"

#: What the warning is about: a hash being stored, a query being matched, or a hash computed.
Use = Literal["stored", "query", "hashed"]

_PDQ_CONSEQUENCE = {
    "stored": "the hash is stored but not used to match",
    "query": "the file was matched by its exact hashes (MD5, SHA-256) only, not by PDQ",
    "hashed": "it is too weak to match on (banks keep such hashes but do not match on them)",
}
_VPDQ_CONSEQUENCE = {
    "stored": "the video is stored but will not be matched by vPDQ",
    "query": "the video was matched by its exact hashes (MD5, SHA-256) only, not by vPDQ",
    "hashed": "the video cannot be matched by vPDQ",
}


def warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def pdq_warnings(quality: int | None, use: Use) -> list[dict[str, str]]:
    """A warning when a PDQ hash's quality is known and below :data:`PDQ_MIN_QUALITY`."""
    if quality is None or quality >= PDQ_MIN_QUALITY:
        return []
    return [warning(LOW_PDQ, f"PDQ quality {quality} is below {PDQ_MIN_QUALITY} (the picture has too little "
                             f"detail, e.g. flat, tiny or nearly one colour): {_PDQ_CONSEQUENCE[use]}")]


def vpdq_warnings(frames: Any, use: Use) -> list[dict[str, str]]:
    """A warning when a vPDQ value (frames, frame strings or their JSON) has no usable frame."""
    from consentry.signals.vpdq import parse_frames, usable_unique_frames

    if frames is None:
        return []
    try:
        parsed = list(frames) if _are_frames(frames) else parse_frames(frames)
    except (ValueError, TypeError):  # malformed values are reported by the parser elsewhere
        return []
    if not parsed or usable_unique_frames(parsed):
        return []
    return [warning(NO_VPDQ, f"none of the video's {len(parsed)} frames has PDQ quality {PDQ_MIN_QUALITY} or more: "
                             f"{_VPDQ_CONSEQUENCE[use]}")]


def _are_frames(frames: Any) -> bool:
    from consentry.signals.vpdq import VpdqFrame

    return isinstance(frames, (list, tuple)) and bool(frames) and all(isinstance(f, VpdqFrame) for f in frames)


def hash_warnings(pdq: Any, pdq_quality: int | None, vpdq: Any, use: Use) -> list[dict[str, str]]:
    """The PDQ and vPDQ warnings of one hashed file or query (a hash result or query signals)."""
    return merge(pdq_warnings(pdq_quality, use) if pdq else [],
                 vpdq_warnings(vpdq, use) if vpdq is not None else [])


def merge(*groups: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """The warnings of several groups, each once, in order."""
    out: list[dict[str, str]] = []
    for group in groups:
        for w in group:
            if w not in out:
                out.append(w)
    return out


SIGNAL_TYPE_DISABLED = "signal-type-disabled"
_FOR_CONTENT = {"photo": ("md5", "sha256", "pdq"), "video": ("md5", "sha256", "vpdq")}


def disabled_warnings(enabled: Any, content_type: str | None = None,
                      types: Iterable[str] | None = None) -> list[dict[str, str]]:
    """A warning naming the signal types switched off on this instance (``PUT
    /v1/settings/signal-types``) that this content or query would have used."""
    if enabled is None:
        return []
    wanted = list(types) if types is not None else list(_FOR_CONTENT.get(content_type or "", ("md5", "sha256")))
    off = [t for t in wanted if t not in enabled]
    if not off:
        return []
    return [warning(SIGNAL_TYPE_DISABLED, f"signal type{'s' if len(off) > 1 else ''} {', '.join(off)} "
                                          "switched off on this instance: not computed or matched")]
