from __future__ import annotations

import pytest

from consentry.media.sniff import sniff
from imagegen import encode, scene


@pytest.mark.parametrize(
    "fmt,expected",
    [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"),
     ("TIFF", "tiff"), ("AVIF", "avif"), ("HEIF", "heif")],
)
def test_images_are_sniffed_from_bytes(fmt, expected):
    import pillow_heif  # noqa: F401  (registers the HEIF writer)

    pillow_heif.register_heif_opener()
    data = encode(scene(64, 48), fmt)
    s = sniff(data[:512])
    assert (s.content_type, s.format) == ("photo", expected)


def test_videos_and_unknown(testvectors):
    mp4 = (testvectors / "videos" / "doorknob-hd-no-bar.mp4").read_bytes()[:512]
    assert sniff(mp4).content_type == "video"
    assert sniff(b"\x1aE\xdf\xa3" + b"\x00" * 40 + b"webm").format == "webm"
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST").format == "avi"
    for junk in (b"", b"hello world", bytes(range(256)), b"BM" + b"\x00" * 30, b"%PDF-1.7"):
        assert sniff(junk).content_type == "unknown"
