"""Keep a scan worker's picture-sized buffers on the heap instead of fresh memory maps.

glibc's ``malloc`` serves every request above ``M_MMAP_THRESHOLD`` (128 KiB at start, raised
on its own only after such a block is freed) with a new ``mmap``, and the kernel then zero-fills
the pages one fault at a time: for a scan, which allocates and frees a few megabytes per picture
(the decoded pixels, their array, PDQ's float planes), that is a quarter of the time of a bare
decode + PDQ loop (``bench/scan_bench.py`` runs the baseline both ways). A worker raises the
threshold to :data:`MMAP_THRESHOLD` and keeps up to :data:`TRIM_THRESHOLD` of freed memory for
the next picture; larger blocks (huge pictures) still come from ``mmap`` and go back to the
system when freed. Only where the C library is glibc; anywhere else this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 128 << 20

_done: bool | None = None


def tune_for_scanning() -> bool:
    """Apply the thresholds once per process; True when they are in force."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_for_scanning"]
