"""``photodna``: an opaque PhotoDNA hash carried by industry lists (NCMEC, Project VIC).

PhotoDNA is proprietary; Consentry cannot compute it. Values are kept so that lists round-trip
and an operator's licensed plug-in can match them. Accepted forms: 144 bytes as base64 (the
usual exchange form), or 288 hex characters; canonical form is base64.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import ClassVar, Sequence

from consentry.errors import SignalValueError, UnsupportedMedia
from consentry.signals.base import Comparison, Signal, register

_HEX = re.compile(r"^[0-9a-fA-F]{288}$")
PHOTODNA_BYTES = 144


@register
class PhotoDNASignal:
    name: ClassVar[str] = "photodna"
    content_types: ClassVar[tuple[str, ...]] = ()
    default_threshold: ClassVar[int] = 0

    @classmethod
    def compute(cls, content) -> Signal:
        raise UnsupportedMedia("PhotoDNA cannot be computed by Consentry (proprietary)")

    @classmethod
    def parse(cls, text: str) -> str:
        raw_text = str(text).strip()
        if _HEX.match(raw_text):
            raw = bytes.fromhex(raw_text)
        else:
            try:
                raw = base64.b64decode(raw_text, validate=True)
            except (binascii.Error, ValueError):
                raise SignalValueError("PhotoDNA value must be base64 or hex of 144 bytes") from None
        if len(raw) != PHOTODNA_BYTES:
            raise SignalValueError(f"PhotoDNA value must be {PHOTODNA_BYTES} bytes, got {len(raw)}")
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def serialize(cls, value: str) -> str:
        return cls.parse(value)

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return 0 if cls.parse(a) == cls.parse(b) else 1

    @classmethod
    def brute_force_compare(cls, query: str, candidates: Sequence[str], threshold=None) -> list[Comparison]:
        q = cls.parse(query)
        return [Comparison(i, 0) for i, c in enumerate(candidates) if cls.parse(c) == q]

    @classmethod
    def examples(cls) -> list[str]:
        return [base64.b64encode(bytes(range(PHOTODNA_BYTES))).decode("ascii")]
