"""Exceptions that carry a short, user-facing message.

Every error that can reach a user (CLI line, API problem+json) is a ``ConsentryError`` with a
stable ``code``; anything else is a bug.
"""

from __future__ import annotations


class ConsentryError(Exception):
    """Base class: ``str(err)`` is a short message safe to show a user."""

    code = "error"


class MediaError(ConsentryError):
    """The content could not be read safely."""

    code = "media_error"


class UnsupportedMedia(MediaError):
    code = "unsupported_media"


class MediaTooLarge(MediaError):
    """Bytes, pixels, duration or frame count over the configured limits."""

    code = "media_too_large"


class CorruptMedia(MediaError):
    code = "corrupt_media"


class SignalValueError(ConsentryError, ValueError):
    """A hash string that does not parse for its signal type."""

    code = "bad_signal_value"


def article(word: str) -> str:
    """``a`` or ``an`` for ``word`` as it is read aloud: "an MD5", "an NCII bank", "a SHA256",
    "a PDQ hash", "an ai-abuse bank" (initialisms are read letter by letter; SHA is a word)."""
    w = (word or "").strip()
    head = w.split(" ", 1)[0].split("-", 1)[0]
    if not head:
        return "a"
    if head.upper().startswith("SHA"):
        return "a"
    if head[0].upper() in "AEIOU":
        return "an"
    initialism = head.isupper() or head.lower() in _INITIALISMS
    return "an" if initialism and head[0].upper() in "FHLMNRSX" else "a"


#: Lower-case words read letter by letter (bank kinds).
_INITIALISMS = frozenset({"ncii", "csam"})
