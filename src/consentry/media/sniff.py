"""Identify media from magic bytes, never from the file name."""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: How many leading bytes :func:`sniff` needs to decide.
SNIFF_BYTES = 512

PHOTO = "photo"
VIDEO = "video"
UNKNOWN = "unknown"

# ISO-BMFF brands (the "ftyp" box) that mean a still image.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"mp71", b"avc1",
    b"qt  ", b"M4V ", b"M4VH", b"M4VP", b"MSNV", b"dash", b"3gp4", b"3gp5", b"3gp6", b"3g2a",
    b"f4v ", b"mmp4", b"NDAS", b"XAVC",
}


@dataclass(frozen=True)
class Sniffed:
    content_type: str  # photo | video | unknown
    format: str  # jpeg, png, gif, webp, bmp, tiff, heif, avif, mp4, mov, webm, mkv, avi, ...
    mime: str


_UNKNOWN = Sniffed(UNKNOWN, "unknown", "application/octet-stream")


def _ftyp(head: bytes) -> Sniffed | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    (box_size,) = struct.unpack(">I", head[0:4])
    major = head[8:12]
    brands = {major}
    end = min(len(head), box_size if box_size >= 16 else 16)
    for off in range(16, end - 3, 4):
        brands.add(head[off : off + 4])
    # A file is an image only if its major brand or a compatible brand says so and it does not
    # declare itself a movie first (an image sequence brand "msf1"/"avis" is still a still-image
    # container as far as decoders go: Pillow reads its primary image).
    if major in _AVIF_BRANDS or (major not in _VIDEO_BRANDS and brands & _AVIF_BRANDS):
        return Sniffed(PHOTO, "avif", "image/avif")
    if major in _HEIF_BRANDS or (major not in _VIDEO_BRANDS and brands & _HEIF_BRANDS):
        return Sniffed(PHOTO, "heif", "image/heif")
    if major == b"qt  ":
        return Sniffed(VIDEO, "mov", "video/quicktime")
    if major.startswith(b"3g"):
        return Sniffed(VIDEO, "3gp", "video/3gpp")
    return Sniffed(VIDEO, "mp4", "video/mp4")


def sniff(head: bytes) -> Sniffed:
    """Classify content from its first bytes (at least :data:`SNIFF_BYTES` if available)."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(PHOTO, "jpeg", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(PHOTO, "png", "image/png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed(PHOTO, "gif", "image/gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed(PHOTO, "webp", "image/webp")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed(VIDEO, "avi", "video/x-msvideo")
    if head[:2] == b"BM" and len(head) >= 18:
        # BITMAPFILEHEADER: the DIB header size at offset 14 is one of a few known values.
        (dib,) = struct.unpack("<I", head[14:18])
        if dib in (12, 40, 52, 56, 64, 108, 124):
            return Sniffed(PHOTO, "bmp", "image/bmp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed(PHOTO, "tiff", "image/tiff")
    if head[:4] == b"\x1aE\xdf\xa3":
        fmt = "webm" if b"webm" in head[:64] else "mkv"
        return Sniffed(VIDEO, fmt, "video/webm" if fmt == "webm" else "video/x-matroska")
    if head[:3] == b"FLV":
        return Sniffed(VIDEO, "flv", "video/x-flv")
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return Sniffed(VIDEO, "mpegts", "video/mp2t")
    if head[:4] == b"\x00\x00\x01\xba":
        return Sniffed(VIDEO, "mpeg", "video/mpeg")
    found = _ftyp(head)
    if found is not None:
        return found
    return _UNKNOWN
