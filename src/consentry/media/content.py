"""``Content``: one media item as read from a path or from bytes, sniffed and size-checked.

Images are held in memory (bounded by ``max_bytes``); videos stay on disk (bounded by
``max_video_bytes``) and are decoded from a path, spooled to a temporary file when they arrived as
bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from consentry.config import MediaLimits
from consentry.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from consentry.media.image import load_image
from consentry.media.sniff import PHOTO, SNIFF_BYTES, VIDEO, Sniffed, sniff

_CHUNK = 1 << 20


@dataclass
class Content:
    sniffed: Sniffed
    size: int
    limits: MediaLimits
    path: Path | None = None
    data: bytes | None = None
    _image: Image.Image | None = field(default=None, repr=False)
    _digests: dict[str, str] | None = field(default=None, repr=False)
    _pixels: "np.ndarray | None" = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        return self.sniffed.content_type

    @classmethod
    def from_bytes(cls, data: bytes, limits: MediaLimits) -> "Content":
        return cls(sniff(data[:SNIFF_BYTES]), len(data), limits, data=data)

    @classmethod
    def from_path(cls, path: str | os.PathLike, limits: MediaLimits) -> "Content":
        """Open a file; small photos are read whole, everything else stays on disk."""
        p = Path(path)
        try:
            size = p.stat().st_size
            with p.open("rb") as fh:
                head = fh.read(SNIFF_BYTES)
        except IsADirectoryError as exc:
            raise UnsupportedMedia("is a directory") from exc
        except PermissionError as exc:
            raise CorruptMedia("permission denied") from exc
        except FileNotFoundError as exc:
            raise CorruptMedia("no such file") from exc
        except OSError as exc:
            raise CorruptMedia(f"cannot read file: {exc.strerror or exc}") from exc
        kind = sniff(head)
        content = cls(kind, size, limits, path=p)
        if kind.content_type == PHOTO and size <= limits.max_bytes:
            try:
                content.data = p.read_bytes()
            except OSError as exc:
                raise CorruptMedia(f"cannot read file: {exc.strerror or exc}") from exc
            content.size = len(content.data)
        return content

    def iter_chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.path is not None
        try:
            with self.path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
        except OSError as exc:
            raise CorruptMedia(f"cannot read file: {exc.strerror or exc}") from exc

    def digests(self, names: tuple[str, ...] = ("md5", "sha256")) -> dict[str, str]:
        """Digests of the bytes (any of md5, sha1, sha256), all in one pass; cached."""
        cached = self._digests or {}
        if not all(n in cached for n in names):
            hashers = {n: hashlib.new(n, usedforsecurity=False) if n != "sha256" else hashlib.sha256()
                       for n in names}
            for chunk in self.iter_chunks():
                for h in hashers.values():
                    h.update(chunk)
            cached = {**cached, **{n: h.hexdigest() for n, h in hashers.items()}}
            self._digests = cached
        return {n: cached[n] for n in names}

    def check_size(self) -> None:
        if self.size == 0:
            raise CorruptMedia("empty file")
        if self.content_type == VIDEO and self.size > self.limits.max_video_bytes:
            raise MediaTooLarge(
                f"video is {self.size} bytes, over the limit of {self.limits.max_video_bytes}"
            )
        if self.content_type != VIDEO and self.size > self.limits.max_bytes:
            raise MediaTooLarge(f"file is {self.size} bytes, over the limit of {self.limits.max_bytes}")

    def image(self) -> Image.Image:
        """The decoded RGB image (photos only)."""
        if self.content_type != PHOTO:
            raise UnsupportedMedia("not an image")
        if self._image is None:
            self.check_size()
            if self.data is None:
                raise MediaTooLarge(f"file is over the image limit of {self.limits.max_bytes} bytes")
            self._image = load_image(self.data, self.limits, self.limits.jpeg_draft_min_side)
        return self._image

    def pixels(self) -> np.ndarray:
        """The decoded image as an ``H x W x 3`` uint8 array (read-only), made once and shared by
        every signal and analyser that reads pixels: each ``np.asarray`` of a Pillow image is a
        whole copy of it."""
        if self._pixels is None:
            self._pixels = np.asarray(self.image())
        return self._pixels

    @contextlib.contextmanager
    def video_path(self) -> Iterator[Path]:
        """A path to decode the video from (a temporary copy when it came as bytes)."""
        if self.content_type != VIDEO:
            raise UnsupportedMedia("not a video")
        self.check_size()
        if self.path is not None:
            yield self.path
            return
        assert self.data is not None
        suffix = "." + self.sniffed.format
        with tempfile.NamedTemporaryFile(prefix="consentry-", suffix=suffix) as tmp:
            tmp.write(self.data)
            tmp.flush()
            yield Path(tmp.name)


__all__ = ["Content", "PHOTO", "VIDEO"]
