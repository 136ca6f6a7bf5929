"""The cyclic garbage collector held off while bulk work builds many objects that live a while.

An import or an exchange pull builds hundreds of thousands of small records (dicts, lists,
dataclasses) that survive until their batch is written, so the collector's young generations keep
finding them alive and its full collections walk them again and again: about a quarter of a
StopNCII pull's time went there (``bench/exchange_bench.py``). Those records hold no reference
cycles, and reference counting frees them as soon as a batch is written; the collector is only
needed for cycles, which a bulk run creates almost none of. So while any bulk run is in progress
(several threads may run one), automatic collection is off, and it is switched back on (if it was
on) when the last one ends. Garbage in cycles made meanwhile, by this thread or another, is
collected then as usual.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
