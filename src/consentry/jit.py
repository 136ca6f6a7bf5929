"""Compiled kernels (numba) with numba's on-disk cache, shared by our PDQ and the watermark decoder.

A new process loads cached machine code (a fraction of a second) instead of compiling it (tens of
seconds). numba caches in the package's ``__pycache__`` when writable, else in ``NUMBA_CACHE_DIR``
(checked first when set) or the user cache dir (``~/.cache/numba``); when none is writable (a
read-only install and home) it raises at decoration, and we compile in each process instead.
"""

from __future__ import annotations

from typing import Any, Callable

from numba import njit


def cached_njit(fn: Callable[..., Any]) -> tuple[Any, bool]:
    """``njit(nogil=True)`` of ``fn`` and whether numba's disk cache is used for it."""
    try:
        return njit(cache=True, nogil=True)(fn), True
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn), False
