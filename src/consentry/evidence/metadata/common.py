"""Bounds, the generation-parameters record and safe JSON for the metadata analyser.

Everything read here is untrusted: every size is bounded, and a malformed item becomes a note,
never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

#: One XMP packet (JPEG APP1, PNG iTXt, WebP ``XMP `` chunk, TIFF tag 700), before parsing.
MAX_XMP_BYTES = 1024 * 1024
#: Reassembled JPEG Extended XMP.
MAX_EXTENDED_XMP_BYTES = 4 * 1024 * 1024
#: One PNG text chunk (tEXt/iTXt/zTXt), after decompression.  ComfyUI workflows run to a few
#: hundred KB; anything bigger is skipped.
MAX_TEXT_CHUNK_BYTES = 2 * 1024 * 1024
#: All PNG text decompressed from one file, together (bounds many small zTXt bombs).
MAX_TOTAL_TEXT_BYTES = 8 * 1024 * 1024
#: Text chunks read from one file.
MAX_TEXT_CHUNKS = 256
#: One EXIF block (a JPEG APP1 segment cannot exceed 64 KB; WebP/PNG chunks can).
MAX_EXIF_BYTES = 1024 * 1024
#: One JSON document (ComfyUI graph, NovelAI comment, InvokeAI metadata...).
MAX_JSON_BYTES = 2 * 1024 * 1024
#: Prompts and other user text kept in evidence details.
MAX_PROMPT_CHARS = 4000
#: Other strings kept in details (model names, sampler names, software tags).
MAX_FIELD_CHARS = 300
#: XMP properties collected from one packet.
MAX_XMP_PROPERTIES = 4000
#: NovelAI stealth payload (compressed) and its decompressed size.
MAX_STEALTH_PAYLOAD_BYTES = 1024 * 1024
MAX_STEALTH_TEXT_BYTES = 2 * 1024 * 1024


class Skip(Exception):
    """An item that cannot be read safely; its message becomes a note in :class:`Findings`."""


def clip(value: Any, limit: int = MAX_FIELD_CHARS) -> str | None:
    """A bounded, stripped string (``None`` for empty values); a cut is marked with an ellipsis."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\x00", "").strip()
    if not text:
        return None
    if len(text) > limit:
        return text[:limit] + "…"
    return text


def as_int(value: Any) -> int | None:
    """An integer from an int, float or numeric string; ``None`` otherwise (never bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(-?\d{1,40})(?:\.0+)?\s*", value)
        if m:
            return int(m.group(1))
    return None


def load_json(text: str | bytes, what: str) -> Any:
    """Parse JSON from untrusted text with a size bound; raise :class:`Skip` on any problem."""
    if len(text) > MAX_JSON_BYTES:
        raise Skip(f"{what}: JSON of {len(text)} bytes is over the limit of {MAX_JSON_BYTES}; skipped")
    try:
        return json.loads(text)
    except RecursionError:
        raise Skip(f"{what}: JSON nested too deeply; skipped") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Skip(f"{what}: broken JSON ({str(exc)[:80]}); skipped") from None


def lookup(d: dict[str, Any], *names: str) -> Any:
    """The first present value among ``names``, comparing keys case- and separator-insensitively."""
    norm = {_norm_key(k): v for k, v in d.items() if isinstance(k, str)}
    for name in names:
        v = norm.get(_norm_key(name))
        if v not in (None, ""):
            return v
    return None


def _norm_key(k: str) -> str:
    return re.sub(r"[\s_\-]", "", k).lower()


@dataclass
class Generation:
    """What a generator's own metadata says about how an image was made."""

    generator: str
    model: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def details(self, **where: Any) -> dict[str, Any]:
        """JSON-ready details: where it was found, then the parameters that are present."""
        out: dict[str, Any] = dict(where)
        out["generator"] = self.generator
        for key in ("model", "seed", "steps", "sampler"):
            value = getattr(self, key)
            if value is not None:
                out[key] = clip(value) if isinstance(value, str) else value
        for key in ("prompt", "negative_prompt"):
            value = clip(getattr(self, key), MAX_PROMPT_CHARS)
            if value is not None:
                out[key] = value
        for key, value in self.extra.items():
            if value is None:
                continue
            out[key] = clip(value) if isinstance(value, str) else value
        return out

    def summary(self, found_in: str) -> str:
        parts = [f"{found_in} written by {self.generator}"]
        if self.model:
            parts.append(f"model {clip(self.model, 80)}")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return ", ".join(parts) + ": generation parameters of an AI image generator."
