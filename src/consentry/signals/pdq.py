"""``pdq``: Meta's PDQ perceptual hash (256 bits as 64 lowercase hex, quality 0-100).

Computed by our own compiled kernels (:mod:`consentry.signals.pdq_kernels`), bit-identical
(hash and quality) to ``pdqhash`` (Meta's C++ reference, bound for Python) and several times faster,
on the RGB image from :mod:`consentry.media.image`, so hashes are bit-identical to
python-threatexchange for RGB and grey images and correct for every other mode. ``pdqhash`` stays
the reference (:func:`reference_pdq`, used by the tests). Match when Hamming distance <= 31; hashes
with quality < 50 are kept but flagged (``usable`` false) and not used for matching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np

from consentry.signals._hex import hamming_hex, parse_hex
from consentry.signals.base import Comparison, Signal, register
from consentry.signals.pdq_kernels import pdq_hash, pdq_hash_dihedral

if TYPE_CHECKING:
    from PIL import Image

    from consentry.media.content import Content

#: pytx ``PDQ_CONFIDENT_MATCH_THRESHOLD``
PDQ_THRESHOLD = 31
#: pytx ``PdqSignal.QUALITY_THRESHOLD``: lower-quality hashes are not used to match.
PDQ_MIN_QUALITY = 50
#: Order of the variants returned by ``pdqhash.compute_dihedral``.
DIHEDRAL_TRANSFORMS = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flip_plus1",
    "flip_minus1",
)


def bits_to_hex(bits: np.ndarray) -> str:
    """pdqhash's bit vector (MSB first) -> 64 lowercase hex, as pytx writes it."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq_from_image(image: "Image.Image") -> tuple[str, int]:
    return pdq_hash(np.asarray(image))


def pdq_dihedral_from_image(image: "Image.Image") -> tuple[list[str], int]:
    """The 8 dihedral variants (see :data:`DIHEDRAL_TRANSFORMS`) in one pass, and the quality."""
    return pdq_hash_dihedral(np.asarray(image))


def reference_pdq(pixels: np.ndarray, dihedral: bool = False) -> tuple["str | list[str]", int]:
    """The same with ``pdqhash`` (Meta's C++): the reference our kernels are tested against."""
    import pdqhash

    if dihedral:
        variants, quality = pdqhash.compute_dihedral(np.ascontiguousarray(pixels))
        return [bits_to_hex(v) for v in variants], int(quality)
    bits, quality = pdqhash.compute(np.ascontiguousarray(pixels))
    return bits_to_hex(bits), int(quality)


@register
class PDQSignal:
    name: ClassVar[str] = "pdq"
    content_types: ClassVar[tuple[str, ...]] = ("photo",)
    default_threshold: ClassVar[int] = PDQ_THRESHOLD
    min_quality: ClassVar[int] = PDQ_MIN_QUALITY

    @classmethod
    def compute(cls, content: "Content") -> Signal:
        value, quality = pdq_hash(content.pixels())
        return Signal(cls.name, value, quality, {"usable": quality >= cls.min_quality})

    @classmethod
    def compute_dihedral(cls, content: "Content") -> tuple[list[str], int]:
        return pdq_hash_dihedral(content.pixels())

    @classmethod
    def parse(cls, text: str) -> str:
        return parse_hex(text, 64, "PDQ hash")

    @classmethod
    def serialize(cls, value: str) -> str:
        return cls.parse(value)

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return hamming_hex(cls.parse(a), cls.parse(b))

    @classmethod
    def brute_force_compare(
        cls, query: str, candidates: Sequence[str], threshold: int | None = None
    ) -> list[Comparison]:
        t = cls.default_threshold if threshold is None else threshold
        q = int(cls.parse(query), 16)
        out = []
        for i, c in enumerate(candidates):
            d = (q ^ int(cls.parse(c), 16)).bit_count()
            if d <= t:
                out.append(Comparison(i, d))
        return out

    @classmethod
    def examples(cls) -> list[str]:
        # PDQ hashes of Meta's benign bridge test photo and two of its edits (pdq/data).
        return [
            "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
            "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22",
            "d8f8f0cec0f4a84f8e370a22038f67f0b36a2ed597231e1d72e6b39c4a9c9b22",
        ]
