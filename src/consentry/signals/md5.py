"""``md5``: MD5 of the file bytes, as 32 lowercase hex (ThreatExchange ``md5``)."""

from consentry.signals._digest import _DigestSignal
from consentry.signals.base import register


@register
class MD5Signal(_DigestSignal):
    name = "md5"
    hex_chars = 32
