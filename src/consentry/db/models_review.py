"""Tables of the review area (filled in by its issue)."""

from __future__ import annotations
