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
