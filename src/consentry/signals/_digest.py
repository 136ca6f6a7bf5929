"""Shared behaviour of the cryptographic-digest signal types (exact match only)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, ClassVar, Sequence

from consentry.signals._hex import parse_hex
from consentry.signals.base import Comparison, Signal

if TYPE_CHECKING:
    from consentry.media.content import Content


class _DigestSignal:
    name: ClassVar[str]
    hex_chars: ClassVar[int]
    content_types: ClassVar[tuple[str, ...]] = ("photo", "video", "unknown")
    default_threshold: ClassVar[int] = 0

    @classmethod
    def compute(cls, content: "Content") -> Signal:
        return Signal(cls.name, content.digests((cls.name,))[cls.name])

    @classmethod
    def compute_bytes(cls, data: bytes) -> str:
        return hashlib.new(cls.name, data).hexdigest()

    @classmethod
    def parse(cls, text: str) -> str:
        return parse_hex(text, cls.hex_chars, cls.name.upper())

    @classmethod
    def serialize(cls, value: str) -> str:
        return cls.parse(value)

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return 0 if cls.parse(a) == cls.parse(b) else 1

    @classmethod
    def brute_force_compare(
        cls, query: str, candidates: Sequence[str], threshold: int | None = None
    ) -> list[Comparison]:
        q = cls.parse(query)
        return [Comparison(i, 0) for i, c in enumerate(candidates) if cls.parse(c) == q]

    @classmethod
    def examples(cls) -> list[str]:
        return [cls.compute_bytes(b""), cls.compute_bytes(b"consentry example")]
