"""Helpers shared by the hex-digest signal types."""

from __future__ import annotations

import re

from consentry.errors import SignalValueError, article

_HEX = re.compile(r"^[0-9a-f]+$")


def parse_hex(text: str, n_chars: int, what: str) -> str:
    if not isinstance(text, str):
        raise SignalValueError(f"{what} must be a string")
    value = text.strip().lower()
    if len(value) != n_chars or not _HEX.match(value):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise SignalValueError(f"not {article(what)} {what} ({n_chars} hex characters): {shown!r}")
    return value


def hamming_hex(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
