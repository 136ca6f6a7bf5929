"""Read the few EXIF tags that say who or what made an image, including ``UserComment``.

``UserComment`` starts with an 8-byte character-code prefix: ``ASCII\\0\\0\\0``, ``UNICODE\\0``
(UTF-16; AUTOMATIC1111 writes big-endian whatever the EXIF byte order, others follow it, so the
byte order is detected), ``JIS\\0\\0\\0\\0\\0`` or eight zero bytes (undefined).
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field

from PIL import Image

from consentry.evidence.metadata.common import MAX_EXIF_BYTES, MAX_TEXT_CHUNK_BYTES, Skip

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_ARTIST = 0x013B
TAG_EXIF_IFD = 0x8769
TAG_USER_COMMENT = 0x9286

_IFD0_TAGS = {
    TAG_IMAGE_DESCRIPTION: "ImageDescription",
    TAG_MAKE: "Make",
    TAG_MODEL: "Model",
    TAG_SOFTWARE: "Software",
    TAG_ARTIST: "Artist",
}


@dataclass
class ExifFields:
    """The tags of interest, as text (``None`` when absent)."""

    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    def merge(self, other: "ExifFields") -> None:
        for k, v in other.fields.items():
            self.fields.setdefault(k, v)


def read_exif(block: bytes) -> ExifFields:
    """Parse one TIFF-structured EXIF block; raise :class:`Skip` when it cannot be read."""
    if len(block) > MAX_EXIF_BYTES:
        raise Skip(f"EXIF block of {len(block)} bytes is over the limit; skipped")
    if len(block) < 8 or block[:4] not in (b"II*\x00", b"MM\x00*"):
        raise Skip("EXIF block without a valid TIFF header; skipped")
    little = block[:2] == b"II"
    order = "<" if little else ">"
    (ifd0_offset,) = struct.unpack(order + "I", block[4:8])
    if ifd0_offset + 2 > len(block):
        raise Skip("EXIF block is truncated (no first IFD); skipped")
    (entries,) = struct.unpack(order + "H", block[ifd0_offset : ifd0_offset + 2])
    if ifd0_offset + 2 + 12 * entries > len(block):
        raise Skip("EXIF block is truncated (first IFD cut short); skipped")
    exif = Image.Exif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif.load(block)
            ifd0 = {tag: exif.get(tag) for tag in _IFD0_TAGS}
            sub = exif.get_ifd(TAG_EXIF_IFD)
            user_comment = sub.get(TAG_USER_COMMENT) if sub else None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on malformed EXIF
        raise Skip(f"EXIF block could not be read ({type(exc).__name__}); skipped") from None
    out = ExifFields()
    for tag, name in _IFD0_TAGS.items():
        text = _text(ifd0.get(tag))
        if text:
            out.fields[name] = text
    if user_comment is not None:
        text = decode_user_comment(user_comment, little_endian=little)
        if text:
            out.fields["UserComment"] = text
    return out


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    value = value[:MAX_TEXT_CHUNK_BYTES].replace("\x00", "").strip()
    return value or None


def decode_user_comment(value: bytes | str, little_endian: bool = False) -> str | None:
    """Decode an EXIF ``UserComment`` value (all prefixes, both UTF-16 byte orders)."""
    if isinstance(value, str):
        return _text(value)
    if not isinstance(value, (bytes, bytearray)):
        return None
    value = bytes(value[:MAX_TEXT_CHUNK_BYTES])
    prefix, body = value[:8], value[8:]
    if prefix == b"UNICODE\x00":
        return _text(_utf16(body, little_endian))
    if prefix == b"ASCII\x00\x00\x00":
        return _text(body.decode("ascii", errors="replace"))
    if prefix == b"JIS\x00\x00\x00\x00\x00":
        return _text(body.decode("shift_jis", errors="replace"))
    if prefix == b"\x00" * 8:
        return _text(body.decode("utf-8", errors="replace"))
    return _text(value.decode("utf-8", errors="replace"))  # no prefix: some tools write raw text


def _utf16(body: bytes, little_endian: bool) -> str:
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", errors="replace")
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", errors="replace")
    body = body[: len(body) // 2 * 2]
    # Mostly-ASCII text has its zero bytes on even offsets in big-endian, odd in little-endian.
    even_zeros = body[0::2].count(0)
    odd_zeros = body[1::2].count(0)
    if even_zeros > odd_zeros:
        return body.decode("utf-16-be", errors="replace")
    if odd_zeros > even_zeros:
        return body.decode("utf-16-le", errors="replace")
    return body.decode("utf-16-le" if little_endian else "utf-16-be", errors="replace")
