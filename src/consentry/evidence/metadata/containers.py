"""Pull the raw metadata items out of an image file, with bounds, without decoding pixels.

JPEG (APP1 EXIF, APP1 XMP and Extended XMP), PNG (tEXt/zTXt/iTXt, eXIf) and WebP (``EXIF``,
``XMP `` chunks) are walked here byte by byte; TIFF, HEIF/AVIF and GIF go through Pillow's
header reader.  A truncated or oversized item is skipped with a note.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image

from consentry.evidence.metadata.common import (
    MAX_EXIF_BYTES,
    MAX_EXTENDED_XMP_BYTES,
    MAX_TEXT_CHUNK_BYTES,
    MAX_TEXT_CHUNKS,
    MAX_TOTAL_TEXT_BYTES,
    MAX_XMP_BYTES,
    Skip,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_APP1 = b"http://ns.adobe.com/xmp/extension/\x00"
XMP_PNG_KEYWORD = "XML:com.adobe.xmp"


@dataclass
class RawMetadata:
    """The metadata items of one file, still unparsed (bytes) or as text (PNG chunks)."""

    container: str  # jpeg | png | webp | other
    exif: list[bytes] = field(default_factory=list)  # TIFF-structured blocks ("Exif\0\0" stripped)
    xmp: list[bytes] = field(default_factory=list)  # XMP packets
    text: list[tuple[str, str, str]] = field(default_factory=list)  # (chunk type, keyword, text)
    notes: list[str] = field(default_factory=list)

    def text_dict(self) -> dict[str, str]:
        """Text chunks by keyword (the first of each keyword wins)."""
        out: dict[str, str] = {}
        for _, key, value in self.text:
            out.setdefault(key, value)
        return out


def extract(data: bytes, fmt: str, image: Image.Image | None) -> RawMetadata:
    """Dispatch on the sniffed format; ``image`` is used for formats read through Pillow."""
    if fmt == "jpeg":
        return _jpeg(data)
    if fmt == "png":
        return _png(data)
    if fmt == "webp":
        return _webp(data)
    return _pillow(image)


# --------------------------------------------------------------------------- JPEG


def _jpeg(data: bytes) -> RawMetadata:
    raw = RawMetadata("jpeg")
    extended: dict[bytes, tuple[int, dict[int, bytes]]] = {}
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raw.notes.append(f"JPEG: unexpected byte at offset {pos}; metadata after it not read")
            break
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # SOI, TEM, RSTn: no length
            continue
        if marker == 0xD9:  # EOI
            break
        if pos + 2 > n:
            raw.notes.append("JPEG: truncated segment header; skipped")
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > n:
            raw.notes.append(f"JPEG: truncated segment 0x{marker:02X} at offset {pos - 2}; skipped")
            break
        body = data[pos + 2 : pos + length]
        pos += length
        if marker == 0xDA:  # start of scan: metadata comes before the image data
            break
        if marker != 0xE1:
            continue
        if body.startswith(b"Exif\x00\x00"):
            raw.exif.append(body[6:])
        elif body.startswith(XMP_APP1):
            raw.xmp.append(body[len(XMP_APP1) :])
        elif body.startswith(XMP_EXT_APP1):
            _extended_xmp_part(body[len(XMP_EXT_APP1) :], extended, raw)
    for guid, (total, parts) in extended.items():
        blob = b"".join(parts[k] for k in sorted(parts))
        if len(blob) != total:
            raw.notes.append("JPEG: incomplete Extended XMP; skipped")
            continue
        raw.xmp.append(blob)
    return raw


def _extended_xmp_part(body: bytes, extended: dict, raw: RawMetadata) -> None:
    if len(body) < 40:
        raw.notes.append("JPEG: truncated Extended XMP segment; skipped")
        return
    guid = body[:32]
    total, offset = struct.unpack(">II", body[32:40])
    chunk = body[40:]
    if total > MAX_EXTENDED_XMP_BYTES:
        if guid not in extended:
            raw.notes.append(
                f"JPEG: Extended XMP of {total} bytes is over the limit of {MAX_EXTENDED_XMP_BYTES}; skipped"
            )
        extended.setdefault(guid, (-1, {}))
        return
    entry = extended.setdefault(guid, (total, {}))
    if entry[0] != total or offset + len(chunk) > total:
        return  # inconsistent parts; the length check above then drops the whole packet
    entry[1][offset] = chunk


# --------------------------------------------------------------------------- PNG


def _png(data: bytes) -> RawMetadata:
    raw = RawMetadata("png")
    pos, n = len(PNG_SIGNATURE), len(data)
    total_text = 0
    while pos < n:
        if pos + 8 > n:
            raw.notes.append(f"PNG: truncated chunk header at offset {pos}; skipped")
            break
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        name = ctype.decode("latin-1")
        end = pos + 8 + length
        if end + 4 > n:
            raw.notes.append(f"PNG: truncated {name!r} chunk at offset {pos}; skipped")
            break
        body = data[pos + 8 : end]
        crc_ok = zlib.crc32(ctype + body) == struct.unpack(">I", data[end : end + 4])[0]
        pos = end + 4
        if ctype == b"IEND":
            break
        if ctype not in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            continue
        if not crc_ok:
            raw.notes.append(f"PNG: {name} chunk at offset {pos - length - 12} has a bad CRC; skipped")
            continue
        if ctype == b"eXIf":
            if length > MAX_EXIF_BYTES:
                raw.notes.append(f"PNG: eXIf chunk of {length} bytes is over the limit; skipped")
            else:
                raw.exif.append(body[6:] if body.startswith(b"Exif\x00\x00") else body)
            continue
        if len(raw.text) >= MAX_TEXT_CHUNKS:
            raw.notes.append(f"PNG: more than {MAX_TEXT_CHUNKS} text chunks; the rest skipped")
            break
        try:
            key, text = _png_text(ctype, body, MAX_TEXT_CHUNK_BYTES)
        except Skip as exc:
            raw.notes.append(f"PNG: {exc}")
            continue
        total_text += len(text)
        if total_text > MAX_TOTAL_TEXT_BYTES:
            raw.notes.append("PNG: text chunks together are over the size limit; the rest skipped")
            break
        if key == XMP_PNG_KEYWORD:
            if len(text.encode("utf-8")) > MAX_XMP_BYTES:
                raw.notes.append(f"PNG: XMP packet is over the limit of {MAX_XMP_BYTES} bytes; skipped")
            else:
                raw.xmp.append(text.encode("utf-8"))
        else:
            raw.text.append((name, key, text))
    return raw


def _png_text(ctype: bytes, body: bytes, limit: int) -> tuple[str, str]:
    sep = body.find(b"\x00", 0, 80)
    if sep <= 0:
        raise Skip(f"{ctype.decode()} chunk without a valid keyword; skipped")
    key = body[:sep].decode("latin-1")
    rest = body[sep + 1 :]
    if ctype == b"tEXt":
        if len(rest) > limit:
            raise Skip(f"{ctype.decode()} {key!r} of {len(rest)} bytes is over the limit; skipped")
        return key, rest.decode("latin-1")
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            raise Skip(f"zTXt {key!r}: unknown compression method; skipped")
        return key, _inflate(rest[1:], limit, f"zTXt {key!r}").decode("latin-1")
    # iTXt: keyword \0 flag method lang \0 translated-keyword \0 text
    if len(rest) < 2:
        raise Skip(f"iTXt {key!r}: truncated; skipped")
    flag, method = rest[0], rest[1]
    rest = rest[2:]
    lang_end = rest.find(b"\x00")
    tkey_end = rest.find(b"\x00", lang_end + 1) if lang_end >= 0 else -1
    if lang_end < 0 or tkey_end < 0:
        raise Skip(f"iTXt {key!r}: truncated; skipped")
    payload = rest[tkey_end + 1 :]
    if flag == 1:
        if method != 0:
            raise Skip(f"iTXt {key!r}: unknown compression method; skipped")
        payload = _inflate(payload, limit, f"iTXt {key!r}")
    elif len(payload) > limit:
        raise Skip(f"iTXt {key!r} of {len(payload)} bytes is over the limit; skipped")
    return key, payload.decode("utf-8", errors="replace")


def _inflate(blob: bytes, limit: int, what: str) -> bytes:
    """zlib-decompress at most ``limit`` bytes: a decompression bomb is refused, not expanded."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(blob, limit)
    except zlib.error as exc:
        raise Skip(f"{what}: corrupt compressed text ({exc}); skipped") from None
    if d.unconsumed_tail:
        raise Skip(f"{what}: decompresses to more than {limit} bytes (decompression bomb?); skipped")
    if not d.eof:
        raise Skip(f"{what}: truncated compressed text; skipped")
    return out


# --------------------------------------------------------------------------- WebP


def _webp(data: bytes) -> RawMetadata:
    raw = RawMetadata("webp")
    pos, n = 12, len(data)
    while pos + 8 <= n:
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        start, end = pos + 8, pos + 8 + size
        if end > n:
            raw.notes.append(f"WebP: truncated {fourcc.decode('latin-1')!r} chunk; skipped")
            break
        pos = end + (size & 1)
        if fourcc == b"EXIF":
            if size > MAX_EXIF_BYTES:
                raw.notes.append(f"WebP: EXIF chunk of {size} bytes is over the limit; skipped")
                continue
            body = data[start:end]
            raw.exif.append(body[6:] if body.startswith(b"Exif\x00\x00") else body)
        elif fourcc == b"XMP ":
            if size > MAX_XMP_BYTES:
                raw.notes.append(f"WebP: XMP packet of {size} bytes is over the limit of {MAX_XMP_BYTES}; skipped")
                continue
            raw.xmp.append(data[start:end])
    return raw


# --------------------------------------------------------------------------- TIFF, HEIF, AVIF, GIF


def _pillow(image: Image.Image | None) -> RawMetadata:
    raw = RawMetadata("other")
    if image is None:
        return raw
    info = image.info or {}
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if xmp is None and hasattr(image, "tag_v2"):
        xmp = image.tag_v2.get(700)  # TIFF XMLPacket
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, (bytes, bytearray)):
        if len(xmp) > MAX_XMP_BYTES:
            raw.notes.append(f"XMP packet of {len(xmp)} bytes is over the limit of {MAX_XMP_BYTES}; skipped")
        else:
            raw.xmp.append(bytes(xmp))
    exif = info.get("exif")
    if isinstance(exif, (bytes, bytearray)):
        if len(exif) > MAX_EXIF_BYTES:
            raw.notes.append(f"EXIF block of {len(exif)} bytes is over the limit; skipped")
        else:
            exif = bytes(exif)
            if exif.startswith(b"Exif\x00\x00"):
                exif = exif[6:]
            elif exif[4:10] == b"Exif\x00\x00":  # HEIF: 4-byte offset before the header
                exif = exif[10:]
            raw.exif.append(exif)
    elif image.format == "TIFF":  # the file is itself a TIFF structure: re-serialise IFD0 + Exif IFD
        try:
            block = image.getexif().tobytes()
        except Exception as exc:  # noqa: BLE001 - malformed tags: note and go on
            raw.notes.append(f"TIFF: tags could not be read ({type(exc).__name__}); skipped")
        else:
            if len(block) <= MAX_EXIF_BYTES:
                raw.exif.append(block[6:] if block.startswith(b"Exif\x00\x00") else block)
    for key in ("comment", "Comment", "parameters", "prompt", "workflow"):
        value = info.get(key)
        if isinstance(value, bytes):
            value = value[:MAX_TEXT_CHUNK_BYTES].decode("utf-8", errors="replace")
        if isinstance(value, str) and len(value) <= MAX_TEXT_CHUNK_BYTES:
            raw.text.append(("info", key, value))
    return raw
