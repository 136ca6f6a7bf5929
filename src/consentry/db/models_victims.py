"""Tables of the victims area (filled in by its issue)."""

from __future__ import annotations
