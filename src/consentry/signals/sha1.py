"""``sha1``: SHA-1 of the file bytes (NCMEC and Project VIC lists carry it)."""

from consentry.signals._digest import _DigestSignal
from consentry.signals.base import register


@register
class SHA1Signal(_DigestSignal):
    name = "sha1"
    hex_chars = 40
