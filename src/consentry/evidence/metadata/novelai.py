"""NovelAI: PNG text chunks and the "stealth" copy hidden in the alpha channel's low bits.

Text chunks: ``Software`` = ``NovelAI``, ``Source`` = e.g. ``NovelAI Diffusion V4.5 1229B44F``,
``Comment`` = JSON with ``prompt``, ``uc`` (negative), ``seed``, ``steps``, ``sampler``...

Stealth (NovelAI's own reader, and the A1111 "stealth pnginfo" extension): the alpha channel is
read **column by column** (x outer, y inner), one bit per pixel (the LSB), most significant bit
first; the bits form the magic ``stealth_pngcomp`` (gzip payload) or ``stealth_pnginfo`` (plain
UTF-8), then a 32-bit big-endian payload length **in bits**, then the payload.  NovelAI's
payload is a JSON object of the same text fields; the A1111 extension's is an infotext.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from PIL import Image

from consentry.evidence.metadata.common import (
    MAX_STEALTH_PAYLOAD_BYTES,
    MAX_STEALTH_TEXT_BYTES,
    Generation,
    Skip,
    as_int,
    clip,
    load_json,
)

MAGIC_COMPRESSED = b"stealth_pngcomp"
MAGIC_PLAIN = b"stealth_pnginfo"
_MAGIC_BITS = len(MAGIC_PLAIN) * 8


def is_novelai(text: dict[str, str]) -> bool:
    software = text.get("Software", "")
    source = text.get("Source", "")
    return software.strip().lower().startswith("novelai") or "novelai" in source.lower()


def parse_fields(fields: dict[str, Any], what: str, notes: list[str]) -> Generation:
    """From NovelAI's text fields (``Software``/``Source``/``Comment``/``Description``)."""
    gen = Generation(generator="NovelAI")
    source = fields.get("Source")
    gen.model = clip(source) if isinstance(source, str) else None
    comment: Any = fields.get("Comment")
    if isinstance(comment, str):
        try:
            comment = load_json(comment, f"{what} Comment")
        except Skip as exc:
            notes.append(str(exc))
            comment = None
    if isinstance(comment, dict):
        gen.prompt = comment.get("prompt") if isinstance(comment.get("prompt"), str) else None
        gen.negative_prompt = comment.get("uc") if isinstance(comment.get("uc"), str) else None
        gen.seed = as_int(comment.get("seed"))
        gen.steps = as_int(comment.get("steps"))
        gen.sampler = clip(comment.get("sampler")) if isinstance(comment.get("sampler"), str) else None
        gen.extra["request_type"] = clip(comment.get("request_type"))
    if gen.prompt is None and isinstance(fields.get("Description"), str):
        gen.prompt = fields["Description"]
    gen.extra["software"] = clip(fields.get("Software"))
    return gen


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def read_stealth(image: Image.Image) -> tuple[str, bytes] | None:
    """``(magic, payload text bytes)`` from the alpha LSBs, ``None`` when there is no magic.

    Raises :class:`Skip` for a magic followed by a truncated, oversized or corrupt payload.
    """
    alpha = np.asarray(image.getchannel("A") if image.mode != "P" else image.convert("RGBA").getchannel("A"))
    height, width = alpha.shape
    if height * width < _MAGIC_BITS + 32:
        return None

    def bits(start: int, count: int) -> np.ndarray:
        # Column-major order: bit i is at column i // height, row i % height.
        first_col, last_col = start // height, (start + count - 1) // height
        cols = alpha[:, first_col : last_col + 1].T.reshape(-1) & 1
        off = start - first_col * height
        return cols[off : off + count]

    magic = np.packbits(bits(0, _MAGIC_BITS)).tobytes()
    if magic not in (MAGIC_COMPRESSED, MAGIC_PLAIN):
        return None
    (n_bits,) = np.packbits(bits(_MAGIC_BITS, 32)).view(">u4")
    n_bits = int(n_bits)
    available = height * width - _MAGIC_BITS - 32
    if n_bits == 0 or n_bits % 8:
        raise Skip(f"NovelAI stealth: invalid payload length {n_bits} bits; skipped")
    if n_bits > available:
        raise Skip("NovelAI stealth: payload is longer than the image (truncated); skipped")
    if n_bits // 8 > MAX_STEALTH_PAYLOAD_BYTES:
        raise Skip(f"NovelAI stealth: payload of {n_bits // 8} bytes is over the limit; skipped")
    payload = np.packbits(bits(_MAGIC_BITS + 32, n_bits)).tobytes()
    if magic == MAGIC_COMPRESSED:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip
        try:
            payload = d.decompress(payload, MAX_STEALTH_TEXT_BYTES)
        except zlib.error:
            raise Skip("NovelAI stealth: corrupt gzip payload; skipped") from None
        if d.unconsumed_tail:
            raise Skip("NovelAI stealth: payload decompresses over the limit (bomb?); skipped")
        if not d.eof:
            raise Skip("NovelAI stealth: truncated gzip payload; skipped")
    elif len(payload) > MAX_STEALTH_TEXT_BYTES:
        raise Skip("NovelAI stealth: payload over the limit; skipped")
    return magic.decode(), payload


def parse_stealth_payload(magic: str, payload: bytes, notes: list[str]) -> Generation | None:
    """NovelAI JSON, or an A1111 infotext (the stealth-pnginfo extension)."""
    from consentry.evidence.metadata.webui import parse_infotext

    text = payload.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            data = load_json(text, "NovelAI stealth payload")
        except Skip as exc:
            notes.append(str(exc))
            return None
        if not isinstance(data, dict):
            notes.append("NovelAI stealth payload is not a JSON object; skipped")
            return None
        gen = parse_fields(data, "NovelAI stealth payload", notes)
        if not is_novelai({k: v for k, v in data.items() if isinstance(v, str)}):
            gen.generator = "unknown generator (NovelAI stealth format)"
        gen.extra["stealth_magic"] = magic
        return gen
    gen = parse_infotext(text)
    if gen is not None:
        gen.extra["stealth_magic"] = magic
    return gen

