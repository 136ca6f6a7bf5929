"""``sha256``: SHA-256 of the file bytes, as 64 lowercase hex."""

from consentry.signals._digest import _DigestSignal
from consentry.signals.base import register


@register
class SHA256Signal(_DigestSignal):
    name = "sha256"
    hex_chars = 64
